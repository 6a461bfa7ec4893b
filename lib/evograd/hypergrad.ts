/**
 * The EvoGrad hypergradient (Bohdal, Yang and Hospedales, NeurIPS 2021), as the authors' code
 * computes it, for any model given as three loss oracles (HyperObjective):
 *
 *   theta_k = theta + sigma eps_k              K copies of the (detached) parameters
 *   l_k     = L_train(theta_k, lambda)         lambda in the graph, theta_k constant
 *   w       = softmax(-l / tau)
 *   theta*  = sum_k w_k theta_k
 *   h       = d L_val(theta*) / d lambda       first order: lambda reaches L_val only through w
 *
 * With g* = dL_val/dtheta at theta* and a_k = g* . (theta_k - theta) = sigma g* . eps_k, the chain
 * rule through the weights is exact and needs no second derivative:
 *   dL_val/dl_k = -(w_k / tau) (a_k - sum_j w_j a_j),    h = sum_k dL_val/dl_k * dl_k/dlambda.
 * So one hypergradient costs K training passes that back-propagate to lambda only, one validation
 * pass to theta, and holds one tape at a time plus a few D-vectors (the copy noise is regenerated
 * from its seed each time it is needed, never stored).
 */
import { allocLike, type FloatArray } from '../tensor/tensor.js';
import { fillCopyNoise, type CopyNoise } from './noise.js';

export interface EvoGradSettings {
  /** K, the number of perturbed copies (the paper: 2). */
  copies: number;
  /** Perturbation scale (the paper: 0.001; the 1-D illustration: 1). */
  sigma: number;
  /** Softmax temperature of the copies' weights (the paper: 0.05; the 1-D illustration: 0.5). */
  tau: number;
  /** Random signs (the paper's experiments) or standard normal noise (its 1-D illustration). */
  noise: CopyNoise;
  /** Seed of the copy noise (STREAM.evograd). */
  seed: number;
}

/** The paper's defaults: K = 2, sigma = 0.001, tau = 0.05, random signs. */
export const EVOGRAD_DEFAULTS: Readonly<Omit<EvoGradSettings, 'seed'>> = { copies: 2, sigma: 0.001, tau: 0.05, noise: 'sign' };

/**
 * A hyperparameter problem as loss oracles. theta (model parameters) and lambda
 * (hyperparameters) are flat vectors of one dtype; every gradient argument is overwritten.
 */
export interface HyperObjective<TB, VB = TB> {
  /** L_train(theta, lambda) on `batch`, and its gradient with respect to theta (the ordinary step). */
  trainTheta(theta: FloatArray, lambda: FloatArray, batch: TB, gradTheta: FloatArray): number;
  /** L_train(theta, lambda) on `batch`, and its gradient with respect to lambda (theta constant). */
  trainLambda(theta: FloatArray, lambda: FloatArray, batch: TB, gradLambda: Float64Array): number;
  /** L_val(theta) on `batch`, and its gradient with respect to theta. */
  val(theta: FloatArray, batch: VB, gradTheta: FloatArray): number;
}

export interface Hypergradient {
  /** d L_val(theta*) / d lambda. */
  grad: Float64Array;
  /** L_val(theta*). */
  valLoss: number;
  /** l_k and w_k of each copy. */
  copyLosses: Float64Array;
  weights: Float64Array;
  /** d L_val / d l_k (the tape EvoGrad; the population form does not form them). */
  lossAdjoints?: Float64Array;
}

export function checkSettings(s: EvoGradSettings): void {
  if (!Number.isInteger(s.copies) || s.copies < 2) throw new RangeError(`evograd: copies (K) must be an integer >= 2, got ${s.copies}`);
  if (!(Number.isFinite(s.sigma) && s.sigma > 0)) throw new RangeError(`evograd: sigma must be a finite number > 0, got ${s.sigma}`);
  if (!(Number.isFinite(s.tau) && s.tau > 0)) throw new RangeError(`evograd: tau must be a finite number > 0, got ${s.tau}`);
  if (s.noise !== 'sign' && s.noise !== 'gaussian') throw new RangeError(`evograd: noise must be sign or gaussian, got ${JSON.stringify(s.noise)}`);
  if (!Number.isInteger(s.seed) || s.seed < 0 || s.seed > 0xffffffff) throw new RangeError(`evograd: seed must be an integer in [0, 2^32), got ${s.seed}`);
}

/** softmax(-l / tau), computed stably (the smallest loss gets exp(0)). */
export function copyWeights(losses: ArrayLike<number>, tau: number): Float64Array {
  let lo = Infinity;
  for (let k = 0; k < losses.length; k++) lo = Math.min(lo, losses[k]!);
  const w = new Float64Array(losses.length);
  let sum = 0;
  for (let k = 0; k < w.length; k++) sum += (w[k] = Math.exp(-(losses[k]! - lo) / tau));
  for (let k = 0; k < w.length; k++) w[k]! /= sum;
  return w;
}

/** D-sized buffers reused across hyper-steps (allocated once per parameter dtype and size). */
export class EvoGradWorkspace {
  readonly eps: Float32Array;
  readonly copy: FloatArray;
  readonly merged: FloatArray;
  readonly gradTheta: FloatArray;
  readonly shift: Float64Array;

  constructor(like: FloatArray) {
    const d = like.length;
    this.eps = new Float32Array(d);
    this.copy = allocLike(like, d);
    this.merged = allocLike(like, d);
    this.gradTheta = allocLike(like, d);
    this.shift = new Float64Array(d);
  }

  /** Bytes of the D-vectors held (exact). */
  get bytes(): number {
    return this.eps.byteLength + this.copy.byteLength + this.merged.byteLength + this.gradTheta.byteLength + this.shift.byteLength;
  }

  fits(like: FloatArray): boolean {
    return this.copy.length === like.length && Object.getPrototypeOf(this.copy) === Object.getPrototypeOf(like);
  }
}

export interface CopyPass {
  losses: Float64Array;
  /** [K, M] dl_k / dlambda, or null when not requested. */
  lambdaGrads: Float64Array[] | null;
}

/** Copy k's parameters theta + sigma eps_k into ws.copy (eps_k left in ws.eps). */
function makeCopy(theta: FloatArray, s: EvoGradSettings, step: number, k: number, ws: EvoGradWorkspace): void {
  fillCopyNoise(ws.eps, s.noise, s.seed, step, k);
  const e = ws.eps, c = ws.copy, sigma = s.sigma;
  for (let i = 0; i < c.length; i++) c[i] = theta[i]! + sigma * e[i]!;
}

/** The copies' training losses (and their lambda-gradients): one oracle call per copy, one tape at a time. */
export function copyPass<TB, VB>(
  obj: HyperObjective<TB, VB>, theta: FloatArray, lambda: FloatArray, batch: TB, s: EvoGradSettings, step: number, ws: EvoGradWorkspace, withGrad: boolean,
): CopyPass {
  const losses = new Float64Array(s.copies);
  const grads: Float64Array[] | null = withGrad ? [] : null;
  const scratch = new Float64Array(lambda.length);
  for (let k = 0; k < s.copies; k++) {
    makeCopy(theta, s, step, k, ws);
    const g = withGrad ? new Float64Array(lambda.length) : scratch;
    losses[k] = obj.trainLambda(ws.copy, lambda, batch, g);
    if (!Number.isFinite(losses[k]!)) throw new RangeError(`evograd: the training loss of copy ${k} at step ${step} is ${losses[k]}`);
    grads?.push(g);
  }
  return { losses, lambdaGrads: grads };
}

/** theta* = theta + sigma sum_k w_k eps_k (= sum_k w_k theta_k since the weights sum to 1), into ws.merged. */
export function mergeCopies(theta: FloatArray, weights: Float64Array, s: EvoGradSettings, step: number, ws: EvoGradWorkspace): FloatArray {
  const acc = ws.shift;
  acc.fill(0);
  for (let k = 0; k < weights.length; k++) {
    fillCopyNoise(ws.eps, s.noise, s.seed, step, k);
    const ws_ = weights[k]! * s.sigma, e = ws.eps;
    for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + ws_ * e[i]!;
  }
  const m = ws.merged;
  for (let i = 0; i < m.length; i++) m[i] = theta[i]! + acc[i]!;
  return m;
}

/**
 * The EvoGrad hypergradient at (theta, lambda) with the noise of hyper-step `step`:
 * d L_val(theta*(lambda)) / d lambda, theta held fixed (detached), exact for that noise.
 */
export function evoGradHypergradient<TB, VB>(
  obj: HyperObjective<TB, VB>, theta: FloatArray, lambda: FloatArray, trainBatch: TB, valBatch: VB,
  s: EvoGradSettings, step: number, ws: EvoGradWorkspace = new EvoGradWorkspace(theta),
): Hypergradient {
  checkSettings(s);
  if (!ws.fits(theta)) throw new RangeError(`evograd: workspace is for ${ws.copy.length} parameters of another dtype, theta has ${theta.length}`);
  const { losses, lambdaGrads } = copyPass(obj, theta, lambda, trainBatch, s, step, ws, true);
  const w = copyWeights(losses, s.tau);
  const merged = mergeCopies(theta, w, s, step, ws);
  const valLoss = obj.val(merged, valBatch, ws.gradTheta);
  // a_k = sigma g* . eps_k (float64 sums, copies in order).
  const a = new Float64Array(s.copies);
  const g = ws.gradTheta;
  for (let k = 0; k < s.copies; k++) {
    fillCopyNoise(ws.eps, s.noise, s.seed, step, k);
    const e = ws.eps;
    let dot = 0;
    for (let i = 0; i < g.length; i++) dot += g[i]! * e[i]!;
    a[k] = s.sigma * dot;
  }
  let abar = 0;
  for (let k = 0; k < s.copies; k++) abar += w[k]! * a[k]!;
  const adj = new Float64Array(s.copies);
  const grad = new Float64Array(lambda.length);
  for (let k = 0; k < s.copies; k++) {
    adj[k] = -(w[k]! / s.tau) * (a[k]! - abar);
    const gl = lambdaGrads![k]!;
    for (let j = 0; j < grad.length; j++) grad[j] = grad[j]! + adj[k]! * gl[j]!;
  }
  return { grad, valLoss, copyLosses: losses, weights: w, lossAdjoints: adj };
}
