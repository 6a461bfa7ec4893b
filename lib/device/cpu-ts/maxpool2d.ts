/**
 * cpu-ts: max-pool (floor mode) with argmax, and its backward (scatter to the argmax). The spec:
 * taps are visited in window order and tap v replaces the best when v > best or v is NaN
 * (PyTorch's CPU rule), so the first maximum wins ties, a window holding NaN pools to NaN, and
 * its argmax is the last NaN.
 */
import { registerKernel } from '../registry.js';
import { Tensor, allocLike, sizeOf } from '../../tensor/tensor.js';
import { poolOutSize } from '../../tensor/shape.js';

registerKernel('maxpool2d', 'cpu-ts', ({ x }, { kernel, stride }) => {
  if (x.rank !== 4) throw new RangeError(`maxpool2d: input must be NCHW, got shape [${x.shape.join(', ')}]`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const oh = poolOutSize(h, kernel, stride), ow = poolOutSize(w, kernel, stride);
  const xd = x.data, y = allocLike(xd, n * c * oh * ow), arg = new Int32Array(y.length);
  let o = 0;
  for (let p = 0; p < n * c; p++) {
    const base = p * h * w;
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++, o++) {
        let best = -Infinity, bi = -1;
        for (let a = 0; a < kernel; a++) {
          const row = base + (i * stride + a) * w + j * stride;
          for (let b = 0; b < kernel; b++) {
            const v = xd[row + b]!;
            if (v > best || v !== v || bi < 0) { best = v; bi = row + b; }
          }
        }
        y[o] = best;
        arg[o] = bi;
      }
    }
  }
  return { y: new Tensor(y, [n, c, oh, ow]), argmax: arg };
});

registerKernel('maxpool2dBackward', 'cpu-ts', ({ dy, argmax }, { inputShape }) => {
  if (argmax.length !== dy.size) throw new RangeError(`maxpool2dBackward: argmax has ${argmax.length} entries, dy has ${dy.size}`);
  const n = sizeOf(inputShape);
  const dx = allocLike(dy.data, n);
  for (let i = 0; i < argmax.length; i++) {
    const k = argmax[i]!;
    if (k < 0 || k >= n) throw new RangeError(`maxpool2dBackward: argmax index ${k} outside input of ${n} elements`);
    dx[k] += dy.data[i]!;
  }
  return new Tensor(dx, inputShape);
});
