/**
 * The strategies of the ES core (lib/es/strategy.ts), each a weight rule plus
 * an update. Their definitions, with the papers they come from:
 *
 *  WSR     Sheng & He, eq. 9: g = (1/n) sum_i ((F_i - mean F) / std F) eps_i, per shard; mu <- opt(mu, g)
 *  NES     Wierstra et al., as the paper's eq. 6: g = 1/(n sigma^2) sum_i (F_i - b) eps_i  (b = 0, or mean F)
 *  OpenAI  Salimans et al. 2017: antithetic pairs, centered ranks, g = 1/(n sigma) sum_i r_i eps_i
 *  PGPE    Sehnke et al. 2010 with ClipUp (Toklu et al. 2020): per-parameter sigma, symmetric pairs,
 *          centered ranks; mu gradient sum_k (r+ - r-)/2 eps_k / n_pairs through ClipUp;
 *          sigma_j += sigmaLr * sum_k c_k (eps_kj^2 - sigma_j^2)/sigma_j / n_pairs, clamped to
 *          a relative change of maxSigmaChange per step
 *  SNES    Schaul, Glasmachers & Schmidhuber 2011 (separable NES): utilities u_k, mu <- mu + lr sum u_k eps_k,
 *          sigma_j <- sigma_j exp(sigmaLr/2 sum u_k (z_kj^2 - 1)); defaults lr 1,
 *          sigmaLr (3 + ln D)/(5 sqrt D), pop 4 + floor(3 ln D)
 *  FD      finite differences cast as ES (paper II-G): member 0 is mu, member m nudges parameter m-1 by delta
 */
import { UserError } from '../errors.js';
import { fdGradient, type WeightRule } from './estimators.js';
import { EvolutionStrategy, Generation, type NoiseSums, type StrategyOptions, type StrategyState, type TellResult } from './strategy.js';
import type { Perturbation } from './population.js';
import type { EstimateTask, PopulationRunner } from './runner.js';

/** The paper's estimator (eq. 9): standardized fitness, per shard. Default optimizer: the plain step mu += lr g. */
export class WSR extends EvolutionStrategy {
  readonly name = 'wsr';
  constructor(o: StrategyOptions) { super(o); }
  protected perturbationAt(t: number): Perturbation { return { kind: 'gaussian', sigma: this.sigmaAt(t), antithetic: this.antithetic }; }
  ruleAt(): WeightRule { return { kind: 'wsr', nonFinite: this.nonFinite }; }
  protected update(gen: Generation, sums: NoiseSums): number { return this.ascend(sums.linear, this.lrAt(gen.step)); }
}

export interface NesOptions extends StrategyOptions {
  /** Subtract the mean fitness (a baseline) before weighting (eq. 6 as written uses raw fitness). */
  baseline?: boolean;
}

/** NES score-function estimate as the paper's eq. 6. */
export class NES extends EvolutionStrategy {
  readonly name = 'nes';
  readonly baseline: boolean;
  constructor(o: NesOptions) { super(o); this.baseline = o.baseline ?? false; }
  protected perturbationAt(t: number): Perturbation { return { kind: 'gaussian', sigma: this.sigmaAt(t), antithetic: this.antithetic }; }
  ruleAt(t: number): WeightRule { return { kind: 'nes', sigma: this.sigmaAt(t), baseline: this.baseline, nonFinite: this.nonFinite }; }
  protected update(gen: Generation, sums: NoiseSums): number { return this.ascend(sums.linear, this.lrAt(gen.step)); }
}

/** OpenAI-ES: antithetic pairs and centered ranks (Salimans et al. 2017). */
export class OpenAIES extends EvolutionStrategy {
  readonly name = 'openai';
  constructor(o: StrategyOptions) {
    if (o.antithetic === false) throw new UserError('ES strategy: openai samples +eps/-eps pairs; antithetic cannot be off');
    super({ ...o, antithetic: true });
  }
  protected perturbationAt(t: number): Perturbation { return { kind: 'gaussian', sigma: this.sigmaAt(t), antithetic: true }; }
  ruleAt(t: number): WeightRule { return { kind: 'openai', sigma: this.sigmaAt(t), nonFinite: this.nonFinite }; }
  protected update(gen: Generation, sums: NoiseSums): number { return this.ascend(sums.linear, this.lrAt(gen.step)); }
}

/** A strategy that adapts one sigma per parameter. */
abstract class DiagonalStrategy extends EvolutionStrategy {
  readonly sigmas: Float32Array;
  constructor(o: StrategyOptions, defaults: ConstructorParameters<typeof EvolutionStrategy>[1]) {
    if (o.sigmaSchedule) throw new UserError('ES strategy: pgpe and snes adapt sigma themselves; a sigma schedule does not apply');
    super(o, defaults);
    this.sigmas = new Float32Array(this.dim).fill(o.sigma);
  }
  protected perturbationAt(): Perturbation { return { kind: 'diagonal', sigmas: this.sigmas.slice(), antithetic: this.antithetic }; }
  protected override extraState(): StrategyState { return { tensors: { sigmas: this.sigmas.slice() }, meta: {} }; }
  protected override loadExtra(s: StrategyState): void {
    const v = s.tensors['sigmas'];
    if (!v || v.length !== this.dim) throw new UserError(`ES state: tensor sigmas missing or of length ${v?.length}, expected ${this.dim}`);
    for (let j = 0; j < v.length; j++) if (!(v[j]! > 0 && Number.isFinite(v[j]!))) throw new UserError(`ES state: sigmas[${j}] = ${v[j]} is not a positive finite number`);
    this.sigmas.set(v);
  }
}

export interface PgpeOptions extends StrategyOptions {
  /** Step size of sigma (EvoTorch's stdev_learning_rate; default 0.1). */
  sigmaLr?: number;
  /** Largest relative change of each sigma per generation (default 0.2). */
  maxSigmaChange?: number;
  /** Fitness shaping: centered ranks (default) or raw fitness. */
  shaping?: 'ranks' | 'raw';
}

/** PGPE with symmetric sampling and the ClipUp optimizer by default. */
export class PGPE extends DiagonalStrategy {
  readonly name = 'pgpe';
  readonly sigmaLr: number;
  readonly maxSigmaChange: number;
  readonly shaping: 'ranks' | 'raw';
  constructor(o: PgpeOptions) {
    if (o.antithetic === false) throw new UserError('ES strategy: pgpe samples symmetric +eps/-eps pairs; antithetic cannot be off');
    super({ ...o, antithetic: true }, { optimizer: 'clipup' });
    this.sigmaLr = o.sigmaLr ?? 0.1;
    this.maxSigmaChange = o.maxSigmaChange ?? 0.2;
    this.shaping = o.shaping ?? 'ranks';
    if (!(this.sigmaLr >= 0 && Number.isFinite(this.sigmaLr))) throw new UserError(`ES strategy: pgpe sigmaLr must be a finite number >= 0, got ${o.sigmaLr}`);
    if (!(this.maxSigmaChange > 0 && this.maxSigmaChange < 1)) throw new UserError(`ES strategy: pgpe maxSigmaChange must be in (0, 1), got ${o.maxSigmaChange}`);
  }
  ruleAt(): WeightRule { return { kind: 'pgpe', shaping: this.shaping, nonFinite: this.nonFinite }; }
  protected update(gen: Generation, sums: NoiseSums): number {
    const n = this.ascend(sums.linear, this.lrAt(gen.step));
    const sq = sums.square!;
    const old = (gen.perturbation as Extract<Perturbation, { kind: 'diagonal' }>).sigmas;
    for (let j = 0; j < this.dim; j++) {
      const s = old[j]!;
      const delta = this.sigmaLr * s * sq[j]!;
      const lim = this.maxSigmaChange * s;
      this.sigmas[j] = s + Math.max(-lim, Math.min(lim, delta));
    }
    return n;
  }
}

export interface SnesOptions extends Omit<StrategyOptions, 'pop'> {
  /** Default 4 + floor(3 ln D), rounded up to the population unit. */
  pop?: number;
  /** Learning rate of log sigma (default (3 + ln D) / (5 sqrt D)). */
  sigmaLr?: number;
}

/** Separable NES: rank utilities, per-parameter sigma adapted multiplicatively. */
export class SNES extends DiagonalStrategy {
  readonly name = 'snes';
  readonly sigmaLr: number;
  constructor(o: SnesOptions) {
    const d = o.init?.length ?? o.dim ?? 1;
    const unit = (o.shards ?? 1) * (o.antithetic ? 2 : 1);
    const pop = o.pop ?? Math.ceil((4 + Math.floor(3 * Math.log(d))) / unit) * unit;
    super({ ...o, pop }, { optimizer: 'plain', lr: 1 });
    this.sigmaLr = o.sigmaLr ?? (3 + Math.log(this.dim)) / (5 * Math.sqrt(this.dim));
    if (!(this.sigmaLr >= 0 && Number.isFinite(this.sigmaLr))) throw new UserError(`ES strategy: snes sigmaLr must be a finite number >= 0, got ${o.sigmaLr}`);
  }
  ruleAt(): WeightRule { return { kind: 'snes', nonFinite: this.nonFinite }; }
  protected update(gen: Generation, sums: NoiseSums): number {
    const n = this.ascend(sums.linear, this.lrAt(gen.step));
    const sq = sums.square!;
    const old = (gen.perturbation as Extract<Perturbation, { kind: 'diagonal' }>).sigmas;
    for (let j = 0; j < this.dim; j++) this.sigmas[j] = old[j]! * Math.exp((this.sigmaLr / 2) * sq[j]!);
    return n;
  }
}

export interface FdOptions extends Omit<StrategyOptions, 'pop' | 'sigma' | 'antithetic' | 'shards' | 'scheme'> {
  /** The nudge of each parameter (paper: 0.001). */
  delta?: number;
}

/** Finite differences as ES (paper II-G): a population of D + 1; g_j = (F_{j+1} - F_0) / delta. */
export class FD extends EvolutionStrategy {
  readonly name = 'fd';
  readonly delta: number;
  constructor(o: FdOptions) {
    const d = o.init?.length ?? o.dim ?? 0;
    super({ ...o, pop: d + 1, sigma: o.delta ?? 0.001, shards: 1, scheme: 'openai' });
    this.delta = o.delta ?? 0.001;
  }
  override popUnit(): number { return 1; }
  protected perturbationAt(): Perturbation { return { kind: 'coordinate', delta: this.delta }; }
  ruleAt(): WeightRule { throw new Error('fd has no weight rule: it differences the fitness'); }
  protected update(gen: Generation, sums: NoiseSums): number { return this.ascend(sums.linear, this.lrAt(gen.step)); }

  override async tell(fitness: ArrayLike<number>): Promise<TellResult> {
    const gen = this.ask();
    if (fitness.length !== gen.size) throw new RangeError(`tell: got ${fitness.length} fitness values for a population of ${gen.size}`);
    return this.fdFinish(gen, Float64Array.from(fitness), 0);
  }

  override async run(runner: PopulationRunner, task: EstimateTask = {}): Promise<TellResult> {
    const gen = this.ask();
    const t0 = performance.now();
    const fitness = await runner.evaluate({ mu: gen.center, perturbation: gen.perturbation, seed: gen.seed, step: gen.step, population: gen.size, ...task });
    return this.fdFinish(gen, fitness, (performance.now() - t0) / 1000);
  }

  private fdFinish(gen: Generation, fitness: Float64Array, evalSeconds: number): TellResult {
    const { g, nonFinite } = fdGradient(fitness, this.delta);
    return this.complete(gen, { linear: g }, fitness, nonFinite, Number.isFinite(fitness[0]!) ? 0 : 1, evalSeconds, 0);
  }
}
