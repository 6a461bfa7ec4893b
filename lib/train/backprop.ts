/**
 * The backprop ProtoNet trainer: per episode, the tape's exact gradient of the
 * episode loss (BN in batch mode, running statistics tracked), a step-LR'd
 * optimizer step; per epoch, a validation pass (BN running statistics), the
 * best-validation checkpoint and a last checkpoint.
 *
 * Everything the future depends on is saved: parameters and BN state (the
 * checkpoint), optimizer moments, the next episode index (episodes are random
 * access, episode(i) a pure function of the seed and i), the best validation
 * so far and the partial epoch sums (the sidecar). So a run interrupted at
 * episode k and resumed gives bit-identical parameters to an uninterrupted one.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { getDevice, type Device } from '../device/registry.js';
import { DirectOps } from '../ops/api.js';
import { episodeLoss } from '../model/protonet.js';
import { initialBnState, ProtoNetLayout, type BnState } from '../model/layout.js';
import { initParams } from '../model/init.js';
import { loadCheckpoint, loadTrainState, saveCheckpoint, saveTrainState } from '../model/checkpoint.js';
import { createOptimizer, stepLr, type Optimizer } from '../optim/optimizers.js';
import { episodeGradient } from '../autodiff/protonet.js';
import type { MetricsLog } from './metrics.js';
import { summarize } from '../eval/stats.js';
import { UserError } from '../errors.js';
import { resolveBackpropConfig, RESUME_CHANGEABLE, type BackpropConfig, type BackpropConfigInput } from './backprop-config.js';
import type { RandomAccessEpisodes } from './backprop-source.js';

export const BACKPROP_STATE_FORMAT = 'evometa-backprop-state-1';

export interface BackpropSources { train: RandomAccessEpisodes; val?: RandomAccessEpisodes }

export interface EpisodeRecord {
  /** Index of the episode just trained (0-based). */
  episode: number;
  epoch: number;
  loss: number;
  acc: number;
  lr: number;
  seconds: number;
  /** Exact peak bytes held by the tape for this episode (Tape.peakBytes). */
  tapePeakBytes: number;
}

export interface BackpropEvalResult { acc: number; ci95: number; loss: number; episodes: number }

export interface EpochRecord {
  epoch: number;
  /** Episodes done at the end of this epoch. */
  episode: number;
  trainLoss: number;
  trainAcc: number;
  val: BackpropEvalResult | null;
  bestVal: number;
  improved: boolean;
}

export interface BackpropRunOptions {
  /** Output directory: last.safetensors, best.safetensors (+ .state sidecars). */
  out?: string;
  metrics?: MetricsLog;
  /** Polled after every episode: stop, save and return. */
  shouldStop?: () => boolean;
  /** Stop (saving) after this much wall time. */
  maxMs?: number;
  /** Also write the last checkpoint every n episodes (besides each epoch's end); 0: only at epoch ends. */
  checkpointEvery?: number;
  onEpisode?: (r: EpisodeRecord, t: BackpropTrainer) => void;
  onEpoch?: (r: EpochRecord, t: BackpropTrainer) => void;
}

export type BackpropRunEnd = 'done' | 'interrupted' | 'time';
export interface BackpropRunResult { end: BackpropRunEnd; episode: number; bestVal: number; bestEpisode: number; lastCheckpoint?: string; bestCheckpoint?: string }

export interface BackpropTrainerInit {
  /** A device or its name (default: the best available). */
  device?: Device | string;
  params?: Float32Array;
  bn?: BnState;
}

/** Mean loss and accuracy over episodes 0..n-1 of `source`, eval mode (BN running statistics). */
export function evaluateEpisodes(
  device: Device, layout: ProtoNetLayout, params: Float32Array, bn: BnState, source: RandomAccessEpisodes, n: number, distance: BackpropConfig['distance'],
): BackpropEvalResult {
  const ops = new DirectOps(device);
  const accs: number[] = [], losses: number[] = [];
  for (let i = 0; i < n; i++) {
    const ep = source.episode(i);
    const { loss, logits } = episodeLoss(ops, layout, params, bn, ep, { bn: 'running', distance });
    losses.push(loss.data[0]!);
    accs.push(device.run('accuracy', { scores: logits, labels: ep.queryLabels }, {}));
  }
  const a = summarize(accs);
  return { acc: a.mean, ci95: a.ci95, loss: summarize(losses).mean, episodes: n };
}

export class BackpropTrainer {
  readonly layout: ProtoNetLayout;
  readonly device: Device;
  /** The flat parameter vector (updated in place) and BN running statistics. */
  readonly params: Float32Array;
  readonly bn: BnState;
  /** Index of the next training episode (= episodes done). */
  episode = 0;
  bestVal = -Infinity;
  bestEpisode = -1;
  /** Sums over the current epoch's episodes so far. */
  epochLoss = 0;
  epochAcc = 0;
  epochCount = 0;
  private readonly optimizer: Optimizer;
  private readonly grad: Float32Array;

  constructor(readonly cfg: BackpropConfig, readonly sources: BackpropSources, init: BackpropTrainerInit = {}) {
    this.layout = new ProtoNetLayout(cfg.model);
    this.device = typeof init.device === 'object' ? init.device : getDevice(init.device);
    this.params = init.params ? Float32Array.from(init.params) : initParams(this.layout, cfg.seed);
    this.layout.checkParams(this.params);
    this.bn = init.bn ? { buffers: Float32Array.from(init.bn.buffers), numBatchesTracked: init.bn.numBatchesTracked } : initialBnState(this.layout);
    this.optimizer = createOptimizer(cfg.optimizer === 'adam'
      ? { name: 'adam', lr: cfg.lr, weightDecay: cfg.weightDecay }
      : { name: 'sgd', lr: cfg.lr, momentum: cfg.momentum, weightDecay: cfg.weightDecay });
    this.grad = new Float32Array(this.layout.numParams);
  }

  static create(input: BackpropConfigInput, sources: BackpropSources, init: BackpropTrainerInit = {}, preset?: string): BackpropTrainer {
    return new BackpropTrainer(resolveBackpropConfig(input, preset), sources, init);
  }

  /** The configuration stored in a checkpoint's training state (to rebuild the sources before resume()). */
  static savedConfig(path: string): BackpropConfig {
    const meta = loadTrainState(path).meta as { format?: string; config?: BackpropConfig };
    if (meta.format !== BACKPROP_STATE_FORMAT || !meta.config) {
      throw new UserError(`--resume ${path}: not a backprop training state (format ${JSON.stringify(meta.format)}, expected ${BACKPROP_STATE_FORMAT})`);
    }
    return meta.config;
  }

  /**
   * Continue from a checkpoint written by save(). `override` may change only
   * the total episodes; any other field given must equal the saved one.
   */
  static resume(path: string, sources: BackpropSources, override: BackpropConfigInput = {}, init: Pick<BackpropTrainerInit, 'device'> = {}): BackpropTrainer {
    const saved = BackpropTrainer.savedConfig(path);
    const ck = loadCheckpoint(path);
    const st = loadTrainState(path);
    const meta = st.meta as { episode: number; optimizer: { step: number }; bestVal: number | null; bestEpisode: number; epoch: { loss: number; acc: number; count: number } };
    if (ck.meta['episode'] !== meta.episode) {
      throw new UserError(`--resume ${path}: the checkpoint is at episode ${String(ck.meta['episode'])} but its training state at ${meta.episode} (the run was killed between the two writes; resume from an earlier checkpoint)`);
    }
    const check = (prefix: string, given: object, have: object): void => {
      for (const [k, v] of Object.entries(given)) {
        if (v === undefined || RESUME_CHANGEABLE.includes(k)) continue;
        const sv = (have as Record<string, unknown>)[k];
        if (v !== null && typeof v === 'object' && sv && typeof sv === 'object') check(`${prefix}${k}.`, v, sv);
        else if (JSON.stringify(v) !== JSON.stringify(sv)) {
          throw new UserError(`--resume ${path}: ${prefix}${k} is ${JSON.stringify(sv)} in the saved run; cannot change it to ${JSON.stringify(v)} (only the total episodes, --steps, may change)`);
        }
      }
    };
    check('', override, saved);
    const cfg = resolveBackpropConfig({ ...saved, ...(override.episodes !== undefined ? { episodes: override.episodes } : {}) });
    const t = new BackpropTrainer(cfg, sources, { ...init, params: ck.params, bn: ck.bn });
    t.episode = meta.episode;
    t.bestVal = meta.bestVal ?? -Infinity;
    t.bestEpisode = meta.bestEpisode;
    t.epochLoss = meta.epoch.loss;
    t.epochAcc = meta.epoch.acc;
    t.epochCount = meta.epoch.count;
    const tensors: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(st.tensors)) if (k.startsWith('opt.')) tensors[k.slice(4)] = Float32Array.from(v);
    t.optimizer.load({ step: meta.optimizer.step, tensors });
    return t;
  }

  /** The learning rate of episode i. */
  lrAt(i: number): number {
    return stepLr(this.cfg.lr, i, this.cfg.lrDecayEvery, this.cfg.lrGamma);
  }

  /** 1-based epoch of episode index i. */
  epochOf(i: number): number {
    return Math.floor(i / this.cfg.episodesPerEpoch) + 1;
  }

  /** Train on episode `this.episode`: gradient by the tape (BN batch mode, running statistics tracked), one optimizer step. */
  trainEpisode(): EpisodeRecord {
    const t0 = performance.now();
    const i = this.episode;
    const ep = this.sources.train.episode(i);
    const g = episodeGradient(this.device, this.layout, this.params, this.bn, ep,
      { bn: 'batch', trackStats: this.bn, distance: this.cfg.distance }, this.grad);
    if (!Number.isFinite(g.loss)) {
      throw new UserError(`training diverged: the loss of episode ${i} is ${g.loss} (try a smaller --lr)`);
    }
    const lr = this.lrAt(i);
    this.optimizer.step(this.params, this.grad, lr);
    this.episode = i + 1;
    this.epochLoss += g.loss;
    this.epochAcc += g.accuracy;
    this.epochCount++;
    return { episode: i, epoch: this.epochOf(i), loss: g.loss, acc: g.accuracy, lr, seconds: (performance.now() - t0) / 1000, tapePeakBytes: g.peakBytes };
  }

  /** Validation on the fixed episodes val.episode(0..valEpisodes-1), BN running statistics. */
  validate(): BackpropEvalResult {
    if (!this.sources.val || this.cfg.valEpisodes <= 0) throw new Error('validate: no validation source or valEpisodes is 0');
    return evaluateEpisodes(this.device, this.layout, this.params, this.bn, this.sources.val, this.cfg.valEpisodes, this.cfg.distance);
  }

  optimizerBytes(): number { return this.optimizer.bytes(); }

  /** Checkpoint (PyTorch-loadable safetensors) and training-state sidecar, each written atomically, the sidecar first. */
  save(path: string, extra: Record<string, unknown> = {}): void {
    const opt = this.optimizer.state();
    const tensors: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(opt.tensors)) tensors[`opt.${k}`] = v;
    saveTrainState(path, {
      tensors,
      meta: {
        format: BACKPROP_STATE_FORMAT, episode: this.episode, config: this.cfg, optimizer: { step: opt.step },
        bestVal: Number.isFinite(this.bestVal) ? this.bestVal : null, bestEpisode: this.bestEpisode,
        epoch: { loss: this.epochLoss, acc: this.epochAcc, count: this.epochCount },
      },
    });
    saveCheckpoint(path, { layout: this.layout, params: this.params, bn: this.bn }, {
      method: 'backprop', episode: this.episode, seed: this.cfg.seed, config: this.cfg, ...extra,
    });
  }

  /** Train to cfg.episodes (or a stop), validating and checkpointing each epoch. */
  async run(opts: BackpropRunOptions = {}): Promise<BackpropRunResult> {
    const cfg = this.cfg, t0 = Date.now();
    const last = opts.out ? join(opts.out, 'last.safetensors') : undefined;
    const best = opts.out ? join(opts.out, 'best.safetensors') : undefined;
    if (opts.out) mkdirSync(opts.out, { recursive: true });
    const canVal = !!this.sources.val && cfg.valEpisodes > 0;
    let lastCheckpoint: string | undefined;
    const result = (end: BackpropRunEnd): BackpropRunResult => ({
      end, episode: this.episode, bestVal: this.bestVal, bestEpisode: this.bestEpisode,
      ...(lastCheckpoint ? { lastCheckpoint } : {}), ...(best && this.bestEpisode >= 0 ? { bestCheckpoint: best } : {}),
    });
    const saveLast = (): void => {
      if (!last) return;
      this.save(last);
      lastCheckpoint = last;
    };
    const validate = (epoch: number): BackpropEvalResult | null => {
      if (!canVal) return null;
      const v = this.validate();
      const improved = v.acc > this.bestVal;
      if (improved) {
        this.bestVal = v.acc;
        this.bestEpisode = this.episode;
        if (best) this.save(best, { val_acc: v.acc, val_ci95: v.ci95 });
      }
      opts.metrics?.write({ type: 'val', epoch, episode: this.episode, val_loss: v.loss, val_acc: v.acc, val_ci95: v.ci95, best_val: this.bestVal, improved });
      return v;
    };
    if (this.episode === 0) validate(0); // the untrained model: the baseline every later epoch must beat
    else opts.metrics?.write({ type: 'resume', episode: this.episode, best_val: Number.isFinite(this.bestVal) ? this.bestVal : null });
    while (this.episode < cfg.episodes) {
      if (opts.shouldStop?.()) { saveLast(); return result('interrupted'); }
      if (opts.maxMs !== undefined && Date.now() - t0 > opts.maxMs) { saveLast(); return result('time'); }
      const r = this.trainEpisode();
      opts.metrics?.write({
        type: 'episode', episode: r.episode, epoch: r.epoch, loss: r.loss, acc: r.acc, lr: r.lr,
        episode_s: r.seconds, tape_peak_bytes: r.tapePeakBytes, elapsed_s: (Date.now() - t0) / 1000,
      });
      opts.onEpisode?.(r, this);
      if (this.episode % cfg.episodesPerEpoch === 0 || this.episode === cfg.episodes) {
        const epoch = this.epochOf(this.episode - 1);
        const trainLoss = this.epochLoss / this.epochCount, trainAcc = this.epochAcc / this.epochCount;
        this.epochLoss = 0; this.epochAcc = 0; this.epochCount = 0;
        const before = this.bestEpisode;
        const v = validate(epoch);
        const rec: EpochRecord = { epoch, episode: this.episode, trainLoss, trainAcc, val: v, bestVal: this.bestVal, improved: this.bestEpisode !== before };
        opts.metrics?.write({ type: 'epoch', epoch, episode: this.episode, train_loss: trainLoss, train_acc: trainAcc, ...(v ? { val_loss: v.loss, val_acc: v.acc } : {}), best_val: Number.isFinite(this.bestVal) ? this.bestVal : null });
        opts.onEpoch?.(rec, this);
        saveLast();
      } else if (opts.checkpointEvery && this.episode % opts.checkpointEvery === 0) {
        saveLast();
      }
      // Let signal handlers (Ctrl-C) run between episodes.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (!lastCheckpoint) saveLast();
    return result('done');
  }
}
