/**
 * xla: ReLU and its backward, as the reference kernel: ReLU(x) = x where x > 0 or x is NaN,
 * else +0 (NaN propagates, -0 maps to +0); the gradient passes where the forward passed x.
 */
import { registerLowering } from '../lowering.js';
import type { FuncBuilder, Value } from '../hlo.js';

/** i1 mask of the elements ReLU passes through: x > 0 or x is NaN. */
export function reluPasses(fb: FuncBuilder, x: Value): Value {
  const zero = fb.splat(0, x.dtype, x.shape);
  return fb.binary('or', fb.compare('GT', x, zero), fb.compare('NE', x, x));
}

/** ReLU with NaN propagation (the population programs use it too). */
export function relu(fb: FuncBuilder, x: Value): Value {
  return fb.select(reluPasses(fb, x), x, fb.splat(0, x.dtype, x.shape));
}

registerLowering('relu', ({ fb }, { x }) => relu(fb, x));

registerLowering('reluBackward', ({ fb }, { dy, x }) => {
  if (dy.shape.join() !== x.shape.join()) throw new RangeError(`reluBackward dy: expected shape [${x.shape.join(', ')}], got [${dy.shape.join(', ')}]`);
  return fb.select(reluPasses(fb, x), dy, fb.splat(0, dy.dtype, dy.shape));
});
