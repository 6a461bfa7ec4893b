/**
 * xla: the fused BN + ReLU + 2x2 max-pool and its backward, as the compositions the contract
 * defines them to be (the lowerings of batchnorm2dTrain, relu and maxpool2d; of the ReLU mask,
 * maxpool2dBackward and batchnorm2dBackward) in one program: XLA fuses the elementwise passes.
 */
import { getLowering, registerLowering } from '../lowering.js';
import { reluPasses } from './relu.js';

registerLowering('bnReluPool', (ctx, { x, gamma, beta }, { eps }) => {
  const bn = getLowering('batchnorm2dTrain')(ctx, { x, gamma, beta }, { eps });
  const pooled = getLowering('maxpool2d')(ctx, { x: getLowering('relu')(ctx, { x: bn.y }, {}) }, { kernel: 2, stride: 2 });
  return { y: pooled.y, argmax: pooled.argmax, mean: bn.mean, variance: bn.variance, invStd: bn.invStd };
});

registerLowering('bnReluPoolBackward', (ctx, { dy, y, argmax, x, gamma, mean, invStd }) => {
  const { fb } = ctx;
  if (x.rank !== 4) throw new RangeError(`bnReluPoolBackward: x must be NCHW, got shape [${x.shape.join(', ')}]`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const pooled = [n, c, Math.floor(h / 2), Math.floor(w / 2)];
  for (const [v, nm] of [[dy, 'dy'], [y, 'y']] as const) {
    if (v.shape.join() !== pooled.join()) throw new RangeError(`bnReluPoolBackward ${nm}: expected shape [${pooled.join(', ')}], got [${v.shape.join(', ')}]`);
  }
  const masked = fb.select(reluPasses(fb, y), dy, fb.splat(0, dy.dtype, dy.shape));
  const full = getLowering('maxpool2dBackward')(ctx, { dy: masked, argmax }, { inputShape: x.shape });
  return getLowering('batchnorm2dBackward')(ctx, { dy: full, x, gamma, mean, invStd }, {});
}, ({ dy, argmax, x }) => {
  if (argmax.length !== dy.size) throw new RangeError(`bnReluPoolBackward: argmax has ${argmax.length} entries, dy has ${dy.size}`);
  for (const k of argmax) if (k < 0 || k >= x.size) throw new RangeError(`bnReluPoolBackward: argmax index ${k} outside x of ${x.size} elements`);
});
