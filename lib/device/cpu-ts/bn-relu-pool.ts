/**
 * cpu-ts: the fused BN + ReLU + 2x2 max-pool and its backward, written as what they are defined
 * to be (the spec): the composition of this device's batchnorm2dTrain, relu and maxpool2d, and of
 * maxpool2dBackward, the ReLU mask and batchnorm2dBackward. Other devices fuse the passes.
 */
import { kernelsFor, registerKernel } from '../registry.js';
import type { Kernel, OpName } from '../../ops/contract.js';
import { Tensor, allocLike, assertShape } from '../../tensor/tensor.js';

function k<K extends OpName>(op: K): Kernel<K> {
  const f = kernelsFor('cpu-ts').get(op);
  if (!f) throw new Error(`cpu-ts: no ${op} kernel registered`);
  return f as unknown as Kernel<K>;
}

registerKernel('bnReluPool', 'cpu-ts', ({ x, gamma, beta }, { eps }) => {
  const bn = k('batchnorm2dTrain')({ x, gamma, beta }, { eps });
  const pooled = k('maxpool2d')({ x: k('relu')({ x: bn.y }, {}) }, { kernel: 2, stride: 2 });
  return { y: pooled.y, argmax: pooled.argmax, mean: bn.mean, variance: bn.variance, invStd: bn.invStd };
});

registerKernel('bnReluPoolBackward', 'cpu-ts', ({ dy, y, argmax, x, gamma, mean, invStd }) => {
  if (x.rank !== 4) throw new RangeError(`bnReluPoolBackward: x must be NCHW, got shape [${x.shape.join(', ')}]`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const pooled = [n, c, Math.floor(h / 2), Math.floor(w / 2)];
  assertShape(dy, pooled, 'bnReluPoolBackward dy');
  assertShape(y, pooled, 'bnReluPoolBackward y');
  // ReLU passed its input where the pooled output is > 0 or NaN (y = relu(bn output at argmax))
  const masked = allocLike(dy.data, dy.size);
  for (let i = 0; i < dy.size; i++) {
    const v = y.data[i]!;
    masked[i] = v > 0 || v !== v ? dy.data[i]! : 0;
  }
  const full = k('maxpool2dBackward')({ dy: new Tensor(masked, pooled), argmax }, { inputShape: x.shape });
  return k('batchnorm2dBackward')({ dy: full, x, gamma, mean, invStd }, {});
});
