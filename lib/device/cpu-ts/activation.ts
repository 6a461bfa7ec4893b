/** cpu-ts: sigmoid and tanh, and their backwards from the saved output. */
import { registerKernel } from '../registry.js';
import { Tensor, allocLike, assertShape } from '../../tensor/tensor.js';

registerKernel('sigmoid', 'cpu-ts', ({ x }) => {
  const X = x.data, y = allocLike(X, X.length);
  for (let i = 0; i < X.length; i++) y[i] = 1 / (1 + Math.exp(-X[i]!));
  return new Tensor(y, x.shape);
});

registerKernel('sigmoidBackward', 'cpu-ts', ({ dy, y }) => {
  assertShape(dy, y.shape, 'sigmoidBackward dy');
  const g = dy.data, Y = y.data, dx = allocLike(g, g.length);
  for (let i = 0; i < g.length; i++) { const v = Y[i]!; dx[i] = g[i]! * v * (1 - v); }
  return new Tensor(dx, y.shape);
});

registerKernel('tanh', 'cpu-ts', ({ x }) => {
  const X = x.data, y = allocLike(X, X.length);
  for (let i = 0; i < X.length; i++) y[i] = Math.tanh(X[i]!);
  return new Tensor(y, x.shape);
});

registerKernel('tanhBackward', 'cpu-ts', ({ dy, y }) => {
  assertShape(dy, y.shape, 'tanhBackward dy');
  const g = dy.data, Y = y.data, dx = allocLike(g, g.length);
  for (let i = 0; i < g.length; i++) { const v = Y[i]!; dx[i] = g[i]! * (1 - v * v); }
  return new Tensor(dx, y.shape);
});
