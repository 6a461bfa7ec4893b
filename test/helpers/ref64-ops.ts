/**
 * An independent float64 reference for EVERY op of the contract (lib/ops/contract.ts), forward and
 * backward, written from the definitions and differently from the kernels: nested arrays and
 * explicit zero-padded copies (./ref64.ts), each backward as the adjoint of its forward index map
 * (a scatter where the kernel gathers, a gather where it scatters), BN's backward as the staged
 * chain rule through the variance and the mean, log-softmax's backward through its full Jacobian,
 * log-sum-exp without the max shift. Inputs of any dtype; outputs float64, in the contract's shapes.
 */
import type { OpAttrs, OpInputs, OpName } from '../../lib/ops/contract.js';
import { Tensor } from '../../lib/tensor/tensor.js';
import { bnTrainRef, conv2dRef, flat4, maxpoolRef, rows, to4, type Arr4 } from './ref64.js';

export type RefOutput = Tensor | Int32Array | number | { [k: string]: Tensor | Int32Array };

const t64 = (data: ArrayLike<number>, shape: readonly number[]): Tensor => new Tensor(Float64Array.from(data), [...shape]);
const zeros4 = (n: number, c: number, h: number, w: number): Arr4 =>
  Array.from({ length: n }, () => Array.from({ length: c }, () => Array.from({ length: h }, () => new Array<number>(w).fill(0))));
const dims4 = (a: Arr4): [number, number, number, number] => [a.length, a[0]!.length, a[0]![0]!.length, a[0]![0]![0]!.length];

/** The adjoint of conv2d in x: every output gradient scattered back through the forward's index map, on a padded copy. */
function conv2dBackwardInputRef(dy: Arr4, w: Arr4, inputShape: readonly number[], s: number, p: number): number[] {
  const [n, ci, h, wd] = inputShape as [number, number, number, number];
  const [, co, oh, ow] = dims4(dy);
  const k = w[0]![0]!.length, kw = w[0]![0]![0]!.length;
  const dxp = zeros4(n, ci, h + 2 * p, wd + 2 * p);
  for (let a = 0; a < n; a++) for (let o = 0; o < co; o++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
    const g = dy[a]![o]![i]![j]!;
    for (let c = 0; c < ci; c++) for (let u = 0; u < k; u++) for (let v = 0; v < kw; v++) dxp[a]![c]![i * s + u]![j * s + v]! += g * w[o]![c]![u]![v]!;
  }
  return flat4(dxp.map((img) => img.map((ch) => ch.slice(p, p + h).map((r) => r.slice(p, p + wd)))));
}

/** dw[o,c,u,v] = sum over images and output positions of dy * (padded x at the tap); db = sum of dy. */
function conv2dBackwardWeightRef(dy: Arr4, x: Arr4, weightShape: readonly number[], s: number, p: number): { dw: number[]; db: number[] } {
  const [co, ci, k, kw] = weightShape as [number, number, number, number];
  const [n, , oh, ow] = dims4(dy);
  const [, , h, wd] = dims4(x);
  const at = (a: number, c: number, i: number, j: number): number => (i >= p && i < h + p && j >= p && j < wd + p ? x[a]![c]![i - p]![j - p]! : 0);
  const dw: number[] = [], db: number[] = [];
  for (let o = 0; o < co; o++) {
    for (let c = 0; c < ci; c++) for (let u = 0; u < k; u++) for (let v = 0; v < kw; v++) {
      let acc = 0;
      for (let a = 0; a < n; a++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) acc += dy[a]![o]![i]![j]! * at(a, c, i * s + u, j * s + v);
      dw.push(acc);
    }
    db.push(dy.reduce((t, img) => t + img[o]!.flat().reduce((q, r) => q + r, 0), 0));
  }
  return { dw, db };
}

/** BN backward as the staged chain rule: through x-hat, the variance, then the mean (given mean and invStd). */
function bnBackwardRef(dy: Arr4, x: Arr4, gamma: number[], mean: number[], invStd: number[]): { dx: number[]; dgamma: number[]; dbeta: number[] } {
  const [n, c, h, w] = dims4(x);
  const m = n * h * w;
  const dx = zeros4(n, c, h, w), dgamma: number[] = [], dbeta: number[] = [];
  for (let k = 0; k < c; k++) {
    const varEps = 1 / invStd[k]! ** 2;
    let dvar = 0, dmean = 0, sumXc = 0, dg = 0, dbt = 0;
    for (let a = 0; a < n; a++) for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
      const xc = x[a]![k]![i]![j]! - mean[k]!, g = dy[a]![k]![i]![j]!, dxhat = g * gamma[k]!;
      dvar += dxhat * xc * -0.5 * varEps ** -1.5;
      dmean += -dxhat * invStd[k]!;
      sumXc += xc;
      dg += g * xc * invStd[k]!;
      dbt += g;
    }
    dmean += (dvar * -2 * sumXc) / m;
    for (let a = 0; a < n; a++) for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
      const xc = x[a]![k]![i]![j]! - mean[k]!;
      dx[a]![k]![i]![j] = dy[a]![k]![i]![j]! * gamma[k]! * invStd[k]! + (dvar * 2 * xc) / m + dmean / m;
    }
    dgamma.push(dg);
    dbeta.push(dbt);
  }
  return { dx: flat4(dx), dgamma, dbeta };
}

/** Flat index (in the whole NCHW input) of the first maximum of every pooling window, window order row-major. */
function argmaxRef(x: Arr4, k: number, s: number): number[] {
  const [n, c, h, w] = dims4(x);
  const oh = Math.floor((h - k) / s) + 1, ow = Math.floor((w - k) / s) + 1;
  const out: number[] = [];
  for (let a = 0; a < n; a++) for (let b = 0; b < c; b++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
    const cells: [number, number][] = [];
    for (let u = 0; u < k; u++) for (let v = 0; v < k; v++) cells.push([i * s + u, j * s + v]);
    const best = Math.max(...cells.map(([y, z]) => x[a]![b]![y]![z]!));
    const [y, z] = cells.find(([yy, zz]) => x[a]![b]![yy]![zz]! === best)!;
    out.push(((a * c + b) * h + y) * w + z);
  }
  return out;
}

function classMembers(labels: Int32Array, way: number): number[][] {
  return Array.from({ length: way }, (_, c) => [...labels.keys()].filter((i) => labels[i] === c));
}

const norm = (v: number[]): number => Math.sqrt(v.reduce((s, t) => s + t * t, 0));
const dot = (a: number[], b: number[]): number => a.reduce((s, t, i) => s + t * b[i]!, 0);
const argmaxFirst = (r: number[]): number => r.indexOf(Math.max(...r));

/** Row-major multi-index of flat index i in shape. */
function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) { idx[d] = i % shape[d]!; i = Math.floor(i / shape[d]!); }
  return idx;
}

/** Flat index in `small` (aligned to the trailing dims of `big`, size-1 dims repeating) of big's multi-index. */
function broadcastIndex(idx: readonly number[], small: readonly number[]): number {
  const off = idx.length - small.length;
  let f = 0;
  for (let j = 0; j < small.length; j++) f = f * small[j]! + (small[j] === 1 ? 0 : idx[j + off]!);
  return f;
}

const logistic = (v: number): number => (v < 0 ? Math.exp(v) / (1 + Math.exp(v)) : 1 / (1 + Math.exp(-v)));

/**
 * Rotation written as bilinear sampling with the tent kernel, summed over EVERY source pixel
 * (the kernels visit four corners): y[p] = sum_q tent(u_p - col q) tent(v_p - row q) x[q],
 * tent(d) = max(0, 1 - |d|). Its angle derivative takes tent' on the floor convention of the
 * contract: -1 on [0, 1), +1 on [-1, 0), 0 elsewhere.
 */
function rotateRef(x: Tensor, a: number, dy?: Tensor): { y: number[]; dx: number[]; da: number } {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const cx = (w - 1) / 2, cy = (h - 1) / 2, cs = Math.cos(a), sn = Math.sin(a);
  const tent = (d: number): number => Math.max(0, 1 - Math.abs(d));
  const tentD = (d: number): number => (d >= 0 && d < 1 ? -1 : d >= -1 && d < 0 ? 1 : 0);
  const y = new Array<number>(x.size).fill(0), dx = new Array<number>(x.size).fill(0);
  let da = 0;
  for (let plane = 0; plane < n * c; plane++) {
    const o = plane * h * w;
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
      const u = cx + (j - cx) * cs - (i - cy) * sn, v = cy + (j - cx) * sn + (i - cy) * cs;
      const du = -(j - cx) * sn - (i - cy) * cs, dv = (j - cx) * cs - (i - cy) * sn;
      const g = dy ? dy.data[o + i * w + j]! : 0;
      for (let r = 0; r < h; r++) for (let col = 0; col < w; col++) {
        const tr = tent(v - r), tc = tent(u - col), xv = x.data[o + r * w + col]!;
        y[o + i * w + j]! += tr * tc * xv;
        dx[o + r * w + col]! += tr * tc * g;
        da += g * xv * (tentD(u - col) * du * tr + tc * tentD(v - r) * dv);
      }
    }
  }
  return { y, dx, da };
}

type RefTable = { [K in OpName]: (inputs: OpInputs<K>, attrs: OpAttrs<K>) => RefOutput };

const REF: RefTable = {
  conv2d: ({ x, w, b }, { stride, padding }) => {
    const y = conv2dRef(to4(x.data, x.shape), to4(w.data, w.shape), b ? [...b.data] : null, stride, padding);
    return t64(flat4(y), dims4(y));
  },
  conv2dBackwardInput: ({ dy, w }, { stride, padding, inputShape }) =>
    t64(conv2dBackwardInputRef(to4(dy.data, dy.shape), to4(w.data, w.shape), inputShape, stride, padding), inputShape),
  conv2dBackwardWeight: ({ dy, x }, { stride, padding, weightShape }) => {
    const r = conv2dBackwardWeightRef(to4(dy.data, dy.shape), to4(x.data, x.shape), weightShape, stride, padding);
    return { dw: t64(r.dw, weightShape), db: t64(r.db, [weightShape[0]!]) };
  },
  batchnorm2dTrain: ({ x, gamma, beta }, { eps }) => {
    const r = bnTrainRef(to4(x.data, x.shape), [...gamma.data], [...beta.data], eps);
    const c = [x.shape[1]!];
    return { y: t64(flat4(r.y), x.shape), mean: t64(r.mean, c), variance: t64(r.variance, c), invStd: t64(r.variance.map((v) => 1 / Math.sqrt(v + eps)), c) };
  },
  batchnorm2dEval: ({ x, gamma, beta, runningMean, runningVar }, { eps }) => {
    const y = to4(x.data, x.shape).map((img) => img.map((ch, k) => ch.map((r) => r.map((t) => gamma.data[k]! * (t - runningMean.data[k]!) / Math.sqrt(runningVar.data[k]! + eps) + beta.data[k]!))));
    return t64(flat4(y), x.shape);
  },
  batchnorm2dBackward: ({ dy, x, gamma, mean, invStd }) => {
    const r = bnBackwardRef(to4(dy.data, dy.shape), to4(x.data, x.shape), [...gamma.data], [...mean.data], [...invStd.data]);
    const c = [x.shape[1]!];
    return { dx: t64(r.dx, x.shape), dgamma: t64(r.dgamma, c), dbeta: t64(r.dbeta, c) };
  },
  relu: ({ x }) => t64([...x.data].map((v) => (v > 0 ? v : 0)), x.shape),
  reluBackward: ({ dy, x }) => t64([...dy.data].map((g, i) => (x.data[i]! > 0 ? g : 0)), dy.shape),
  maxpool2d: ({ x }, { kernel, stride }) => {
    const x4 = to4(x.data, x.shape);
    const y = maxpoolRef(x4, kernel, stride);
    return { y: t64(flat4(y), dims4(y)), argmax: Int32Array.from(argmaxRef(x4, kernel, stride)) };
  },
  maxpool2dBackward: ({ dy, argmax }, { inputShape }) => {
    // a gather: each input element sums the output gradients whose window chose it
    const size = inputShape.reduce((a, b) => a * b, 1);
    const chosenBy = new Map<number, number[]>();
    argmax.forEach((k, i) => chosenBy.set(k, [...(chosenBy.get(k) ?? []), i]));
    return t64(Array.from({ length: size }, (_, k) => (chosenBy.get(k) ?? []).reduce((s, i) => s + dy.data[i]!, 0)), inputShape);
  },
  bnReluPool: ({ x, gamma, beta }, { eps }) => {
    const r = bnTrainRef(to4(x.data, x.shape), [...gamma.data], [...beta.data], eps);
    const act = r.y.map((img) => img.map((ch) => ch.map((row) => row.map((v) => (v > 0 ? v : 0)))));
    const y = maxpoolRef(act, 2, 2), c = [x.shape[1]!];
    return {
      y: t64(flat4(y), dims4(y)), argmax: Int32Array.from(argmaxRef(act, 2, 2)),
      mean: t64(r.mean, c), variance: t64(r.variance, c), invStd: t64(r.variance.map((v) => 1 / Math.sqrt(v + eps)), c),
    };
  },
  bnReluPoolBackward: ({ dy, y, argmax, x, gamma, mean, invStd }) => {
    // the gradient at the ReLU output: each window's (masked) gradient at the element it chose, zero elsewhere
    const full = new Array<number>(x.size).fill(0);
    argmax.forEach((k, i) => { full[k]! += y.data[i]! > 0 ? dy.data[i]! : 0; });
    const r = bnBackwardRef(to4(full, x.shape), to4(x.data, x.shape), [...gamma.data], [...mean.data], [...invStd.data]);
    const c = [x.shape[1]!];
    return { dx: t64(r.dx, x.shape), dgamma: t64(r.dgamma, c), dbeta: t64(r.dbeta, c) };
  },
  prototypes: ({ support, labels }, { way }) => {
    const e = support.shape[1]!, r = rows(support.data, support.shape[0]!, e);
    return t64(classMembers(labels, way).flatMap((ms) => Array.from({ length: e }, (_, j) => ms.reduce((s, i) => s + r[i]![j]!, 0) / ms.length)), [way, e]);
  },
  prototypesBackward: ({ dproto, labels }, { way }) => {
    const e = dproto.shape[1]!, d = rows(dproto.data, way, e), count = classMembers(labels, way).map((ms) => ms.length);
    return t64([...labels].flatMap((c) => d[c]!.map((g) => g / count[c]!)), [labels.length, e]);
  },
  sqEuclidean: ({ q, p }) => {
    const e = q.shape[1]!, qr = rows(q.data, q.shape[0]!, e), pr = rows(p.data, p.shape[0]!, e);
    return t64(qr.flatMap((a) => pr.map((b) => a.reduce((s, t, i) => s + (t - b[i]!) ** 2, 0))), [qr.length, pr.length]);
  },
  sqEuclideanBackward: ({ dd, q, p }) => {
    const e = q.shape[1]!, qr = rows(q.data, q.shape[0]!, e), pr = rows(p.data, p.shape[0]!, e), g = rows(dd.data, qr.length, pr.length);
    const dq = qr.flatMap((a, m) => a.map((t, i) => pr.reduce((s, b, k) => s + g[m]![k]! * 2 * (t - b[i]!), 0)));
    const dp = pr.flatMap((b, k) => b.map((t, i) => qr.reduce((s, a, m) => s - g[m]![k]! * 2 * (a[i]! - t), 0)));
    return { dq: t64(dq, q.shape), dp: t64(dp, p.shape) };
  },
  cosine: ({ q, p }, { eps }) => {
    const e = q.shape[1]!, qr = rows(q.data, q.shape[0]!, e), pr = rows(p.data, p.shape[0]!, e);
    return t64(qr.flatMap((a) => pr.map((b) => dot(a, b) / (Math.max(norm(a), eps) * Math.max(norm(b), eps)))), [qr.length, pr.length]);
  },
  cosineBackward: ({ dc, q, p }, { eps }) => {
    // c = <q,p> / (A B), A = max(|q|, eps): dc/dq = p / (A B) - c / A * dA/dq, dA/dq = q / |q| (0 where clamped)
    const e = q.shape[1]!, qr = rows(q.data, q.shape[0]!, e), pr = rows(p.data, p.shape[0]!, e), g = rows(dc.data, qr.length, pr.length);
    const A = qr.map((a) => Math.max(norm(a), eps)), B = pr.map((b) => Math.max(norm(b), eps));
    const unit = (v: number[]): number[] => (norm(v) > eps ? v.map((t) => t / norm(v)) : v.map(() => 0));
    const c = qr.map((a, m) => pr.map((b, k) => dot(a, b) / (A[m]! * B[k]!)));
    const dq = qr.flatMap((a, m) => a.map((_, i) => pr.reduce((s, b, k) => s + g[m]![k]! * (b[i]! / (A[m]! * B[k]!) - (c[m]![k]! / A[m]!) * unit(a)[i]!), 0)));
    const dp = pr.flatMap((b, k) => b.map((_, i) => qr.reduce((s, a, m) => s + g[m]![k]! * (a[i]! / (A[m]! * B[k]!) - (c[m]![k]! / B[k]!) * unit(b)[i]!), 0)));
    return { dq: t64(dq, q.shape), dp: t64(dp, p.shape) };
  },
  scale: ({ x }, { alpha }) => t64([...x.data].map((v) => alpha * v), x.shape),
  logSoftmax: ({ x }) => {
    const [m, k] = x.shape as [number, number];
    return t64(rows(x.data, m, k).flatMap((r) => { const lse = Math.log(r.reduce((s, t) => s + Math.exp(t), 0)); return r.map((t) => t - lse); }), x.shape);
  },
  logSoftmaxBackward: ({ dy, y }) => {
    // dx_j = sum_i dy_i * d y_i / d x_j = sum_i dy_i (delta_ij - softmax_j)
    const [m, k] = y.shape as [number, number], g = rows(dy.data, m, k);
    return t64(rows(y.data, m, k).flatMap((r, a) => r.map((_, j) => g[a]!.reduce((s, gi, i) => s + gi * ((i === j ? 1 : 0) - Math.exp(r[j]!)), 0))), y.shape);
  },
  crossEntropy: ({ logp, labels }) => {
    const [m, k] = logp.shape as [number, number];
    return t64([-rows(logp.data, m, k).reduce((s, r, i) => s + r[labels[i]!]!, 0) / m], []);
  },
  crossEntropyBackward: ({ dloss, logp, labels }) => {
    const [m, k] = logp.shape as [number, number];
    return t64(Array.from({ length: m * k }, (_, i) => (labels[Math.floor(i / k)] === i % k ? -dloss / m : 0)), logp.shape);
  },
  accuracy: ({ scores, labels }) => {
    const [m, k] = scores.shape as [number, number];
    return rows(scores.data, m, k).filter((r, i) => argmaxFirst(r) === labels[i]).length / m;
  },
  matmul: ({ a, b }, { transA, transB }) => {
    const [m, k] = transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
    const n = transB ? b.shape[0]! : b.shape[1]!;
    const out: number[] = [];
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (transA ? a.data[p * m + i]! : a.data[i * k + p]!) * (transB ? b.data[j * k + p]! : b.data[p * n + j]!);
      out.push(s);
    }
    return t64(out, [m, n]);
  },
  add: ({ a, b }) => t64(Array.from(a.data, (v, i) => v + b.data[broadcastIndex(unravel(i, a.shape), b.shape)]!), a.shape),
  mul: ({ a, b }) => t64(Array.from(a.data, (v, i) => v * b.data[broadcastIndex(unravel(i, a.shape), b.shape)]!), a.shape),
  sumTo: ({ x }, { shape }) => {
    const out = new Array<number>(shape.reduce((p, d) => p * d, 1)).fill(0);
    x.data.forEach((v, i) => { out[broadcastIndex(unravel(i, x.shape), shape)] += v; });
    return t64(out, shape);
  },
  sigmoid: ({ x }) => t64(Array.from(x.data, logistic), x.shape),
  sigmoidBackward: ({ dy, y }) => t64(Array.from(dy.data, (g, i) => g * y.data[i]! * (1 - y.data[i]!)), y.shape),
  tanh: ({ x }) => t64(Array.from(x.data, (v) => 2 * logistic(2 * v) - 1), x.shape),
  tanhBackward: ({ dy, y }) => t64(Array.from(dy.data, (g, i) => g * (1 - y.data[i]! * y.data[i]!)), y.shape),
  rotate: ({ x, angle }) => t64(rotateRef(x, angle.data[0]!).y, x.shape),
  rotateBackward: ({ dy, x, angle }) => {
    const r = rotateRef(x, angle.data[0]!, dy);
    return { dx: t64(r.dx, x.shape), dangle: t64([r.da], [1]) };
  },
};

/** The float64 reference output of `op` on these inputs. */
export function reference<K extends OpName>(op: K, inputs: OpInputs<K>, attrs: OpAttrs<K>): RefOutput {
  return (REF[op] as (i: OpInputs<K>, a: OpAttrs<K>) => RefOutput)(inputs, attrs);
}

export const REFERENCED_OPS: readonly OpName[] = Object.keys(REF) as OpName[];
