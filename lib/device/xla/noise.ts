/**
 * The ES noise of lib/rng/philox.ts written as StableHLO: Philox4x32-10 in
 * ui32/ui64 integer ops and the deterministic Box-Muller (the same ln / sin /
 * cos polynomials, the same evaluation order, float64 arithmetic rounded once
 * to float32), so a program regenerates gaussianFill's values bit for bit
 * wherever float64 +, -, *, / and sqrt are IEEE-exact (XLA's CPU backend:
 * verified by test/xla-noise.test.ts).
 *
 * FMA contraction: XLA's LLVM backends fuse a multiply feeding an add into one
 * FMA (one rounding instead of two), which moves the last bit of the log and so
 * of some normals. Every such product goes through a contraction barrier:
 * bitcast to i64, xor with `zero` (a program input that is always 0, unknown
 * to the compiler), bitcast back -- free at run time, opaque to LLVM. Without
 * a barrier value (`zero` undefined) the noise is the same distribution but
 * may differ from the reference in the last float32 bit.
 *
 * The lane layout follows gaussianFill: element index i of member m at step t
 * is lane i % 4 of Philox(counter [i / 4, m, t, 0], key [seed, stream]).
 */
import type { FloatType, FuncBuilder, Value } from './hlo.js';

const M0 = 0xd2511f53, M1 = 0xcd9e8d57, W0 = 0x9e3779b9, W1 = 0xbb67ae85;
const TWO32 = 4294967296;
const SQRT_HALF = 0.7071067811865476;
const LN2 = 0.6931471805599453;
const HALF_PI = 1.5707963267948966;

/** hi and lo 32-bit words of m * x for ui32 tensors (m a constant), in 16-bit limbs: no 64-bit types. */
function mulHiLo(fb: FuncBuilder, m: number, x: Value): [Value, Value] {
  const s = x.shape;
  const c = (v: number): Value => fb.splat(v, 'ui32', s);
  const shr = (v: Value): Value => fb.binary('shift_right_logical', v, c(16));
  const low = (v: Value): Value => fb.binary('and', v, c(0xffff));
  const mh = c(m >>> 16), ml = c(m & 0xffff), xh = shr(x), xl = low(x);
  // Every partial sum stays below 2^32: (2^16 - 1)^2 + 2^16 - 1 < 2^32.
  const ll = fb.mul(ml, xl);
  const t1 = fb.add(fb.mul(mh, xl), shr(ll));
  const t2 = fb.add(fb.mul(ml, xh), low(t1));
  const hi = fb.add(fb.add(fb.mul(mh, xh), shr(t1)), shr(t2));
  const lo = fb.mul(c(m), x);
  return [hi, lo];
}

/** Philox4x32-10 of counters (c0..c3, ui32 tensors of one shape) under key (k0, k1) (ui32 scalars). */
export function philox(fb: FuncBuilder, c: [Value, Value, Value, Value], k0: Value, k1: Value): [Value, Value, Value, Value] {
  let [c0, c1, c2, c3] = c;
  const shape = c0.shape;
  let key0 = k0, key1 = k1;
  for (let r = 0; r < 10; r++) {
    const [hi0, lo0] = mulHiLo(fb, M0, c0);
    const [hi1, lo1] = mulHiLo(fb, M1, c2);
    const bk0 = fb.broadcastTo(key0, shape), bk1 = fb.broadcastTo(key1, shape);
    c0 = fb.binary('xor', fb.binary('xor', hi1, c1), bk0);
    c1 = lo1;
    c2 = fb.binary('xor', fb.binary('xor', hi0, c3), bk1);
    c3 = lo0;
    if (r < 9) {
      key0 = fb.add(key0, fb.constant(W0, 'ui32'));
      key1 = fb.add(key1, fb.constant(W1, 'ui32'));
    }
  }
  return [c0, c1, c2, c3];
}

/** x unchanged, but opaque to the compiler (no FMA contraction into a following add). */
export function barrier(fb: FuncBuilder, x: Value, zero: Value | undefined): Value {
  if (!zero || x.dtype !== 'f64') return x;
  const bits = fb.bitcastConvert(x, 'i64');
  return fb.bitcastConvert(fb.binary('xor', bits, fb.broadcastTo(zero, x.shape)), 'f64');
}

/** Horner evaluation p = ((c0 z + c1) z + ...) with the reference's signs (a - c written as a + (-c): identical in IEEE). */
function horner(fb: FuncBuilder, z: Value, coeffs: readonly number[], zero: Value | undefined): Value {
  let p = fb.splat(coeffs[0]!, z.dtype, z.shape);
  for (const c of coeffs.slice(1)) p = fb.add(barrier(fb, fb.mul(p, z), zero), fb.splat(c, z.dtype, z.shape));
  return p;
}

const LN_COEFFS = [1 / 23, 1 / 21, 1 / 19, 1 / 17, 1 / 15, 1 / 13, 1 / 11, 1 / 9, 1 / 7, 1 / 5, 1 / 3, 1];
const SIN_COEFFS = [-1 / 1307674368000, 1 / 6227020800, -(1 / 39916800), 1 / 362880, -(1 / 5040), 1 / 120, -(1 / 6), 1];
const COS_COEFFS = [1 / 20922789888000, -(1 / 87178291200), 1 / 479001600, -(1 / 3628800), 1 / 40320, -(1 / 720), 1 / 24, -(1 / 2), 1];

/** lnUnit: ln((x + 0.5) / 2^32) for ui32 x, in float64 (the reference's atanh series) or float32. */
export function lnUnit(fb: FuncBuilder, x: Value, zero?: Value, ft: FloatType = 'f64'): Value {
  const s = x.shape;
  const it = ft === 'f64' ? 'i64' : 'i32';
  const c = (v: number): Value => fb.splat(v, ft, s);
  const u = fb.div(fb.add(fb.convert(x, ft), c(0.5)), c(TWO32));
  // k = 32 - floor(log2(x + 0.5)) = 1 + clz(x) (33 for x = 0); 2^k built from its exponent bits.
  const k = fb.add(fb.convert(fb.unary('count_leading_zeros', x), it), fb.splat(1, it, s));
  const [bias, mant] = ft === 'f64' ? [1023, 52] : [127, 23];
  const pow = fb.bitcastConvert(fb.binary('shift_left', fb.add(k, fb.splat(bias, it, s)), fb.splat(mant, it, s)), ft);
  const m0 = fb.mul(u, pow);
  const e0 = fb.unary('negate', fb.convert(k, ft));
  const big = fb.compare('GT', m0, c(2 * SQRT_HALF));
  const m = fb.select(big, fb.mul(m0, c(0.5)), m0);
  const e = fb.select(big, fb.add(e0, c(1)), e0);
  const t = fb.div(fb.sub(m, c(1)), fb.add(m, c(1)));
  const p = horner(fb, fb.mul(t, t), LN_COEFFS, zero);
  return fb.add(barrier(fb, fb.mul(fb.mul(c(2), t), p), zero), barrier(fb, fb.mul(e, c(LN2)), zero));
}

/** Box-Muller of ui32 pairs (a, b): [r cos, r sin] as float32, exactly as boxMuller(). */
export function boxMuller(fb: FuncBuilder, a: Value, b: Value, zero?: Value, ft: FloatType = 'f64'): [Value, Value] {
  const s = a.shape;
  const c = (v: number): Value => fb.splat(v, ft, s);
  const r = fb.unary('sqrt', fb.mul(c(-2), lnUnit(fb, a, zero, ft)));
  const t = fb.mul(fb.div(fb.add(fb.convert(b, ft), c(0.5)), c(TWO32)), c(4));
  const q = fb.unary('floor', t);
  const f = fb.sub(t, q);
  const low = fb.compare('LE', f, c(0.5));
  const ang = fb.select(low, fb.mul(f, c(HALF_PI)), fb.mul(fb.sub(c(1), f), c(HALF_PI)));
  const z = fb.mul(ang, ang);
  const sp = fb.mul(ang, horner(fb, z, SIN_COEFFS, zero));
  const cp = fb.add(barrier(fb, fb.mul(horner(fb, z, COS_COEFFS.slice(0, -1), zero), z), zero), c(1));
  const ca = fb.select(low, cp, sp), sa = fb.select(low, sp, cp);
  const nca = fb.unary('negate', ca), nsa = fb.unary('negate', sa);
  // In float32, b near 2^32 rounds to t = 4 exactly: the angle 2 pi is quadrant 0.
  const q4 = fb.convert(q, 'i32');
  const qi = ft === 'f64' ? q4 : fb.select(fb.compare('EQ', q4, fb.splat(4, 'i32', s)), fb.splat(0, 'i32', s), q4);
  const is = (k: number): Value => fb.compare('EQ', qi, fb.splat(k, 'i32', s));
  const pick = (v0: Value, v1: Value, v2: Value, v3: Value): Value => fb.select(is(0), v0, fb.select(is(1), v1, fb.select(is(2), v2, v3)));
  const cosv = pick(ca, nsa, nca, sa), sinv = pick(sa, ca, nsa, nca);
  return [fb.convert(fb.mul(r, cosv), 'f32'), fb.convert(fb.mul(r, sinv), 'f32')];
}

/**
 * Standard normals z[m, j] for members `members` (ui32 [P]) at elements j in [0, n):
 * gaussianFill(z[m], seed, stream, step, members[m], 0). seed, stream and step are ui32 scalars;
 * zero: the i64 contraction-barrier input (always 0), for bit-exactness.
 */
export function gaussianNoise(fb: FuncBuilder, members: Value, n: number, seed: Value, stream: Value, step: Value, zero?: Value, ft: FloatType = 'f64'): Value {
  const p = members.shape[0]!;
  const blocks = Math.ceil(n / 4);
  const shape = [p, blocks];
  const c0 = fb.iota(shape, 1, 'ui32');
  const c1 = fb.broadcastInDim(members, shape, [0]);
  const c2 = fb.broadcastTo(step, shape);
  const c3 = fb.splat(0, 'ui32', shape);
  const [x0, x1, x2, x3] = philox(fb, [c0, c1, c2, c3], seed, stream);
  const [z0, z1] = boxMuller(fb, x0, x1, zero, ft);
  const [z2, z3] = boxMuller(fb, x2, x3, zero, ft);
  const lanes = [z0, z1, z2, z3].map((v) => fb.reshape(v, [p, blocks, 1]));
  const all = fb.reshape(fb.concatenate(lanes, 2), [p, blocks * 4]);
  return blocks * 4 === n ? all : fb.slice(all, [0, 0], [p, n]);
}
