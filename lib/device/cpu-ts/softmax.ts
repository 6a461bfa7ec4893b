/** cpu-ts: scale, log-softmax, cross-entropy, accuracy (and backwards). */
import { registerKernel } from '../registry.js';
import { Tensor, allocLike, assertShape } from '../../tensor/tensor.js';

function rows(x: Tensor, what: string): [number, number] {
  if (x.rank !== 2) throw new RangeError(`${what}: expected [rows, classes], got [${x.shape.join(', ')}]`);
  return [x.shape[0]!, x.shape[1]!];
}

function checkLabels(labels: Int32Array, m: number, k: number, what: string): void {
  if (labels.length !== m) throw new RangeError(`${what}: ${labels.length} labels for ${m} rows`);
  for (const l of labels) if (!(l >= 0 && l < k)) throw new RangeError(`${what}: label ${l} outside [0, ${k})`);
}

registerKernel('scale', 'cpu-ts', ({ x }, { alpha }) => {
  const y = allocLike(x.data, x.size);
  for (let i = 0; i < y.length; i++) y[i] = alpha * x.data[i]!;
  return new Tensor(y, x.shape);
});

registerKernel('logSoftmax', 'cpu-ts', ({ x }) => {
  const [m, k] = rows(x, 'logSoftmax');
  const y = allocLike(x.data, m * k);
  for (let i = 0; i < m; i++) {
    let mx = -Infinity;
    for (let j = 0; j < k; j++) mx = Math.max(mx, x.data[i * k + j]!);
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.exp(x.data[i * k + j]! - mx);
    const lse = mx + Math.log(s);
    for (let j = 0; j < k; j++) y[i * k + j] = x.data[i * k + j]! - lse;
  }
  return new Tensor(y, [m, k]);
});

registerKernel('logSoftmaxBackward', 'cpu-ts', ({ dy, y }) => {
  const [m, k] = rows(y, 'logSoftmaxBackward');
  assertShape(dy, [m, k], 'logSoftmaxBackward dy');
  const dx = allocLike(y.data, m * k);
  for (let i = 0; i < m; i++) {
    let s = 0;
    for (let j = 0; j < k; j++) s += dy.data[i * k + j]!;
    for (let j = 0; j < k; j++) dx[i * k + j] = dy.data[i * k + j]! - Math.exp(y.data[i * k + j]!) * s;
  }
  return new Tensor(dx, [m, k]);
});

registerKernel('crossEntropy', 'cpu-ts', ({ logp, labels }) => {
  const [m, k] = rows(logp, 'crossEntropy');
  checkLabels(labels, m, k, 'crossEntropy');
  let s = 0;
  for (let i = 0; i < m; i++) s -= logp.data[i * k + labels[i]!]!;
  const out = allocLike(logp.data, 1);
  out[0] = s / m;
  return new Tensor(out, []);
});

registerKernel('crossEntropyBackward', 'cpu-ts', ({ dloss, logp, labels }) => {
  const [m, k] = rows(logp, 'crossEntropyBackward');
  checkLabels(labels, m, k, 'crossEntropyBackward');
  const d = allocLike(logp.data, m * k);
  for (let i = 0; i < m; i++) d[i * k + labels[i]!] = -dloss / m;
  return new Tensor(d, [m, k]);
});

registerKernel('accuracy', 'cpu-ts', ({ scores, labels }) => {
  const [m, k] = rows(scores, 'accuracy');
  checkLabels(labels, m, k, 'accuracy');
  let hit = 0;
  for (let i = 0; i < m; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (scores.data[i * k + j]! > scores.data[i * k + best]!) best = j;
    if (best === labels[i]) hit++;
  }
  return m === 0 ? 0 : hit / m;
});
