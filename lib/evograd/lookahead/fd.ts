/**
 * The T1-T2 hypergradient by a finite difference instead of a second-order graph (the
 * approximation DARTS uses for its architecture gradient, Liu et al., 2019):
 *
 *   h = -alpha (d/dlambda grad_theta L_train(theta, lambda))^T v,     v = grad L_val
 *     = -alpha |v| d/dt [ dL_train(theta + t v/|v|, lambda)/dlambda ] at t = 0            (mixed partials commute)
 *     ~ -alpha |v| (g(theta + eps v/|v|) - g(theta - eps v/|v|)) / (2 eps),   g = dL_train/dlambda
 *
 * One validation pass to theta and two training passes back-propagated to lambda only: the same
 * oracles and the same cost as EvoGrad with K = 2 copies, and no noise of its own -- EvoGrad's copies
 * probe the same mixed derivative along random directions, this probes it along v. It differs from
 * lookaheadHypergradient (t1t2.ts) by O(eps^2) (the central difference) and O(alpha) (v is taken at
 * theta, not at the lookahead point theta - alpha grad_theta L_train).
 */
import { allocLike, type FloatArray } from '../../tensor/tensor.js';
import type { HyperObjective } from '../hypergrad.js';

export interface FdLookaheadResult {
  /** The hypergradient estimate. */
  grad: Float64Array;
  /** L_val(theta). */
  valLoss: number;
  /** |v|. */
  valGradNorm: number;
}

/** Reusable D-vectors of the finite difference (v and the displaced parameters). */
export class FdWorkspace {
  readonly v: FloatArray;
  readonly shifted: FloatArray;
  constructor(like: FloatArray) {
    this.v = allocLike(like, like.length);
    this.shifted = allocLike(like, like.length);
  }
  fits(like: FloatArray): boolean {
    return this.v.length === like.length && Object.getPrototypeOf(this.v) === Object.getPrototypeOf(like);
  }
}

/**
 * -alpha (d/dlambda grad_theta L_train)^T grad L_val at (theta, lambda), by a central difference of
 * dL_train/dlambda over +-eps along the unit validation gradient (eps: the displacement's length in
 * parameter space).
 */
export function fdLookaheadHypergradient<TB, VB>(
  obj: HyperObjective<TB, VB>, theta: FloatArray, lambda: FloatArray, trainBatch: TB, valBatch: VB, alpha: number, eps: number,
  ws: FdWorkspace = new FdWorkspace(theta),
): FdLookaheadResult {
  if (!(Number.isFinite(alpha) && alpha > 0)) throw new RangeError(`fd lookahead: alpha must be a finite number > 0, got ${alpha}`);
  if (!(Number.isFinite(eps) && eps > 0)) throw new RangeError(`fd lookahead: eps must be a finite number > 0, got ${eps}`);
  if (!ws.fits(theta)) throw new RangeError(`fd lookahead: workspace is for ${ws.v.length} parameters of another dtype, theta has ${theta.length}`);
  const { v, shifted } = ws;
  const valLoss = obj.val(theta, valBatch, v);
  let n2 = 0;
  for (let i = 0; i < v.length; i++) n2 += v[i]! * v[i]!;
  const norm = Math.sqrt(n2);
  const grad = new Float64Array(lambda.length);
  if (!Number.isFinite(norm)) throw new RangeError(`fd lookahead: the validation gradient is not finite (norm ${norm})`);
  if (norm === 0) return { grad, valLoss, valGradNorm: 0 };
  const step = eps / norm;
  const side = (sign: number): Float64Array => {
    for (let i = 0; i < shifted.length; i++) shifted[i] = theta[i]! + sign * step * v[i]!;
    const g = new Float64Array(lambda.length);
    const loss = obj.trainLambda(shifted, lambda, trainBatch, g);
    if (!Number.isFinite(loss)) throw new RangeError(`fd lookahead: the training loss at the displaced parameters is ${loss}`);
    return g;
  };
  const plus = side(1), minus = side(-1);
  const scale = -alpha * norm / (2 * eps);
  for (let j = 0; j < grad.length; j++) grad[j] = scale * (plus[j]! - minus[j]!);
  return { grad, valLoss, valGradNorm: norm };
}

/**
 * The same mixed derivative per unit SGD step, differenced in lambda instead: for each coordinate j,
 *
 *   h_j = -grad L_val(theta)^T (grad_theta L_train(theta, lambda + delta e_j) - grad_theta L_train(theta, lambda - delta e_j)) / (2 delta)
 *
 * (the T1-T2 hypergradient divided by alpha). Two training passes per coordinate back-propagated to
 * theta; with delta of the order of the hyperparameter's own scale (e.g. 1 degree of a rotation) it
 * averages over kinks in lambda, such as bilinear resampling's at whole pixels, that the tape's
 * derivative at one point sees from one side. What bench/evograd-snr and bench/evograd-landscape call
 * the exact one-step hypergradient.
 */
export function lambdaFdHypergradient<TB, VB>(
  obj: HyperObjective<TB, VB>, theta: FloatArray, lambda: FloatArray, trainBatch: TB, valBatch: VB, delta: number,
  ws: FdWorkspace = new FdWorkspace(theta),
): { grad: Float64Array; valLoss: number } {
  if (!(Number.isFinite(delta) && delta > 0)) throw new RangeError(`lambda fd: delta must be a finite number > 0, got ${delta}`);
  if (!ws.fits(theta)) throw new RangeError(`lambda fd: workspace is for ${ws.v.length} parameters of another dtype, theta has ${theta.length}`);
  const { v, shifted: gTrain } = ws;
  const valLoss = obj.val(theta, valBatch, v);
  const grad = new Float64Array(lambda.length);
  const at = allocLike(lambda, lambda.length);
  for (let j = 0; j < lambda.length; j++) {
    for (const sign of [1, -1]) {
      at.set(lambda);
      at[j] = lambda[j]! + sign * delta;
      obj.trainTheta(theta, at, trainBatch, gTrain);
      let dot = 0;
      for (let i = 0; i < v.length; i++) dot += v[i]! * gTrain[i]!;
      grad[j] = grad[j]! - sign * dot / (2 * delta);
    }
  }
  return { grad, valLoss };
}
