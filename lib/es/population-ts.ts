/**
 * The reference PopulationEvaluator: members evaluated one at a time with
 * DirectOps on a kernel device (cpu-ts by default; any registered device that
 * has no population evaluator of its own runs through this one too). Working
 * memory: one theta (float32, D), one noise draw (float32, D) and the noise-sum
 * output (float64, D) -- O(D), independent of the population size.
 */
import { getDevice } from '../device/registry.js';
import { DirectOps } from '../ops/api.js';
import { episodeLoss } from '../model/protonet.js';
import { initialBnState, ProtoNetLayout, type BnState, type ModelConfig } from '../model/layout.js';
import { protoNetTask, type BatchStatsRequest, type BatchStatsResult, type NoiseSumRequest, type PopulationEvaluator, type PopulationRequest } from './population.js';
import { checkPerturbation, noiseSumInto, perturbMember } from './noise.js';

export class DirectOpsPopulationEvaluator implements PopulationEvaluator {
  readonly device: string;
  private readonly ops: DirectOps;
  private layout: ProtoNetLayout | null = null;
  private layoutKey = '';
  private bn: BnState | null = null;
  private theta = new Float32Array(0);
  private z = new Float32Array(0);
  private sumBytes = 0;
  private closed = false;

  constructor(device = 'cpu-ts') {
    const dev = getDevice(device);
    this.device = dev.name;
    this.ops = new DirectOps(dev);
  }

  private scratch(d: number): void {
    if (this.theta.length !== d) this.theta = new Float32Array(d);
    if (this.z.length !== d) this.z = new Float32Array(d);
  }

  private layoutFor(model: ModelConfig): ProtoNetLayout {
    const key = JSON.stringify(model);
    if (!this.layout || key !== this.layoutKey) {
      this.layout = new ProtoNetLayout(model);
      this.layoutKey = key;
      this.bn = initialBnState(this.layout);
    }
    return this.layout;
  }

  async evaluate(req: PopulationRequest): Promise<Float64Array> {
    const task = protoNetTask(req);
    const layout = this.layoutFor(task.model);
    layout.checkParams(req.mu);
    if (!(Number.isInteger(req.start) && Number.isInteger(req.end) && 0 <= req.start && req.start <= req.end)) {
      throw new RangeError(`evaluate: invalid member range [${req.start}, ${req.end})`);
    }
    checkPerturbation(req.perturbation, req.mu.length);
    this.scratch(req.mu.length);
    const out = new Float64Array(req.end - req.start);
    let last = performance.now();
    for (let m = req.start; m < req.end; m++) {
      // keep the event loop responsive (Ctrl-C) during long populations on this thread
      if (performance.now() - last > 50) {
        await new Promise((r) => setImmediate(r));
        last = performance.now();
      }
      if (this.closed) throw new Error('population evaluator closed');
      perturbMember(this.theta, req.mu, req.perturbation, req.seed, req.step, m, this.z);
      const { loss } = episodeLoss(this.ops, layout, this.theta, this.bn!, task.episode, { bn: 'batch', distance: task.distance });
      out[m - req.start] = -loss.data[0]!;
    }
    return out;
  }

  batchStats(req: BatchStatsRequest): BatchStatsResult {
    if (this.closed) throw new Error('population evaluator closed');
    const layout = this.layoutFor(req.model);
    layout.checkParams(req.mu);
    const { channels: c, blocks } = layout.config;
    const mean = new Float64Array(blocks * c), variance = new Float64Array(blocks * c);
    const { loss } = episodeLoss(this.ops, layout, req.mu, this.bn!, req.episode, {
      bn: 'batch', distance: req.distance,
      onBatchStats: (l, m, v) => { mean.set(m.data, l * c); variance.set(v.data, l * c); },
    });
    return { loss: loss.data[0]!, mean, variance };
  }

  async noiseSum(req: NoiseSumRequest): Promise<Float64Array> {
    this.scratch(req.mu.length);
    const out = new Float64Array(req.mu.length);
    this.sumBytes = out.byteLength;
    noiseSumInto(out, req, this.z);
    return out;
  }

  workingBytes(): number {
    return this.theta.byteLength + this.z.byteLength + this.sumBytes;
  }

  /** Stops an evaluation in flight (it rejects) and any later one. */
  async close(): Promise<void> { this.closed = true; }
}

/** Evaluator factory (the form the evaluator registry loads, also inside worker threads). */
export function createDirectOpsEvaluator(opts: { device?: string } = {}): PopulationEvaluator {
  return new DirectOpsPopulationEvaluator(opts.device ?? 'cpu-ts');
}
