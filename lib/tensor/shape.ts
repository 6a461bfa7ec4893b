/** Output-size and padding arithmetic shared by every device. */
export interface Conv2dGeometry {
  n: number; cin: number; h: number; w: number;
  cout: number; kh: number; kw: number;
  stride: number; padding: number;
  oh: number; ow: number;
}

export function convOutSize(size: number, kernel: number, stride: number, padding: number): number {
  const o = Math.floor((size + 2 * padding - kernel) / stride) + 1;
  if (o < 1) throw new RangeError(`convolution output would be empty: size ${size}, kernel ${kernel}, stride ${stride}, padding ${padding}`);
  return o;
}

export function conv2dGeometry(xShape: readonly number[], wShape: readonly number[], stride: number, padding: number): Conv2dGeometry {
  if (xShape.length !== 4) throw new RangeError(`conv2d: input must be NCHW, got shape [${xShape.join(', ')}]`);
  if (wShape.length !== 4) throw new RangeError(`conv2d: weight must be [Cout, Cin, KH, KW], got [${wShape.join(', ')}]`);
  const [n, cin, h, w] = xShape as [number, number, number, number];
  const [cout, wcin, kh, kw] = wShape as [number, number, number, number];
  if (wcin !== cin) throw new RangeError(`conv2d: input has ${cin} channels but weight expects ${wcin}`);
  if (!(stride >= 1) || !Number.isInteger(stride)) throw new RangeError(`conv2d: stride must be a positive integer, got ${stride}`);
  if (!(padding >= 0) || !Number.isInteger(padding)) throw new RangeError(`conv2d: padding must be a non-negative integer, got ${padding}`);
  return { n, cin, h, w, cout, kh, kw, stride, padding, oh: convOutSize(h, kh, stride, padding), ow: convOutSize(w, kw, stride, padding) };
}

export function poolOutSize(size: number, kernel: number, stride: number): number {
  const o = Math.floor((size - kernel) / stride) + 1;
  if (o < 1) throw new RangeError(`max-pool output would be empty: size ${size}, kernel ${kernel}, stride ${stride}`);
  return o;
}

/**
 * One-way broadcasting (numpy rules): `from` aligned to the trailing dimensions of `to`,
 * each dimension equal or 1. Returns, for each dimension of `to`, the element stride of
 * the broadcast source (0 where it repeats). Throws naming `what` when `from` does not broadcast.
 */
export function broadcastStrides(from: readonly number[], to: readonly number[], what: string): number[] {
  const bad = (): never => { throw new RangeError(`${what}: shape [${from.join(', ')}] does not broadcast to [${to.join(', ')}]`); };
  if (from.length > to.length) bad();
  const strides = new Array<number>(to.length).fill(0);
  let s = 1;
  for (let i = 1; i <= from.length; i++) {
    const f = from[from.length - i]!, t = to[to.length - i]!;
    if (f === t) strides[to.length - i] = t === 1 ? 0 : s;
    else if (f !== 1) bad();
    s *= f;
  }
  return strides;
}

/** Output shape [M, N] of matmul with the transpose flags; throws on a contraction mismatch. */
export function matmulShape(a: readonly number[], b: readonly number[], transA: boolean, transB: boolean): { m: number; k: number; n: number } {
  if (a.length !== 2 || b.length !== 2) throw new RangeError(`matmul: expects rank-2 operands, got [${a.join(', ')}] and [${b.join(', ')}]`);
  const [m, k] = transA ? [a[1]!, a[0]!] : [a[0]!, a[1]!];
  const [k2, n] = transB ? [b[1]!, b[0]!] : [b[0]!, b[1]!];
  if (k !== k2) throw new RangeError(`matmul: inner dimensions differ: op(a) is [${m}, ${k}], op(b) is [${k2}, ${n}] (transA ${transA}, transB ${transB})`);
  return { m, k, n };
}
