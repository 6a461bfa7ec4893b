/**
 * The ES hot loop on cpu-native: PopulationEvaluator (lib/es/population.ts) backed by one
 * native call per request, run off the event loop on the addon's thread pool.
 */
import { protoNetTask, type NoiseSumRequest, type PopulationEvaluator, type PopulationRequest } from '../../es/population.js';
import { ProtoNetLayout } from '../../model/layout.js';
import { STREAM } from '../../rng/philox.js';
import { addon, loadAddon } from './addon.js';

export interface NativePopulationOptions {
  /** Threads per call (default: the pool, sized to the machine's cores). */
  threads?: number;
}

function f32(a: Float32Array | Float64Array, what: string): Float32Array {
  if (a instanceof Float32Array) return a;
  throw new TypeError(`cpu-native population: ${what} must be a Float32Array, got ${a.constructor.name}`);
}

export class NativePopulationEvaluator implements PopulationEvaluator {
  readonly device = 'cpu-native';
  private readonly threads: number;

  constructor(opts: NativePopulationOptions = {}) {
    loadAddon(); // throws with the reason when the addon is unavailable
    const t = opts.threads ?? 0;
    if (!Number.isInteger(t) || t < 0) throw new RangeError(`cpu-native population: threads must be a non-negative integer, got ${t}`);
    this.threads = t;
  }

  evaluate(req: PopulationRequest): Promise<Float64Array> {
    const { model: m, episode: ep, distance } = protoNetTask(req);
    const layout = new ProtoNetLayout(m);
    layout.checkParams(req.mu);
    const pert = req.perturbation;
    if (pert.kind === 'diagonal') throw new RangeError('cpu-native population evaluator: per-parameter sigma is not built into this addon yet');
    return addon().evaluatePopulation({
      blocks: m.blocks, inChannels: m.inChannels, imageSize: m.imageSize, channels: m.channels, bnEps: m.bnEps,
      way: ep.way, supportCount: ep.support.shape[0], queryCount: ep.query.shape[0],
      support: f32(ep.support.data, 'episode.support'), query: f32(ep.query.data, 'episode.query'),
      supportLabels: ep.supportLabels, queryLabels: ep.queryLabels,
      distance, cosineScale: 1,
      mu: req.mu,
      kind: pert.kind,
      ...(pert.kind === 'gaussian' ? { sigma: pert.sigma, antithetic: pert.antithetic } : { delta: pert.delta }),
      seed: req.seed, step: req.step, start: req.start, end: req.end,
      threads: this.threads,
    });
  }

  noiseSum(req: NoiseSumRequest): Promise<Float64Array> {
    if (req.sigmas || (req.kind ?? 'linear') !== 'linear') throw new RangeError('cpu-native noiseSum: per-parameter sigma and square sums are not built into this addon yet');
    return addon().noiseSum({
      numParams: req.mu.length, seed: req.seed, step: req.step, antithetic: req.antithetic, sigma: req.sigma,
      start: req.start, weights: req.weights, threads: this.threads,
    });
  }

  workingBytes(): number {
    return addon().workingBytes();
  }
}

/** The factory the ES evaluator registry loads (lib/es/evaluators.ts), also inside worker threads. */
export function createNativePopulationEvaluator(opts: { device?: string; threads?: number } = {}): PopulationEvaluator {
  if (opts.device !== undefined && opts.device !== 'cpu-native') throw new RangeError(`createNativePopulationEvaluator: device must be cpu-native, got ${opts.device}`);
  return new NativePopulationEvaluator(opts.threads === undefined ? {} : { threads: opts.threads });
}

/**
 * out[j] = the standard normal at index start + j of (seed, stream, step, member), computed by
 * the addon (bit-identical to gaussianFill in lib/rng/philox.ts).
 */
export function gaussianFillNative(out: Float32Array, seed: number, stream: number, step: number, member: number, start = 0): void {
  addon().gaussianFill({ out, seed, stream, step, member, start });
}

export const ES_NOISE_STREAM = STREAM.esNoise;
