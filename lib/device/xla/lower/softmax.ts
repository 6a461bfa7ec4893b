/** xla: scale, log-softmax, cross-entropy, accuracy (and backwards). */
import { registerLowering } from '../lowering.js';
import type { FuncBuilder, Value } from '../hlo.js';

function rows(x: Value, what: string): [number, number] {
  if (x.rank !== 2) throw new RangeError(`${what}: expected [rows, classes], got [${x.shape.join(', ')}]`);
  return [x.shape[0]!, x.shape[1]!];
}

function checkLabels(labels: Int32Array, m: number, k: number, what: string): void {
  if (labels.length !== m) throw new RangeError(`${what}: ${labels.length} labels for ${m} rows`);
  for (const l of labels) if (!(l >= 0 && l < k)) throw new RangeError(`${what}: label ${l} outside [0, ${k})`);
}

/** Row-wise log-softmax over the last axis of x [..., K]. */
export function logSoftmaxLast(fb: FuncBuilder, x: Value): Value {
  const last = x.rank - 1;
  const keep = x.shape.map((_, i) => i).slice(0, last);
  const mx = fb.reduce(x, 'maximum', [last]);
  const s = fb.reduce(fb.unary('exponential', fb.sub(x, fb.broadcastInDim(mx, x.shape, keep))), 'add', [last]);
  const lse = fb.add(mx, fb.unary('log', s));
  return fb.sub(x, fb.broadcastInDim(lse, x.shape, keep));
}

/** onehot[..., m, k] = labels[m] == k as x's float type, broadcast over leading dims of `shape`. */
export function oneHotRows(fb: FuncBuilder, labels: Value, shape: readonly number[], dtype: 'f32' | 'f64'): Value {
  const r = shape.length;
  const eq = fb.compare('EQ', fb.broadcastInDim(labels, shape, [r - 2]), fb.iota(shape, r - 1, 'i32'));
  return fb.convert(eq, dtype);
}

registerLowering('scale', ({ fb }, { x }, { alpha }) => fb.mulC(x, alpha));

registerLowering('logSoftmax', ({ fb }, { x }) => {
  rows(x, 'logSoftmax');
  return logSoftmaxLast(fb, x);
});

registerLowering('logSoftmaxBackward', ({ fb }, { dy, y }) => {
  const [m, k] = rows(y, 'logSoftmaxBackward');
  if (dy.shape.join() !== [m, k].join()) throw new RangeError(`logSoftmaxBackward dy: expected shape [${m}, ${k}], got [${dy.shape.join(', ')}]`);
  const s = fb.reduce(dy, 'add', [1]);
  return fb.sub(dy, fb.mul(fb.unary('exponential', y), fb.broadcastInDim(s, [m, k], [0])));
});

registerLowering('crossEntropy', ({ fb, ftype }, { logp, labels }) => {
  const [m, k] = rows(logp, 'crossEntropy');
  const picked = fb.reduce(fb.mul(oneHotRows(fb, labels, [m, k], ftype), logp), 'add', [0, 1]);
  return fb.div(fb.unary('negate', picked), fb.constant(m, ftype));
}, ({ logp, labels }) => checkLabels(labels, logp.shape[0]!, logp.shape[1]!, 'crossEntropy'));

registerLowering('crossEntropyBackward', ({ fb, ftype }, { dloss, logp, labels }) => {
  const [m, k] = rows(logp, 'crossEntropyBackward');
  const v = fb.div(fb.unary('negate', dloss), fb.constant(m, ftype));
  return fb.mul(oneHotRows(fb, labels, [m, k], ftype), fb.broadcastTo(v, [m, k]));
}, ({ logp, labels }) => checkLabels(labels, logp.shape[0]!, logp.shape[1]!, 'crossEntropyBackward'));

/** First index of the row maximum, i32 [..., M] for x [..., M, K]. */
export function argmaxLast(fb: FuncBuilder, x: Value): Value {
  const last = x.rank - 1, k = x.shape[last]!;
  const keep = x.shape.map((_, i) => i).slice(0, last);
  const mx = fb.reduce(x, 'maximum', [last]);
  const idx = fb.select(fb.compare('EQ', x, fb.broadcastInDim(mx, x.shape, keep)), fb.iota(x.shape, last, 'i32'), fb.splat(k, 'i32', x.shape));
  return fb.reduce(idx, 'minimum', [last], 2147483647);
}

/** The program returns the hit count (i32); lowerOp divides by the row count on the host, in float64. */
registerLowering('accuracy', ({ fb }, { scores, labels }) => {
  const [m] = rows(scores, 'accuracy');
  if (m === 0) return fb.constant(0, 'i32');
  return fb.reduce(fb.convert(fb.compare('EQ', argmaxLast(fb, scores), labels), 'i32'), 'add', [0]);
}, ({ scores, labels }) => checkLabels(labels, scores.shape[0]!, scores.shape[1]!, 'accuracy'));
