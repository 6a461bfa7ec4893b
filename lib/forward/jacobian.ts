/**
 * Forward accumulation of a Jacobian d out / d params, K columns (basis
 * directions) per pass. The Jacobian is stored transposed (column-major in
 * the usual sense): column j, the tangent of `out` along e_j, is contiguous at
 * [j * rows, (j + 1) * rows). That is the layout the meta-gradient contracts.
 */
import type { Device } from '../device/registry.js';
import { alloc, type DType, type FloatArray, type Tensor } from '../tensor/tensor.js';
import { DualOps, basisLeaf, type Dual } from './dual.js';

export interface ParamEntry { name: string; offset: number; size: number; shape: readonly number[] }

export interface StoredJacobian {
  rows: number;
  cols: number;
  /** cols x rows: column j at [j * rows, (j + 1) * rows). */
  data: FloatArray;
}

export function allocJacobian(rows: number, cols: number, dtype: DType): StoredJacobian {
  const n = rows * cols;
  if (!Number.isSafeInteger(n) || n > 2 ** 32) throw new RangeError(`Jacobian ${rows} x ${cols} is too large to allocate (${n} elements)`);
  return { rows, cols, data: alloc(dtype, n) };
}

/** Contiguous column ranges [start, end) covering `ranges` (default: all D columns), each split into pieces of at most k. */
export function columnChunks(d: number, k: number, ranges?: readonly (readonly [number, number])[]): [number, number][] {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`chunk size must be a positive integer, got ${k}`);
  const out: [number, number][] = [];
  for (const [a, b] of ranges ?? [[0, d]]) {
    if (!(Number.isInteger(a) && Number.isInteger(b) && a >= 0 && a <= b && b <= d)) throw new RangeError(`column range [${a}, ${b}) outside [0, ${d})`);
    for (let s = a; s < b; s += k) out.push([s, Math.min(b, s + k)]);
  }
  return out;
}

export interface JacobianPassOptions {
  chunk: number;
  ranges?: readonly (readonly [number, number])[];
}

/**
 * Forward-accumulate d f(params) / d params into `into` (rows = f's output size).
 * `evaluate(ops, leaf)` computes f with `leaf(name, view)` turning each
 * parameter view into a Dual. Returns the value of f from the last pass.
 */
export function forwardJacobian(
  device: Device, entries: readonly ParamEntry[], into: StoredJacobian,
  evaluate: (ops: DualOps, leaf: (name: string, t: Tensor) => Dual) => Dual,
  opts: JacobianPassOptions,
): void {
  for (const [s, e] of columnChunks(into.cols, opts.chunk, opts.ranges)) {
    const k = e - s;
    const ops = new DualOps(device, k);
    const out = evaluate(ops, basisLeaf(entries, s, k));
    if (out.v.size !== into.rows) throw new RangeError(`forwardJacobian: output has ${out.v.size} elements, Jacobian has ${into.rows} rows`);
    if (out.t) into.data.set(out.t.data, s * into.rows);
    else into.data.fill(0, s * into.rows, e * into.rows);
  }
}
