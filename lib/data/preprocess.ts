/**
 * Preprocessing: area-averaging downsample 105 -> S and rotation by multiples
 * of 90 degrees (counter-clockwise, like PIL's Image.rotate in Snell et al.'s
 * loader). Ink = 1, background = 0.
 *
 * Exact integer form: along one axis output cell j covers input [105j/S, 105(j+1)/S);
 * input pixel i's overlap with it, times S/g (g = gcd(S, 105)), is an integer
 * w[j][i], and the cell's value is sum_{i,k} w[j][i] w[l][k] ink[i][k] / (105/g)^2.
 * So a downsampled image is stored as integer sums (S = 28: /225, fits a Uint8;
 * S = 32: /11025, a Uint16) and converted to float only when an episode is built.
 * The grid is symmetric (w[S-1-j][104-i] = w[j][i]), so rotating by a multiple
 * of 90 degrees commutes with downsampling: only unrotated images are stored.
 */
import { RAW_BYTES, RAW_ROW_BYTES, RAW_SIZE, type RawOmniglot } from './raw.js';

export type Rotation = 0 | 90 | 180 | 270;
export const ROTATIONS: readonly Rotation[] = [0, 90, 180, 270];

export type AreaSums = Uint8Array | Uint16Array;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

export function checkImageSize(size: number): void {
  if (!Number.isInteger(size) || size < 1 || size > RAW_SIZE) throw new RangeError(`image size must be an integer in [1, ${RAW_SIZE}], got ${size}`);
}

/** Per input index i (0..104): its at most two output cells and integer weights (second weight 0 if one cell). */
export interface AxisWeights {
  size: number;
  /** The common divisor of the integer sums: value = sum / denominator. */
  denominator: number;
  cellA: Int32Array;
  weightA: Int32Array;
  cellB: Int32Array;
  weightB: Int32Array;
}

export function axisWeights(size: number): AxisWeights {
  checkImageSize(size);
  const g = gcd(size, RAW_SIZE);
  const cellA = new Int32Array(RAW_SIZE), weightA = new Int32Array(RAW_SIZE);
  const cellB = new Int32Array(RAW_SIZE), weightB = new Int32Array(RAW_SIZE);
  for (let i = 0; i < RAW_SIZE; i++) {
    // input pixel i spans [i*S, (i+1)*S) in units of 1/S; output cell j spans [105j, 105(j+1)).
    const lo = i * size, hi = lo + size;
    const j = Math.floor(lo / RAW_SIZE);
    const cut = Math.min(hi, (j + 1) * RAW_SIZE);
    cellA[i] = j;
    weightA[i] = (cut - lo) / g;
    cellB[i] = Math.min(j + 1, size - 1);
    weightB[i] = (hi - cut) / g;
  }
  const d = RAW_SIZE / g;
  return { size, denominator: d * d, cellA, weightA, cellB, weightB };
}

/**
 * Downsample every raw image to S x S integer area sums (unrotated).
 * Returns Uint8Array when the denominator fits a byte, else Uint16Array.
 */
export function downsampleAll(raw: RawOmniglot, size: number, onProgress?: (done: number, total: number) => void): { sums: AreaSums; denominator: number } {
  const w = axisWeights(size);
  const n = raw.bits.length / RAW_BYTES;
  const plane = size * size;
  const sums: AreaSums = w.denominator <= 0xff ? new Uint8Array(n * plane) : new Uint16Array(n * plane);
  const rowSum = new Int32Array(size);
  const acc = new Int32Array(plane);
  const bits = raw.bits;
  for (let img = 0; img < n; img++) {
    acc.fill(0);
    for (let y = 0; y < RAW_SIZE; y++) {
      const row = img * RAW_BYTES + y * RAW_ROW_BYTES;
      let any = false;
      rowSum.fill(0);
      for (let b = 0; b < RAW_ROW_BYTES; b++) {
        const byte = bits[row + b]!;
        if (byte === 0) continue;
        any = true;
        for (let t = 0; t < 8; t++) {
          if (!(byte & (0x80 >> t))) continue;
          const x = b * 8 + t;
          rowSum[w.cellA[x]!]! += w.weightA[x]!;
          rowSum[w.cellB[x]!]! += w.weightB[x]!;
        }
      }
      if (!any) continue;
      const ra = w.cellA[y]! * size, wa = w.weightA[y]!, rb = w.cellB[y]! * size, wb = w.weightB[y]!;
      for (let l = 0; l < size; l++) {
        const v = rowSum[l]!;
        if (v === 0) continue;
        acc[ra + l]! += wa * v;
        acc[rb + l]! += wb * v;
      }
    }
    sums.set(acc, img * plane);
    if (onProgress && ((img + 1) % 2000 === 0 || img + 1 === n)) onProgress(img + 1, n);
  }
  return { sums, denominator: w.denominator };
}

/**
 * Write image `image` of `sums` (S x S), rotated counter-clockwise by `rotation`
 * degrees and divided by `denominator`, to out[offset .. offset + S*S).
 * Rotation as numpy.rot90 / PIL Image.rotate: 90 maps out[y][x] = in[x][S-1-y].
 */
export function rotatedImageInto(
  sums: AreaSums, size: number, denominator: number, image: number, rotation: Rotation, out: Float32Array | Float64Array, offset: number,
): void {
  const n = size, base = image * n * n, last = n - 1;
  const inv = (v: number): number => v / denominator;
  switch (rotation) {
    case 0:
      for (let p = 0; p < n * n; p++) out[offset + p] = inv(sums[base + p]!);
      break;
    case 90:
      for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) out[offset + y * n + x] = inv(sums[base + x * n + (last - y)]!);
      break;
    case 180:
      for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) out[offset + y * n + x] = inv(sums[base + (last - y) * n + (last - x)]!);
      break;
    case 270:
      for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) out[offset + y * n + x] = inv(sums[base + (last - x) * n + y]!);
      break;
    default:
      throw new RangeError(`rotation must be 0, 90, 180 or 270, got ${String(rotation)}`);
  }
}
