/**
 * The ES-ProtoNet trainer: the mean parameter vector mu, its BN running
 * statistics, an optimizer for mu, validation, collapse detection, and
 * checkpoints that resume bit-exactly (train episodes are indexed by step and
 * the noise is keyed by (seed, step, member), so the step number, mu, BN state,
 * optimizer state and detector state are the whole state).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { getDevice } from '../device/registry.js';
import { DirectOps } from '../ops/api.js';
import { episodeLoss, type Episode } from '../model/protonet.js';
import { initialBnState, ProtoNetLayout, type BnState } from '../model/layout.js';
import { initParams } from '../model/init.js';
import { loadCheckpoint, loadTrainState, saveCheckpoint, saveTrainState } from '../model/checkpoint.js';
import { createOptimizer, type Optimizer } from '../optim/optimizers.js';
import type { MetricsLog } from '../train/metrics.js';
import { UserError } from '../errors.js';
import { resolveEsConfig, type EsConfig, type EsConfigInput } from './config.js';
import { CollapseDetector, type CollapseState } from './collapse.js';
import { estimateGradient } from './step.js';
import { createRunner, type PopulationRunner } from './pool.js';
import { evaluatorSpecFor } from './evaluators.js';
import { meanCi } from './validate.js';

/** Random-access episodes: episode(i) is a pure function of i (and the source's seed). */
export interface EpisodeSource { episode(index: number): Episode }

export interface EsSources { train: EpisodeSource; val?: EpisodeSource }

export const ES_STATE_FORMAT = 'evometa-es-state-1';

export interface StepRecord {
  step: number;
  /** The mean model's loss on this step's episode (batch-mode BN, before the update). */
  loss: number;
  fitnessMean: number;
  fitnessMax: number;
  nonFinite: number;
  degenerate: number;
  sigma: number;
  gNorm: number;
  muNorm: number;
  stepSeconds: number;
  candidatesPerSecond: number;
}

export interface ValRecord { step: number; acc: number; ci95: number; loss: number; best: number }

export interface RunOptions {
  /** Output directory: last.safetensors (+ .state sidecar), best.safetensors. */
  out?: string;
  metrics?: MetricsLog;
  /** Polled between steps: stop, save and return. */
  shouldStop?: () => boolean;
  /** Abandons the step in flight (mu is only changed when a step completes), saves and returns. */
  signal?: AbortSignal;
  /** Stop (saving) after this much wall time. */
  maxMs?: number;
  onStep?: (r: StepRecord, t: EsTrainer) => void;
  onVal?: (r: ValRecord, t: EsTrainer) => void;
}

export type RunEnd = 'done' | 'interrupted' | 'time' | 'collapsed';

export interface RunResult { end: RunEnd; step: number; bestVal: number; collapse?: string; lastCheckpoint?: string }

export class CollapseError extends UserError {
  constructor(readonly reason: string, readonly step: number, readonly lastGood?: string) {
    super(`training collapsed: ${reason}; stopped without saving this state${lastGood ? `; the last good checkpoint is ${lastGood}` : ''} (try a smaller --lr or --sigma)`);
  }
}

export interface TrainerInit {
  runner?: PopulationRunner;
  /** Device for the population (default: the device layer's best). */
  device?: string;
  /** Start from these parameters (default: PyTorch-style init seeded by cfg.seed). */
  params?: Float32Array;
  bn?: BnState;
}

function l2(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

export class EsTrainer {
  readonly layout: ProtoNetLayout;
  step = 0;
  bestVal = -Infinity;
  bestStep = -1;
  lastCheckpoint: string | undefined;
  private readonly ops: DirectOps;
  private readonly optimizer: Optimizer;
  private readonly collapse: CollapseDetector;
  private valReady = false;

  private constructor(
    readonly cfg: EsConfig, readonly runner: PopulationRunner, readonly sources: EsSources,
    readonly mu: Float32Array, readonly bn: BnState,
  ) {
    this.layout = new ProtoNetLayout(cfg.model);
    this.layout.checkParams(mu);
    this.ops = new DirectOps(getDevice(runner.spec.device));
    this.optimizer = createOptimizer(cfg.optimizer === 'adam'
      ? { name: 'adam', lr: cfg.lr, weightDecay: cfg.weightDecay }
      : { name: 'sgd', lr: cfg.lr, momentum: cfg.optimizer === 'sgd' ? cfg.momentum : 0, weightDecay: cfg.weightDecay });
    this.collapse = new CollapseDetector({ window: cfg.collapseWindow, lossFactor: cfg.collapseLossFactor, valChecks: cfg.collapseValChecks });
  }

  static async create(input: EsConfigInput | EsConfig, sources: EsSources, init: TrainerInit = {}): Promise<EsTrainer> {
    const cfg = resolveEsConfig(input as EsConfigInput);
    const layout = new ProtoNetLayout(cfg.model);
    const runner = init.runner ?? await createRunner({ workers: cfg.workers, spec: evaluatorSpecFor(init.device) });
    const mu = init.params ? Float32Array.from(init.params) : initParams(layout, cfg.seed);
    const bn = init.bn ? { buffers: Float32Array.from(init.bn.buffers), numBatchesTracked: init.bn.numBatchesTracked } : initialBnState(layout);
    return new EsTrainer(cfg, runner, sources, mu, bn);
  }

  /**
   * Resume from a checkpoint written by save(). `override` may change what
   * does not alter the math (steps, workers, validation and checkpoint cadence);
   * anything else must match the saved configuration.
   */
  static async resume(path: string, sources: EsSources, override: EsConfigInput = {}, init: Omit<TrainerInit, 'params' | 'bn'> = {}): Promise<EsTrainer> {
    const ck = loadCheckpoint(path);
    const st = loadTrainState(path);
    const meta = st.meta as { format?: string; step?: number; config?: EsConfig; device?: string; optimizer?: { step: number }; bestVal?: number | null; bestStep?: number; collapse?: CollapseState };
    if (meta.format !== ES_STATE_FORMAT || !meta.config || typeof meta.step !== 'number') {
      throw new UserError(`--resume ${path}: not an ES training state (format ${JSON.stringify(meta.format)}, expected ${ES_STATE_FORMAT})`);
    }
    if (ck.meta['step'] !== meta.step) {
      throw new UserError(`--resume ${path}: checkpoint is at step ${String(ck.meta['step'])} but its training state is at step ${meta.step} (the run was killed between the two writes; resume from best.safetensors or restart)`);
    }
    const changeable = new Set(['steps', 'workers', 'valEvery', 'valEpisodes', 'checkpointEvery']);
    const saved = meta.config;
    for (const [k, v] of Object.entries(override)) {
      if (v === undefined || changeable.has(k)) continue;
      const sv = (saved as unknown as Record<string, unknown>)[k];
      if (JSON.stringify(sv) !== JSON.stringify(typeof v === 'object' && sv && typeof sv === 'object' ? { ...sv, ...v } : v)) {
        throw new UserError(`--resume ${path}: ${k} is ${JSON.stringify(sv)} in the saved run, cannot change it to ${JSON.stringify(v)} (it would change the training math)`);
      }
    }
    const pick = Object.fromEntries(Object.entries(override).filter(([k, v]) => changeable.has(k) && v !== undefined));
    const cfg = resolveEsConfig({ ...(saved as unknown as EsConfigInput), ...pick });
    // default to the saved device: kernels of different devices round differently
    const device = init.device ?? (init.runner ? undefined : meta.device);
    const t = await EsTrainer.create(cfg, sources, { ...init, ...(device !== undefined ? { device } : {}), params: ck.params, bn: ck.bn });
    t.step = meta.step;
    t.bestVal = meta.bestVal ?? -Infinity;
    t.bestStep = meta.bestStep ?? -1;
    const tensors: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(st.tensors)) if (k.startsWith('opt.')) tensors[k.slice(4)] = Float32Array.from(v);
    t.optimizer.load({ step: meta.optimizer?.step ?? 0, tensors });
    if (meta.collapse) t.collapse.load(meta.collapse);
    t.lastCheckpoint = path;
    return t;
  }

  /** One ES step on train episode `step`: estimate, track BN statistics of mu, update mu. */
  async trainStep(): Promise<StepRecord> {
    const t0 = performance.now();
    const step = this.step;
    const episode = this.sources.train.episode(step);
    const est = await estimateGradient(this.runner, this.cfg, this.mu, step, episode);
    // BN running statistics of the mean model (PyTorch train-mode forward), before the update.
    const { loss } = episodeLoss(this.ops, this.layout, this.mu, this.bn, episode, { bn: 'batch', trackStats: this.bn, distance: this.cfg.distance });
    const neg = new Float64Array(est.g.length);
    for (let j = 0; j < neg.length; j++) neg[j] = -est.g[j]!;
    this.optimizer.step(this.mu, neg);
    this.step = step + 1;
    let fsum = 0, fmax = -Infinity, nf = 0;
    for (const f of est.fitness) if (Number.isFinite(f)) { fsum += f; nf++; if (f > fmax) fmax = f; }
    const dt = (performance.now() - t0) / 1000;
    return {
      step, loss: loss.data[0]!, fitnessMean: nf > 0 ? fsum / nf : NaN, fitnessMax: fmax, nonFinite: est.nonFinite, degenerate: est.degenerate,
      sigma: est.sigma, gNorm: l2(est.g), muNorm: l2(this.mu), stepSeconds: dt, candidatesPerSecond: this.cfg.pop / (est.evalSeconds + est.sumSeconds),
    };
  }

  /** Validation on the fixed episodes val.episode(0..valEpisodes-1), eval mode (BN running statistics). */
  async validate(): Promise<{ acc: number; ci95: number; loss: number }> {
    const val = this.sources.val;
    if (!val || this.cfg.valEpisodes <= 0) throw new Error('validate: no validation source or valEpisodes is 0');
    if (!this.valReady) {
      const eps: Episode[] = [];
      for (let i = 0; i < this.cfg.valEpisodes; i++) eps.push(val.episode(i));
      await this.runner.setValidationEpisodes(eps);
      this.valReady = true;
    }
    const scores = await this.runner.validate({ model: this.cfg.model, params: this.mu, bn: this.bn, distance: this.cfg.distance });
    const a = meanCi(scores.map((s) => s.acc)), l = meanCi(scores.map((s) => s.loss));
    return { acc: a.mean, ci95: a.ci95, loss: l.mean };
  }

  /**
   * Accuracy on episodes 0..n-1 of `source` in eval mode, for mu (default) or
   * given parameters, in chunks so at most `chunk` episodes are held at once.
   */
  async evaluateOn(source: EpisodeSource, n: number, state?: { params: Float32Array; bn: BnState }, chunk = 100): Promise<{ acc: number; ci95: number; loss: number }> {
    const accs: number[] = [], losses: number[] = [];
    this.valReady = false;
    for (let a = 0; a < n; a += chunk) {
      const eps: Episode[] = [];
      for (let i = a; i < Math.min(n, a + chunk); i++) eps.push(source.episode(i));
      await this.runner.setValidationEpisodes(eps);
      const scores = await this.runner.validate({ model: this.cfg.model, params: state?.params ?? this.mu, bn: state?.bn ?? this.bn, distance: this.cfg.distance });
      for (const s of scores) { accs.push(s.acc); losses.push(s.loss); }
    }
    const a = meanCi(accs), l = meanCi(losses);
    return { acc: a.mean, ci95: a.ci95, loss: l.mean };
  }

  /** Checkpoint (PyTorch-loadable) + training-state sidecar, both atomic; the sidecar first. */
  save(path: string, extra: Record<string, unknown> = {}): void {
    const opt = this.optimizer.state();
    const tensors: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(opt.tensors)) tensors[`opt.${k}`] = v;
    saveTrainState(path, {
      tensors,
      meta: {
        format: ES_STATE_FORMAT, step: this.step, config: this.cfg, device: this.runner.spec.device, optimizer: { step: opt.step },
        bestVal: Number.isFinite(this.bestVal) ? this.bestVal : null, bestStep: this.bestStep, collapse: this.collapse.state(),
      },
    });
    saveCheckpoint(path, { layout: this.layout, params: this.mu, bn: this.bn }, {
      method: 'es', step: this.step, estimator: this.cfg.estimator, seed: this.cfg.seed, device: this.runner.spec.device, config: this.cfg, ...extra,
    });
  }

  optimizerBytes(): number { return this.optimizer.bytes(); }

  /** Train until cfg.steps (or a stop), validating and checkpointing on the configured cadence. */
  async run(opts: RunOptions = {}): Promise<RunResult> {
    const cfg = this.cfg;
    const t0 = Date.now();
    const last = opts.out ? join(opts.out, 'last.safetensors') : undefined;
    const best = opts.out ? join(opts.out, 'best.safetensors') : undefined;
    if (opts.out) mkdirSync(opts.out, { recursive: true });
    const canVal = !!this.sources.val && cfg.valEpisodes > 0 && cfg.valEvery > 0;
    const saveLast = (): void => {
      if (!last) return;
      this.save(last);
      this.lastCheckpoint = last;
    };
    const doVal = async (): Promise<string | null> => {
      const v = await this.validate();
      if (v.acc > this.bestVal) {
        this.bestVal = v.acc;
        this.bestStep = this.step;
        if (best) saveCheckpoint(best, { layout: this.layout, params: this.mu, bn: this.bn }, { method: 'es', step: this.step, val_acc: v.acc, config: cfg });
      }
      const rec: ValRecord = { step: this.step, acc: v.acc, ci95: v.ci95, loss: v.loss, best: this.bestVal };
      opts.metrics?.write({ type: 'val', step: this.step, val_acc: v.acc, val_ci95: v.ci95, val_loss: v.loss, best_val: this.bestVal });
      opts.onVal?.(rec, this);
      return this.collapse.observeVal(this.step, v.acc, cfg.val.way);
    };
    const collapsed = (reason: string): RunResult => {
      opts.metrics?.write({ type: 'collapse', step: this.step, reason, last_good: this.lastCheckpoint ?? null });
      throw new CollapseError(reason, this.step, this.lastCheckpoint);
    };
    if (canVal && this.step === 0) {
      const r = await doVal();
      if (r) return collapsed(r);
    }
    while (this.step < cfg.steps) {
      if (opts.shouldStop?.() || opts.signal?.aborted) {
        saveLast();
        return { end: 'interrupted', step: this.step, bestVal: this.bestVal, lastCheckpoint: this.lastCheckpoint };
      }
      if (opts.maxMs !== undefined && Date.now() - t0 > opts.maxMs) {
        saveLast();
        return { end: 'time', step: this.step, bestVal: this.bestVal, lastCheckpoint: this.lastCheckpoint };
      }
      const r = await this.stepOrAbort(opts.signal);
      if (!r) {
        saveLast();
        return { end: 'interrupted', step: this.step, bestVal: this.bestVal, lastCheckpoint: this.lastCheckpoint };
      }
      opts.metrics?.write({
        type: 'step', step: r.step, loss: r.loss, fitness_mean: r.fitnessMean, fitness_max: r.fitnessMax, nonfinite: r.nonFinite,
        degenerate: r.degenerate, sigma: r.sigma, g_norm: r.gNorm, mu_norm: r.muNorm, step_s: r.stepSeconds, cand_per_s: r.candidatesPerSecond,
        elapsed_s: (Date.now() - t0) / 1000, ...(r.step % 100 === 0 ? { working_bytes: this.runner.workingBytes(), optimizer_bytes: this.optimizer.bytes() } : {}),
      });
      opts.onStep?.(r, this);
      const why = this.collapse.observeLoss(r.step, r.loss, cfg.train.way) ?? (Number.isFinite(r.muNorm) ? null : `the parameters are no longer finite at step ${r.step}`);
      if (why) return collapsed(why);
      if (canVal && (this.step % cfg.valEvery === 0 || this.step === cfg.steps)) {
        const c = await doVal();
        if (c) return collapsed(c);
      }
      if (cfg.checkpointEvery > 0 && this.step % cfg.checkpointEvery === 0) saveLast();
    }
    saveLast();
    return { end: 'done', step: this.step, bestVal: this.bestVal, lastCheckpoint: this.lastCheckpoint };
  }

  /**
   * trainStep, or null when `signal` fires first. The state is consistent
   * either way: everything after the population evaluation (BN forward,
   * update, step count) runs synchronously, so an abandoned step has changed
   * nothing; close() then stops its evaluation.
   */
  private async stepOrAbort(signal?: AbortSignal): Promise<StepRecord | null> {
    if (!signal) return this.trainStep();
    const p = this.trainStep();
    let onAbort = (): void => {};
    const aborted = new Promise<null>((r) => { onAbort = () => r(null); signal.addEventListener('abort', onAbort, { once: true }); });
    try {
      const r = await Promise.race([p, aborted]);
      if (r === null) p.catch(() => {});
      return r;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> { await this.runner.close(); }
}
