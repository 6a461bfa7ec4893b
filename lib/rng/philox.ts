/**
 * Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11) and a
 * Box-Muller Gaussian built only from IEEE-exact operations (+, -, *, /, sqrt)
 * with a fixed evaluation order, so the C++ kernels (native/) regenerate the
 * very same float32 noise bit for bit. No Math.log/Math.cos: their last bit
 * differs between libms.
 *
 * The noise of ES member `member` at step `step`, element `index`, under key
 * (seed, stream) is gaussianAt(seed, stream, step, member, index):
 *   block = floor(index / 4), lane = index % 4,
 *   x = philox(counter = [block, member, step, 0], key = [seed, stream]),
 *   lanes 0,1 from the pair (x0, x1), lanes 2,3 from (x2, x3):
 *   u1 = (a + 0.5) / 2^32, u2 = (b + 0.5) / 2^32,
 *   r = sqrt(-2 ln u1), z_even = r cos(2 pi u2), z_odd = r sin(2 pi u2),
 *   rounded to float32.
 */

const M0 = 0xd2511f53, M1 = 0xcd9e8d57, W0 = 0x9e3779b9, W1 = 0xbb67ae85;

/** Streams (the key's second word) used by the library, one per purpose. */
export const STREAM = { esNoise: 0, init: 1, sampler: 2, split: 3, general: 4, evograd: 5 } as const;

function mulhi(a: number, b: number): number {
  const ah = a >>> 16, al = a & 0xffff, bh = b >>> 16, bl = b & 0xffff;
  const mid = ah * bl + al * bh + Math.floor((al * bl) / 65536);
  return (ah * bh + Math.floor(mid / 65536)) >>> 0;
}

/** Philox4x32-10 of counter (c0..c3) under key (k0, k1), written to out[0..3]. */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  c0 >>>= 0; c1 >>>= 0; c2 >>>= 0; c3 >>>= 0; k0 >>>= 0; k1 >>>= 0;
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

const TWO32 = 4294967296;
const SQRT_HALF = 0.7071067811865476;
const LN2 = 0.6931471805599453;
const HALF_PI = 1.5707963267948966;

/** ln(u) for u = (x + 0.5) / 2^32, x a uint32; deterministic (atanh series, Horner, fixed order). */
export function lnUnit(x: number): number {
  const u = (x + 0.5) / TWO32;
  // u * 2^k lies in [1, 2) for k = 32 - floor(log2(x + 0.5)); for x = 0, u = 2^-33.
  const k = x === 0 ? 33 : 32 - (31 - Math.clz32(x));
  let m = u * 2 ** k;
  let e = -k;
  if (m > 2 * SQRT_HALF) { m = m * 0.5; e = e + 1; }
  const s = (m - 1) / (m + 1);
  const z = s * s;
  let p = 1 / 23;
  p = p * z + 1 / 21; p = p * z + 1 / 19; p = p * z + 1 / 17; p = p * z + 1 / 15;
  p = p * z + 1 / 13; p = p * z + 1 / 11; p = p * z + 1 / 9; p = p * z + 1 / 7;
  p = p * z + 1 / 5; p = p * z + 1 / 3; p = p * z + 1;
  return 2 * s * p + e * LN2;
}

function sinPoly(b: number): number {
  const z = b * b;
  let p = -1 / 1307674368000;
  p = p * z + 1 / 6227020800; p = p * z - 1 / 39916800; p = p * z + 1 / 362880;
  p = p * z - 1 / 5040; p = p * z + 1 / 120; p = p * z - 1 / 6; p = p * z + 1;
  return b * p;
}

function cosPoly(b: number): number {
  const z = b * b;
  let p = 1 / 20922789888000;
  p = p * z - 1 / 87178291200; p = p * z + 1 / 479001600; p = p * z - 1 / 3628800;
  p = p * z + 1 / 40320; p = p * z - 1 / 720; p = p * z + 1 / 24; p = p * z - 1 / 2;
  return p * z + 1;
}

/** Two standard normals from two uint32s; written to out[at], out[at + 1] (float32 rounding by the array). */
export function boxMuller(a: number, b: number, out: Float32Array | Float64Array, at: number): void {
  const r = Math.sqrt(-2 * lnUnit(a));
  const t = ((b + 0.5) / TWO32) * 4; // angle in quarter turns, [0, 4)
  const q = Math.floor(t);
  const f = t - q;
  let ca: number, sa: number;
  if (f <= 0.5) {
    const ang = f * HALF_PI;
    ca = cosPoly(ang); sa = sinPoly(ang);
  } else {
    const ang = (1 - f) * HALF_PI;
    ca = sinPoly(ang); sa = cosPoly(ang);
  }
  let c: number, s: number;
  if (q === 0) { c = ca; s = sa; } else if (q === 1) { c = -sa; s = ca; } else if (q === 2) { c = -ca; s = -sa; } else { c = sa; s = -ca; }
  out[at] = r * c;
  out[at + 1] = r * s;
}

const scratchU = new Uint32Array(4);
const scratchZ = new Float32Array(4);

/**
 * Fill out[j] with the standard normal at index start + j of the stream
 * (seed, stream, step, member). Float32 values, identical to native/.
 */
export function gaussianFill(out: Float32Array, seed: number, stream: number, step: number, member: number, start = 0): void {
  let j = 0;
  const n = out.length;
  let idx = start;
  while (j < n) {
    const block = Math.floor(idx / 4);
    let lane = idx - block * 4;
    philox4x32(block, member, step, 0, seed, stream, scratchU);
    boxMuller(scratchU[0]!, scratchU[1]!, scratchZ, 0);
    boxMuller(scratchU[2]!, scratchU[3]!, scratchZ, 2);
    for (; lane < 4 && j < n; lane++, j++, idx++) out[j] = scratchZ[lane]!;
  }
}

/** One standard normal (float32 value) at a given coordinate. */
export function gaussianAt(seed: number, stream: number, step: number, member: number, index: number): number {
  const o = new Float32Array(1);
  gaussianFill(o, seed, stream, step, member, index);
  return o[0]!;
}

/**
 * A sequential seeded generator for sampling, shuffling and initialization,
 * on Philox with counter [i, hi(i), lane, 0] under key (seed, stream); its
 * state is one counter, so it can be saved in a checkpoint and restored.
 */
export class Rng {
  private counter = 0;
  private buf = new Uint32Array(4);
  private avail = 0;

  constructor(readonly seed: number, readonly stream: number = STREAM.general, readonly lane = 0) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
  }

  get state(): number {
    return this.counter * 4 - this.avail;
  }

  /** Restore to a position previously read from `state`. */
  setState(state: number): void {
    this.counter = Math.floor(state / 4);
    this.avail = 0;
    const skip = state - this.counter * 4;
    if (skip > 0) {
      this.refill();
      this.avail = 4 - skip;
    }
  }

  private refill(): void {
    philox4x32(this.counter % TWO32, Math.floor(this.counter / TWO32), this.lane, 0, this.seed, this.stream, this.buf);
    this.counter++;
    this.avail = 4;
  }

  nextUint32(): number {
    if (this.avail === 0) this.refill();
    return this.buf[4 - this.avail--]!;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const a = this.nextUint32() >>> 5, b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform integer in [0, n), unbiased. */
  int(n: number): number {
    if (!(n >= 1) || !Number.isInteger(n)) throw new RangeError(`Rng.int: n must be a positive integer, got ${n}`);
    if (n <= TWO32) {
      const limit = TWO32 - (TWO32 % n);
      for (;;) {
        const x = this.nextUint32();
        if (x < limit) return x % n;
      }
    }
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (deterministic Box-Muller). */
  normal(): number {
    const o = new Float64Array(2);
    boxMuller(this.nextUint32(), this.nextUint32(), o, 0);
    return o[0]!;
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(a: T[] | Int32Array): void {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
  }

  /** k distinct integers from [0, n), in random order. */
  choose(n: number, k: number): Int32Array {
    if (k > n) throw new RangeError(`cannot choose ${k} distinct items out of ${n}`);
    const pool = new Int32Array(n);
    for (let i = 0; i < n; i++) pool[i] = i;
    for (let i = 0; i < k; i++) {
      const j = i + this.int(n - i);
      const t = pool[i]!;
      pool[i] = pool[j]!;
      pool[j] = t;
    }
    return pool.slice(0, k);
  }
}
