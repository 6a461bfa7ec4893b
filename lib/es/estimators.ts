/**
 * ES gradient estimators as fitness -> member weights: the search-gradient
 * estimate (ascent direction on fitness) of a group of members is
 *   g = sum_i w_i s_i eps_i        (eps_i = f32(sigma z_i), s_i the antithetic sign)
 * which the population evaluator's noiseSum computes without storing any eps.
 *
 *  wsr    (paper eq. 9)  w_i = ((F_i - mean F) / std F) / n          std = population std (divide by n)
 *  nes    (eq. 6)        w_i = (F_i - b) / (n sigma^2)               score of N(mu, sigma^2 I): eps_i / sigma^2;
 *                                                                  b = 0 (eq. 6 as written) or mean F (baseline)
 *  openai (Salimans)     w_i = (rank_i / (n - 1) - 1/2) / (n sigma)  centered ranks (ties broken by member index),
 *                                                                  so g = 1/(n sigma) sum_i shaped_i eps_i
 * Finite differences (fd) are not weights: see fdGradient.
 *
 * Non-finite fitness: 'worst' gives it the lowest finite fitness of the group
 * (rank worst); 'drop' gives it weight 0 and leaves it out of the statistics
 * (n counts the finite members only).
 */

export type EstimatorName = 'wsr' | 'nes' | 'openai' | 'fd';
export type WeightEstimator = Exclude<EstimatorName, 'fd'>;
export type NonFinitePolicy = 'worst' | 'drop';

export interface WeightOptions {
  estimator: WeightEstimator;
  sigma: number;
  /** nes only: subtract the mean fitness (a baseline) before weighting. */
  baseline: boolean;
  nonFinite: NonFinitePolicy;
}

export interface GroupWeights {
  weights: Float64Array;
  /** Members whose fitness was NaN or infinite. */
  nonFinite: number;
  /** Members that entered the statistics. */
  used: number;
  /** True when the fitness had no spread (wsr: std 0): the weights are all zero. */
  degenerate: boolean;
}

/** Relative spread under which WSR treats rewards as constant (weights 0) instead of amplifying rounding noise. */
export const WSR_MIN_RELATIVE_STD = 1e-12;

/** The fitness values that enter the statistics (finite, or worst-substituted) and a mask of used members. */
export function sanitizeFitness(f: ArrayLike<number>, policy: NonFinitePolicy): { values: Float64Array; used: Uint8Array; nonFinite: number; bad: Uint8Array } {
  const n = f.length;
  const values = new Float64Array(n), used = new Uint8Array(n), bad = new Uint8Array(n);
  let nonFinite = 0, worst = Infinity;
  for (let i = 0; i < n; i++) {
    const v = f[i]!;
    if (Number.isFinite(v)) {
      values[i] = v;
      used[i] = 1;
      if (v < worst) worst = v;
    } else {
      nonFinite++;
      bad[i] = 1;
    }
  }
  if (policy === 'worst' && nonFinite > 0 && worst < Infinity) {
    for (let i = 0; i < n; i++) if (!used[i]) { values[i] = worst; used[i] = 1; }
  }
  return { values, used, nonFinite, bad };
}

/**
 * Centered ranks in [-1/2, 1/2] over the used members: rank by value, members
 * flagged in `worstFirst` (non-finite, 'worst' policy) below every other, then ties by index; unused members get 0.
 */
export function centeredRanks(values: Float64Array, used: Uint8Array, worstFirst?: Uint8Array): Float64Array {
  const idx: number[] = [];
  for (let i = 0; i < values.length; i++) if (used[i]) idx.push(i);
  const wf = worstFirst ?? new Uint8Array(values.length);
  idx.sort((a, b) => wf[b]! - wf[a]! || values[a]! - values[b]! || a - b);
  const out = new Float64Array(values.length);
  const n = idx.length;
  if (n < 2) return out;
  for (let r = 0; r < n; r++) out[idx[r]!] = r / (n - 1) - 0.5;
  return out;
}

/** Weights of one group (a shard in the paper's scheme, the whole population in OpenAI's), times `scale`. */
export function groupWeights(f: ArrayLike<number>, opts: WeightOptions, scale = 1): GroupWeights {
  const { values, used, nonFinite, bad } = sanitizeFitness(f, opts.nonFinite);
  const w = new Float64Array(values.length);
  let n = 0, sum = 0;
  for (let i = 0; i < values.length; i++) if (used[i]) { n++; sum += values[i]!; }
  const out: GroupWeights = { weights: w, nonFinite, used: n, degenerate: false };
  if (n === 0) { out.degenerate = true; return out; }
  const mean = sum / n;
  if (opts.estimator === 'wsr') {
    let ss = 0;
    for (let i = 0; i < values.length; i++) if (used[i]) ss += (values[i]! - mean) ** 2;
    const std = Math.sqrt(ss / n);
    if (!(std > WSR_MIN_RELATIVE_STD * Math.max(1, Math.abs(mean)))) { out.degenerate = true; return out; }
    for (let i = 0; i < values.length; i++) if (used[i]) w[i] = (((values[i]! - mean) / std) / n) * scale;
  } else if (opts.estimator === 'nes') {
    const b = opts.baseline ? mean : 0, k = n * opts.sigma * opts.sigma;
    for (let i = 0; i < values.length; i++) if (used[i]) w[i] = ((values[i]! - b) / k) * scale;
  } else {
    const r = centeredRanks(values, used, bad), k = n * opts.sigma;
    if (n < 2) out.degenerate = true;
    for (let i = 0; i < values.length; i++) if (used[i]) w[i] = (r[i]! / k) * scale;
  }
  return out;
}

/**
 * Finite differences cast as ES (paper II-G): member 0 is mu, member m nudges
 * parameter m - 1 by delta. g_j = (F_{j+1} - F_0) / delta: the forward
 * difference of the fitness (the paper's eq. 9 with F(m) := F_0 and the
 * standardization replaced by delta, up to its 1/n factor, which here is left
 * to the learning rate). A non-finite F_{j+1} gives g_j = 0 (dropped); a
 * non-finite F_0 gives g = 0.
 */
export function fdGradient(fitness: ArrayLike<number>, delta: number): { g: Float64Array; nonFinite: number } {
  const d = fitness.length - 1;
  const g = new Float64Array(Math.max(0, d));
  let nonFinite = 0;
  for (let i = 0; i < fitness.length; i++) if (!Number.isFinite(fitness[i]!)) nonFinite++;
  const f0 = fitness[0]!;
  if (!Number.isFinite(f0)) return { g, nonFinite };
  for (let j = 0; j < d; j++) {
    const f = fitness[j + 1]!;
    g[j] = Number.isFinite(f) ? (f - f0) / delta : 0;
  }
  return { g, nonFinite };
}

/**
 * A weight rule: how one group's fitness (a shard in the paper's scheme, the
 * whole population in OpenAI's) becomes member weights for the noise sums.
 * Pure data, so a worker can apply it to its own shard (the paper's scheme:
 * each core makes its own estimate, no exchange of rewards).
 *
 *  wsr, nes, openai   linear weights as groupWeights above
 *  pgpe (Sehnke et al. 2010, symmetric sampling; members 2k, 2k+1 are the pair +eps_k, -eps_k):
 *     r = centered ranks of the group (shaping 'ranks') or the raw fitness ('raw'); np = pairs used
 *     linear  w_2k = r_2k / (2 np),  w_2k+1 = r_2k+1 / (2 np)   => sum_k (r+_k - r-_k)/(2 np) eps_k  (mu gradient)
 *     square  w_2k = w_2k+1 = c_k / (2 np),  c_k = (r+_k + r-_k)/2 - mean(r)
 *             => sum_k c_k/np (z_k^2 - 1); times sigma_j this is the sigma gradient sum_k c_k (eps^2 - sigma^2)/sigma / np
 *  snes (Wierstra et al. 2014, separable NES): rank-based utilities
 *     u_k = max(0, ln(n/2 + 1) - ln k) / sum_l max(0, ln(n/2 + 1) - ln l) - 1/n   (k = 1 the best)
 *     linear and square weights both u: sum u_i s_i eps_i (mu step) and sum u_i (z_i^2 - 1) (log-sigma step)
 * Non-finite fitness follows the policy: 'worst' ranks it below every finite value, 'drop' gives it
 * weight 0 (pgpe: drops its pair) and leaves it out of n.
 */
export type WeightRule =
  | { kind: 'wsr'; nonFinite: NonFinitePolicy }
  | { kind: 'nes'; sigma: number; baseline: boolean; nonFinite: NonFinitePolicy }
  | { kind: 'openai'; sigma: number; nonFinite: NonFinitePolicy }
  | { kind: 'pgpe'; shaping: 'ranks' | 'raw'; nonFinite: NonFinitePolicy }
  | { kind: 'snes'; nonFinite: NonFinitePolicy };

export interface RuleWeights {
  linear: Float64Array;
  /** Weights of the (z^2 - 1) sum, for rules that adapt a per-parameter sigma. */
  square?: Float64Array;
  nonFinite: number;
  degenerate: boolean;
}

/** Whether the rule needs the (z^2 - 1) noise sum. */
export function ruleNeedsSquare(rule: WeightRule): boolean {
  return rule.kind === 'pgpe' || rule.kind === 'snes';
}

/** SNES utilities for n used members, by rank (0 = best). */
export function snesUtilities(n: number): Float64Array {
  const u = new Float64Array(n);
  if (n === 0) return u;
  let sum = 0;
  for (let k = 0; k < n; k++) { u[k] = Math.max(0, Math.log(n / 2 + 1) - Math.log(k + 1)); sum += u[k]!; }
  for (let k = 0; k < n; k++) u[k] = u[k]! / sum - 1 / n;
  return u;
}

function pgpeWeights(f: ArrayLike<number>, rule: Extract<WeightRule, { kind: 'pgpe' }>, scale: number): RuleWeights {
  const n = f.length;
  if (n % 2 !== 0) throw new RangeError(`pgpe weights: a group of ${n} members is not whole +eps/-eps pairs`);
  const { values, used, nonFinite, bad } = sanitizeFitness(f, rule.nonFinite);
  // 'drop' removes whole pairs
  if (rule.nonFinite === 'drop') for (let k = 0; k < n; k += 2) if (!used[k] || !used[k + 1]) { used[k] = 0; used[k + 1] = 0; }
  const linear = new Float64Array(n), square = new Float64Array(n);
  const out: RuleWeights = { linear, square, nonFinite, degenerate: false };
  let np = 0;
  for (let k = 0; k < n; k += 2) if (used[k]) np++;
  if (np === 0) { out.degenerate = true; return out; }
  const r = rule.shaping === 'ranks' ? centeredRanks(values, used, bad) : values;
  let mean = 0;
  for (let i = 0; i < n; i++) if (used[i]) mean += r[i]!;
  mean /= 2 * np;
  let spread = false;
  for (let k = 0; k < n; k += 2) {
    if (!used[k]) continue;
    if (r[k] !== r[k + 1] || r[k] !== mean) spread = true;
    linear[k] = (r[k]! / (2 * np)) * scale;
    linear[k + 1] = (r[k + 1]! / (2 * np)) * scale;
    const c = (r[k]! + r[k + 1]!) / 2 - mean;
    square[k] = (c / (2 * np)) * scale;
    square[k + 1] = square[k]!;
  }
  if (!spread) out.degenerate = true;
  return out;
}

function snesWeights(f: ArrayLike<number>, rule: Extract<WeightRule, { kind: 'snes' }>, scale: number): RuleWeights {
  const { values, used, nonFinite, bad } = sanitizeFitness(f, rule.nonFinite);
  const idx: number[] = [];
  for (let i = 0; i < values.length; i++) if (used[i]) idx.push(i);
  // best first: finite before 'worst'-substituted, higher fitness first, ties by index
  idx.sort((a, b) => bad[a]! - bad[b]! || values[b]! - values[a]! || a - b);
  const u = snesUtilities(idx.length);
  const w = new Float64Array(values.length);
  idx.forEach((i, k) => { w[i] = u[k]! * scale; });
  return { linear: w, square: w.slice(), nonFinite, degenerate: idx.length < 2 };
}

/** The member weights of one group under `rule`, times `scale` (1/shards in the paper's scheme). */
export function ruleWeights(f: ArrayLike<number>, rule: WeightRule, scale = 1): RuleWeights {
  if (rule.kind === 'pgpe') return pgpeWeights(f, rule, scale);
  if (rule.kind === 'snes') return snesWeights(f, rule, scale);
  const opts: WeightOptions = rule.kind === 'wsr'
    ? { estimator: 'wsr', sigma: 1, baseline: false, nonFinite: rule.nonFinite }
    : rule.kind === 'nes'
      ? { estimator: 'nes', sigma: rule.sigma, baseline: rule.baseline, nonFinite: rule.nonFinite }
      : { estimator: 'openai', sigma: rule.sigma, baseline: false, nonFinite: rule.nonFinite };
  const g = groupWeights(f, opts, scale);
  return { linear: g.weights, nonFinite: g.nonFinite, degenerate: g.degenerate };
}
