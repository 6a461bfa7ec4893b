/** xla: conv2d and its two backward kernels as stablehlo.convolution. */
import { registerLowering } from '../lowering.js';
import { conv2dGeometry } from '../../../tensor/shape.js';

registerLowering('conv2d', ({ fb }, { x, w, b }, { stride, padding }) => {
  const g = conv2dGeometry(x.shape, w.shape, stride, padding);
  if (b && (b.rank !== 1 || b.shape[0] !== g.cout)) throw new RangeError(`conv2d bias: expected shape [${g.cout}], got [${b.shape.join(', ')}]`);
  const y = fb.convolution(x, w, { stride: [stride, stride], pad: [[padding, padding], [padding, padding]] });
  return b ? fb.add(y, fb.broadcastInDim(b, y.shape, [1])) : y;
});

/** dx = dy (dilated by the stride) convolved with the spatially reversed kernel, in and out features swapped. */
registerLowering('conv2dBackwardInput', ({ fb }, { dy, w }, { stride, padding, inputShape }) => {
  const g = conv2dGeometry(inputShape, w.shape, stride, padding);
  if (dy.shape.join() !== [g.n, g.cout, g.oh, g.ow].join()) throw new RangeError(`conv2dBackwardInput dy: expected shape [${[g.n, g.cout, g.oh, g.ow].join(', ')}], got [${dy.shape.join(', ')}]`);
  const lo = [g.kh - 1 - padding, g.kw - 1 - padding];
  const hi = [g.h - (g.oh - 1) * stride - 1 + padding, g.w - (g.ow - 1) * stride - 1 + padding];
  return fb.convolution(dy, fb.reverse(w, [2, 3]), {
    lhsDilate: [stride, stride], pad: [[lo[0]!, hi[0]!], [lo[1]!, hi[1]!]],
    dims: { lhs: 'bf01', rhs: 'io01', out: 'bf01' },
  });
});

/** dw = x (batch and features swapped) convolved with dy dilated by the stride; db = sum of dy over n, h, w. */
registerLowering('conv2dBackwardWeight', ({ fb }, { dy, x }, { stride, padding, weightShape }) => {
  const g = conv2dGeometry(x.shape, weightShape, stride, padding);
  if (dy.shape.join() !== [g.n, g.cout, g.oh, g.ow].join()) throw new RangeError(`conv2dBackwardWeight dy: expected shape [${[g.n, g.cout, g.oh, g.ow].join(', ')}], got [${dy.shape.join(', ')}]`);
  const hi = [g.kh + (g.oh - 1) * stride - g.h - padding, g.kw + (g.ow - 1) * stride - g.w - padding];
  const dw = fb.convolution(x, dy, {
    rhsDilate: [stride, stride], pad: [[padding, hi[0]!], [padding, hi[1]!]],
    dims: { lhs: 'fb01', rhs: 'io01', out: 'fb01' },
  });
  return { dw, db: fb.reduce(dy, 'add', [0, 2, 3]) };
});
