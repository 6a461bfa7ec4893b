import { Rng } from '../../lib/rng/philox.js';
import { Tensor, type DType } from '../../lib/tensor/tensor.js';

/** Uniform values in [lo, hi), seeded. */
export function randTensor(rng: Rng, shape: number[], dtype: DType = 'float64', lo = -1, hi = 1): Tensor {
  const t = Tensor.zeros(shape, dtype);
  for (let i = 0; i < t.size; i++) t.data[i] = lo + (hi - lo) * rng.uniform();
  return t;
}

/** Values in [-1, 1] kept at least `gap` away from zero (away from the ReLU kink). */
export function awayFromZero(rng: Rng, shape: number[], gap = 0.05, dtype: DType = 'float64'): Tensor {
  const t = Tensor.zeros(shape, dtype);
  for (let i = 0; i < t.size; i++) {
    const v = gap + (1 - gap) * rng.uniform();
    t.data[i] = rng.uniform() < 0.5 ? -v : v;
  }
  return t;
}

/** A random permutation of distinct, well-separated values (no max-pool ties). */
export function distinctTensor(rng: Rng, shape: number[], dtype: DType = 'float64'): Tensor {
  const t = Tensor.zeros(shape, dtype);
  const perm = Array.from({ length: t.size }, (_, i) => i);
  rng.shuffle(perm);
  for (let i = 0; i < t.size; i++) t.data[i] = (perm[i]! - t.size / 2) / t.size * 4 + 0.001;
  return t;
}

export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-6): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(floor, Math.abs(b[i]!)));
  return m;
}

export function maxAbsErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** max_i |a_i - b_i| / max(max_i |b_i|, floor): error relative to the reference's largest entry. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-12): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / Math.max(den, floor);
}

/** Central finite differences of f at x (float64); x is nudged in place and restored. */
export function centralDiff(x: Float64Array, f: (x: Float64Array) => number, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i]!;
    x[i] = keep + h;
    const p = f(x);
    x[i] = keep - h;
    const m = f(x);
    x[i] = keep;
    g[i] = (p - m) / (2 * h);
  }
  return g;
}
