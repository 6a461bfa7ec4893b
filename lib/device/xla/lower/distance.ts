/** xla: squared Euclidean distance and cosine similarity between queries and prototypes, with backwards. */
import { registerLowering } from '../lowering.js';
import type { FuncBuilder, Value } from '../hlo.js';

function pair(q: Value, p: Value, what: string): [number, number, number] {
  if (q.rank !== 2 || p.rank !== 2 || q.shape[1] !== p.shape[1]) {
    throw new RangeError(`${what}: expected q [M, E] and p [K, E], got [${q.shape.join(', ')}] and [${p.shape.join(', ')}]`);
  }
  return [q.shape[0]!, p.shape[0]!, q.shape[1]!];
}

/** diff[..., m, k, e] = q[..., m, e] - p[..., k, e] for q [..., M, E], p [..., K, E] (leading batch dims shared). */
export function pairDiff(fb: FuncBuilder, q: Value, p: Value): Value {
  const lead = q.shape.slice(0, -2);
  const m = q.shape[q.rank - 2]!, e = q.shape[q.rank - 1]!, k = p.shape[p.rank - 2]!;
  const shape = [...lead, m, k, e];
  const b = lead.map((_, i) => i), r = lead.length;
  return fb.sub(fb.broadcastInDim(q, shape, [...b, r, r + 2]), fb.broadcastInDim(p, shape, [...b, r + 1, r + 2]));
}

/** d[..., m, k] = sum_e (q - p)^2, summed directly as the contract defines it (no |q|^2 + |p|^2 - 2 q.p cancellation). */
export function sqDist(fb: FuncBuilder, q: Value, p: Value): Value {
  const d = pairDiff(fb, q, p);
  return fb.reduce(fb.mul(d, d), 'add', [d.rank - 1]);
}

registerLowering('sqEuclidean', ({ fb }, { q, p }) => {
  pair(q, p, 'sqEuclidean');
  return sqDist(fb, q, p);
});

registerLowering('sqEuclideanBackward', ({ fb }, { dd, q, p }) => {
  const [m, k, e] = pair(q, p, 'sqEuclideanBackward');
  if (dd.shape.join() !== [m, k].join()) throw new RangeError(`sqEuclideanBackward dd: expected shape [${m}, ${k}], got [${dd.shape.join(', ')}]`);
  const g = fb.broadcastInDim(fb.mulC(dd, 2), [m, k, e], [0, 1]);
  const t = fb.mul(g, pairDiff(fb, q, p));
  return { dq: fb.reduce(t, 'add', [1]), dp: fb.unary('negate', fb.reduce(t, 'add', [0])) };
});

function norms(fb: FuncBuilder, x: Value, eps: number): Value {
  return fb.max(fb.unary('sqrt', fb.reduce(fb.mul(x, x), 'add', [1])), fb.constant(eps, x.dtype));
}

registerLowering('cosine', ({ fb }, { q, p }, { eps }) => {
  const [m, k] = pair(q, p, 'cosine');
  const nq = norms(fb, q, eps), np = norms(fb, p, eps);
  const dot = fb.dotGeneral(q, p, { lhsContract: [1], rhsContract: [1] });
  return fb.div(dot, fb.mul(fb.broadcastInDim(nq, [m, k], [0]), fb.broadcastInDim(np, [m, k], [1])));
});

registerLowering('cosineBackward', ({ fb }, { dc, q, p }, { eps }) => {
  const [m, k, e] = pair(q, p, 'cosineBackward');
  if (dc.shape.join() !== [m, k].join()) throw new RangeError(`cosineBackward dc: expected shape [${m}, ${k}], got [${dc.shape.join(', ')}]`);
  const nq = norms(fb, q, eps), np = norms(fb, p, eps);
  const inv = fb.div(fb.splat(1, q.dtype, [m, k]), fb.mul(fb.broadcastInDim(nq, [m, k], [0]), fb.broadcastInDim(np, [m, k], [1])));
  const c = fb.mul(fb.dotGeneral(q, p, { lhsContract: [1], rhsContract: [1] }), inv);
  const gInv = fb.mul(dc, inv), gc = fb.mul(dc, c);
  // A norm clamped at eps is a constant: it contributes no gradient (live = norm > eps).
  const live = (n: Value, len: number): Value => fb.convert(fb.compare('GT', n, fb.splat(eps, n.dtype, [len])), n.dtype);
  const wq = fb.div(fb.mul(live(nq, m), fb.reduce(gc, 'add', [1])), fb.mul(nq, nq));
  const wp = fb.div(fb.mul(live(np, k), fb.reduce(gc, 'add', [0])), fb.mul(np, np));
  const dq = fb.sub(fb.dotGeneral(gInv, p, { lhsContract: [1], rhsContract: [0] }), fb.mul(q, fb.broadcastInDim(wq, [m, e], [0])));
  const dp = fb.sub(fb.dotGeneral(gInv, q, { lhsContract: [0], rhsContract: [0] }), fb.mul(p, fb.broadcastInDim(wp, [k, e], [0])));
  return { dq, dp };
});
