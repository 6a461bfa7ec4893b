/**
 * The ES hot loop on cpu-native: PopulationEvaluator (lib/es/population.ts) backed by one
 * native call per request, run off the event loop on the addon's thread pool.
 *
 * Requests are checked against the addon's limits before the call (a RangeError naming the
 * field). close() cancels this evaluator's calls in flight (they stop within one member and
 * reject with "cancelled") and resolves once none is left, so a worker thread can then be
 * terminated with no native work running.
 */
import { EVALUATOR_PRECISIONS, protoNetTask } from '../../es/population.js';
import type { BatchStatsRequest, BatchStatsResult, EvaluatorLimits, NoiseSumRequest, PopulationEvaluator, PopulationRequest, EvaluatorPrecision } from '../../es/population.js';
import type { ModelConfig } from '../../model/layout.js';
import type { Distance, Episode } from '../../model/protonet.js';
import { checkNoiseSumRequest, checkPerturbation } from '../../es/noise.js';
import { ProtoNetLayout } from '../../model/layout.js';
import { STREAM } from '../../rng/philox.js';
import { addon, loadAddon, type Bf16Kernel, type NativeLimits } from './addon.js';

export interface NativePopulationOptions {
  /** Threads per call (default: the pool, sized to the machine's cores). */
  threads?: number;
  /**
   * 'fp32' (default) or 'bf16': every convolution's products on bf16-rounded operands with
   * fp32 accumulation (docs/native.md, "bf16"). 'bf16' needs AVX512_BF16 or AMX-BF16 (an Error
   * naming the CPU flags otherwise, unless bf16Kernel is 'emulated').
   */
  precision?: EvaluatorPrecision;
  /**
   * With 'bf16': the kernel ('amx', 'avx512bf16', or 'emulated': bf16 rounding on the fp32
   * kernels, any CPU, slower than fp32). Default: the process-wide choice
   * (setNativeBf16Kernel), else the best this CPU has.
   */
  bf16Kernel?: Bf16Kernel;
}

/** What a NativePopulationEvaluator runs. */
export interface NativePopulationInfo {
  device: 'cpu-native';
  precision: EvaluatorPrecision;
  /** The bf16 kernel of its calls ('none' for fp32). */
  kernel: Bf16Kernel | 'none';
  /** Threads per call (0: the pool). */
  threads: number;
  isa: string;
}

function f32(a: Float32Array | Float64Array, what: string): Float32Array {
  if (a instanceof Float32Array) return a;
  throw new TypeError(`cpu-native population: ${what} must be a Float32Array, got ${a.constructor.name}`);
}

/** The native population loop's limits (throws when the addon is unavailable). */
export function nativeLimits(): NativeLimits {
  return loadAddon().addon.limits();
}

let nextGroup = 1;

export class NativePopulationEvaluator implements PopulationEvaluator {
  readonly device = 'cpu-native';
  readonly precision: EvaluatorPrecision;
  private readonly bf16Kernel: Bf16Kernel | undefined;
  private readonly threads: number;
  private readonly group = nextGroup++ % 0x100000000;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly lim: NativeLimits;
  private closed = false;

  constructor(opts: NativePopulationOptions = {}) {
    loadAddon(); // throws with the reason when the addon is unavailable
    const t = opts.threads ?? 0;
    if (!Number.isInteger(t) || t < 0) throw new RangeError(`cpu-native population: threads must be a non-negative integer, got ${t}`);
    this.threads = t;
    this.lim = nativeLimits();
    const p = opts.precision ?? 'fp32';
    if (!EVALUATOR_PRECISIONS.includes(p)) throw new RangeError(`cpu-native population: precision must be one of ${EVALUATOR_PRECISIONS.join(', ')}, got ${JSON.stringify(p)}`);
    this.precision = p;
    const k = opts.bf16Kernel;
    const bf = addon().info().bf16;
    if (k !== undefined) {
      if (p !== 'bf16') throw new RangeError(`cpu-native population: bf16Kernel applies to precision 'bf16' only, got precision ${p}`);
      if (!bf.available.includes(k)) {
        throw new RangeError(`cpu-native population: bf16Kernel must be one of ${bf.available.join(', ')} on this CPU, got ${JSON.stringify(k)} (${bf.reason})`);
      }
    } else if (p === 'bf16' && bf.kernel === 'none') {
      throw new Error(`cpu-native population: precision 'bf16' needs a CPU with AVX512_BF16 (cpuid flag avx512_bf16, with AVX-512F/BW/VL) or AMX-BF16 (amx_bf16 + amx_tile); this one has neither (${bf.reason}). Use precision 'fp32'`);
    }
    this.bf16Kernel = k;
  }

  /** Its precision and the kernel its calls use now (the process-wide bf16 choice can change). */
  info(): NativePopulationInfo {
    const n = addon().info();
    return { device: 'cpu-native', precision: this.precision, kernel: this.precision === 'bf16' ? (this.bf16Kernel ?? n.bf16.kernel) : 'none', threads: this.threads, isa: n.isa };
  }

  limits(): EvaluatorLimits {
    const l = this.lim;
    return { way: l.way, images: l.images, members: l.members, params: l.params, channels: l.channels, imageSize: l.imageSize };
  }

  private over(what: string, value: number, limit: number, unit: string): never {
    throw new RangeError(`cpu-native population: ${what} ${value} exceeds the native limit of ${limit} ${unit} (limits: ${JSON.stringify(this.lim)})`);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    const done = (): void => { this.inFlight.delete(p); };
    p.then(done, done);
    return p;
  }

  /** The model and episode fields of a native call, checked against the limits. */
  private taskFields(m: ModelConfig, ep: Episode, distance: Distance): Record<string, unknown> {
    const l = this.lim;
    const ns = ep.support.shape[0]!, nq = ep.query.shape[0]!;
    if (ep.way > l.way) this.over('episode.way', ep.way, l.way, 'classes per episode');
    if (ns + nq > l.images) this.over('episode images (support + query)', ns + nq, l.images, 'images per episode');
    if (m.channels > l.channels) this.over('model.channels', m.channels, l.channels, 'channels');
    if (m.imageSize > l.imageSize) this.over('model.imageSize', m.imageSize, l.imageSize, 'pixels');
    return {
      blocks: m.blocks, inChannels: m.inChannels, imageSize: m.imageSize, channels: m.channels, bnEps: m.bnEps,
      way: ep.way, supportCount: ns, queryCount: nq,
      support: f32(ep.support.data, 'episode.support'), query: f32(ep.query.data, 'episode.query'),
      supportLabels: ep.supportLabels, queryLabels: ep.queryLabels,
      distance, cosineScale: 1,
    };
  }

  evaluate(req: PopulationRequest): Promise<Float64Array> {
    if (this.closed) return Promise.reject(new Error('cpu-native population: evaluator closed'));
    const { model: m, episode: ep, distance } = protoNetTask(req);
    const layout = new ProtoNetLayout(m);
    layout.checkParams(req.mu);
    checkPerturbation(req.perturbation, req.mu.length, 'cpu-native population');
    const task = this.taskFields(m, ep, distance);
    if (req.end - req.start > this.lim.members) this.over('end - start', req.end - req.start, this.lim.members, 'members per call');
    const pert = req.perturbation;
    const kind = pert.kind === 'gaussian' ? { sigma: pert.sigma, antithetic: pert.antithetic }
      : pert.kind === 'diagonal' ? { sigmas: pert.sigmas, antithetic: pert.antithetic }
        : { delta: pert.delta };
    return this.track(addon().evaluatePopulation({
      ...task,
      mu: req.mu,
      kind: pert.kind, ...kind,
      seed: req.seed, step: req.step, start: req.start, end: req.end,
      threads: this.threads, cancelGroup: this.group,
      ...(this.precision === 'bf16' ? { precision: 'bf16', ...(this.bf16Kernel ? { bf16Kernel: this.bf16Kernel } : {}) } : {}),
    }));
  }

  /** PopulationEvaluator.batchStats: one fp32 forward of mu on the calling thread (synchronous). */
  batchStats(req: BatchStatsRequest): BatchStatsResult {
    if (this.closed) throw new Error('cpu-native population: evaluator closed');
    const layout = new ProtoNetLayout(req.model);
    layout.checkParams(req.mu);
    const n = req.model.blocks * req.model.channels;
    const mean = new Float64Array(n), variance = new Float64Array(n);
    const loss = addon().populationBatchStats({ ...this.taskFields(req.model, req.episode, req.distance), mu: req.mu, mean, variance });
    return { loss, mean, variance };
  }

  /** PopulationEvaluator.prepare: builds the episode's plan for `precision` (default this evaluator's) on the calling thread. */
  prepare(req: { model: ModelConfig; episode: Episode; precision?: EvaluatorPrecision }): void {
    if (this.closed) throw new Error('cpu-native population: evaluator closed');
    const p = req.precision ?? this.precision;
    addon().populationPreparePlan({ ...this.taskFields(req.model, req.episode, 'euclidean'), ...(p === 'bf16' ? { precision: 'bf16', ...(this.bf16Kernel ? { bf16Kernel: this.bf16Kernel } : {}) } : {}) });
  }

  noiseSum(req: NoiseSumRequest): Promise<Float64Array> {
    if (this.closed) return Promise.reject(new Error('cpu-native population: evaluator closed'));
    checkNoiseSumRequest(req, 'cpu-native noiseSum');
    const l = this.lim;
    if (req.mu.length > l.params) this.over('mu.length', req.mu.length, l.params, 'parameters');
    if (req.weights.length > l.members) this.over('weights.length', req.weights.length, l.members, 'members per call');
    return this.track(addon().noiseSum({
      numParams: req.mu.length, seed: req.seed, step: req.step, antithetic: req.antithetic, sigma: req.sigma,
      ...(req.sigmas !== undefined ? { sigmas: req.sigmas } : {}), kind: req.kind ?? 'linear',
      start: req.start, weights: req.weights, threads: this.threads, cancelGroup: this.group,
    }));
  }

  workingBytes(): number {
    return addon().workingBytes();
  }

  /** Cancels this evaluator's native calls in flight and resolves once they have all settled. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.inFlight.size === 0) return;
    addon().cancel(this.group);
    await Promise.allSettled([...this.inFlight]);
  }
}

/** The factory the ES evaluator registry loads (lib/es/evaluators.ts), also inside worker threads. */
export function createNativePopulationEvaluator(opts: { device?: string; threads?: number; precision?: EvaluatorPrecision } = {}): PopulationEvaluator {
  if (opts.device !== undefined && opts.device !== 'cpu-native') throw new RangeError(`createNativePopulationEvaluator: device must be cpu-native, got ${opts.device}`);
  return new NativePopulationEvaluator({ ...(opts.threads !== undefined ? { threads: opts.threads } : {}), ...(opts.precision !== undefined ? { precision: opts.precision } : {}) });
}

/**
 * out[j] = the standard normal at index start + j of (seed, stream, step, member), computed by
 * the addon (bit-identical to gaussianFill in lib/rng/philox.ts).
 */
export function gaussianFillNative(out: Float32Array, seed: number, stream: number, step: number, member: number, start = 0): void {
  addon().gaussianFill({ out, seed, stream, step, member, start });
}

export const ES_NOISE_STREAM = STREAM.esNoise;
