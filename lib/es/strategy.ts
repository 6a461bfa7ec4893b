/**
 * The one ES core: an ask/tell evolution strategy over a flat float32 vector,
 * in the style of evosax and EvoTorch, with this engine's counter-based noise
 * (a member's perturbation is regenerated from (seed, step, member): no
 * population matrix is ever held).
 *
 *   const es = new WSR({ dim: 10, pop: 32, sigma: 0.1, lr: 0.05, optimizer: 'adam', seed: 1 });
 *   for (let g = 0; g < 200; g++) {
 *     const gen = es.ask();                       // describes the population; gen.member(i) makes member i
 *     const f = new Float64Array(gen.size);
 *     for (let i = 0; i < gen.size; i++) f[i] = -rastrigin(gen.member(i));
 *     await es.tell(f);                           // fitness is MAXIMIZED
 *   }
 *   // or: await es.evaluate((x) => -rastrigin(x));  or, on worker threads / a native evaluator: await es.run(runner, task)
 *
 * Shards fix the maths (the paper's cores): with scheme 'paper' each shard of
 * pop/shards members turns its own fitness into weights (scaled 1/shards) and
 * the shard estimates are added in shard order; with 'openai' the whole
 * population is weighted at once. Workers only execute shards, so any worker
 * count gives bitwise the same result.
 *
 * Subclasses choose the weight rule (lib/es/estimators.ts) and the update:
 * WSR, NES, OpenAI-ES (lib/es/strategies.ts), PGPE and SNES (per-parameter sigma), FD.
 */
import { createOptimizer, type Optimizer } from '../optim/optimizers.js';
import { UserError } from '../errors.js';
import { noiseSumInto, perturbMember } from './noise.js';
import { ruleNeedsSquare, ruleWeights, type NonFinitePolicy, type WeightRule } from './estimators.js';
import { checkSchedule, popAt, scheduleAt, type Schedule } from './schedule.js';
import type { Perturbation } from './population.js';
import type { EstimateTask, PopulationRunner } from './runner.js';

export type Scheme = 'paper' | 'openai';
export type EsOptimizerName = 'plain' | 'sgd' | 'adam' | 'clipup';

export interface StrategyOptions {
  /** Dimension D (or give `init`). */
  dim?: number;
  /** The starting mean (default zeros); copied. */
  init?: ArrayLike<number>;
  /** Population size (members per generation). */
  pop: number;
  /** Noise standard deviation (PGPE/SNES: the initial per-parameter value). */
  sigma: number;
  /** Noise seed, an integer in [0, 2^32). */
  seed?: number;
  /** Mirrored sampling: members 2k, 2k+1 use +eps_k and -eps_k. */
  antithetic?: boolean;
  /** Population shards (the paper's cores). Default 1. */
  shards?: number;
  scheme?: Scheme;
  nonFinite?: NonFinitePolicy;
  optimizer?: EsOptimizerName;
  /** Step size (the paper's alpha for the plain step). */
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  betas?: [number, number];
  /** ClipUp's largest step (default 2 lr). */
  maxSpeed?: number;
  /** Run length that the schedules span (default 1: schedules stay at their base). */
  steps?: number;
  lrSchedule?: Schedule;
  sigmaSchedule?: Schedule;
  popSchedule?: Schedule;
}

/** What an ES generation is: enough to regenerate any member, on any thread or device. */
export class Generation {
  constructor(
    readonly step: number, readonly seed: number, readonly size: number, readonly shards: number,
    /** The mean the members perturb; valid until tell(). */
    readonly center: Float32Array,
    readonly perturbation: Perturbation,
  ) {}

  get dim(): number { return this.center.length; }

  /** Member i's parameters (into `out` when given). */
  member(i: number, out: Float32Array = new Float32Array(this.center.length), scratch?: Float32Array): Float32Array {
    if (!(Number.isInteger(i) && i >= 0 && i < this.size)) throw new RangeError(`member index must be an integer in [0, ${this.size}), got ${i}`);
    const z = this.perturbation.kind === 'coordinate' ? out : (scratch ?? new Float32Array(this.center.length));
    perturbMember(out, this.center, this.perturbation, this.seed, this.step, i, z);
    return out;
  }

  /** Every member as its own array (P x D floats: for small problems and tests). */
  members(): Float32Array[] {
    const z = new Float32Array(this.center.length);
    return Array.from({ length: this.size }, (_, i) => this.member(i, undefined, z));
  }

  /** Members [start, end) of shard s. */
  shard(s: number): [number, number] {
    const per = this.size / this.shards;
    return [s * per, (s + 1) * per];
  }
}

export interface TellResult {
  /** The generation just told. */
  step: number;
  fitness: Float64Array;
  /** Mean sigma of the generation. */
  sigma: number;
  /** The ascent direction on fitness the optimizer got (float64, length D; fd: the differences). */
  grad: Float64Array;
  /** Its norm. */
  gNorm: number;
  nonFinite: number;
  /** Groups whose weights were all zero for lack of spread. */
  degenerate: number;
  /** Seconds evaluating and in noise sums (when the core ran them). */
  evalSeconds: number;
  sumSeconds: number;
}

export interface StrategyState {
  tensors: Record<string, Float32Array | Float64Array>;
  meta: Record<string, unknown>;
}

/** A generation's result arrived after abandon(): nothing was applied. */
export class AbandonedError extends Error {
  constructor(readonly step: number) {
    super(`ES generation ${step} was abandoned; its result was not applied`);
    this.name = 'AbandonedError';
  }
}

export const STRATEGY_STATE_FORMAT = 'evometa-es-strategy-1';

/** Weighted noise sums of one generation (ascent direction and, for adaptive sigma, the square sum). */
export interface NoiseSums { linear: Float64Array; square?: Float64Array }

export abstract class EvolutionStrategy {
  abstract readonly name: string;
  readonly dim: number;
  readonly mean: Float32Array;
  readonly seed: number;
  readonly antithetic: boolean;
  readonly shards: number;
  readonly scheme: Scheme;
  readonly nonFinite: NonFinitePolicy;
  readonly basePop: number;
  readonly baseSigma: number;
  readonly baseLr: number;
  readonly steps: number;
  readonly lrSchedule: Schedule | undefined;
  readonly sigmaSchedule: Schedule | undefined;
  readonly popSchedule: Schedule | undefined;
  /** Generations told so far (the next generation's step). */
  step = 0;
  protected readonly optimizer: Optimizer;
  private pending: Generation | null = null;

  constructor(readonly options: StrategyOptions, defaults: { optimizer?: EsOptimizerName; lr?: number; antithetic?: boolean } = {}) {
    const o = options;
    const bad = (m: string): never => { throw new UserError(`ES strategy: ${m}`); };
    if (o.init !== undefined) {
      if (o.dim !== undefined && o.dim !== o.init.length) bad(`dim ${o.dim} does not match init's length ${o.init.length}`);
      this.mean = Float32Array.from(o.init);
    } else {
      if (!(Number.isInteger(o.dim) && o.dim! >= 1)) bad(`dim must be a positive integer (or give init), got ${o.dim}`);
      this.mean = new Float32Array(o.dim!);
    }
    for (let j = 0; j < this.mean.length; j++) if (!Number.isFinite(this.mean[j]!)) bad(`init[${j}] is ${this.mean[j]}, not finite`);
    this.dim = this.mean.length;
    this.seed = o.seed ?? 0;
    if (!(Number.isInteger(this.seed) && this.seed >= 0 && this.seed <= 0xffffffff)) bad(`seed must be an integer in [0, 2^32), got ${o.seed}`);
    this.antithetic = o.antithetic ?? defaults.antithetic ?? false;
    this.shards = o.shards ?? 1;
    this.scheme = o.scheme ?? 'paper';
    this.nonFinite = o.nonFinite ?? 'worst';
    this.basePop = o.pop;
    this.baseSigma = o.sigma;
    this.baseLr = o.lr ?? defaults.lr ?? 1;
    this.steps = o.steps ?? 1;
    this.lrSchedule = o.lrSchedule;
    this.sigmaSchedule = o.sigmaSchedule;
    this.popSchedule = o.popSchedule;
    if (!(Number.isInteger(this.shards) && this.shards >= 1)) bad(`shards must be a positive integer, got ${o.shards}`);
    if (!['paper', 'openai'].includes(this.scheme)) bad(`scheme must be paper or openai, got ${JSON.stringify(o.scheme)}`);
    if (!['worst', 'drop'].includes(this.nonFinite)) bad(`nonFinite must be worst or drop, got ${JSON.stringify(o.nonFinite)}`);
    if (!(Number.isFinite(o.sigma) && o.sigma > 0)) bad(`sigma must be a finite number > 0, got ${o.sigma}`);
    if (!(Number.isFinite(this.baseLr) && this.baseLr > 0)) bad(`lr must be a finite number > 0, got ${this.baseLr}`);
    if (!(Number.isInteger(this.steps) && this.steps >= 1)) bad(`steps must be a positive integer, got ${o.steps}`);
    if (o.lrSchedule) checkSchedule('lr', this.baseLr, o.lrSchedule);
    if (o.sigmaSchedule) checkSchedule('sigma', o.sigma, o.sigmaSchedule);
    if (o.popSchedule) checkSchedule('pop', o.pop, o.popSchedule);
    const unit = this.popUnit();
    if (!(Number.isInteger(o.pop) && o.pop >= 2)) bad(`pop must be an integer >= 2, got ${o.pop}`);
    if (o.pop % unit !== 0) {
      bad(`pop ${o.pop} must be a multiple of ${unit} (${this.shards} shard(s)${this.antithetic ? ' x 2 for antithetic pairs' : ''})`);
    }
    if (this.scheme === 'paper' && o.pop / this.shards < 2) bad(`leave at least 2 members per shard for the paper scheme: pop ${o.pop} / ${this.shards} shards`);
    const name = o.optimizer ?? defaults.optimizer ?? 'plain';
    if (!['plain', 'sgd', 'adam', 'clipup'].includes(name)) bad(`optimizer must be plain, sgd, adam or clipup, got ${JSON.stringify(name)}`);
    const mom = o.momentum ?? (name === 'clipup' ? 0.9 : 0);
    if (!(mom >= 0 && mom < 1)) bad(`momentum must be in [0, 1), got ${mom}`);
    if (mom > 0 && (name === 'plain' || name === 'adam')) bad(`momentum applies to the sgd and clipup optimizers, not ${name}`);
    const wd = o.weightDecay ?? 0;
    if (!(Number.isFinite(wd) && wd >= 0)) bad(`weightDecay must be a finite number >= 0, got ${wd}`);
    this.optimizer = createOptimizer(name === 'adam'
      ? { name: 'adam', lr: this.baseLr, weightDecay: wd, ...(o.betas ? { betas: o.betas } : {}) }
      : name === 'clipup'
        ? { name: 'clipup', lr: this.baseLr, momentum: mom, ...(o.maxSpeed !== undefined ? { maxSpeed: o.maxSpeed } : {}) }
        : { name: 'sgd', lr: this.baseLr, momentum: name === 'sgd' ? mom : 0, weightDecay: wd });
  }

  /** Populations are multiples of this: shards, times 2 with antithetic pairs. */
  popUnit(): number { return this.shards * (this.antithetic ? 2 : 1); }

  /** The population size of generation t. */
  popAt(t: number): number { return popAt(this.basePop, this.popSchedule, t, this.steps, this.popUnit()); }

  /** The scalar sigma of generation t (schedule), for strategies with one sigma. */
  sigmaAt(t: number): number { return scheduleAt(this.baseSigma, this.sigmaSchedule, t, this.steps); }

  lrAt(t: number): number { return scheduleAt(this.baseLr, this.lrSchedule, t, this.steps); }

  /** The perturbation of generation t. */
  protected abstract perturbationAt(t: number): Perturbation;

  /** The weight rule of generation t (how a group's fitness becomes weights). */
  abstract ruleAt(t: number): WeightRule;

  /** Apply the generation's weighted noise sums to the mean (and sigma); returns the ascent direction's norm. */
  protected abstract update(gen: Generation, sums: NoiseSums, fitness: Float64Array): number;

  /** The current generation (the same object until tell()). */
  ask(): Generation {
    if (!this.pending) {
      const t = this.step;
      this.pending = new Generation(t, this.seed, this.popAt(t), this.shards, this.mean, this.perturbationAt(t));
    }
    return this.pending;
  }

  /**
   * Give up the asked generation (e.g. on Ctrl-C while it is being evaluated):
   * a run() or tell() of it still in flight then leaves the strategy untouched.
   */
  abandon(): void { this.pending = null; }

  /** Member weights of one generation from its fitness, per shard (paper) or global (openai). */
  weights(gen: Generation, fitness: ArrayLike<number>): { linear: Float64Array; square?: Float64Array; nonFinite: number; degenerate: number } {
    if (fitness.length !== gen.size) throw new RangeError(`tell: got ${fitness.length} fitness values for a population of ${gen.size}`);
    const rule = this.ruleAt(gen.step);
    const sq = ruleNeedsSquare(rule);
    const linear = new Float64Array(gen.size), square = sq ? new Float64Array(gen.size) : undefined;
    let nonFinite = 0, degenerate = 0;
    const groups = this.scheme === 'paper' ? gen.shards : 1;
    const per = gen.size / groups;
    for (let s = 0; s < groups; s++) {
      const f = Array.prototype.slice.call(fitness, s * per, (s + 1) * per) as number[];
      const w = ruleWeights(f, rule, this.scheme === 'paper' ? 1 / gen.shards : 1);
      linear.set(w.linear, s * per);
      if (square && w.square) square.set(w.square, s * per);
      nonFinite += w.nonFinite;
      if (w.degenerate) degenerate++;
    }
    return { linear, ...(square ? { square } : {}), nonFinite, degenerate };
  }

  /**
   * Tell the fitness of the asked generation (maximized). The noise sums run
   * in this thread, or on `runner` (worker threads, a native evaluator) when given.
   */
  async tell(fitness: ArrayLike<number>, runner?: Pick<PopulationRunner, 'noiseSum'>): Promise<TellResult> {
    const gen = this.ask();
    const t0 = performance.now();
    const w = this.weights(gen, fitness);
    const sums = await this.noiseSums(gen, w, runner);
    const f = Float64Array.from(fitness);
    return this.complete(gen, sums, f, w.nonFinite, w.degenerate, 0, (performance.now() - t0) / 1000);
  }

  /** ask, f on every member in this thread, tell. */
  async evaluate(f: (x: Float32Array, member: number) => number | Promise<number>): Promise<TellResult> {
    const gen = this.ask();
    const t0 = performance.now();
    const x = new Float32Array(this.dim), z = new Float32Array(this.dim);
    const fit = new Float64Array(gen.size);
    for (let i = 0; i < gen.size; i++) fit[i] = await f(gen.member(i, x, z), i);
    const t1 = performance.now();
    const r = await this.tell(fit);
    return { ...r, evalSeconds: (t1 - t0) / 1000 };
  }

  /**
   * One generation through a population runner: its evaluator computes the
   * fitness of every member for `task` (a model and its episodes, or a user
   * objective's context) and, with the paper's scheme, each shard's weights and
   * noise sums where it ran (one round trip); with OpenAI's, the weights are global.
   */
  async run(runner: PopulationRunner, task: EstimateTask = {}): Promise<TellResult> {
    const gen = this.ask();
    const rule = this.ruleAt(gen.step);
    const job = { mu: gen.center, perturbation: gen.perturbation, seed: gen.seed, step: gen.step, population: gen.size, ...task };
    if (this.scheme === 'paper') {
      const r = await runner.estimate({ ...job, shards: gen.shards, rule, antithetic: this.antithetic, square: ruleNeedsSquare(rule) });
      return this.complete(gen, { linear: r.linear, ...(r.square ? { square: r.square } : {}) }, r.fitness, r.nonFinite, r.degenerate, r.evalSeconds, r.sumSeconds);
    }
    const t0 = performance.now();
    const fitness = await runner.evaluate(job);
    const t1 = performance.now();
    const w = this.weights(gen, fitness);
    const sums = await this.noiseSums(gen, w, runner);
    return this.complete(gen, sums, fitness, w.nonFinite, w.degenerate, (t1 - t0) / 1000, (performance.now() - t1) / 1000);
  }

  private async noiseSums(gen: Generation, w: { linear: Float64Array; square?: Float64Array }, runner?: Pick<PopulationRunner, 'noiseSum'>): Promise<NoiseSums> {
    const p = gen.perturbation;
    if (p.kind === 'coordinate') throw new Error(`${this.name}: coordinate perturbations have no noise sums`);
    const base = { mu: gen.center, seed: gen.seed, step: gen.step, antithetic: this.antithetic, sigma: p.kind === 'gaussian' ? p.sigma : 1, ...(p.kind === 'diagonal' ? { sigmas: p.sigmas } : {}) };
    const per = gen.size / gen.shards;
    const shardsOf = (weights: Float64Array) => Array.from({ length: gen.shards }, (_, s) => ({ start: s * per, weights: weights.subarray(s * per, (s + 1) * per) }));
    const sum = async (weights: Float64Array, kind: 'linear' | 'square'): Promise<Float64Array> => {
      if (runner) return runner.noiseSum({ ...base, kind, shards: shardsOf(weights) });
      const acc = new Float64Array(this.dim), part = new Float64Array(this.dim), z = new Float32Array(this.dim);
      for (const s of shardsOf(weights)) {
        noiseSumInto(part, { ...base, kind, start: s.start, weights: s.weights }, z);
        for (let j = 0; j < acc.length; j++) acc[j] = acc[j]! + part[j]!;
      }
      return acc;
    };
    const linear = await sum(w.linear, 'linear');
    return w.square ? { linear, square: await sum(w.square, 'square') } : { linear };
  }

  protected complete(gen: Generation, sums: NoiseSums, fitness: Float64Array, nonFinite: number, degenerate: number, evalSeconds: number, sumSeconds: number): TellResult {
    if (this.pending !== gen) throw new AbandonedError(gen.step);
    const gNorm = this.update(gen, sums, fitness);
    this.step = gen.step + 1;
    this.pending = null;
    return { step: gen.step, fitness, sigma: this.meanSigma(gen), grad: sums.linear, gNorm, nonFinite, degenerate, evalSeconds, sumSeconds };
  }

  /** Optimizer step on the ascent direction g (the optimizer minimizes, so it gets -g). */
  protected ascend(g: Float64Array, lr: number): number {
    let n = 0;
    const neg = new Float64Array(g.length);
    for (let j = 0; j < g.length; j++) { neg[j] = -g[j]!; n += g[j]! * g[j]!; }
    this.optimizer.step(this.mean, neg, lr);
    return Math.sqrt(n);
  }

  protected meanSigma(gen: Generation): number {
    const p = gen.perturbation;
    if (p.kind === 'gaussian') return p.sigma;
    if (p.kind === 'coordinate') return p.delta;
    let s = 0;
    for (let j = 0; j < p.sigmas.length; j++) s += p.sigmas[j]!;
    return s / p.sigmas.length;
  }

  /** Strategy-specific state (tensors, JSON) beyond mean, step and optimizer. */
  protected extraState(): StrategyState { return { tensors: {}, meta: {} }; }
  protected loadExtra(_s: StrategyState): void {}

  /** Everything needed to continue bit for bit (mean, step, optimizer moments, adapted sigma). */
  state(): StrategyState {
    const opt = this.optimizer.state(), ex = this.extraState();
    const tensors: Record<string, Float32Array | Float64Array> = { mean: this.mean.slice(), ...ex.tensors };
    for (const [k, v] of Object.entries(opt.tensors)) tensors[`opt.${k}`] = v;
    return { tensors, meta: { format: STRATEGY_STATE_FORMAT, strategy: this.name, step: this.step, dim: this.dim, optimizerStep: opt.step, ...ex.meta } };
  }

  load(s: StrategyState): void {
    const m = s.meta as { format?: string; strategy?: string; step?: number; dim?: number; optimizerStep?: number };
    if (m.format !== STRATEGY_STATE_FORMAT) throw new UserError(`ES state: format ${JSON.stringify(m.format)}, expected ${STRATEGY_STATE_FORMAT}`);
    if (m.strategy !== this.name) throw new UserError(`ES state: saved by strategy ${JSON.stringify(m.strategy)}, this is ${this.name}`);
    if (m.dim !== this.dim) throw new UserError(`ES state: dimension ${String(m.dim)}, this strategy has ${this.dim}`);
    if (!(Number.isInteger(m.step) && m.step! >= 0)) throw new UserError(`ES state: step ${String(m.step)} is not a non-negative integer`);
    const mean = s.tensors['mean'];
    if (!mean || mean.length !== this.dim) throw new UserError(`ES state: tensor mean missing or of length ${mean?.length}, expected ${this.dim}`);
    this.mean.set(mean);
    const opt: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(s.tensors)) {
      if (!k.startsWith('opt.')) continue;
      if (v.length !== this.dim) throw new UserError(`ES state: optimizer tensor ${k} has ${v.length} elements, expected ${this.dim}`);
      opt[k.slice(4)] = Float32Array.from(v);
    }
    this.optimizer.load({ step: m.optimizerStep ?? 0, tensors: opt });
    this.loadExtra(s);
    this.step = m.step!;
    this.pending = null;
  }

  optimizerBytes(): number { return this.optimizer.bytes(); }
}
