/**
 * JVPs of the pointwise, pooling, prototype, distance and loss ops. Each
 * returns the tangent [K, ...output shape], or null when every input tangent is zero.
 */
import { Tensor, allocLike } from '../tensor/tensor.js';
import type { Dual } from './dual.js';

/** dy = dx where x > 0 (the same mask as the relu and reluBackward kernels). */
export function reluJvp(k: number, x: Dual): Tensor | null {
  if (!x.t) return null;
  const n = x.v.size, xd = x.v.data, td = x.t.data, out = allocLike(td, k * n);
  for (let kk = 0; kk < k; kk++) for (let i = 0; i < n; i++) if (xd[i]! > 0) out[kk * n + i] = td[kk * n + i]!;
  return new Tensor(out, x.t.shape);
}

/** dy[o] = dx[argmax[o]] per tangent. */
export function maxpoolJvp(k: number, x: Dual, argmax: Int32Array, yShape: readonly number[]): Tensor | null {
  if (!x.t) return null;
  const n = x.v.size, m = argmax.length, td = x.t.data, out = allocLike(td, k * m);
  for (let kk = 0; kk < k; kk++) for (let o = 0; o < m; o++) out[kk * m + o] = td[kk * n + argmax[o]!]!;
  return new Tensor(out, [k, ...yShape]);
}

export function sliceRowsJvp(k: number, x: Dual, start: number, end: number): Tensor | null {
  if (!x.t) return null;
  const rows = x.v.shape[0]!, inner = rows === 0 ? 0 : x.v.size / rows, n = x.v.size, len = (end - start) * inner;
  const out = allocLike(x.t.data, k * len);
  for (let kk = 0; kk < k; kk++) out.set(x.t.data.subarray(kk * n + start * inner, kk * n + end * inner), kk * len);
  return new Tensor(out, [k, end - start, ...x.v.shape.slice(1)]);
}

/** Prototypes are linear: the tangent is the class mean of the support tangents. */
export function prototypesJvp(k: number, s: Dual, labels: Int32Array, way: number): Tensor | null {
  if (!s.t) return null;
  const [rows, e] = s.v.shape as [number, number];
  const counts = new Float64Array(way);
  for (const l of labels) counts[l]!++;
  const out = allocLike(s.t.data, k * way * e), n = rows * e;
  for (let kk = 0; kk < k; kk++) {
    for (let r = 0; r < rows; r++) {
      const l = labels[r]!, f = 1 / counts[l]!;
      for (let j = 0; j < e; j++) out[kk * way * e + l * e + j] += f * s.t.data[kk * n + r * e + j]!;
    }
  }
  return new Tensor(out, [k, way, e]);
}

/** d[m,j] = sum_e (q - p)^2  =>  dd[m,j] = 2 sum_e (q - p)(dq - dp). */
export function sqEuclideanJvp(k: number, q: Dual, p: Dual): Tensor | null {
  if (!q.t && !p.t) return null;
  const [m, e] = q.v.shape as [number, number], kp = p.v.shape[0]!;
  const qd = q.v.data, pd = p.v.data, out = allocLike(qd, k * m * kp);
  for (let kk = 0; kk < k; kk++) {
    const qo = kk * m * e, po = kk * kp * e;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < kp; j++) {
        let s = 0;
        for (let t = 0; t < e; t++) {
          const diff = qd[i * e + t]! - pd[j * e + t]!;
          const dq = q.t ? q.t.data[qo + i * e + t]! : 0, dp = p.t ? p.t.data[po + j * e + t]! : 0;
          s += diff * (dq - dp);
        }
        out[kk * m * kp + i * kp + j] = 2 * s;
      }
    }
  }
  return new Tensor(out, [k, m, kp]);
}

/**
 * c = <q,p> / (nq np), nq = max(|q|, eps):
 *   dc = (<dq,p> + <q,dp>) / (nq np) - c (dnq / nq + dnp / np),  dnq = <q,dq> / |q| if |q| > eps else 0.
 */
export function cosineJvp(k: number, q: Dual, p: Dual, eps: number): Tensor | null {
  if (!q.t && !p.t) return null;
  const [m, e] = q.v.shape as [number, number], kp = p.v.shape[0]!;
  const qd = q.v.data, pd = p.v.data, out = allocLike(qd, k * m * kp);
  const norm = (d: ArrayLike<number>, r: number): number => {
    let s = 0;
    for (let t = 0; t < e; t++) s += d[r * e + t]! * d[r * e + t]!;
    return Math.sqrt(s);
  };
  const nq = Array.from({ length: m }, (_, i) => norm(qd, i)), np = Array.from({ length: kp }, (_, j) => norm(pd, j));
  for (let kk = 0; kk < k; kk++) {
    const qo = kk * m * e, po = kk * kp * e;
    const dnq = nq.map((n, i) => {
      if (!q.t || !(n > eps)) return 0;
      let s = 0;
      for (let t = 0; t < e; t++) s += qd[i * e + t]! * q.t.data[qo + i * e + t]!;
      return s / n;
    });
    const dnp = np.map((n, j) => {
      if (!p.t || !(n > eps)) return 0;
      let s = 0;
      for (let t = 0; t < e; t++) s += pd[j * e + t]! * p.t.data[po + j * e + t]!;
      return s / n;
    });
    for (let i = 0; i < m; i++) {
      const a = Math.max(nq[i]!, eps);
      for (let j = 0; j < kp; j++) {
        const b = Math.max(np[j]!, eps);
        let dot = 0, ddot = 0;
        for (let t = 0; t < e; t++) {
          const qv = qd[i * e + t]!, pv = pd[j * e + t]!;
          dot += qv * pv;
          ddot += (q.t ? q.t.data[qo + i * e + t]! * pv : 0) + (p.t ? qv * p.t.data[po + j * e + t]! : 0);
        }
        const c = dot / (a * b);
        out[kk * m * kp + i * kp + j] = ddot / (a * b) - c * (dnq[i]! / a + dnp[j]! / b);
      }
    }
  }
  return new Tensor(out, [k, m, kp]);
}

export function scaleJvp(x: Dual, alpha: number): Tensor | null {
  if (!x.t) return null;
  const out = allocLike(x.t.data, x.t.size);
  for (let i = 0; i < out.length; i++) out[i] = alpha * x.t.data[i]!;
  return new Tensor(out, x.t.shape);
}

/** y = logSoftmax(x) row-wise: dy = dx - sum_j softmax(x)_j dx_j, with softmax = exp(y). */
export function logSoftmaxJvp(k: number, x: Dual, y: Tensor): Tensor | null {
  if (!x.t) return null;
  const [m, c] = y.shape as [number, number], n = m * c;
  const out = allocLike(x.t.data, k * n);
  for (let kk = 0; kk < k; kk++) {
    for (let i = 0; i < m; i++) {
      let s = 0;
      for (let j = 0; j < c; j++) s += Math.exp(y.data[i * c + j]!) * x.t.data[kk * n + i * c + j]!;
      for (let j = 0; j < c; j++) out[kk * n + i * c + j] = x.t.data[kk * n + i * c + j]! - s;
    }
  }
  return new Tensor(out, [k, m, c]);
}

/** L = -(1/M) sum_m logp[m, label_m]  =>  dL = -(1/M) sum_m dlogp[m, label_m]; tangent shape [K]. */
export function crossEntropyJvp(k: number, logp: Dual, labels: Int32Array): Tensor | null {
  if (!logp.t) return null;
  const [m, c] = logp.v.shape as [number, number];
  const out = allocLike(logp.t.data, k);
  for (let kk = 0; kk < k; kk++) {
    let s = 0;
    for (let i = 0; i < m; i++) s -= logp.t.data[kk * m * c + i * c + labels[i]!]!;
    out[kk] = s / m;
  }
  return new Tensor(out, [k]);
}

