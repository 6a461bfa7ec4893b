/**
 * Host arrays crossing into an XLA executable, and the executor interface:
 * something that compiles an emitted Program and runs it on every replica.
 * Two executors implement it: PJRT through the evometa_pjrt addon (pjrt.ts)
 * and jaxlib through tools/xla_runner.py (jax-runner.ts, for verification).
 */
import type { ElemType, Program, TType } from './hlo.js';
import { numel, typeStr } from './hlo.js';

export type HostData = Float32Array | Float64Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array | Uint8Array;

export interface HostArray { dtype: ElemType; shape: readonly number[]; data: HostData }

export function hostArray(data: HostData, shape: readonly number[], dtype?: ElemType): HostArray {
  const dt = dtype ?? (data instanceof Float32Array ? 'f32' : data instanceof Float64Array ? 'f64' : data instanceof Int32Array ? 'i32'
    : data instanceof Uint32Array ? 'ui32' : data instanceof BigInt64Array ? 'i64' : data instanceof BigUint64Array ? 'ui64' : 'i1');
  if (data.length !== numel(shape)) throw new RangeError(`host array: ${data.length} elements for shape [${shape.join(', ')}]`);
  return { dtype: dt, shape: [...shape], data };
}

export function scalarU32(v: number): HostArray {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`expected a uint32, got ${v}`);
  return hostArray(Uint32Array.of(v), [], 'ui32');
}

export function bytesPerElement(d: ElemType): number {
  return d === 'f64' || d === 'i64' || d === 'ui64' ? 8 : d === 'i1' ? 1 : 4;
}

/** An empty typed array of the right kind for `t`. */
export function allocHost(t: TType): HostData {
  const n = numel(t.shape);
  switch (t.dtype) {
    case 'f32': return new Float32Array(n);
    case 'f64': return new Float64Array(n);
    case 'i32': return new Int32Array(n);
    case 'ui32': return new Uint32Array(n);
    case 'i64': return new BigInt64Array(n);
    case 'ui64': return new BigUint64Array(n);
    case 'i1': return new Uint8Array(n);
  }
}

/** A typed array of `t` over a copy of `bytes` (little-endian, as both executors deliver). */
export function fromBytes(bytes: Uint8Array, t: TType): HostData {
  const out = allocHost(t);
  const need = out.byteLength;
  if (bytes.byteLength !== need) throw new RangeError(`output ${typeStr(t)}: got ${bytes.byteLength} bytes, expected ${need}`);
  new Uint8Array(out.buffer, out.byteOffset, need).set(bytes);
  return out;
}

export function checkInputs(p: Program, perReplica: readonly (readonly HostArray[])[]): void {
  if (perReplica.length !== p.replicas) throw new RangeError(`program has ${p.replicas} replicas, got inputs for ${perReplica.length}`);
  perReplica.forEach((ins, r) => {
    if (ins.length !== p.inputs.length) throw new RangeError(`replica ${r}: program takes ${p.inputs.length} inputs, got ${ins.length}`);
    ins.forEach((a, i) => {
      const t = p.inputs[i]!;
      if (a.dtype !== t.dtype || a.shape.length !== t.shape.length || a.shape.some((d, k) => d !== t.shape[k])) {
        throw new RangeError(`replica ${r} input ${i}: expected ${typeStr(t)}, got ${typeStr({ shape: a.shape, dtype: a.dtype })}`);
      }
    });
  });
}

export interface XlaExecutor {
  /** e.g. 'cpu (jaxlib 0.10.2)', 'cuda', 'tpu'. */
  readonly platform: string;
  readonly deviceCount: number;
  /** Run `program` on replicas 0..R-1; inputs and outputs per replica. Compiled executables are cached by text. */
  run(program: Program, perReplica: readonly (readonly HostArray[])[]): Promise<HostArray[][]>;
  /** Blocking run, for per-op device calls (Device.run is synchronous). */
  runSync?(program: Program, perReplica: readonly (readonly HostArray[])[]): HostArray[][];
  close(): Promise<void>;
}
