/**
 * EvoGrad with many copies, evaluated forward only by a population evaluator (lib/es): the
 * copies' lambda-derivatives by central finite differences instead of the tape, so K can be in
 * the hundreds or thousands at the cost of 2 K forward passes per hyperparameter.
 *
 * The copies are the ES population's members (lib/es/population.ts, kind 'gaussian'):
 * theta_k = theta + s_k eps_k, eps_k = f32(sigma z_k), antithetic pairs sharing z, keyed by
 * (seed, step). With l_k^+- the copies' training losses at lambda +- delta e_i (the same members
 * for both), everything else is EvoGrad's (hypergrad.ts):
 *
 *   l_k   = mean over i of (l_k^+ + l_k^-) / 2           the copies' losses (O(delta^2) of l_k(lambda))
 *   d_ik  = (l_k^+ - l_k^-) / (2 delta)                   dl_k / dlambda_i (central differences)
 *   w     = softmax(-l / tau),  theta* = theta + sum_k w_k s_k eps_k      (one noise sum)
 *   g*    = dL_val / dtheta at theta*                      (one validation pass on the tape)
 *   h_i   = sum_k dL_val/dl_k d_ik = -(1/tau) sum_k w_k (a_k - abar) d_ik,   a_k = g* . s_k eps_k
 *         = -(1/tau) g* . sum_k c_ik s_k eps_k,   c_ik = w_k (d_ik - sum_j w_j d_ij)   (one noise sum per i)
 *
 * so the per-copy dot products a_k are never formed: each hyperparameter costs one weighted noise
 * sum. With delta -> 0 this is the tape EvoGrad with Gaussian noise on the same copies.
 */
import type { PopulationEvaluator } from '../es/population.js';
import { copyWeights, type HyperObjective, type Hypergradient } from './hypergrad.js';

export interface PopulationCopies {
  /** K, the number of copies (even when antithetic). */
  copies: number;
  sigma: number;
  tau: number;
  /** Antithetic pairs (theta +- eps share z): the ES default. */
  antithetic: boolean;
  /** Finite-difference step of each hyperparameter, in its units. */
  delta: number;
  /** Noise key (the ES noise stream): seed and step. */
  seed: number;
}

/** The copies' training losses on `batch` at hyperparameters `lambda`: K values (loss, not fitness). */
export type CopyLosses<TB> = (theta: Float32Array, lambda: Float32Array, batch: TB, copies: PopulationCopies, step: number) => Promise<Float64Array>;

export function checkPopulationCopies(c: PopulationCopies): void {
  if (!Number.isInteger(c.copies) || c.copies < 2) throw new RangeError(`evograd population: copies must be an integer >= 2, got ${c.copies}`);
  if (c.antithetic && c.copies % 2 !== 0) throw new RangeError(`evograd population: antithetic copies come in pairs, got ${c.copies}`);
  for (const f of ['sigma', 'tau', 'delta'] as const) {
    if (!(Number.isFinite(c[f]) && c[f] > 0)) throw new RangeError(`evograd population: ${f} must be a finite number > 0, got ${c[f]}`);
  }
}

/**
 * The EvoGrad hypergradient of `lambda` with K copies evaluated by `losses` (forward only) and
 * `evaluator`'s noise sums; the validation gradient by `objective.val` on the tape.
 */
export async function populationHypergradient<TB, VB>(
  losses: CopyLosses<TB>, evaluator: Pick<PopulationEvaluator, 'noiseSum'>, objective: Pick<HyperObjective<TB, VB>, 'val'>,
  theta: Float32Array, lambda: Float32Array, trainBatch: TB, valBatch: VB, c: PopulationCopies, step: number,
): Promise<Hypergradient> {
  checkPopulationCopies(c);
  const K = c.copies, M = lambda.length;
  const mean = new Float64Array(K);
  const slopes: Float64Array[] = [];
  for (let i = 0; i < M; i++) {
    const shifted = (sign: 1 | -1): Float32Array => {
      const l = Float32Array.from(lambda);
      l[i] = lambda[i]! + sign * c.delta;
      return l;
    };
    const plus = await losses(theta, shifted(1), trainBatch, c, step);
    const minus = await losses(theta, shifted(-1), trainBatch, c, step);
    if (plus.length !== K || minus.length !== K) throw new RangeError(`evograd population: ${plus.length} and ${minus.length} copy losses for ${K} copies`);
    const d = new Float64Array(K);
    for (let k = 0; k < K; k++) {
      if (!Number.isFinite(plus[k]!) || !Number.isFinite(minus[k]!)) throw new RangeError(`evograd population: the training loss of copy ${k} at step ${step} is not finite (${plus[k]}, ${minus[k]})`);
      mean[k] = mean[k]! + (plus[k]! + minus[k]!) / (2 * M);
      d[k] = (plus[k]! - minus[k]!) / (2 * c.delta);
    }
    slopes.push(d);
  }
  const w = copyWeights(mean, c.tau);
  const request = (weights: Float64Array) => ({ mu: theta, seed: c.seed, step, antithetic: c.antithetic, sigma: c.sigma, start: 0, weights });
  const shift = await evaluator.noiseSum(request(w));
  const merged = new Float32Array(theta.length);
  for (let j = 0; j < merged.length; j++) merged[j] = theta[j]! + shift[j]!;
  const g = new Float32Array(theta.length);
  const valLoss = objective.val(merged, valBatch, g);
  const grad = new Float64Array(M);
  for (let i = 0; i < M; i++) {
    const d = slopes[i]!;
    let dbar = 0;
    for (let k = 0; k < K; k++) dbar += w[k]! * d[k]!;
    const cw = new Float64Array(K);
    for (let k = 0; k < K; k++) cw[k] = w[k]! * (d[k]! - dbar);
    const n = await evaluator.noiseSum(request(cw));
    let dot = 0;
    for (let j = 0; j < g.length; j++) dot += g[j]! * n[j]!;
    grad[i] = -dot / c.tau;
  }
  return { grad, valLoss, copyLosses: mean, weights: w };
}
