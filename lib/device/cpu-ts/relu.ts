/** cpu-ts: ReLU and its backward. */
import { registerKernel } from '../registry.js';
import { Tensor, allocLike, assertShape } from '../../tensor/tensor.js';

registerKernel('relu', 'cpu-ts', ({ x }) => {
  const xd = x.data, y = allocLike(xd, xd.length);
  for (let i = 0; i < xd.length; i++) {
    const v = xd[i]!;
    y[i] = v > 0 ? v : 0;
  }
  return new Tensor(y, x.shape);
});

registerKernel('reluBackward', 'cpu-ts', ({ dy, x }) => {
  assertShape(dy, x.shape, 'reluBackward dy');
  const xd = x.data, g = dy.data, dx = allocLike(g, g.length);
  for (let i = 0; i < xd.length; i++) dx[i] = xd[i]! > 0 ? g[i]! : 0;
  return new Tensor(dx, x.shape);
});
