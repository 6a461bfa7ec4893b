/**
 * ES-ProtoNet as a TrainMethod: the ConvNet-4 ProtoNet's parameters are the
 * mean of an evolution strategy of the ES core (lib/es/strategies.ts), the
 * fitness of a member is minus its query cross-entropy on the step's training
 * episode(s), evaluated by the device's population evaluator on worker
 * threads. Per step: the strategy's generation runs through the population
 * runner (the paper's scheme: each shard's estimate where it was evaluated),
 * while this thread tracks the BN running statistics of the mean model on the
 * same episode (a PyTorch train-mode forward: the evaluator's batchStats, on
 * cpu-native one fused fp32 forward), then the strategy updates the mean.
 *
 * State = the strategy's (mean, optimizer moments, adapted sigma, step) plus
 * the BN buffers: train episodes are indexed by step and the noise is keyed by
 * (seed, step, member), so that is all a bit-exact resume needs.
 */
import { applyBatchStats, type Episode } from '../../model/protonet.js';
import { initialBnState, ProtoNetLayout, type BnState } from '../../model/layout.js';
import { initParams } from '../../model/init.js';
import { checkpointTensors } from '../../model/checkpoint.js';
import { createRunner, type PopulationRunner } from '../../es/runner.js';
import { evaluatorSpecFor, loadEvaluator, type EvaluatorSpec } from '../../es/evaluators.js';
import { DirectOpsPopulationEvaluator } from '../../es/population-ts.js';
import type { BatchStatsRequest, BatchStatsResult, PopulationEvaluator } from '../../es/population.js';
import { meanCi } from '../../es/validate.js';
import type { EvolutionStrategy, StrategyOptions } from '../../es/strategy.js';
import { FD, NES, OpenAIES, PGPE, SNES, WSR } from '../../es/strategies.js';
import type { ExportedModel, MethodState, StepMetrics, TrainMethod, ValResult } from '../../train/method.js';
import { UserError } from '../../errors.js';
import { lrScheduleOf, popScheduleOf, resolveEsConfig, sigmaScheduleOf, type EsConfig, type EsConfigInput } from './config.js';
import { resolvePrecision } from './precision.js';
import type { EpisodeSource, ProtoNetSources } from '../protonet/data.js';

/** Config fields a resumed run may change (they do not alter the training maths). */
export const ES_RESUME_CHANGEABLE: readonly string[] = ['steps', 'workers', 'valEvery', 'valEpisodes', 'checkpointEvery', 'collapseWindow', 'collapseLossFactor', 'collapseValChecks'];

export interface EsMethodInit {
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

/** The ES-core strategy a config describes, over `init`. */
export function strategyFor(cfg: EsConfig, init: Float32Array): EvolutionStrategy {
  const base: StrategyOptions = {
    init, pop: cfg.pop, sigma: cfg.sigma, seed: cfg.seed, antithetic: cfg.antithetic, shards: cfg.shards, scheme: cfg.scheme,
    nonFinite: cfg.nonFinite, optimizer: cfg.optimizer, lr: cfg.lr, weightDecay: cfg.weightDecay, steps: cfg.steps,
    ...(cfg.momentum > 0 || cfg.optimizer === 'sgd' ? { momentum: cfg.momentum } : {}),
    ...(cfg.maxSpeed > 0 ? { maxSpeed: cfg.maxSpeed } : {}),
    lrSchedule: lrScheduleOf(cfg), popSchedule: popScheduleOf(cfg),
  };
  const withSigma = { ...base, sigmaSchedule: sigmaScheduleOf(cfg) };
  switch (cfg.estimator) {
    case 'wsr': return new WSR(withSigma);
    case 'nes': return new NES({ ...withSigma, baseline: cfg.baseline });
    case 'openai': return new OpenAIES(withSigma);
    case 'pgpe': return new PGPE({ ...base, maxSigmaChange: cfg.maxSigmaChange, shaping: cfg.shaping, ...(cfg.sigmaLr > 0 ? { sigmaLr: cfg.sigmaLr } : {}) });
    case 'snes': return new SNES({ ...base, ...(cfg.sigmaLr > 0 ? { sigmaLr: cfg.sigmaLr } : {}) });
    case 'fd': {
      const { pop: _p, sigma: _s, antithetic: _a, shards: _h, scheme: _c, popSchedule: _ps, ...rest } = base;
      return new FD({ ...rest, delta: cfg.fdDelta });
    }
  }
}

type StatsEvaluator = PopulationEvaluator & { batchStats(req: BatchStatsRequest): BatchStatsResult };

/**
 * This thread's evaluator of the mean model's batch statistics: cpu-native's own (one fused
 * fp32 forward, a few ms), else the reference forward on the device's kernels.
 */
async function statsEvaluatorFor(spec: EvaluatorSpec): Promise<StatsEvaluator> {
  if (spec.device === 'cpu-native') {
    const { precision: _p, ...fp32 } = spec;
    const e = await loadEvaluator({ ...fp32, threads: 1 });
    if (e.batchStats) return e as StatsEvaluator;
    await e.close?.();
  }
  return new DirectOpsPopulationEvaluator(spec.device);
}

const ABORTED = Symbol('aborted');

/** The promise's value, or ABORTED as soon as the signal aborts (the promise is then left to settle alone). */
function untilAborted<T>(p: Promise<T>, signal?: AbortSignal): Promise<T | typeof ABORTED> {
  if (!signal) return p;
  if (signal.aborted) return Promise.resolve(ABORTED);
  return new Promise<T | typeof ABORTED>((resolve, reject) => {
    const onAbort = (): void => resolve(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then((v) => { signal.removeEventListener('abort', onAbort); resolve(v); }, (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); });
  });
}

/** ES-ProtoNet as a TrainMethod: one ES generation per step on Omniglot episodes, validation of the mean model; create() it from esConfig(...) and run it with runLoop. */
export class ProtoNetEsMethod implements TrainMethod {
  readonly name = 'es';
  readonly workUnit = 'member evaluations';
  readonly workKey = 'evals';
  readonly layout: ProtoNetLayout;
  readonly strategy: EvolutionStrategy;
  readonly chanceScore: number;
  readonly chanceLoss: number;
  private valReady = false;
  private next: { step: number; episodes: Episode[] } | null = null;

  private constructor(readonly cfg: EsConfig, readonly runner: PopulationRunner, private readonly stats: StatsEvaluator, readonly sources: ProtoNetSources, mu: Float32Array, readonly bn: BnState) {
    this.layout = new ProtoNetLayout(cfg.model);
    this.layout.checkParams(mu);
    this.strategy = strategyFor(cfg, mu);
    this.chanceScore = 1 / cfg.val.way;
    this.chanceLoss = Math.log(cfg.train.way);
  }

  /**
   * Build the method and its workers. Pass esConfig(...) for the CLI's defaults (the quick preset);
   * a partial EsConfigInput is filled from ES_DEFAULTS instead (the bare base the presets overlay:
   * plain WSR at alpha 1, one shard). Close it when done (runLoop never does).
   */
  static async create(input: EsConfigInput | EsConfig, sources: ProtoNetSources, init: EsMethodInit = {}): Promise<ProtoNetEsMethod> {
    const cfg = resolveEsConfig(input as EsConfigInput);
    const layout = new ProtoNetLayout(cfg.model);
    const mu = init.params ? Float32Array.from(init.params) : initParams(layout, cfg.seed);
    const bn = init.bn ? { buffers: Float32Array.from(init.bn.buffers), numBatchesTracked: init.bn.numBatchesTracked } : initialBnState(layout);
    const runner = init.runner ?? await createRunner({ workers: cfg.workers, spec: evaluatorSpecFor(init.device, { precision: resolvePrecision(cfg.precision, init.device) }) });
    let stats: StatsEvaluator | undefined;
    try {
      stats = await statsEvaluatorFor(runner.spec);
      return new ProtoNetEsMethod(cfg, runner, stats, sources, mu, bn);
    } catch (e) {
      await stats?.close?.();
      if (!init.runner) await runner.close();
      throw e;
    }
  }

  get config(): EsConfig { return this.cfg; }
  get step(): number { return this.strategy.step; }
  get totalSteps(): number { return this.cfg.steps; }
  /** The mean parameter vector (the model). */
  get mu(): Float32Array { return this.strategy.mean; }

  /** The training episodes of step t. */
  episodesOf(t: number): Episode[] {
    if (this.next?.step === t) return this.next.episodes;
    const e = this.cfg.episodesPerStep;
    return Array.from({ length: e }, (_, i) => this.sources.train.episode(t * e + i));
  }

  /**
   * While the population of step t runs: step t + 1's episodes, and their plans built on this
   * thread for the workers (a local runner whose evaluator can prepare), so that the next step
   * starts without them. A hint: a failure here only means the workers build the plans themselves.
   */
  private prefetch(t: number): void {
    if (!this.runner.inProcess || !this.stats.prepare || t >= this.cfg.steps) return;
    try {
      const episodes = this.episodesOf(t);
      this.next = { step: t, episodes };
      for (const episode of episodes) this.stats.prepare({ model: this.cfg.model, episode, precision: this.runner.spec.precision ?? 'fp32' });
    } catch {
      this.next = null;
    }
  }

  /**
   * One ES step. An abort while the population is out abandons the step: the
   * strategy and the BN statistics stay as they were, and null is returned.
   */
  async trainStep(signal?: AbortSignal): Promise<StepMetrics | null> {
    if (signal?.aborted) return null;
    const t0 = performance.now();
    const step = this.strategy.step;
    const episodes = this.episodesOf(step);
    const pop = this.strategy.ask().size;
    const bnBefore = this.bn.buffers.slice(), batchesBefore = this.bn.numBatchesTracked;
    const pending = this.strategy.run(this.runner, { model: this.cfg.model, episodes, distance: this.cfg.distance });
    pending.catch(() => undefined); // observed below; an abandoned step's late result is dropped
    // BN running statistics of the mean model (before the update), on this thread while the population runs.
    let loss = NaN;
    try {
      const ep = episodes[0]!;
      const st = this.stats.batchStats({ model: this.cfg.model, mu: this.mu, episode: ep, distance: this.cfg.distance });
      applyBatchStats(this.layout, this.bn, st, ep.support.shape[0]! + ep.query.shape[0]!);
      loss = st.loss;
      this.prefetch(step + 1);
    } catch (e) {
      this.strategy.abandon();
      throw e;
    }
    const r = await untilAborted(pending, signal);
    if (r === ABORTED) {
      this.strategy.abandon();
      this.bn.buffers.set(bnBefore);
      this.bn.numBatchesTracked = batchesBefore;
      return null;
    }
    let fsum = 0, fmax = -Infinity, nf = 0;
    for (const f of r.fitness) if (Number.isFinite(f)) { fsum += f; nf++; if (f > fmax) fmax = f; }
    const dt = (performance.now() - t0) / 1000;
    const work = pop * episodes.length;
    return {
      loss, work, fitnessMean: nf > 0 ? fsum / nf : NaN, fitnessMax: fmax, nonfinite: r.nonFinite, degenerate: r.degenerate,
      sigma: r.sigma, gNorm: r.gNorm, muNorm: l2(this.mu), lr: this.strategy.lrAt(step), pop, stepS: dt, candPerS: work / dt,
    };
  }

  private async valEpisodes(source: EpisodeSource, from: number, n: number): Promise<void> {
    const eps: Episode[] = [];
    for (let i = from; i < from + n; i++) eps.push(source.episode(i));
    await this.runner.setValidationEpisodes(eps);
  }

  /** Validation on the fixed episodes val.episode(0..valEpisodes-1), eval mode (BN running statistics). */
  async validate(): Promise<ValResult> {
    const val = this.sources.val;
    if (!val || this.cfg.valEpisodes <= 0) throw new Error('validate: no validation source or valEpisodes is 0');
    if (!this.valReady) {
      await this.valEpisodes(val, 0, this.cfg.valEpisodes);
      this.valReady = true;
    }
    const scores = await this.runner.validate({ model: this.cfg.model, params: this.mu, bn: this.bn, distance: this.cfg.distance });
    const a = meanCi(scores.map((s) => s.acc)), l = meanCi(scores.map((s) => s.loss));
    return { score: a.mean, ci95: a.ci95, loss: l.mean };
  }

  /** Accuracy on episodes 0..n-1 of `source` in eval mode, for mu or given parameters, `chunk` episodes in memory at a time. */
  async evaluateOn(source: EpisodeSource, n: number, state?: { params: Float32Array; bn: BnState }, chunk = 100): Promise<{ acc: number; ci95: number; loss: number }> {
    const accs: number[] = [], losses: number[] = [];
    this.valReady = false;
    for (let a = 0; a < n; a += chunk) {
      await this.valEpisodes(source, a, Math.min(chunk, n - a));
      const scores = await this.runner.validate({ model: this.cfg.model, params: state?.params ?? this.mu, bn: state?.bn ?? this.bn, distance: this.cfg.distance });
      for (const s of scores) { accs.push(s.acc); losses.push(s.loss); }
    }
    const a = meanCi(accs), l = meanCi(losses);
    return { acc: a.mean, ci95: a.ci95, loss: l.mean };
  }

  saveState(): MethodState {
    const s = this.strategy.state();
    return {
      tensors: { ...Object.fromEntries(Object.entries(s.tensors).map(([k, v]) => [`es.${k}`, v])), 'bn.buffers': this.bn.buffers.slice() },
      meta: { es: s.meta, bnBatches: this.bn.numBatchesTracked, device: this.runner.spec.device },
    };
  }

  loadState(st: MethodState): void {
    const tensors: Record<string, Float32Array | Float64Array> = {};
    for (const [k, v] of Object.entries(st.tensors)) if (k.startsWith('es.')) tensors[k.slice(3)] = v;
    this.strategy.load({ tensors, meta: (st.meta['es'] ?? {}) as Record<string, unknown> });
    const b = st.tensors['bn.buffers'];
    if (!b || b.length !== this.bn.buffers.length) throw new UserError(`ES state: tensor bn.buffers missing or of length ${b?.length}, expected ${this.bn.buffers.length}`);
    this.bn.buffers.set(b);
    this.bn.numBatchesTracked = Number(st.meta['bnBatches'] ?? 0);
  }

  exportModel(): ExportedModel {
    return checkpointTensors({ layout: this.layout, params: this.mu, bn: this.bn }, {
      method: 'es', estimator: this.cfg.estimator, seed: this.cfg.seed, device: this.runner.spec.device, config: this.cfg,
    });
  }

  workingBytes(): number { return this.runner.workingBytes(); }
  optimizerBytes(): number { return this.strategy.optimizerBytes(); }

  async close(): Promise<void> {
    try {
      await this.stats.close?.();
    } finally {
      await this.runner.close();
    }
  }
}
