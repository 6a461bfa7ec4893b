/** cpu-ts: squared Euclidean distance and cosine similarity between queries and prototypes, with backwards. */
import { registerKernel } from '../registry.js';
import { Tensor, allocLike } from '../../tensor/tensor.js';

function pair(q: Tensor, p: Tensor, what: string): [number, number, number] {
  if (q.rank !== 2 || p.rank !== 2 || q.shape[1] !== p.shape[1]) {
    throw new RangeError(`${what}: expected q [M, E] and p [K, E], got [${q.shape.join(', ')}] and [${p.shape.join(', ')}]`);
  }
  return [q.shape[0]!, p.shape[0]!, q.shape[1]!];
}

registerKernel('sqEuclidean', 'cpu-ts', ({ q, p }) => {
  const [m, k, e] = pair(q, p, 'sqEuclidean');
  const out = allocLike(q.data, m * k);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < k; j++) {
      let s = 0;
      for (let t = 0; t < e; t++) {
        const d = q.data[i * e + t]! - p.data[j * e + t]!;
        s += d * d;
      }
      out[i * k + j] = s;
    }
  }
  return new Tensor(out, [m, k]);
});

registerKernel('sqEuclideanBackward', 'cpu-ts', ({ dd, q, p }) => {
  const [m, k, e] = pair(q, p, 'sqEuclideanBackward');
  const dq = allocLike(q.data, m * e), dp = allocLike(q.data, k * e);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < k; j++) {
      const g = 2 * dd.data[i * k + j]!;
      for (let t = 0; t < e; t++) {
        const d = g * (q.data[i * e + t]! - p.data[j * e + t]!);
        dq[i * e + t] += d;
        dp[j * e + t] -= d;
      }
    }
  }
  return { dq: new Tensor(dq, q.shape), dp: new Tensor(dp, p.shape) };
});

function norms(x: Tensor, rows: number, e: number, eps: number): Float64Array {
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let t = 0; t < e; t++) s += x.data[i * e + t]! * x.data[i * e + t]!;
    out[i] = Math.max(Math.sqrt(s), eps);
  }
  return out;
}

registerKernel('cosine', 'cpu-ts', ({ q, p }, { eps }) => {
  const [m, k, e] = pair(q, p, 'cosine');
  const nq = norms(q, m, e, eps), np = norms(p, k, e, eps);
  const out = allocLike(q.data, m * k);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < k; j++) {
      let s = 0;
      for (let t = 0; t < e; t++) s += q.data[i * e + t]! * p.data[j * e + t]!;
      out[i * k + j] = s / (nq[i]! * np[j]!);
    }
  }
  return new Tensor(out, [m, k]);
});

registerKernel('cosineBackward', 'cpu-ts', ({ dc, q, p }, { eps }) => {
  const [m, k, e] = pair(q, p, 'cosineBackward');
  const nq = norms(q, m, e, eps), np = norms(p, k, e, eps);
  const dq = allocLike(q.data, m * e), dp = allocLike(q.data, k * e);
  for (let i = 0; i < m; i++) {
    // A norm clamped at eps is a constant, so it contributes no gradient.
    const qLive = nq[i]! > eps;
    for (let j = 0; j < k; j++) {
      const pLive = np[j]! > eps;
      let dot = 0;
      for (let t = 0; t < e; t++) dot += q.data[i * e + t]! * p.data[j * e + t]!;
      const g = dc.data[i * k + j]!, inv = 1 / (nq[i]! * np[j]!), c = dot * inv;
      for (let t = 0; t < e; t++) {
        const qt = q.data[i * e + t]!, pt = p.data[j * e + t]!;
        dq[i * e + t] += g * (pt * inv - (qLive ? (c * qt) / (nq[i]! * nq[i]!) : 0));
        dp[j * e + t] += g * (qt * inv - (pLive ? (c * pt) / (np[j]! * np[j]!) : 0));
      }
    }
  }
  return { dq: new Tensor(dq, q.shape), dp: new Tensor(dp, p.shape) };
});
