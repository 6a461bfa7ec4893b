/**
 * Running a population: inline (one evaluator on this thread) or on worker
 * threads (lib/es/worker-runner.ts: each worker owns an evaluator; mu,
 * fitness and the noise-sum accumulators live in SharedArrayBuffers). Shards
 * fix the maths, workers only execute them:
 *  - fitness: member i's fitness depends only on (mu, seed, step, i, task), so
 *    any split of the members over workers gives the same values;
 *  - noise sums: each shard's partial sum is computed by one worker in member
 *    order and added to the float64 accumulator strictly in shard order, so the
 *    result is bitwise the same for any worker count, and each worker holds O(D).
 *
 * estimate() is the paper's scheme in one round trip: the worker that
 * evaluates a shard also turns its fitness into weights (the rule is data) and
 * adds the shard's noise sums. evaluate() + noiseSum() serve global schemes.
 */
import type { Distance, Episode } from '../model/protonet.js';
import type { BnState, ModelConfig } from '../model/layout.js';
import type { Perturbation, PopulationEvaluator } from './population.js';
import { ruleWeights, type WeightRule } from './estimators.js';
import { loadEvaluator, type EvaluatorSpec } from './evaluators.js';
import { scoreEpisode, type EpisodeScore } from './validate.js';

/** What the evaluator needs besides the generation: a ProtoNet task (model, episodes, distance) or an objective's context. */
export interface EstimateTask {
  model?: ModelConfig;
  /** Fitness of a member = the mean over these episodes (in order) of minus the episode loss. */
  episodes?: Episode[];
  distance?: Distance;
  /** Structured-clonable data for objective evaluators. */
  context?: unknown;
}

export interface EvaluateJob extends EstimateTask {
  mu: Float32Array;
  perturbation: Perturbation;
  seed: number;
  step: number;
  /** Members [0, population). */
  population: number;
}

export interface ShardSum { start: number; weights: Float64Array }

export interface NoiseJob {
  mu: Float32Array;
  seed: number;
  step: number;
  antithetic: boolean;
  sigma: number;
  sigmas?: Float32Array;
  kind?: 'linear' | 'square';
  /** In shard order; the result is the sum over shards (in this order) of each shard's noise sum. */
  shards: ShardSum[];
}

export interface EstimateJob extends EvaluateJob {
  /** The population is cut into this many equal contiguous shards. */
  shards: number;
  /** Applied to each shard's fitness with scale 1/shards. */
  rule: WeightRule;
  antithetic: boolean;
  /** Also the (z^2 - 1) sums (adaptive sigma). */
  square: boolean;
}

export interface EstimateResult {
  fitness: Float64Array;
  linear: Float64Array;
  square?: Float64Array;
  nonFinite: number;
  degenerate: number;
  /** Seconds of the slowest worker evaluating, and adding noise sums. */
  evalSeconds: number;
  sumSeconds: number;
}

export interface ValidateJob { model: ModelConfig; params: Float32Array; bn: BnState; distance: Distance }

export interface PopulationRunner {
  readonly workers: number;
  readonly spec: EvaluatorSpec;
  /** Its evaluators run in this process (on threads), so what an evaluator here prepares (PopulationEvaluator.prepare) serves them too. */
  readonly inProcess?: boolean;
  evaluate(job: EvaluateJob): Promise<Float64Array>;
  noiseSum(job: NoiseJob): Promise<Float64Array>;
  estimate(job: EstimateJob): Promise<EstimateResult>;
  /** Fixed validation episodes, sent once. */
  setValidationEpisodes(episodes: Episode[]): Promise<void>;
  validate(job: ValidateJob): Promise<EpisodeScore[]>;
  /** ES working memory: evaluator scratch of every worker plus the shared buffers (bytes). */
  workingBytes(): number;
  close(): Promise<void>;
}

/** Add partial into acc (float64, one rounding per element). */
export function accumulate(acc: Float64Array<ArrayBufferLike>, partial: Float64Array): void {
  if (acc.length !== partial.length) throw new RangeError(`noise sum has ${partial.length} elements, expected ${acc.length}`);
  for (let j = 0; j < acc.length; j++) acc[j] = acc[j]! + partial[j]!;
}

/** Members [a, b) of worker w out of n for a population of p (contiguous, sizes differ by at most one). */
export function memberRange(p: number, n: number, w: number): [number, number] {
  return [Math.floor((w * p) / n), Math.floor(((w + 1) * p) / n)];
}

/** Fitness of members [start, end): the evaluator's, averaged over the task's episodes in order. */
export async function evaluateMembers(ev: PopulationEvaluator, job: EvaluateJob, start: number, end: number): Promise<Float64Array> {
  const base = { mu: job.mu, perturbation: job.perturbation, seed: job.seed, step: job.step, start, end };
  const eps = job.episodes;
  if (!eps || eps.length === 0) {
    return ev.evaluate({ ...base, ...(job.model ? { model: job.model } : {}), ...(job.distance ? { distance: job.distance } : {}), context: job.context });
  }
  if (eps.length === 1) return ev.evaluate({ ...base, model: job.model!, distance: job.distance!, episode: eps[0]! });
  const f = new Float64Array(end - start);
  for (const episode of eps) {
    const g = await ev.evaluate({ ...base, model: job.model!, distance: job.distance!, episode });
    for (let i = 0; i < f.length; i++) f[i] = f[i]! + g[i]!;
  }
  for (let i = 0; i < f.length; i++) f[i] = f[i]! / eps.length;
  return f;
}

/** The noise-sum parameters of a perturbation. */
export function noiseOf(p: Perturbation): { sigma: number; sigmas?: Float32Array; antithetic: boolean } {
  if (p.kind === 'gaussian') return { sigma: p.sigma, antithetic: p.antithetic };
  if (p.kind === 'diagonal') return { sigma: 1, sigmas: p.sigmas, antithetic: p.antithetic };
  throw new RangeError('coordinate perturbations have no noise sums');
}

export interface ShardPart {
  fitness: Float64Array;
  linear: Float64Array;
  square?: Float64Array;
  nonFinite: number;
  degenerate: boolean;
  evalSeconds: number;
  sumSeconds: number;
}

/** Shard s of an estimate job, start to end on one evaluator: fitness, weights, noise sums. */
export async function shardEstimate(ev: PopulationEvaluator, job: EstimateJob, s: number): Promise<ShardPart> {
  const per = job.population / job.shards, start = s * per;
  const t0 = performance.now();
  const fitness = await evaluateMembers(ev, job, start, start + per);
  const t1 = performance.now();
  const w = ruleWeights(fitness, job.rule, 1 / job.shards);
  const nz = noiseOf(job.perturbation);
  const req = { mu: job.mu, seed: job.seed, step: job.step, antithetic: nz.antithetic, sigma: nz.sigma, ...(nz.sigmas ? { sigmas: nz.sigmas } : {}), start };
  const linear = await ev.noiseSum({ ...req, kind: 'linear', weights: w.linear });
  const square = job.square ? await ev.noiseSum({ ...req, kind: 'square', weights: w.square! }) : undefined;
  return { fitness, linear, ...(square ? { square } : {}), nonFinite: w.nonFinite, degenerate: w.degenerate, evalSeconds: (t1 - t0) / 1000, sumSeconds: (performance.now() - t1) / 1000 };
}

export class InlineRunner implements PopulationRunner {
  readonly workers = 1;
  readonly inProcess = true;
  private valEpisodes: Episode[] = [];
  private accBytes = 0;
  private ops: import('../ops/api.js').DirectOps | null = null;
  constructor(readonly evaluator: PopulationEvaluator, readonly spec: EvaluatorSpec) {}

  evaluate(job: EvaluateJob): Promise<Float64Array> { return evaluateMembers(this.evaluator, job, 0, job.population); }

  async noiseSum(job: NoiseJob): Promise<Float64Array> {
    const acc = new Float64Array(job.mu.length);
    this.accBytes = acc.byteLength;
    const { shards, ...rest } = job;
    for (const s of shards) accumulate(acc, await this.evaluator.noiseSum({ ...rest, start: s.start, weights: s.weights }));
    return acc;
  }

  async estimate(job: EstimateJob): Promise<EstimateResult> {
    const d = job.mu.length;
    const r: EstimateResult = { fitness: new Float64Array(job.population), linear: new Float64Array(d), ...(job.square ? { square: new Float64Array(d) } : {}), nonFinite: 0, degenerate: 0, evalSeconds: 0, sumSeconds: 0 };
    this.accBytes = (job.square ? 2 : 1) * 8 * d;
    for (let s = 0; s < job.shards; s++) {
      const part = await shardEstimate(this.evaluator, job, s);
      r.fitness.set(part.fitness, s * (job.population / job.shards));
      accumulate(r.linear, part.linear);
      if (r.square) accumulate(r.square, part.square!);
      r.nonFinite += part.nonFinite;
      if (part.degenerate) r.degenerate++;
      r.evalSeconds += part.evalSeconds;
      r.sumSeconds += part.sumSeconds;
    }
    return r;
  }

  async setValidationEpisodes(episodes: Episode[]): Promise<void> { this.valEpisodes = episodes; }

  async validate(job: ValidateJob): Promise<EpisodeScore[]> {
    if (!this.ops) {
      const [{ DirectOps }, { getDevice }] = await Promise.all([import('../ops/api.js'), import('../device/registry.js')]);
      this.ops = new DirectOps(getDevice(this.spec.device));
    }
    const { ProtoNetLayout } = await import('../model/layout.js');
    const layout = new ProtoNetLayout(job.model);
    return this.valEpisodes.map((ep) => scoreEpisode(this.ops!, layout, job.params, job.bn, ep, job.distance));
  }

  workingBytes(): number { return (this.evaluator.workingBytes?.() ?? 0) + this.accBytes; }

  async close(): Promise<void> { await this.evaluator.close?.(); }
}

/** A runner over `workers` threads (1: inline on this thread) for the evaluator `spec` names. */
export async function createRunner(opts: { workers: number; spec: EvaluatorSpec }): Promise<PopulationRunner> {
  if (!(Number.isInteger(opts.workers) && opts.workers >= 1)) throw new RangeError(`workers must be a positive integer, got ${opts.workers}`);
  if (opts.workers === 1) return new InlineRunner(await loadEvaluator(opts.spec), opts.spec);
  const { WorkerRunner } = await import('./worker-runner.js');
  const { availableParallelism } = await import('node:os');
  // evaluators with their own thread pool share the cores among the workers
  const threads = opts.spec.threads ?? Math.max(1, Math.floor(availableParallelism() / opts.workers));
  return WorkerRunner.create(opts.workers, { ...opts.spec, threads });
}
