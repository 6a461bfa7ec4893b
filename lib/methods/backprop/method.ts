/**
 * The backprop ProtoNet baseline as a TrainMethod: per step (one training
 * episode), the tape's exact gradient of the episode loss (BN in batch mode,
 * running statistics tracked) and a step-LR'd optimizer step; validation on
 * fixed episodes with BN running statistics.
 *
 * State = parameters, BN buffers, optimizer moments and the step: episodes are
 * random access (episode(i) a pure function of the seed and i), so a run
 * stopped at step k and resumed is bit-identical to an uninterrupted one.
 */
import { getDevice, type Device } from '../../device/registry.js';
import { initialBnState, ProtoNetLayout, type BnState } from '../../model/layout.js';
import { initParams } from '../../model/init.js';
import { checkpointTensors } from '../../model/checkpoint.js';
import { createOptimizer, stepLr, type Optimizer } from '../../optim/optimizers.js';
import { episodeGradient } from '../../autodiff/protonet.js';
import { evaluateEpisodes, type EpisodesEvalResult } from '../../eval/episodes.js';
import { UserError } from '../../errors.js';
import type { ExportedModel, MethodState, StepMetrics, TrainMethod, ValResult } from '../../train/method.js';
import type { EpisodeSource, ProtoNetSources } from '../protonet/data.js';
import { resolveBackpropConfig, type BackpropConfig, type BackpropConfigInput } from './config.js';

export type BackpropEvalResult = EpisodesEvalResult;
export { evaluateEpisodes };

export interface BackpropInit {
  /** A device or its name (default: the best available). */
  device?: Device | string;
  params?: Float32Array;
  bn?: BnState;
}

/** The backprop baseline as a TrainMethod: one training episode per step (reverse mode on the tape, Adam or SGD), validation in eval mode; run it with runLoop. */
export class BackpropMethod implements TrainMethod {
  readonly name = 'backprop';
  readonly workUnit = 'episodes';
  readonly layout: ProtoNetLayout;
  readonly device: Device;
  /** The flat parameter vector (updated in place) and BN running statistics. */
  readonly params: Float32Array;
  readonly bn: BnState;
  readonly chanceScore: number;
  readonly chanceLoss: number;
  /** Index of the next training episode (= steps done). */
  step = 0;
  private readonly optimizer: Optimizer;
  private readonly grad: Float32Array;

  constructor(readonly cfg: BackpropConfig, readonly sources: ProtoNetSources, init: BackpropInit = {}) {
    this.layout = new ProtoNetLayout(cfg.model);
    this.device = typeof init.device === 'object' ? init.device : getDevice(init.device);
    this.params = init.params ? Float32Array.from(init.params) : initParams(this.layout, cfg.seed);
    this.layout.checkParams(this.params);
    this.bn = init.bn ? { buffers: Float32Array.from(init.bn.buffers), numBatchesTracked: init.bn.numBatchesTracked } : initialBnState(this.layout);
    this.optimizer = createOptimizer(cfg.optimizer === 'adam'
      ? { name: 'adam', lr: cfg.lr, weightDecay: cfg.weightDecay }
      : { name: 'sgd', lr: cfg.lr, momentum: cfg.momentum, weightDecay: cfg.weightDecay });
    this.grad = new Float32Array(this.layout.numParams);
    this.chanceScore = 1 / cfg.val.way;
    this.chanceLoss = Math.log(cfg.train.way);
  }

  static create(input: BackpropConfigInput, sources: ProtoNetSources, init: BackpropInit = {}, preset?: string): BackpropMethod {
    return new BackpropMethod(resolveBackpropConfig(input, preset), sources, init);
  }

  get config(): BackpropConfig { return this.cfg; }
  get totalSteps(): number { return this.cfg.episodes; }

  /** The learning rate of episode i. */
  lrAt(i: number): number { return stepLr(this.cfg.lr, i, this.cfg.lrDecayEvery, this.cfg.lrGamma); }

  async trainStep(): Promise<StepMetrics> {
    const t0 = performance.now();
    const i = this.step;
    const ep = this.sources.train.episode(i);
    const g = episodeGradient(this.device, this.layout, this.params, this.bn, ep, { bn: 'batch', trackStats: this.bn, distance: this.cfg.distance }, this.grad);
    const lr = this.lrAt(i);
    // a non-finite loss is left to the loop's collapse detection (nothing is updated)
    if (Number.isFinite(g.loss)) this.optimizer.step(this.params, this.grad, lr);
    this.step = i + 1;
    return { loss: g.loss, work: 1, acc: g.accuracy, lr, stepS: (performance.now() - t0) / 1000, tapePeakBytes: g.peakBytes };
  }

  async validate(): Promise<ValResult> {
    if (!this.sources.val || this.cfg.valEpisodes <= 0) throw new Error('validate: no validation source or valEpisodes is 0');
    const v = evaluateEpisodes(this.device, this.layout, this.params, this.bn, this.sources.val, this.cfg.valEpisodes, this.cfg.distance);
    return { score: v.acc, ci95: v.ci95, loss: v.loss };
  }

  saveState(): MethodState {
    const opt = this.optimizer.state();
    const tensors: Record<string, Float32Array> = { params: this.params.slice(), 'bn.buffers': this.bn.buffers.slice() };
    for (const [k, v] of Object.entries(opt.tensors)) tensors[`opt.${k}`] = v;
    return { tensors, meta: { step: this.step, optimizerStep: opt.step, bnBatches: this.bn.numBatchesTracked, device: this.device.name } };
  }

  loadState(s: MethodState): void {
    const need = (k: string, n: number): Float32Array | Float64Array => {
      const v = s.tensors[k];
      if (!v || v.length !== n) throw new UserError(`backprop state: tensor ${k} missing or of length ${v?.length}, expected ${n}`);
      return v;
    };
    this.params.set(need('params', this.params.length));
    this.bn.buffers.set(need('bn.buffers', this.bn.buffers.length));
    this.bn.numBatchesTracked = Number(s.meta['bnBatches'] ?? 0);
    const opt: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(s.tensors)) if (k.startsWith('opt.')) opt[k.slice(4)] = Float32Array.from(need(k, this.params.length));
    this.optimizer.load({ step: Number(s.meta['optimizerStep'] ?? 0), tensors: opt });
    const st = s.meta['step'];
    if (!(typeof st === 'number' && Number.isInteger(st) && st >= 0)) throw new UserError(`backprop state: step ${String(st)} is not a non-negative integer`);
    this.step = st;
  }

  exportModel(): ExportedModel {
    return checkpointTensors({ layout: this.layout, params: this.params, bn: this.bn }, { method: 'backprop', seed: this.cfg.seed, config: this.cfg });
  }

  optimizerBytes(): number { return this.optimizer.bytes(); }

  async close(): Promise<void> {}
}
