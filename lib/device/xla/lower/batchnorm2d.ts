/** xla: BatchNorm2d in training mode (batch statistics), eval mode (running statistics), and its backward. */
import { registerLowering } from '../lowering.js';
import type { FuncBuilder, Value } from '../hlo.js';

function checkNCHW(x: Value, what: string, vecs: [Value, string][]): number {
  if (x.rank !== 4) throw new RangeError(`${what}: input must be NCHW, got shape [${x.shape.join(', ')}]`);
  const c = x.shape[1]!;
  for (const [v, n] of vecs) if (v.rank !== 1 || v.shape[0] !== c) throw new RangeError(`${what} ${n}: expected shape [${c}], got [${v.shape.join(', ')}]`);
  return x.shape[0]! * x.shape[2]! * x.shape[3]!;
}

/** A per-channel vector broadcast over NCHW. */
const perChannel = (fb: FuncBuilder, v: Value, like: Value): Value => fb.broadcastInDim(v, like.shape, [1]);

/** The batch statistics of x per channel: mean, biased variance, x - mean. */
export function batchStats(fb: FuncBuilder, x: Value): { mean: Value; variance: Value; centered: Value } {
  const m = x.shape[0]! * x.shape[2]! * x.shape[3]!;
  const mean = fb.div(fb.reduce(x, 'add', [0, 2, 3]), fb.constant(m, x.dtype));
  const centered = fb.sub(x, perChannel(fb, mean, x));
  const variance = fb.div(fb.reduce(fb.mul(centered, centered), 'add', [0, 2, 3]), fb.constant(m, x.dtype));
  return { mean, variance, centered };
}

/** y = (x - mean) * (gamma / sqrt(var + eps)) + beta, the order of the reference kernel. */
export function bnTrain(fb: FuncBuilder, x: Value, gamma: Value, beta: Value, eps: number): { y: Value; mean: Value; variance: Value; invStd: Value } {
  const { mean, variance, centered } = batchStats(fb, x);
  const invStd = fb.div(fb.constant(1, x.dtype), fb.unary('sqrt', fb.addC(variance, eps)));
  const y = fb.add(fb.mul(centered, perChannel(fb, fb.mul(gamma, invStd), x)), perChannel(fb, beta, x));
  return { y, mean, variance, invStd };
}

registerLowering('batchnorm2dTrain', ({ fb }, { x, gamma, beta }, { eps }) => {
  checkNCHW(x, 'batchnorm2dTrain', [[gamma, 'gamma'], [beta, 'beta']]);
  return bnTrain(fb, x, gamma, beta, eps);
});

registerLowering('batchnorm2dEval', ({ fb }, { x, gamma, beta, runningMean, runningVar }, { eps }) => {
  checkNCHW(x, 'batchnorm2dEval', [[gamma, 'gamma'], [beta, 'beta'], [runningMean, 'runningMean'], [runningVar, 'runningVar']]);
  const invStd = fb.div(fb.constant(1, x.dtype), fb.unary('sqrt', fb.addC(runningVar, eps)));
  const centered = fb.sub(x, perChannel(fb, runningMean, x));
  return fb.add(fb.mul(centered, perChannel(fb, fb.mul(gamma, invStd), x)), perChannel(fb, beta, x));
});

registerLowering('batchnorm2dBackward', ({ fb }, { dy, x, gamma, mean, invStd }) => {
  const m = checkNCHW(x, 'batchnorm2dBackward', [[gamma, 'gamma'], [mean, 'mean'], [invStd, 'invStd']]);
  if (dy.shape.join() !== x.shape.join()) throw new RangeError(`batchnorm2dBackward dy: expected shape [${x.shape.join(', ')}], got [${dy.shape.join(', ')}]`);
  const xhat = fb.mul(fb.sub(x, perChannel(fb, mean, x)), perChannel(fb, invStd, x));
  const sdy = fb.reduce(dy, 'add', [0, 2, 3]);
  const sdyx = fb.reduce(fb.mul(dy, xhat), 'add', [0, 2, 3]);
  const f = fb.div(fb.mul(gamma, invStd), fb.constant(m, x.dtype));
  const inner = fb.sub(fb.sub(fb.mulC(dy, m), perChannel(fb, sdy, x)), fb.mul(xhat, perChannel(fb, sdyx, x)));
  return { dx: fb.mul(perChannel(fb, f, x), inner), dgamma: sdyx, dbeta: sdy };
});
