/**
 * JVPs of BatchNorm2d. Training mode (batch statistics over N, H, W per channel):
 *   xh = (x - mu) * invStd,   y = gamma * xh + beta
 *   d xh = invStd * (dx - mean(dx) - xh * mean(xh * dx))
 *   dy = gamma * d xh + dgamma * xh + dbeta
 * Eval mode (running statistics are constants): dy = gamma * invStd * dx + dgamma * xh + dbeta.
 */
import { Tensor, allocLike } from '../tensor/tensor.js';
import type { Dual } from './dual.js';

function dims(x: Tensor): [number, number, number] {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return [n, c, h * w];
}

export function bnTrainJvp(k: number, x: Dual, gamma: Dual, beta: Dual, mean: Tensor, invStd: Tensor): Tensor | null {
  if (!x.t && !gamma.t && !beta.t) return null;
  const [n, c, hw] = dims(x.v);
  const size = x.v.size, m = n * hw, xd = x.v.data;
  const out = allocLike(xd, k * size);
  for (let kk = 0; kk < k; kk++) {
    const o = kk * size;
    for (let ch = 0; ch < c; ch++) {
      const mu = mean.data[ch]!, is = invStd.data[ch]!, ga = gamma.v.data[ch]!;
      const dga = gamma.t ? gamma.t.data[kk * c + ch]! : 0, dbe = beta.t ? beta.t.data[kk * c + ch]! : 0;
      let sdx = 0, sxdx = 0;
      if (x.t) {
        for (let b = 0; b < n; b++) {
          const base = (b * c + ch) * hw;
          for (let q = 0; q < hw; q++) {
            const dx = x.t.data[o + base + q]!;
            sdx += dx;
            sxdx += dx * (xd[base + q]! - mu) * is;
          }
        }
      }
      const mdx = sdx / m, mxdx = sxdx / m;
      for (let b = 0; b < n; b++) {
        const base = (b * c + ch) * hw;
        for (let q = 0; q < hw; q++) {
          const xh = (xd[base + q]! - mu) * is;
          const dxh = x.t ? is * (x.t.data[o + base + q]! - mdx - xh * mxdx) : 0;
          out[o + base + q] = ga * dxh + dga * xh + dbe;
        }
      }
    }
  }
  return new Tensor(out, [k, ...x.v.shape]);
}

export function bnEvalJvp(k: number, x: Dual, gamma: Dual, beta: Dual, runningMean: Tensor, runningVar: Tensor, eps: number): Tensor | null {
  if (!x.t && !gamma.t && !beta.t) return null;
  const [n, c, hw] = dims(x.v);
  const size = x.v.size, xd = x.v.data;
  const out = allocLike(xd, k * size);
  for (let kk = 0; kk < k; kk++) {
    const o = kk * size;
    for (let ch = 0; ch < c; ch++) {
      const mu = runningMean.data[ch]!, is = 1 / Math.sqrt(runningVar.data[ch]! + eps), gs = gamma.v.data[ch]! * is;
      const dga = gamma.t ? gamma.t.data[kk * c + ch]! : 0, dbe = beta.t ? beta.t.data[kk * c + ch]! : 0;
      for (let b = 0; b < n; b++) {
        const base = (b * c + ch) * hw;
        for (let q = 0; q < hw; q++) {
          const xh = (xd[base + q]! - mu) * is;
          out[o + base + q] = (x.t ? gs * x.t.data[o + base + q]! : 0) + dga * xh + dbe;
        }
      }
    }
  }
  return new Tensor(out, [k, ...x.v.shape]);
}
