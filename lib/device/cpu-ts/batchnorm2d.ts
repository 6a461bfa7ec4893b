/** cpu-ts: BatchNorm2d in training mode (batch statistics), eval mode (running statistics), and its backward. */
import { registerKernel } from '../registry.js';
import { Tensor, allocLike, assertShape } from '../../tensor/tensor.js';

function dims(x: Tensor, what: string): [number, number, number] {
  if (x.rank !== 4) throw new RangeError(`${what}: input must be NCHW, got shape [${x.shape.join(', ')}]`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return [n, c, h * w];
}

registerKernel('batchnorm2dTrain', 'cpu-ts', ({ x, gamma, beta }, { eps }) => {
  const [n, c, hw] = dims(x, 'batchnorm2dTrain');
  assertShape(gamma, [c], 'batchnorm2dTrain gamma');
  assertShape(beta, [c], 'batchnorm2dTrain beta');
  const m = n * hw;
  if (m < 1) throw new RangeError('batchnorm2dTrain: empty batch');
  const xd = x.data, y = allocLike(xd, xd.length);
  const mean = allocLike(xd, c), variance = allocLike(xd, c), invStd = allocLike(xd, c);
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let b = 0; b < n; b++) {
      const base = (b * c + ch) * hw;
      for (let k = 0; k < hw; k++) s += xd[base + k]!;
    }
    const mu = s / m;
    let v = 0;
    for (let b = 0; b < n; b++) {
      const base = (b * c + ch) * hw;
      for (let k = 0; k < hw; k++) {
        const d = xd[base + k]! - mu;
        v += d * d;
      }
    }
    v /= m;
    const is = 1 / Math.sqrt(v + eps);
    mean[ch] = mu;
    variance[ch] = v;
    invStd[ch] = is;
    const gs = gamma.data[ch]! * is, bt = beta.data[ch]!;
    for (let b = 0; b < n; b++) {
      const base = (b * c + ch) * hw;
      for (let k = 0; k < hw; k++) y[base + k] = (xd[base + k]! - mu) * gs + bt;
    }
  }
  return { y: new Tensor(y, x.shape), mean: new Tensor(mean, [c]), variance: new Tensor(variance, [c]), invStd: new Tensor(invStd, [c]) };
});

registerKernel('batchnorm2dEval', 'cpu-ts', ({ x, gamma, beta, runningMean, runningVar }, { eps }) => {
  const [n, c, hw] = dims(x, 'batchnorm2dEval');
  for (const [t, nm] of [[gamma, 'gamma'], [beta, 'beta'], [runningMean, 'runningMean'], [runningVar, 'runningVar']] as const) {
    assertShape(t, [c], `batchnorm2dEval ${nm}`);
  }
  const xd = x.data, y = allocLike(xd, xd.length);
  for (let ch = 0; ch < c; ch++) {
    const is = 1 / Math.sqrt(runningVar.data[ch]! + eps);
    const gs = gamma.data[ch]! * is, mu = runningMean.data[ch]!, bt = beta.data[ch]!;
    for (let b = 0; b < n; b++) {
      const base = (b * c + ch) * hw;
      for (let k = 0; k < hw; k++) y[base + k] = (xd[base + k]! - mu) * gs + bt;
    }
  }
  return new Tensor(y, x.shape);
});

registerKernel('batchnorm2dBackward', 'cpu-ts', ({ dy, x, gamma, mean, invStd }) => {
  const [n, c, hw] = dims(x, 'batchnorm2dBackward');
  assertShape(dy, x.shape, 'batchnorm2dBackward dy');
  const m = n * hw;
  const xd = x.data, dyd = dy.data;
  const dx = allocLike(xd, xd.length), dgamma = allocLike(xd, c), dbeta = allocLike(xd, c);
  for (let ch = 0; ch < c; ch++) {
    const mu = mean.data[ch]!, is = invStd.data[ch]!;
    let sdy = 0, sdyx = 0;
    for (let b = 0; b < n; b++) {
      const base = (b * c + ch) * hw;
      for (let k = 0; k < hw; k++) {
        const g = dyd[base + k]!;
        sdy += g;
        sdyx += g * (xd[base + k]! - mu) * is;
      }
    }
    dbeta[ch] = sdy;
    dgamma[ch] = sdyx;
    const f = (gamma.data[ch]! * is) / m;
    for (let b = 0; b < n; b++) {
      const base = (b * c + ch) * hw;
      for (let k = 0; k < hw; k++) {
        const xh = (xd[base + k]! - mu) * is;
        dx[base + k] = f * (m * dyd[base + k]! - sdy - xh * sdyx);
      }
    }
  }
  return { dx: new Tensor(dx, x.shape), dgamma: new Tensor(dgamma, [c]), dbeta: new Tensor(dbeta, [c]) };
});
