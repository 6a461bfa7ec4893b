/**
 * cpu-ts: ReLU and its backward (the spec). NaN propagates, as in PyTorch: ReLU(x) = x where
 * x > 0 or x is NaN, else +0 (so -0 maps to +0); the gradient passes dy exactly where the
 * forward passed x through.
 */
import { registerKernel } from '../registry.js';
import { Tensor, allocLike, assertShape } from '../../tensor/tensor.js';

registerKernel('relu', 'cpu-ts', ({ x }) => {
  const xd = x.data, y = allocLike(xd, xd.length);
  for (let i = 0; i < xd.length; i++) {
    const v = xd[i]!;
    y[i] = v > 0 || v !== v ? v : 0;
  }
  return new Tensor(y, x.shape);
});

registerKernel('reluBackward', 'cpu-ts', ({ dy, x }) => {
  assertShape(dy, x.shape, 'reluBackward dy');
  const xd = x.data, g = dy.data, dx = allocLike(g, g.length);
  for (let i = 0; i < xd.length; i++) {
    const v = xd[i]!;
    dx[i] = v > 0 || v !== v ? g[i]! : 0;
  }
  return new Tensor(dx, x.shape);
});
