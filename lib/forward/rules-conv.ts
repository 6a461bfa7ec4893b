/**
 * JVP of conv2d: y = conv(x, w) + b is bilinear in (x, w), so
 *   dy = conv(dx, w) + conv(x, dw) + db.
 * conv(dx, w) runs all K tangents as one batch of K*N images on the device.
 * conv(x, dw) runs per tangent; a one-hot dw (a basis direction of the
 * Jacobian accumulation) is a shifted copy of one input channel, done directly.
 */
import type { Device } from '../device/registry.js';
import type { Conv2dAttrs } from '../ops/contract.js';
import { conv2dGeometry, type Conv2dGeometry } from '../tensor/shape.js';
import { Tensor, allocLike, type FloatArray } from '../tensor/tensor.js';
import type { Dual } from './dual.js';

export function conv2dJvp(device: Device, k: number, x: Dual, w: Dual, b: Dual | undefined, attrs: Conv2dAttrs, y: Tensor): Tensor | null {
  if (!x.t && !w.t && !b?.t) return null;
  const g = conv2dGeometry(x.v.shape, w.v.shape, attrs.stride, attrs.padding);
  const per = y.size;
  let out: FloatArray;
  if (x.t) {
    const xt = x.t.reshape([k * g.n, g.cin, g.h, g.w]);
    out = device.run('conv2d', { x: xt, w: w.v }, attrs).data;
  } else {
    out = allocLike(y.data, k * per);
  }
  if (w.t) {
    const wsz = w.v.size;
    for (let kk = 0; kk < k; kk++) {
      const slice = w.t.data.subarray(kk * wsz, (kk + 1) * wsz);
      let nz = 0, at = -1;
      for (let i = 0; i < wsz; i++) if (slice[i] !== 0) { nz++; at = i; }
      if (nz === 0) continue;
      const dst = out.subarray(kk * per, (kk + 1) * per);
      if (nz === 1) {
        oneHotConvInto(dst, x.v.data, g, at, slice[at]!);
      } else {
        const r = device.run('conv2d', { x: x.v, w: new Tensor(slice, w.v.shape) }, attrs).data;
        for (let i = 0; i < per; i++) dst[i] += r[i]!;
      }
    }
  }
  if (b?.t) {
    const plane = g.oh * g.ow;
    for (let kk = 0; kk < k; kk++) {
      for (let n = 0; n < g.n; n++) {
        for (let co = 0; co < g.cout; co++) {
          const db = b.t.data[kk * g.cout + co]!;
          if (db === 0) continue;
          const base = kk * per + (n * g.cout + co) * plane;
          for (let i = 0; i < plane; i++) out[base + i] += db;
        }
      }
    }
  }
  return new Tensor(out, [k, ...y.shape]);
}

/** dst[n, co, oh, ow] += v * x[n, ci, oh*s - p + i, ow*s - p + j] for the single nonzero weight (co, ci, i, j) at flat index `at`. */
function oneHotConvInto(dst: FloatArray, x: FloatArray, g: Conv2dGeometry, at: number, v: number): void {
  const j = at % g.kw, i = Math.floor(at / g.kw) % g.kh;
  const ci = Math.floor(at / (g.kw * g.kh)) % g.cin, co = Math.floor(at / (g.kw * g.kh * g.cin));
  const s = g.stride, p = g.padding;
  for (let n = 0; n < g.n; n++) {
    const xBase = (n * g.cin + ci) * g.h * g.w, yBase = (n * g.cout + co) * g.oh * g.ow;
    for (let oh = 0; oh < g.oh; oh++) {
      const ih = oh * s - p + i;
      if (ih < 0 || ih >= g.h) continue;
      for (let ow = 0; ow < g.ow; ow++) {
        const iw = ow * s - p + j;
        if (iw < 0 || iw >= g.w) continue;
        dst[yBase + oh * g.ow + ow] += v * x[xBase + ih * g.w + iw]!;
      }
    }
  }
}
