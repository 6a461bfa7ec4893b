/** xla: ReLU and its backward (select on x > 0, as the reference kernel). */
import { registerLowering } from '../lowering.js';

registerLowering('relu', ({ fb }, { x }) => {
  const zero = fb.splat(0, x.dtype, x.shape);
  return fb.select(fb.compare('GT', x, zero), x, zero);
});

registerLowering('reluBackward', ({ fb }, { dy, x }) => {
  if (dy.shape.join() !== x.shape.join()) throw new RangeError(`reluBackward dy: expected shape [${x.shape.join(', ')}], got [${dy.shape.join(', ')}]`);
  const zero = fb.splat(0, x.dtype, x.shape);
  return fb.select(fb.compare('GT', x, zero), dy, zero);
});
