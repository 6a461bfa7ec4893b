/**
 * The lowering registry: one StableHLO lowering per op of the contract,
 * registered by op name (a duplicate throws), and lowerOp(), which wraps one
 * op into a standalone program (each Tensor / Int32Array / number input a
 * parameter; outputs in the contract's order) and converts the results back.
 */
import type { OpAttrs, OpInputs, OpName, OpOutput } from '../../ops/contract.js';
import { Tensor } from '../../tensor/tensor.js';
import { FuncBuilder, moduleOf, ttype, type FloatType, type Program, type TType, type Value } from './hlo.js';
import { hostArray, type HostArray } from './executor.js';

/** An op's inputs/outputs with every Tensor, Int32Array and number replaced by an SSA value. */
export type Lowered<T> = T extends Tensor ? Value : T extends Int32Array ? Value : T extends number ? Value
  : T extends readonly number[] ? T : T extends object ? { [K in keyof T]: Lowered<T[K]> } : T;

export interface LowerCtx {
  fb: FuncBuilder;
  /** Floating type of the op (its first tensor input's dtype). */
  ftype: FloatType;
}

export type Lowering<K extends OpName> = (ctx: LowerCtx, inputs: Lowered<OpInputs<K>>, attrs: OpAttrs<K>) => Lowered<OpOutput<K>>;

/** Host-side validation of concrete inputs that the program cannot check (label and index ranges). */
export type InputCheck<K extends OpName> = (inputs: OpInputs<K>, attrs: OpAttrs<K>) => void;

const lowerings = new Map<OpName, Lowering<OpName>>();
const checks = new Map<OpName, InputCheck<OpName>>();

export function registerLowering<K extends OpName>(op: K, fn: Lowering<K>, check?: InputCheck<K>): void {
  if (lowerings.has(op)) throw new Error(`lowering for ${op} is already registered`);
  lowerings.set(op, fn as unknown as Lowering<OpName>);
  if (check) checks.set(op, check as unknown as InputCheck<OpName>);
}

export function getLowering<K extends OpName>(op: K): Lowering<K> {
  const l = lowerings.get(op);
  if (!l) throw new Error(`xla: no StableHLO lowering for op ${op}`);
  return l as unknown as Lowering<K>;
}

export function hasLowering(op: OpName): boolean {
  return lowerings.has(op);
}

export function loweredOps(): OpName[] {
  return [...lowerings.keys()];
}

/** Ops whose contract output is a plain number, computed on the host from the program's rank-0 output. */
const NUMBER_OUTPUT = new Map<OpName, (v: number, inputs: Record<string, unknown>) => number>([
  // accuracy's program counts hits; the fraction is taken in float64 like the reference.
  ['accuracy', (hits, inputs) => { const m = (inputs.scores as Tensor).shape[0]!; return m === 0 ? 0 : hits / m; }],
]);

export interface LoweredOp {
  program: Program;
  /** Host arrays for the program's parameters, in order. */
  args: HostArray[];
  /** Converts the program's outputs back to the contract's output. */
  unpack(outs: readonly HostArray[]): unknown;
}

/** Wrap op `op` into a one-op program for these concrete inputs. */
export function lowerOp<K extends OpName>(op: K, inputs: OpInputs<K>, attrs: OpAttrs<K>): LoweredOp {
  (checks.get(op) as InputCheck<K> | undefined)?.(inputs, attrs);
  const entries = Object.entries(inputs as Record<string, unknown>).filter(([, v]) => v !== undefined);
  const firstTensor = entries.find(([, v]) => v instanceof Tensor)?.[1] as Tensor | undefined;
  const ftype: FloatType = firstTensor?.dtype === 'float64' ? 'f64' : 'f32';
  const types: TType[] = [];
  const args: HostArray[] = [];
  for (const [name, v] of entries) {
    if (v instanceof Tensor) {
      if (v.dtype !== firstTensor!.dtype) throw new RangeError(`xla ${op}: input ${name} is ${v.dtype}, ${firstTensor!.dtype} expected`);
      types.push(ttype(v.shape, ftype));
      args.push(hostArray(v.data, v.shape, ftype));
    } else if (v instanceof Int32Array) {
      types.push(ttype([v.length], 'i32'));
      args.push(hostArray(v, [v.length], 'i32'));
    } else if (typeof v === 'number') {
      types.push(ttype([], ftype));
      const d = ftype === 'f64' ? Float64Array.of(v) : Float32Array.of(v);
      args.push(hostArray(d, [], ftype));
    } else {
      throw new TypeError(`xla ${op}: input ${name} has unsupported type`);
    }
  }
  const fb = new FuncBuilder('main', types);
  const lowered: Record<string, Value> = {};
  entries.forEach(([name], i) => { lowered[name] = fb.params[i]!; });
  const out = getLowering(op)({ fb, ftype }, lowered as Lowered<OpInputs<K>>, attrs) as unknown;
  const isValue = (x: unknown): x is Value => typeof x === 'object' && x !== null && 'name' in x && 'type' in x;
  const keys = isValue(out) ? [] : Object.keys(out as object);
  const results: Value[] = isValue(out) ? [out] : keys.map((k) => (out as Record<string, Value>)[k]!);
  fb.ret(results);
  const program = moduleOf(fb, `evometa_${op}`);
  const convert = (v: HostArray): unknown => {
    const num = NUMBER_OUTPUT.get(op);
    if (num) return num(Number((v.data as Float32Array)[0]), inputs as Record<string, unknown>);
    if (v.dtype === 'i32') return v.data as Int32Array;
    return new Tensor(v.data as Float32Array | Float64Array, v.shape);
  };
  return {
    program,
    args,
    unpack(outs) {
      if (outs.length !== results.length) throw new Error(`xla ${op}: ${outs.length} outputs, expected ${results.length}`);
      if (isValue(out)) return convert(outs[0]!);
      const r: Record<string, unknown> = {};
      keys.forEach((k, i) => { r[k] = convert(outs[i]!); });
      return r;
    },
  };
}
