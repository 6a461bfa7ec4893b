/**
 * The backward of every tape op. Importing this module registers them.
 * Each one runs the device's kernels (contract ops) through device.run, so
 * every device shares them; reshape and row slices are pure data movement.
 */
import { Tensor, allocLike, sizeOf } from '../tensor/tensor.js';
import { registerGradient } from './gradients.js';

registerGradient('conv2d', (dy, { device, saved: s, needs }) => {
  const [nx, nw, nb] = needs;
  const dx = nx ? device.run('conv2dBackwardInput', { dy, w: s.w! }, { ...s.attrs, inputShape: s.xShape }) : undefined;
  if (!nw && !nb) return [dx, undefined, undefined];
  const r = device.run('conv2dBackwardWeight', { dy, x: s.x! }, { ...s.attrs, weightShape: s.wShape });
  return [dx, nw ? r.dw : undefined, nb ? r.db : undefined];
});

/** Training-mode BN: the kernel differentiates through the batch mean and variance. */
registerGradient('batchnorm2dTrain', (dy, { device, saved: s }) => {
  const r = device.run('batchnorm2dBackward', { dy, x: s.x, gamma: s.gamma, mean: s.mean, invStd: s.invStd }, {});
  return [r.dx, r.dgamma, r.dbeta];
});

/**
 * Eval-mode BN, y = (x - rm) * gamma / sqrt(rv + eps) + beta, with the running
 * statistics constant: dx = dy * gamma / sqrt(rv + eps) is batchnorm2dEval of
 * dy with zero mean and bias; dgamma = sum dy * (x - rm) / sqrt(rv + eps) and
 * dbeta = sum dy are batchnorm2dBackward's with mean = rm, invStd = 1/sqrt(rv + eps).
 */
registerGradient('batchnorm2dEval', (dy, { device, saved: s, needs }) => {
  const c = s.gamma.size;
  const zeros = new Tensor(allocLike(dy.data, c), [c]);
  const dx = needs[0]
    ? device.run('batchnorm2dEval', { x: dy, gamma: s.gamma, beta: zeros, runningMean: zeros, runningVar: s.runningVar }, { eps: s.eps })
    : undefined;
  if (!needs[1] && !needs[2]) return [dx, undefined, undefined];
  const invStd = new Tensor(allocLike(dy.data, c), [c]);
  for (let i = 0; i < c; i++) invStd.data[i] = 1 / Math.sqrt(s.runningVar.data[i]! + s.eps);
  const r = device.run('batchnorm2dBackward', { dy, x: s.x, gamma: s.gamma, mean: s.runningMean, invStd }, {});
  return [dx, needs[1] ? r.dgamma : undefined, needs[2] ? r.dbeta : undefined];
});

registerGradient('relu', (dy, { device, saved: s }) => [device.run('reluBackward', { dy, x: s.x }, {})]);

registerGradient('maxpool2d', (dy, { device, saved: s }) => [
  device.run('maxpool2dBackward', { dy, argmax: s.argmax }, { inputShape: s.inputShape }),
]);

/** BN + ReLU + max-pool: one kernel through the pool, the ReLU mask and the batch statistics. */
registerGradient('bnReluPool', (dy, { device, saved: s }) => {
  const r = device.run('bnReluPoolBackward', { dy, y: s.y, argmax: s.argmax, x: s.x, gamma: s.gamma, mean: s.mean, invStd: s.invStd }, {});
  return [r.dx, r.dgamma, r.dbeta];
});

registerGradient('reshape', (dy, { saved: s }) => [dy.reshape(s.inputShape)]);

/** A row slice is a view: its gradient is dy scattered into zeros of the input's shape. */
registerGradient('sliceRows', (dy, { saved: s }) => {
  const full = new Tensor(allocLike(dy.data, sizeOf(s.inputShape)), s.inputShape);
  const inner = s.inputShape[0] === 0 ? 0 : full.size / s.inputShape[0]!;
  full.data.set(dy.data, s.start * inner);
  return [full];
});

registerGradient('prototypes', (dy, { device, saved: s }) => [
  device.run('prototypesBackward', { dproto: dy, labels: s.labels }, { way: s.way }),
]);

registerGradient('sqEuclidean', (dy, { device, saved: s }) => {
  const r = device.run('sqEuclideanBackward', { dd: dy, q: s.q, p: s.p }, {});
  return [r.dq, r.dp];
});

registerGradient('cosine', (dy, { device, saved: s }) => {
  const r = device.run('cosineBackward', { dc: dy, q: s.q, p: s.p }, { eps: s.eps });
  return [r.dq, r.dp];
});

registerGradient('scale', (dy, { device, saved: s }) => [device.run('scale', { x: dy }, { alpha: s.alpha })]);

registerGradient('logSoftmax', (dy, { device, saved: s }) => [device.run('logSoftmaxBackward', { dy, y: s.y }, {})]);

registerGradient('crossEntropy', (dy, { device, saved: s }) => {
  if (dy.size !== 1) throw new RangeError(`crossEntropy backward: dy must be a scalar, got shape [${dy.shape.join(', ')}]`);
  return [device.run('crossEntropyBackward', { dloss: dy.data[0]!, logp: s.logp, labels: s.labels }, {})];
});

/** Rotation: one kernel gives both the images' gradient (the transposed resampling) and the angle's. */
registerGradient('rotate', (dy, { device, saved: s, needs }) => {
  const r = device.run('rotateBackward', { dy, x: s.x, angle: s.angle }, {});
  return [needs[0] ? r.dx : undefined, needs[1] ? r.dangle : undefined];
});
