/** Dense tensors: a typed array in row-major (C) order plus a shape. */
export type DType = 'float32' | 'float64';
export type FloatArray = Float32Array | Float64Array;

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`invalid dimension ${d} in shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

export function dtypeOf(a: FloatArray): DType {
  return a instanceof Float64Array ? 'float64' : 'float32';
}

export function allocLike(a: FloatArray, n: number): FloatArray {
  return a instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
}

export function alloc(dtype: DType, n: number): FloatArray {
  return dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
}

/** A dense float32 or float64 array with a shape (row-major); what DirectOps computes on. */
export class Tensor {
  readonly data: FloatArray;
  readonly shape: readonly number[];

  constructor(data: FloatArray, shape: readonly number[]) {
    const n = sizeOf(shape);
    if (data.length !== n) {
      throw new RangeError(`tensor data has ${data.length} elements but shape [${shape.join(', ')}] needs ${n}`);
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
  }

  get dtype(): DType {
    return dtypeOf(this.data);
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  static zeros(shape: readonly number[], dtype: DType = 'float32'): Tensor {
    return new Tensor(alloc(dtype, sizeOf(shape)), shape);
  }

  static from(values: ArrayLike<number>, shape: readonly number[], dtype: DType = 'float32'): Tensor {
    const d = alloc(dtype, values.length);
    d.set(values as ArrayLike<number>);
    return new Tensor(d, shape);
  }

  /** Same data, new shape (no copy). */
  reshape(shape: readonly number[]): Tensor {
    return new Tensor(this.data, shape);
  }

  /** A copy in the given dtype. */
  cast(dtype: DType): Tensor {
    const d = alloc(dtype, this.size);
    d.set(this.data);
    return new Tensor(d, this.shape);
  }

  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape);
  }
}

export function assertShape(t: Tensor, expected: readonly (number | null)[], what: string): void {
  const ok = t.shape.length === expected.length && expected.every((e, i) => e === null || e === t.shape[i]);
  if (!ok) {
    const exp = expected.map((e) => (e === null ? '?' : String(e))).join(', ');
    throw new RangeError(`${what}: expected shape [${exp}], got [${t.shape.join(', ')}]`);
  }
}
