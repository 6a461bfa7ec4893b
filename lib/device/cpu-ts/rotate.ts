/**
 * cpu-ts: bilinear rotation (the spec of OpSpecs.rotate) and its backward.
 *
 * The sampling geometry depends only on (H, W, angle): for every output pixel
 * its four source corners (flat index in the H x W plane, or -1 outside the
 * image), their bilinear weights and the weights' derivatives with respect to
 * the angle. It is computed once per call and applied to every N x C plane.
 * Coordinates and weights are float64 whatever the tensors' dtype.
 */
import { registerKernel } from '../registry.js';
import { Tensor, allocLike, assertShape } from '../../tensor/tensor.js';

export interface RotationSampling {
  h: number;
  w: number;
  /** [H*W*4] source index per output pixel and corner (00, 01 = next column, 10 = next row, 11), -1 outside. */
  index: Int32Array;
  /** [H*W*4] bilinear weight of each corner. */
  weight: Float64Array;
  /** [H*W*4] d weight / d angle (floor convention: the cell of floor(u), floor(v)). */
  dweight: Float64Array;
}

/** The rotation's sampling of an H x W plane by `angle` radians (see OpSpecs.rotate). */
export function rotationSampling(h: number, w: number, angle: number): RotationSampling {
  if (!Number.isFinite(angle)) throw new RangeError(`rotate: angle must be finite, got ${angle}`);
  const cx = (w - 1) / 2, cy = (h - 1) / 2, c = Math.cos(angle), s = Math.sin(angle);
  const n = h * w;
  const index = new Int32Array(4 * n), weight = new Float64Array(4 * n), dweight = new Float64Array(4 * n);
  const set = (k: number, ci: number, cj: number, wt: number, dwt: number): void => {
    const inside = ci >= 0 && ci < h && cj >= 0 && cj < w;
    index[k] = inside ? ci * w + cj : -1;
    weight[k] = inside ? wt : 0;
    dweight[k] = inside ? dwt : 0;
  };
  for (let i = 0; i < h; i++) {
    const di = i - cy;
    for (let j = 0; j < w; j++) {
      const dj = j - cx;
      const u = cx + dj * c - di * s, v = cy + dj * s + di * c;
      const du = -dj * s - di * c, dv = dj * c - di * s;
      const j0 = Math.floor(u), i0 = Math.floor(v);
      const fu = u - j0, fv = v - i0;
      const o = 4 * (i * w + j);
      // Corners 00, 01 (next column), 10 (next row), 11: weights and their angle derivatives.
      set(o, i0, j0, (1 - fu) * (1 - fv), -du * (1 - fv) - (1 - fu) * dv);
      set(o + 1, i0, j0 + 1, fu * (1 - fv), du * (1 - fv) - fu * dv);
      set(o + 2, i0 + 1, j0, (1 - fu) * fv, -du * fv + (1 - fu) * dv);
      set(o + 3, i0 + 1, j0 + 1, fu * fv, du * fv + fu * dv);
    }
  }
  return { h, w, index, weight, dweight };
}

function check(x: Tensor, angle: Tensor, what: string): [number, number, number] {
  if (x.rank !== 4) throw new RangeError(`${what}: images must be NCHW, got shape [${x.shape.join(', ')}]`);
  if (angle.size !== 1 || angle.rank !== 1) throw new RangeError(`${what}: angle must have shape [1], got [${angle.shape.join(', ')}]`);
  if (angle.dtype !== x.dtype) throw new RangeError(`${what}: angle is ${angle.dtype} but the images are ${x.dtype}`);
  const [n, ch, h, w] = x.shape as [number, number, number, number];
  return [n * ch, h, w];
}

/** Apply per-pixel corner coefficients (weight or dweight) to every plane of x. */
function resample(x: Tensor, planes: number, s: RotationSampling, coef: Float64Array): Tensor {
  const px = s.h * s.w, xd = x.data, y = allocLike(xd, planes * px);
  const idx = s.index;
  for (let p = 0; p < planes; p++) {
    const base = p * px;
    for (let q = 0; q < px; q++) {
      let acc = 0;
      for (let k = 4 * q; k < 4 * q + 4; k++) {
        const src = idx[k]!;
        if (src >= 0) acc += coef[k]! * xd[base + src]!;
      }
      y[base + q] = acc;
    }
  }
  return new Tensor(y, x.shape);
}

/** d rotate(x, a) / d a: the per-pixel derivative of the output with respect to the angle (shape of x). */
export function rotateAngleDerivative(x: Tensor, angle: Tensor): Tensor {
  const [planes, h, w] = check(x, angle, 'rotate derivative');
  const s = rotationSampling(h, w, angle.data[0]!);
  return resample(x, planes, s, s.dweight);
}

registerKernel('rotate', 'cpu-ts', ({ x, angle }) => {
  const [planes, h, w] = check(x, angle, 'rotate');
  const s = rotationSampling(h, w, angle.data[0]!);
  return resample(x, planes, s, s.weight);
});

registerKernel('rotateBackward', 'cpu-ts', ({ dy, x, angle }) => {
  const [planes, h, w] = check(x, angle, 'rotateBackward');
  assertShape(dy, x.shape, 'rotateBackward dy');
  const s = rotationSampling(h, w, angle.data[0]!);
  const px = h * w, g = dy.data, xd = x.data, dx = allocLike(g, planes * px);
  let da = 0;
  for (let p = 0; p < planes; p++) {
    const base = p * px;
    for (let q = 0; q < px; q++) {
      const gq = g[base + q]!;
      if (gq === 0) continue;
      for (let k = 4 * q; k < 4 * q + 4; k++) {
        const src = s.index[k]!;
        if (src < 0) continue;
        dx[base + src] += s.weight[k]! * gq;
        da += s.dweight[k]! * gq * xd[base + src]!;
      }
    }
  }
  const dangle = allocLike(g, 1);
  dangle[0] = da;
  return { dx: new Tensor(dx, x.shape), dangle: new Tensor(dangle, [1]) };
});
