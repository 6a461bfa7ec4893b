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
