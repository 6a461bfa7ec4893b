/**
 * xla: max-pool as reduce_window, argmax, and the backward as a scatter-add. As the reference:
 * the first maximum in window order wins ties; a window holding NaN pools to NaN (StableHLO's
 * maximum propagates NaN) and its argmax is the last NaN in window order.
 */
import { registerLowering } from '../lowering.js';
import { poolOutSize } from '../../../tensor/shape.js';
import { sizeOf } from '../../../tensor/tensor.js';
import type { FuncBuilder, Value } from '../hlo.js';

export function maxPool(fb: FuncBuilder, x: Value, kernel: number, stride: number): Value {
  return fb.reduceWindow(x, 'maximum', [1, 1, kernel, kernel], [1, 1, stride, stride]);
}

registerLowering('maxpool2d', ({ fb }, { x }, { kernel, stride }) => {
  if (x.rank !== 4) throw new RangeError(`maxpool2d: input must be NCHW, got shape [${x.shape.join(', ')}]`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const oh = poolOutSize(h, kernel, stride), ow = poolOutSize(w, kernel, stride);
  const y = maxPool(fb, x, kernel, stride);
  const os = [n, c, oh, ow];
  // Flat input index of tap (a, b): ((n*C + c)*H + i*s + a)*W + j*s + b.
  const io = (d: number): Value => fb.iota(os, d, 'i32');
  const plane = fb.add(fb.mul(io(0), fb.splat(c, 'i32', os)), io(1));
  const rowBase = fb.mul(fb.add(fb.mul(plane, fb.splat(h, 'i32', os)), fb.mul(io(2), fb.splat(stride, 'i32', os))), fb.splat(w, 'i32', os));
  const colBase = fb.mul(io(3), fb.splat(stride, 'i32', os));
  let arg: Value | undefined, found: Value | undefined, lastNan: Value | undefined;
  for (let a = 0; a < kernel; a++) {
    for (let b = 0; b < kernel; b++) {
      const tap = fb.slice(x, [0, 0, a, b], [n, c, a + (oh - 1) * stride + 1, b + (ow - 1) * stride + 1], [1, 1, stride, stride]);
      const idx = fb.add(fb.add(rowBase, colBase), fb.splat(a * w + b, 'i32', os));
      const eq = fb.compare('EQ', tap, y);
      const nan = fb.compare('NE', tap, tap);
      if (!arg || !found || !lastNan) { arg = idx; found = eq; lastNan = idx; continue; }
      arg = fb.select(found, arg, fb.select(eq, idx, arg));
      found = fb.binary('or', found, eq);
      lastNan = fb.select(nan, idx, lastNan);
    }
  }
  // NaN windows (y is NaN): the last NaN tap
  arg = fb.select(fb.compare('NE', y, y), lastNan!, arg!);
  return { y, argmax: fb.reshape(arg, [n * c * oh * ow]) };
});

registerLowering('maxpool2dBackward', ({ fb }, { dy, argmax }, { inputShape }) => {
  const total = sizeOf(inputShape);
  const l = argmax.shape[0]!;
  const dx = fb.scatterAdd(fb.splat(0, dy.dtype, [total]), fb.reshape(argmax, [l, 1]), fb.reshape(dy, [l]));
  return fb.reshape(dx, inputShape);
}, ({ dy, argmax }, { inputShape }) => {
  if (argmax.length !== dy.size) throw new RangeError(`maxpool2dBackward: argmax has ${argmax.length} entries, dy has ${dy.size}`);
  const n = sizeOf(inputShape);
  for (const k of argmax) if (k < 0 || k >= n) throw new RangeError(`maxpool2dBackward: argmax index ${k} outside input of ${n} elements`);
});
