/**
 * A float64 oracle we did not write: mathjs (a dev dependency, never shipped). The ops are put in
 * the shapes mathjs computes, so the arithmetic is mathjs's own:
 *   conv2d and both its backwards as matrix products (im2col: a patch matrix; math.multiply),
 *   BN statistics (math.mean, math.variance 'uncorrected'), prototypes (math.mean over rows) and
 *   their backward (the averaging matrix transposed, math.multiply), distances (math.distance,
 *   math.dot, math.norm), the squared-distance backward as matrix algebra, log-softmax and the
 *   cross-entropy in 50-digit BigNumbers (math.exp, math.log, math.sum), log-softmax's backward as
 *   the row vector times its Jacobian, and the cosine and batch-norm backwards as symbolic
 *   derivatives of the forward expression (math.derivative).
 * Only the index maps (which input element sits in which patch) are ours. Inputs are flat NCHW or
 * row-major arrays; outputs flat float64 arrays in the contract's layouts.
 */
import { all, create, type BigNumber } from 'mathjs';

const math = create(all, {});
const big = create(all, { number: 'BigNumber', precision: 50 });

type M = number[][];
const mul = (a: M, b: M): M => math.multiply(a, b) as M;
const tr = (a: M): M => math.transpose(a) as M;
const rowsOf = (d: ArrayLike<number>, m: number, e: number): M => Array.from({ length: m }, (_, i) => Array.from(d).slice(i * e, (i + 1) * e));

/** The patch matrix of one image: rows (c, u, v) of the kernel, columns (i, j) of the output; zero outside the image. */
function patches(x: ArrayLike<number>, img: number, [c, h, w]: readonly number[], k: number, s: number, p: number, oh: number, ow: number): M {
  const out: M = [];
  for (let ch = 0; ch < c!; ch++) for (let u = 0; u < k; u++) for (let v = 0; v < k; v++) {
    const row: number[] = [];
    for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
      const y = i * s + u - p, z = j * s + v - p;
      row.push(y >= 0 && y < h! && z >= 0 && z < w! ? x[((img * c! + ch) * h! + y) * w! + z]! : 0);
    }
    out.push(row);
  }
  return out;
}

const outSize = (n: number, k: number, s: number, p: number): number => Math.floor((n + 2 * p - k) / s) + 1;

/** conv2d: per image, W [cout, cin k k] x patches [cin k k, oh ow] (+ bias). */
export function conv2dGemm(x: ArrayLike<number>, xShape: readonly number[], w: ArrayLike<number>, wShape: readonly number[], b: ArrayLike<number> | null, s: number, p: number): number[] {
  const [n, c, h, wd] = xShape as [number, number, number, number], [co, , k] = wShape as [number, number, number];
  const oh = outSize(h, k, s, p), ow = outSize(wd, k, s, p);
  const W = rowsOf(w, co, c * k * k);
  const out: number[] = [];
  for (let img = 0; img < n; img++) {
    const y = mul(W, patches(x, img, [c, h, wd], k, s, p, oh, ow));
    y.forEach((r, o) => out.push(...r.map((t) => t + (b ? b[o]! : 0))));
  }
  return out;
}

/** conv2dBackwardInput: per image, W^T dy (a patch-matrix gradient), folded back onto the image (col2im). */
export function conv2dBackwardInputGemm(dy: ArrayLike<number>, dyShape: readonly number[], w: ArrayLike<number>, wShape: readonly number[], inputShape: readonly number[], s: number, p: number): number[] {
  const [n, co, oh, ow] = dyShape as [number, number, number, number], [, c, k] = wShape as [number, number, number];
  const [, , h, wd] = inputShape as [number, number, number, number];
  const Wt = tr(rowsOf(w, co, c * k * k));
  const dx = new Array<number>(n * c * h * wd).fill(0);
  for (let img = 0; img < n; img++) {
    const dcols = mul(Wt, rowsOf(Array.from(dy).slice(img * co * oh * ow, (img + 1) * co * oh * ow), co, oh * ow));
    let r = 0;
    for (let ch = 0; ch < c; ch++) for (let u = 0; u < k; u++) for (let v = 0; v < k; v++, r++) {
      for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
        const y = i * s + u - p, z = j * s + v - p;
        if (y >= 0 && y < h && z >= 0 && z < wd) dx[((img * c + ch) * h + y) * wd + z]! += dcols[r]![i * ow + j]!;
      }
    }
  }
  return dx;
}

/** conv2dBackwardWeight: dW = sum over images of dy [cout, oh ow] x patches^T; db = row sums of dy. */
export function conv2dBackwardWeightGemm(dy: ArrayLike<number>, dyShape: readonly number[], x: ArrayLike<number>, xShape: readonly number[], k: number, s: number, p: number): { dw: number[]; db: number[] } {
  const [n, co, oh, ow] = dyShape as [number, number, number, number], [, c, h, wd] = xShape as [number, number, number, number];
  let dW: M | null = null;
  const db = new Array<number>(co).fill(0);
  for (let img = 0; img < n; img++) {
    const d = rowsOf(Array.from(dy).slice(img * co * oh * ow, (img + 1) * co * oh * ow), co, oh * ow);
    const part = mul(d, tr(patches(x, img, [c, h, wd], k, s, p, oh, ow)));
    dW = dW ? (math.add(dW, part) as M) : part;
    d.forEach((r, o) => { db[o] = db[o]! + (math.sum(r) as number); });
  }
  return { dw: dW!.flat(), db };
}

/** Per-channel batch mean and biased variance over (N, H, W). */
export function bnStats(x: ArrayLike<number>, [n, c, h, w]: readonly number[]): { mean: number[]; variance: number[] } {
  const mean: number[] = [], variance: number[] = [];
  for (let ch = 0; ch < c!; ch++) {
    const v: number[] = [];
    for (let img = 0; img < n!; img++) v.push(...Array.from(x).slice((img * c! + ch) * h! * w!, (img * c! + ch + 1) * h! * w!));
    mean.push(math.mean(v) as number);
    variance.push(math.variance(v, 'uncorrected') as unknown as number);
  }
  return { mean, variance };
}

/** Prototypes: the column mean of each class's rows. */
export function prototypes(support: ArrayLike<number>, rows: number, e: number, labels: Int32Array, way: number): number[] {
  const r = rowsOf(support, rows, e);
  return Array.from({ length: way }, (_, c) => math.mean(r.filter((_, i) => labels[i] === c), 0) as unknown as number[]).flat();
}

/** prototypesBackward: A^T dproto, A [way, S] the averaging matrix (1/count where the label matches). */
export function prototypesBackward(dproto: ArrayLike<number>, way: number, e: number, labels: Int32Array): number[] {
  const count = Array.from({ length: way }, (_, c) => labels.filter((l) => l === c).length);
  const A = Array.from({ length: way }, (_, c) => Array.from(labels, (l) => (l === c ? 1 / count[c]! : 0)));
  return mul(tr(A), rowsOf(dproto, way, e)).flat();
}

/** Squared euclidean distances (math.distance squared) and cosines (math.dot / math.norm; no eps: rows nonzero). */
export function distances(q: ArrayLike<number>, m: number, pr: ArrayLike<number>, k: number, e: number): { sq: number[]; cos: number[] } {
  const Q = rowsOf(q, m, e), P = rowsOf(pr, k, e);
  return {
    sq: Q.flatMap((a) => P.map((b) => (math.distance(a, b) as number) ** 2)),
    cos: Q.flatMap((a) => P.map((b) => (math.dot(a, b) as number) / ((math.norm(a) as number) * (math.norm(b) as number)))),
  };
}

/** sqEuclideanBackward as matrix algebra: dQ = 2 (diag(dD 1) Q - dD P), dP = 2 (diag(dD^T 1) P - dD^T Q). */
export function sqEuclideanBackward(dd: ArrayLike<number>, q: ArrayLike<number>, m: number, pr: ArrayLike<number>, k: number, e: number): { dq: number[]; dp: number[] } {
  const D = rowsOf(dd, m, k), Q = rowsOf(q, m, e), P = rowsOf(pr, k, e), Dt = tr(D);
  const diag = (v: number[]): M => math.diag(v) as unknown as M;
  const dq = math.multiply(2, math.subtract(mul(diag(D.map((r) => math.sum(r) as number)), Q), mul(D, P))) as M;
  const dp = math.multiply(2, math.subtract(mul(diag(Dt.map((r) => math.sum(r) as number)), P), mul(Dt, Q))) as M;
  return { dq: dq.flat(), dp: dp.flat() };
}

/** Row-wise log-softmax in 50-digit BigNumbers: x - log(sum(exp(x))), then rounded to float64. */
export function logSoftmaxBig(x: ArrayLike<number>, m: number, k: number): number[] {
  return rowsOf(x, m, k).flatMap((r) => {
    const b = r.map((v) => big.bignumber(v));
    const lse = big.log(big.sum(b.map((v) => big.exp(v))) as BigNumber);
    return b.map((v) => (big.subtract(v, lse) as BigNumber).toNumber());
  });
}

/** Mean negative log-likelihood of the labels under log-softmax(x), in 50-digit BigNumbers. */
export function crossEntropyBig(x: ArrayLike<number>, m: number, k: number, labels: Int32Array): number {
  const terms = rowsOf(x, m, k).map((r, i) => {
    const b = r.map((v) => big.bignumber(v));
    return big.subtract(big.log(big.sum(b.map((v) => big.exp(v))) as BigNumber), b[labels[i]!]!) as BigNumber;
  });
  return (big.divide(big.sum(terms), m) as BigNumber).toNumber();
}

/** logSoftmaxBackward: each row dy times the Jacobian of log-softmax, J[i][j] = delta_ij - softmax_j (from y). */
export function logSoftmaxBackward(dy: ArrayLike<number>, y: ArrayLike<number>, m: number, k: number): number[] {
  const G = rowsOf(dy, m, k), Y = rowsOf(y, m, k);
  return Y.flatMap((r, a) => {
    const J = r.map((_, i) => r.map((t, j) => (i === j ? 1 : 0) - (math.exp(t) as number)));
    return mul([G[a]!], J)[0]!;
  });
}

/** Symbolic derivatives by math.derivative (no simplification), compiled once, of `expr` in each of `vars`. */
function derivatives(expr: string, vars: string[]): ((scope: Record<string, number>) => number)[] {
  const node = math.parse(expr);
  return vars.map((v) => {
    const d = math.derivative(node, v, { simplify: false }).compile();
    return (scope) => d.evaluate(scope) as number;
  });
}

const names = (p: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${p}${i}`);
const bind = (vars: string[], values: number[]): Record<string, number> => Object.fromEntries(vars.map((v, i) => [v, values[i]!]));

/**
 * cosineBackward from math.derivative of c(q, p) = <q, p> / (|q| |p|) (rows nonzero: no eps clamp),
 * summed over the other side with the incoming gradient dc.
 */
export function cosineBackwardSymbolic(dc: ArrayLike<number>, q: ArrayLike<number>, m: number, pr: ArrayLike<number>, k: number, e: number): { dq: number[]; dp: number[] } {
  const qs = names('q', e), ps = names('p', e);
  const sq = (v: string[]): string => v.map((a) => `${a}^2`).join(' + ');
  const expr = `(${qs.map((a, i) => `${a} * ${ps[i]}`).join(' + ')}) / (sqrt(${sq(qs)}) * sqrt(${sq(ps)}))`;
  const dQ = derivatives(expr, qs), dP = derivatives(expr, ps);
  const Q = rowsOf(q, m, e), P = rowsOf(pr, k, e), G = rowsOf(dc, m, k);
  const at = (a: number, b: number): Record<string, number> => ({ ...bind(qs, Q[a]!), ...bind(ps, P[b]!) });
  const dq = Q.flatMap((_, a) => dQ.map((f) => P.reduce((s, _p, b) => s + G[a]![b]! * f(at(a, b)), 0)));
  const dp = P.flatMap((_, b) => dP.map((f) => Q.reduce((s, _q, a) => s + G[a]![b]! * f(at(a, b)), 0)));
  return { dq, dp };
}

/**
 * batchnorm2dBackward from math.derivative of L = sum_i dy_i y_i, y_i = g (x_i - mean) / sqrt(var + eps) + b,
 * with the batch mean and biased variance of the channel written out in x (small channels: M = N H W terms).
 */
export function bnBackwardSymbolic(dy: ArrayLike<number>, x: ArrayLike<number>, [n, c, h, w]: readonly number[], gamma: ArrayLike<number>, eps: number): { dx: number[]; dgamma: number[]; dbeta: number[] } {
  const m = n! * h! * w!, xs = names('x', m), ds = names('d', m);
  const mean = `((${xs.join(' + ')}) / ${m})`;
  const variance = `((${xs.map((v) => `(${v} - ${mean})^2`).join(' + ')}) / ${m})`;
  const expr = xs.map((v, i) => `${ds[i]} * (g * (${v} - ${mean}) / sqrt(${variance} + ${eps}) + b)`).join(' + ');
  const [dG, dB, ...dX] = derivatives(expr, ['g', 'b', ...xs]);
  const dx = new Array<number>(x.length).fill(0), dgamma: number[] = [], dbeta: number[] = [];
  for (let ch = 0; ch < c!; ch++) {
    const idx: number[] = [];
    for (let img = 0; img < n!; img++) for (let t = 0; t < h! * w!; t++) idx.push((img * c! + ch) * h! * w! + t);
    const scope = { ...bind(xs, idx.map((i) => x[i]!)), ...bind(ds, idx.map((i) => dy[i]!)), g: gamma[ch]!, b: 0 };
    idx.forEach((i, j) => { dx[i] = dX[j]!(scope); });
    dgamma.push(dG!(scope));
    dbeta.push(dB!(scope));
  }
  return { dx, dgamma, dbeta };
}
