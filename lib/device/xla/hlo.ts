/**
 * A small StableHLO text emitter: SSA values with tensor types, one builder
 * per function, and a module wrapper carrying num_replicas / num_partitions.
 * The text is what XLA (through PJRT or jaxlib) parses as program format "mlir".
 *
 * Only the ops the lowerings need are here; each method validates shapes and
 * throws a RangeError naming the op and the shapes, so a bad lowering fails at
 * emission rather than inside the plugin.
 */

export type ElemType = 'f32' | 'f64' | 'i1' | 'i32' | 'i64' | 'ui32' | 'ui64';
export type FloatType = 'f32' | 'f64';

export interface TType { readonly shape: readonly number[]; readonly dtype: ElemType }

export class Value {
  constructor(readonly name: string, readonly type: TType) {}
  get shape(): readonly number[] { return this.type.shape; }
  get dtype(): ElemType { return this.type.dtype; }
  get rank(): number { return this.type.shape.length; }
}

export function ttype(shape: readonly number[], dtype: ElemType): TType {
  for (const d of shape) if (!Number.isInteger(d) || d < 0) throw new RangeError(`hlo: invalid dimension ${d} in [${shape.join(', ')}]`);
  return { shape: [...shape], dtype };
}

export function typeStr(t: TType): string {
  return t.shape.length === 0 ? `tensor<${t.dtype}>` : `tensor<${t.shape.join('x')}x${t.dtype}>`;
}

const isFloat = (d: ElemType): d is FloatType => d === 'f32' || d === 'f64';
const isUnsigned = (d: ElemType): boolean => d === 'ui32' || d === 'ui64';
const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const list = (xs: readonly number[]): string => `[${xs.join(', ')}]`;
const arr = (xs: readonly number[]): string => (xs.length ? `array<i64: ${xs.join(', ')}>` : 'array<i64>');

/** A literal for a dense<> attribute of the given element type (exact round-trip for f64 and f32). */
export function literal(v: number, dtype: ElemType): string {
  if (dtype === 'i1') return v ? 'true' : 'false';
  if (!isFloat(dtype)) {
    if (!Number.isInteger(v)) throw new RangeError(`hlo: integer constant expected for ${dtype}, got ${v}`);
    return String(v);
  }
  if (Number.isFinite(v)) return dtype === 'f32' ? Math.fround(v).toPrecision(9) : v.toPrecision(17);
  const bits = dtype === 'f32'
    ? (Number.isNaN(v) ? '0x7FC00000' : v > 0 ? '0x7F800000' : '0xFF800000')
    : (Number.isNaN(v) ? '0x7FF8000000000000' : v > 0 ? '0x7FF0000000000000' : '0xFFF0000000000000');
  return bits;
}

export type BinaryOp = 'add' | 'subtract' | 'multiply' | 'divide' | 'maximum' | 'minimum' | 'and' | 'or' | 'xor'
  | 'shift_left' | 'shift_right_logical' | 'remainder' | 'power';
export type UnaryOp = 'negate' | 'exponential' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'floor' | 'count_leading_zeros' | 'not' | 'tanh' | 'cosine' | 'sine';
export type CompareDir = 'EQ' | 'NE' | 'LT' | 'LE' | 'GT' | 'GE';
export type ReduceOp = 'add' | 'maximum' | 'minimum';

export interface DotDims { lhsBatch?: number[]; rhsBatch?: number[]; lhsContract: number[]; rhsContract: number[] }

export interface ConvOpts {
  stride?: [number, number];
  /** [[top, bottom], [left, right]] */
  pad?: [[number, number], [number, number]];
  lhsDilate?: [number, number];
  rhsDilate?: [number, number];
  featureGroups?: number;
  batchGroups?: number;
  /** Dimension numbers; default NCHW x OIHW -> NCHW. */
  dims?: { lhs: string; rhs: string; out: string };
}

export class FuncBuilder {
  private readonly body: string[] = [];
  private next = 0;
  readonly params: Value[];
  private results: Value[] | undefined;

  constructor(readonly name: string, paramTypes: readonly TType[]) {
    this.params = paramTypes.map((t, i) => new Value(`%arg${i}`, t));
  }

  private emit(rhs: string, type: TType): Value {
    const v = new Value(`%v${this.next++}`, type);
    this.body.push(`    ${v.name} = ${rhs}`);
    return v;
  }

  constant(v: number, dtype: ElemType, shape: readonly number[] = []): Value {
    const t = ttype(shape, dtype);
    return this.emit(`stablehlo.constant dense<${literal(v, dtype)}> : ${typeStr(t)}`, t);
  }

  /** A constant tensor from explicit values (row-major). */
  constantArray(values: ArrayLike<number>, dtype: ElemType, shape: readonly number[]): Value {
    const t = ttype(shape, dtype);
    if (values.length !== numel(shape)) throw new RangeError(`hlo constantArray: ${values.length} values for shape [${shape.join(', ')}]`);
    const flat = Array.from(values, (x) => literal(x, dtype));
    return this.emit(`stablehlo.constant dense<${shape.length === 0 ? flat[0] : `[${flat.join(', ')}]`}> : ${typeStr(t)}`, t);
  }

  /** Broadcast a scalar (or same-shape value) to `shape`. */
  splat(v: number, dtype: ElemType, shape: readonly number[]): Value {
    const c = this.constant(v, dtype);
    return shape.length === 0 ? c : this.broadcastInDim(c, shape, []);
  }

  broadcastInDim(a: Value, shape: readonly number[], dims: readonly number[]): Value {
    if (dims.length !== a.rank) throw new RangeError(`hlo broadcast_in_dim: ${dims.length} dims for rank-${a.rank} operand`);
    dims.forEach((d, i) => {
      if (!(d >= 0 && d < shape.length) || (a.shape[i] !== 1 && a.shape[i] !== shape[d])) {
        throw new RangeError(`hlo broadcast_in_dim: operand [${a.shape.join(', ')}] dims ${list(dims)} do not fit [${shape.join(', ')}]`);
      }
    });
    const t = ttype(shape, a.dtype);
    return this.emit(`stablehlo.broadcast_in_dim ${a.name}, dims = ${list(dims)} : (${typeStr(a.type)}) -> ${typeStr(t)}`, t);
  }

  /** Numpy-style trailing-aligned broadcast of `a` to `shape`. */
  broadcastTo(a: Value, shape: readonly number[]): Value {
    if (sameShape(a.shape, shape)) return a;
    const off = shape.length - a.rank;
    if (off < 0) throw new RangeError(`hlo broadcastTo: cannot broadcast [${a.shape.join(', ')}] to [${shape.join(', ')}]`);
    return this.broadcastInDim(a, shape, a.shape.map((_, i) => i + off));
  }

  binary(op: BinaryOp, a: Value, b: Value): Value {
    if (a.dtype !== b.dtype) throw new RangeError(`hlo ${op}: element types differ (${a.dtype} vs ${b.dtype})`);
    if (!sameShape(a.shape, b.shape)) {
      if (a.rank === 0) a = this.broadcastTo(a, b.shape);
      else if (b.rank === 0) b = this.broadcastTo(b, a.shape);
      else throw new RangeError(`hlo ${op}: shapes differ ([${a.shape.join(', ')}] vs [${b.shape.join(', ')}])`);
    }
    return this.emit(`stablehlo.${op} ${a.name}, ${b.name} : ${typeStr(a.type)}`, a.type);
  }

  add(a: Value, b: Value): Value { return this.binary('add', a, b); }
  sub(a: Value, b: Value): Value { return this.binary('subtract', a, b); }
  mul(a: Value, b: Value): Value { return this.binary('multiply', a, b); }
  div(a: Value, b: Value): Value { return this.binary('divide', a, b); }
  max(a: Value, b: Value): Value { return this.binary('maximum', a, b); }
  min(a: Value, b: Value): Value { return this.binary('minimum', a, b); }
  /** a (op) scalar constant c. */
  addC(a: Value, c: number): Value { return this.add(a, this.constant(c, a.dtype)); }
  mulC(a: Value, c: number): Value { return this.mul(a, this.constant(c, a.dtype)); }

  unary(op: UnaryOp, a: Value): Value {
    return this.emit(`stablehlo.${op} ${a.name} : ${typeStr(a.type)}`, a.type);
  }

  compare(dir: CompareDir, a: Value, b: Value): Value {
    if (a.dtype !== b.dtype) throw new RangeError(`hlo compare: element types differ (${a.dtype} vs ${b.dtype})`);
    if (!sameShape(a.shape, b.shape)) {
      if (a.rank === 0) a = this.broadcastTo(a, b.shape);
      else if (b.rank === 0) b = this.broadcastTo(b, a.shape);
      else throw new RangeError(`hlo compare: shapes differ ([${a.shape.join(', ')}] vs [${b.shape.join(', ')}])`);
    }
    const kind = isFloat(a.dtype) ? 'FLOAT' : isUnsigned(a.dtype) ? 'UNSIGNED' : 'SIGNED';
    const t = ttype(a.shape, 'i1');
    return this.emit(`stablehlo.compare ${dir}, ${a.name}, ${b.name}, ${kind} : (${typeStr(a.type)}, ${typeStr(b.type)}) -> ${typeStr(t)}`, t);
  }

  select(pred: Value, a: Value, b: Value): Value {
    if (!sameShape(a.shape, b.shape) || a.dtype !== b.dtype) throw new RangeError(`hlo select: branches differ ([${a.shape.join(', ')}] ${a.dtype} vs [${b.shape.join(', ')}] ${b.dtype})`);
    if (pred.rank !== 0 && !sameShape(pred.shape, a.shape)) throw new RangeError(`hlo select: predicate [${pred.shape.join(', ')}] vs branches [${a.shape.join(', ')}]`);
    return this.emit(`stablehlo.select ${pred.name}, ${a.name}, ${b.name} : ${pred.rank === 0 && a.rank !== 0 ? `(${typeStr(pred.type)}, ${typeStr(a.type)}, ${typeStr(b.type)}) -> ${typeStr(a.type)}` : `${typeStr(pred.type)}, ${typeStr(a.type)}`}`, a.type);
  }

  convert(a: Value, dtype: ElemType): Value {
    if (a.dtype === dtype) return a;
    const t = ttype(a.shape, dtype);
    return this.emit(`stablehlo.convert ${a.name} : (${typeStr(a.type)}) -> ${typeStr(t)}`, t);
  }

  bitcastConvert(a: Value, dtype: ElemType): Value {
    const t = ttype(a.shape, dtype);
    return this.emit(`stablehlo.bitcast_convert ${a.name} : (${typeStr(a.type)}) -> ${typeStr(t)}`, t);
  }

  reshape(a: Value, shape: readonly number[]): Value {
    if (numel(shape) !== numel(a.shape)) throw new RangeError(`hlo reshape: [${a.shape.join(', ')}] has ${numel(a.shape)} elements, [${shape.join(', ')}] needs ${numel(shape)}`);
    if (sameShape(a.shape, shape)) return a;
    const t = ttype(shape, a.dtype);
    return this.emit(`stablehlo.reshape ${a.name} : (${typeStr(a.type)}) -> ${typeStr(t)}`, t);
  }

  transpose(a: Value, perm: readonly number[]): Value {
    if (perm.length !== a.rank || [...perm].sort((x, y) => x - y).some((p, i) => p !== i)) throw new RangeError(`hlo transpose: bad permutation ${list(perm)} for rank ${a.rank}`);
    const t = ttype(perm.map((p) => a.shape[p]!), a.dtype);
    return this.emit(`stablehlo.transpose ${a.name}, dims = ${list(perm)} : (${typeStr(a.type)}) -> ${typeStr(t)}`, t);
  }

  slice(a: Value, start: readonly number[], limit: readonly number[], strides?: readonly number[]): Value {
    const st = strides ?? start.map(() => 1);
    if (start.length !== a.rank || limit.length !== a.rank || st.length !== a.rank) throw new RangeError(`hlo slice: index lists do not match rank ${a.rank}`);
    const shape = start.map((s, i) => {
      if (!(s >= 0 && limit[i]! <= a.shape[i]! && s <= limit[i]!)) throw new RangeError(`hlo slice: [${s}, ${limit[i]}) outside dimension ${i} of size ${a.shape[i]}`);
      return Math.ceil((limit[i]! - s) / st[i]!);
    });
    const t = ttype(shape, a.dtype);
    return this.emit(`stablehlo.slice ${a.name} [${start.map((s, i) => `${s}:${limit[i]}${st[i] !== 1 ? `:${st[i]}` : ''}`).join(', ')}] : (${typeStr(a.type)}) -> ${typeStr(t)}`, t);
  }

  reverse(a: Value, dims: readonly number[]): Value {
    return this.emit(`stablehlo.reverse ${a.name}, dims = ${list(dims)} : ${typeStr(a.type)}`, a.type);
  }

  concatenate(vals: readonly Value[], dim: number): Value {
    if (vals.length === 1) return vals[0]!;
    const first = vals[0]!;
    const shape = [...first.shape];
    shape[dim] = vals.reduce((s, v) => s + v.shape[dim]!, 0);
    const t = ttype(shape, first.dtype);
    return this.emit(`stablehlo.concatenate ${vals.map((v) => v.name).join(', ')}, dim = ${dim} : (${vals.map((v) => typeStr(v.type)).join(', ')}) -> ${typeStr(t)}`, t);
  }

  iota(shape: readonly number[], dim: number, dtype: ElemType): Value {
    const t = ttype(shape, dtype);
    return this.emit(`stablehlo.iota dim = ${dim} : ${typeStr(t)}`, t);
  }

  reduce(a: Value, op: ReduceOp, dims: readonly number[], init?: number): Value {
    const i0 = init ?? (op === 'add' ? 0 : op === 'maximum' ? -Infinity : Infinity);
    const c = this.constant(i0, a.dtype);
    const t = ttype(a.shape.filter((_, i) => !dims.includes(i)), a.dtype);
    return this.emit(`stablehlo.reduce(${a.name} init: ${c.name}) applies stablehlo.${op} across dimensions = ${list(dims)} : (${typeStr(a.type)}, ${typeStr(c.type)}) -> ${typeStr(t)}`, t);
  }

  reduceWindow(a: Value, op: ReduceOp, window: readonly number[], strides: readonly number[], init?: number): Value {
    const i0 = init ?? (op === 'add' ? 0 : op === 'maximum' ? -Infinity : Infinity);
    const c = this.constant(i0, a.dtype);
    const shape = a.shape.map((d, i) => Math.floor((d - window[i]!) / strides[i]!) + 1);
    const t = ttype(shape, a.dtype);
    const s = typeStr(ttype([], a.dtype));
    const ones = a.shape.map(() => 1);
    const v = new Value(`%v${this.next++}`, t);
    this.body.push(
      `    ${v.name} = "stablehlo.reduce_window"(${a.name}, ${c.name}) <{base_dilations = ${arr(ones)}, padding = dense<0> : tensor<${a.rank}x2xi64>, window_dilations = ${arr(ones)}, window_dimensions = ${arr(window)}, window_strides = ${arr(strides)}}> ({`,
      `    ^bb0(%ra: ${s}, %rb: ${s}):`,
      `      %rr = stablehlo.${op} %ra, %rb : ${s}`,
      `      stablehlo.return %rr : ${s}`,
      `    }) : (${typeStr(a.type)}, ${s}) -> ${typeStr(t)}`,
    );
    return v;
  }

  dotGeneral(a: Value, b: Value, d: DotDims): Value {
    const lb = d.lhsBatch ?? [], rb = d.rhsBatch ?? [];
    if (lb.length !== rb.length || d.lhsContract.length !== d.rhsContract.length) throw new RangeError('hlo dot_general: batch/contracting dimension lists differ in length');
    lb.forEach((x, i) => { if (a.shape[x] !== b.shape[rb[i]!]) throw new RangeError(`hlo dot_general: batch dims differ ([${a.shape.join(', ')}] vs [${b.shape.join(', ')}])`); });
    d.lhsContract.forEach((x, i) => { if (a.shape[x] !== b.shape[d.rhsContract[i]!]) throw new RangeError(`hlo dot_general: contracting dims differ ([${a.shape.join(', ')}] vs [${b.shape.join(', ')}])`); });
    const free = (v: Value, batch: number[], con: number[]): number[] => v.shape.filter((_, i) => !batch.includes(i) && !con.includes(i));
    const t = ttype([...lb.map((x) => a.shape[x]!), ...free(a, lb, d.lhsContract), ...free(b, rb, d.rhsContract)], a.dtype);
    const batching = lb.length ? `batching_dims = ${list(lb)} x ${list(rb)}, ` : '';
    return this.emit(`stablehlo.dot_general ${a.name}, ${b.name}, ${batching}contracting_dims = ${list(d.lhsContract)} x ${list(d.rhsContract)}, precision = [HIGHEST, HIGHEST] : (${typeStr(a.type)}, ${typeStr(b.type)}) -> ${typeStr(t)}`, t);
  }

  /** 2-D convolution; `outShape` is computed from the dimension numbers. */
  convolution(x: Value, w: Value, o: ConvOpts = {}): Value {
    const dims = o.dims ?? { lhs: 'bf01', rhs: 'oi01', out: 'bf01' };
    const stride = o.stride ?? [1, 1], pad = o.pad ?? [[0, 0], [0, 0]];
    const ld = o.lhsDilate ?? [1, 1], rd = o.rhsDilate ?? [1, 1];
    const fg = o.featureGroups ?? 1, bg = o.batchGroups ?? 1;
    const at = (v: Value, spec: string, ch: string): number => v.shape[spec.indexOf(ch)]!;
    const n = at(x, dims.lhs, 'b'), cin = at(x, dims.lhs, 'f'), cout = at(w, dims.rhs, 'o'), wi = at(w, dims.rhs, 'i');
    if (cin !== wi * fg) throw new RangeError(`hlo convolution: input has ${cin} features, kernel expects ${wi} x ${fg} groups`);
    const sp = [0, 1].map((k) => {
      const ins = (at(x, dims.lhs, String(k)) - 1) * ld[k]! + 1 + pad[k]![0] + pad[k]![1];
      const ks = (at(w, dims.rhs, String(k)) - 1) * rd[k]! + 1;
      const out = Math.floor((ins - ks) / stride[k]!) + 1;
      if (out < 1) throw new RangeError(`hlo convolution: empty output along spatial dim ${k}`);
      return out;
    });
    const outShape: number[] = [];
    for (const ch of dims.out) outShape.push(ch === 'b' ? n / bg : ch === 'f' ? cout : sp[Number(ch)]!);
    const t = ttype(outShape, x.dtype);
    const fmt = (s: string): string => `[${s.split('').join(', ')}]`;
    return this.emit(
      `stablehlo.convolution(${x.name}, ${w.name}) dim_numbers = ${fmt(dims.lhs)}x${fmt(dims.rhs)}->${fmt(dims.out)}, ` +
      `window = {stride = ${list(stride)}, pad = [${pad.map((p) => list(p)).join(', ')}], lhs_dilate = ${list(ld)}, rhs_dilate = ${list(rd)}, reverse = [false, false]} ` +
      `{batch_group_count = ${bg} : i64, feature_group_count = ${fg} : i64, precision_config = [#stablehlo<precision HIGHEST>, #stablehlo<precision HIGHEST>]} : (${typeStr(x.type)}, ${typeStr(w.type)}) -> ${typeStr(t)}`,
      t,
    );
  }

  /** out = operand with updates[i] added at flat position indices[i] (operand rank 1, indices [L, 1] i32). */
  scatterAdd(operand: Value, indices: Value, updates: Value): Value {
    const s = typeStr(ttype([], operand.dtype));
    const v = new Value(`%v${this.next++}`, operand.type);
    this.body.push(
      `    ${v.name} = "stablehlo.scatter"(${operand.name}, ${indices.name}, ${updates.name}) <{indices_are_sorted = false, scatter_dimension_numbers = #stablehlo.scatter<inserted_window_dims = [0], scatter_dims_to_operand_dims = [0], index_vector_dim = 1>, unique_indices = false}> ({`,
      `    ^bb0(%sa: ${s}, %sb: ${s}):`,
      `      %sr = stablehlo.add %sa, %sb : ${s}`,
      `      stablehlo.return %sr : ${s}`,
      `    }) : (${typeStr(operand.type)}, ${typeStr(indices.type)}, ${typeStr(updates.type)}) -> ${typeStr(operand.type)}`,
    );
    return v;
  }

  replicaId(): Value {
    return this.emit('stablehlo.replica_id : tensor<ui32>', ttype([], 'ui32'));
  }

  /** Sum over all `replicas` replicas (one group). */
  allReduceSum(a: Value, replicas: number): Value {
    const s = typeStr(ttype([], a.dtype));
    const v = new Value(`%v${this.next++}`, a.type);
    this.body.push(
      `    ${v.name} = "stablehlo.all_reduce"(${a.name}) ({`,
      `    ^bb0(%xa: ${s}, %xb: ${s}):`,
      `      %xr = stablehlo.add %xa, %xb : ${s}`,
      `      stablehlo.return %xr : ${s}`,
      `    }) {replica_groups = dense<[${list(Array.from({ length: replicas }, (_, i) => i))}]> : tensor<1x${replicas}xi64>} : (${typeStr(a.type)}) -> ${typeStr(a.type)}`,
    );
    return v;
  }

  /** Concatenate every replica's `a` along `dim`, in replica order. */
  allGather(a: Value, dim: number, replicas: number): Value {
    const shape = [...a.shape];
    shape[dim] = shape[dim]! * replicas;
    const t = ttype(shape, a.dtype);
    return this.emit(
      `"stablehlo.all_gather"(${a.name}) {all_gather_dim = ${dim} : i64, replica_groups = dense<[${list(Array.from({ length: replicas }, (_, i) => i))}]> : tensor<1x${replicas}xi64>} : (${typeStr(a.type)}) -> ${typeStr(t)}`,
      t,
    );
  }

  ret(values: readonly Value[]): void {
    if (this.results) throw new Error(`hlo: function ${this.name} already returned`);
    this.results = [...values];
  }

  get resultTypes(): TType[] {
    if (!this.results) throw new Error(`hlo: function ${this.name} has no return`);
    return this.results.map((r) => r.type);
  }

  text(): string {
    if (!this.results) throw new Error(`hlo: function ${this.name} has no return`);
    const args = this.params.map((p) => `${p.name}: ${typeStr(p.type)}`).join(', ');
    const res = this.results.map((r) => typeStr(r.type));
    return [
      `  func.func public @${this.name}(${args}) -> (${res.join(', ')}) {`,
      ...this.body,
      `    return ${this.results.map((r) => r.name).join(', ')} : ${res.join(', ')}`,
      '  }',
    ].join('\n');
  }
}

/** An emitted program: the module text and its per-replica signature. */
export interface Program {
  text: string;
  inputs: TType[];
  outputs: TType[];
  replicas: number;
}

export function moduleOf(fn: FuncBuilder, name: string, replicas = 1): Program {
  if (fn.name !== 'main') throw new Error('hlo: the entry function must be named main');
  if (!Number.isInteger(replicas) || replicas < 1) throw new RangeError(`hlo: replicas must be a positive integer, got ${replicas}`);
  const text = `module @${name.replace(/[^A-Za-z0-9_]/g, '_')} attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = ${replicas} : i32} {\n${fn.text()}\n}\n`;
  return { text, inputs: fn.params.map((p) => p.type), outputs: fn.resultTypes, replicas };
}

export { isFloat, numel, sameShape };
