/** xla: the dense ops (matmul as dot_general, broadcasting add/mul, sumTo as a reduce) and sigmoid/tanh. */
import { registerLowering } from '../lowering.js';
import { broadcastStrides, matmulShape } from '../../../tensor/shape.js';

registerLowering('matmul', ({ fb }, { a, b }, { transA, transB }) => {
  matmulShape(a.shape, b.shape, transA, transB);
  return fb.dotGeneral(a, b, { lhsContract: [transA ? 0 : 1], rhsContract: [transB ? 1 : 0] });
});

registerLowering('add', ({ fb }, { a, b }) => {
  broadcastStrides(b.shape, a.shape, 'add');
  return fb.add(a, fb.broadcastTo(b, a.shape));
});

registerLowering('mul', ({ fb }, { a, b }) => {
  broadcastStrides(b.shape, a.shape, 'mul');
  return fb.mul(a, fb.broadcastTo(b, a.shape));
});

registerLowering('sumTo', ({ fb }, { x }, { shape }) => {
  broadcastStrides(shape, x.shape, 'sumTo');
  const off = x.rank - shape.length;
  const dims = x.shape.map((d, i) => i).filter((i) => i < off || (shape[i - off] === 1 && x.shape[i] !== 1));
  return fb.reshape(dims.length ? fb.reduce(x, 'add', dims) : x, shape);
});

/** 1 / (1 + exp(-x)), the reference kernel's formula. */
registerLowering('sigmoid', ({ fb }, { x }) => {
  const one = fb.splat(1, x.dtype, x.shape);
  return fb.div(one, fb.add(one, fb.unary('exponential', fb.unary('negate', x))));
});

registerLowering('sigmoidBackward', ({ fb }, { dy, y }) => {
  if (dy.shape.join() !== y.shape.join()) throw new RangeError(`sigmoidBackward dy: expected shape [${y.shape.join(', ')}], got [${dy.shape.join(', ')}]`);
  return fb.mul(fb.mul(dy, y), fb.sub(fb.splat(1, y.dtype, y.shape), y));
});

registerLowering('tanh', ({ fb }, { x }) => fb.unary('tanh', x));

registerLowering('tanhBackward', ({ fb }, { dy, y }) => {
  if (dy.shape.join() !== y.shape.join()) throw new RangeError(`tanhBackward dy: expected shape [${y.shape.join(', ')}], got [${dy.shape.join(', ')}]`);
  return fb.mul(dy, fb.sub(fb.splat(1, y.dtype, y.shape), fb.mul(y, y)));
});
