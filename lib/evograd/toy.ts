/**
 * The paper's 1-D illustration: L_train(x, lambda) = (x - 1)^2 + lambda x^2, L_val(x) = (x - 0.5)^2.
 * The inner optimum x*(lambda) = 1 / (1 + lambda) gives the exact hypergradient
 *   d L_val(x*(lambda)) / d lambda = (lambda - 1) / (lambda + 1)^3,
 * and for fixed noise the EvoGrad estimate has the closed form (with theta_k = x + sigma eps_k,
 * l_k = L_train(theta_k, lambda), w = softmax(-l / tau), theta* = sum w_k theta_k)
 *   h = -(2 / tau) (theta* - 0.5) sum_k w_k theta_k (theta_k^2 - sum_j w_j theta_j^2),
 * since dl_k/dlambda = theta_k^2 and dw_k/dlambda = -(w_k / tau)(theta_k^2 - sum_j w_j theta_j^2).
 *
 * The program uses only ops of the contract, so the tape differentiates it like any model:
 * (x - c)^2 is sqEuclidean([[x]], [[c]]), and s + lambda t is a 1x1 convolution of t by the
 * kernel lambda with bias s (conv2d is bilinear in its input and kernel, and adds its bias).
 */
import { Rng, STREAM } from '../rng/philox.js';
import { Tensor, type FloatArray } from '../tensor/tensor.js';
import { fillCopyNoise } from './noise.js';
import { copyWeights, evoGradHypergradient, EvoGradWorkspace, type EvoGradSettings, type HyperObjective } from './hypergrad.js';
import type { HyperProgram } from './objective.js';

const dtypeOf = (a: FloatArray): 'float32' | 'float64' => (a instanceof Float64Array ? 'float64' : 'float32');

/** The toy as a HyperProgram (no batches: pass null). theta = [x], lambda = [lambda]. */
export const TOY_PROGRAM: HyperProgram<null> = {
  train(ops, a) {
    const dt = dtypeOf(a.theta);
    const x = a.thetaLeaf(new Tensor(a.theta.subarray(0, 1), [1, 1]), 0);
    const lam = a.lambdaLeaf(new Tensor(a.lambda.subarray(0, 1), [1, 1, 1, 1]), 0);
    const s = ops.sqEuclidean(x, ops.constant(Tensor.from([1], [1, 1], dt)));
    const t = ops.sqEuclidean(x, ops.constant(Tensor.from([0], [1, 1], dt)));
    const l = ops.conv2d(ops.reshape(t, [1, 1, 1, 1]), lam, ops.reshape(s, [1]), { stride: 1, padding: 0 });
    return ops.reshape(l, []);
  },
  val(ops, a) {
    const x = a.thetaLeaf(new Tensor(a.theta.subarray(0, 1), [1, 1]), 0);
    return ops.reshape(ops.sqEuclidean(x, ops.constant(Tensor.from([0.5], [1, 1], dtypeOf(a.theta)))), []);
  },
};

/** The exact hypergradient of the toy at the inner optimum: (lambda - 1) / (lambda + 1)^3. */
export function toyExactHypergradient(lambda: number): number {
  return (lambda - 1) / (lambda + 1) ** 3;
}

/** The closed form of the EvoGrad estimate for the noise of (settings, step) at x (see the file comment). */
export function toyClosedForm(x: number, lambda: number, s: EvoGradSettings, step: number): number {
  const eps = new Float32Array(1);
  const th: number[] = [];
  for (let k = 0; k < s.copies; k++) {
    fillCopyNoise(eps, s.noise, s.seed, step, k);
    th.push(x + s.sigma * eps[0]!);
  }
  const w = copyWeights(th.map((t) => (t - 1) ** 2 + lambda * t * t), s.tau);
  let star = 0, m2 = 0;
  th.forEach((t, k) => { star += w[k]! * t; m2 += w[k]! * t * t; });
  let cov = 0;
  th.forEach((t, k) => { cov += w[k]! * t * (t * t - m2); });
  return -(2 / s.tau) * (star - 0.5) * cov;
}

export interface ToySweep {
  lambdas: number[];
  exact: number[];
  /** Mean and sample standard deviation of the EvoGrad estimate over the trials, per lambda. */
  mean: number[];
  std: number[];
  /** Pearson correlation of mean with exact, and the fraction of lambdas where their signs agree. */
  pearson: number;
  signAgreement: number;
  /** Lambdas where the signs differ. */
  signMisses: number[];
}

export function pearson(a: readonly number[], b: readonly number[]): number {
  const n = a.length;
  const ma = a.reduce((s, v) => s + v, 0) / n, mb = b.reduce((s, v) => s + v, 0) / n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i]! - ma) * (b[i]! - mb);
    saa += (a[i]! - ma) ** 2;
    sbb += (b[i]! - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

/**
 * The authors' illustration protocol: for each lambda of an even grid over [lo, hi], `trials`
 * draws of x ~ N(0, 1) (Rng(seed, STREAM.general, lane = lambda index)), each with its own copy
 * noise (step = lambda index * trials + trial), the EvoGrad estimate by `objective`; their mean
 * against the exact hypergradient.
 */
export function toySweep(objective: HyperObjective<null>, s: EvoGradSettings, opts: { points: number; trials: number; lo?: number; hi?: number; dtype?: 'float64' | 'float32' }): ToySweep {
  const lo = opts.lo ?? 0.1, hi = opts.hi ?? 2;
  const mk = (v: number): FloatArray => (opts.dtype === 'float32' ? Float32Array.of(v) : Float64Array.of(v));
  const ws = new EvoGradWorkspace(mk(0));
  const lambdas: number[] = [], exact: number[] = [], mean: number[] = [], std: number[] = [];
  for (let i = 0; i < opts.points; i++) {
    const lam = opts.points === 1 ? lo : lo + ((hi - lo) * i) / (opts.points - 1);
    const rng = new Rng(s.seed, STREAM.general, i);
    const hs: number[] = [];
    for (let r = 0; r < opts.trials; r++) {
      const x = mk(rng.normal());
      hs.push(evoGradHypergradient(objective, x, mk(lam), null, null, s, i * opts.trials + r, ws).grad[0]!);
    }
    const m = hs.reduce((a, b) => a + b, 0) / hs.length;
    lambdas.push(lam);
    exact.push(toyExactHypergradient(lam));
    mean.push(m);
    std.push(Math.sqrt(hs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, hs.length - 1)));
  }
  const misses = lambdas.filter((_, i) => Math.sign(mean[i]!) !== Math.sign(exact[i]!));
  return { lambdas, exact, mean, std, pearson: pearson(mean, exact), signAgreement: 1 - misses.length / lambdas.length, signMisses: misses };
}
