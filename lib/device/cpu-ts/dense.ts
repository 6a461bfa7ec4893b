/**
 * cpu-ts: the dense ops (matmul, broadcasting add/mul and its adjoint sumTo). Sums
 * accumulate in float64 and are rounded once to the output's dtype.
 */
import { registerKernel } from '../registry.js';
import { Tensor, allocLike, sizeOf, type FloatArray } from '../../tensor/tensor.js';
import { broadcastStrides, matmulShape } from '../../tensor/shape.js';

function sameDtype(a: Tensor, b: Tensor, what: string): void {
  if (a.dtype !== b.dtype) throw new RangeError(`${what}: operands are ${a.dtype} and ${b.dtype}; both must have one dtype`);
}

registerKernel('matmul', 'cpu-ts', ({ a, b }, { transA, transB }) => {
  sameDtype(a, b, 'matmul');
  const { m, k, n } = matmulShape(a.shape, b.shape, transA, transB);
  const A = a.data, B = b.data, out = allocLike(A, m * n);
  if (!transB) {
    // Row i of the output as a sum of rows of b: out[i, :] = sum_p a(i, p) b[p, :].
    const acc = new Float64Array(n);
    for (let i = 0; i < m; i++) {
      acc.fill(0);
      for (let p = 0; p < k; p++) {
        const av = transA ? A[p * m + i]! : A[i * k + p]!;
        const row = p * n;
        for (let j = 0; j < n; j++) acc[j] = acc[j]! + av * B[row + j]!;
      }
      out.set(acc, i * n);
    }
  } else {
    // b is [N, K]: out[i, j] = <a(i, :), b[j, :]> over contiguous rows of b.
    const arow = new Float64Array(k);
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < k; p++) arow[p] = transA ? A[p * m + i]! : A[i * k + p]!;
      for (let j = 0; j < n; j++) {
        const base = j * k;
        let s = 0;
        for (let p = 0; p < k; p++) s += arow[p]! * B[base + p]!;
        out[i * n + j] = s;
      }
    }
  }
  return new Tensor(out, [m, n]);
});

/**
 * Row-major walk of `shape` in blocks of its last dimension: for block q (flat
 * elements [q * inner, (q + 1) * inner)), bases[q] is the offset of its first
 * element in a tensor broadcast to `shape` (strides from broadcastStrides), and
 * `step` the source stride along the last dimension (0 where it repeats).
 */
function broadcastBlocks(shape: readonly number[], strides: readonly number[]): { inner: number; step: number; bases: Float64Array } {
  const r = shape.length, total = sizeOf(shape);
  if (r === 0) return { inner: 1, step: 0, bases: new Float64Array(total === 1 ? [0] : []) };
  const inner = shape[r - 1]!, step = strides[r - 1]!;
  const blocks = inner === 0 ? 0 : total / inner;
  const bases = new Float64Array(blocks);
  const idx = new Array<number>(r).fill(0);
  let base = 0;
  for (let q = 0; q < blocks; q++) {
    bases[q] = base;
    for (let d = r - 2; d >= 0; d--) {
      idx[d]!++;
      base += strides[d]!;
      if (idx[d]! < shape[d]!) break;
      base -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return { inner, step, bases };
}

function binary(a: Tensor, b: Tensor, what: string, mul: boolean): Tensor {
  sameDtype(a, b, what);
  const A = a.data, B = b.data, out = allocLike(A, a.size);
  if (a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i])) {
    if (mul) for (let i = 0; i < out.length; i++) out[i] = A[i]! * B[i]!;
    else for (let i = 0; i < out.length; i++) out[i] = A[i]! + B[i]!;
    return new Tensor(out, a.shape);
  }
  const { inner, step, bases } = broadcastBlocks(a.shape, broadcastStrides(b.shape, a.shape, what));
  for (let q = 0; q < bases.length; q++) {
    const o = q * inner, bo = bases[q]!;
    if (mul) for (let j = 0; j < inner; j++) out[o + j] = A[o + j]! * B[bo + j * step]!;
    else for (let j = 0; j < inner; j++) out[o + j] = A[o + j]! + B[bo + j * step]!;
  }
  return new Tensor(out, a.shape);
}

registerKernel('add', 'cpu-ts', ({ a, b }) => binary(a, b, 'add', false));
registerKernel('mul', 'cpu-ts', ({ a, b }) => binary(a, b, 'mul', true));

registerKernel('sumTo', 'cpu-ts', ({ x }, { shape }) => {
  const strides = broadcastStrides(shape, x.shape, 'sumTo');
  const acc = new Float64Array(sizeOf(shape)), X = x.data;
  const { inner, step, bases } = broadcastBlocks(x.shape, strides);
  for (let q = 0; q < bases.length; q++) {
    const o = q * inner, bo = bases[q]!;
    for (let j = 0; j < inner; j++) acc[bo + j * step] = acc[bo + j * step]! + X[o + j]!;
  }
  const out: FloatArray = allocLike(X, acc.length);
  out.set(acc);
  return new Tensor(out, shape);
});
