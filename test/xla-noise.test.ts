/**
 * The in-program ES noise (Philox4x32-10 + deterministic Box-Muller as
 * StableHLO) against lib/rng/philox.ts, bit for bit, compiled and run by XLA's
 * CPU compiler through jaxlib. Skips with the reason when python/jax is missing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FuncBuilder, moduleOf, ttype } from '../lib/device/xla/hlo.js';
import { boxMuller as boxMullerHlo, gaussianNoise, lnUnit as lnUnitHlo, philox } from '../lib/device/xla/noise.js';
import { hostArray, scalarU32 } from '../lib/device/xla/executor.js';
import { JaxRunner } from '../lib/device/xla/jax-runner.js';
import { Rng, STREAM, boxMuller, gaussianFill, lnUnit, philox4x32 } from '../lib/rng/philox.js';
import { jax, needs } from './helpers/peers.js';

/** Tests that run programs need python + jax/jaxlib: skipped (counted, reason printed once) without them. */
const withJax = needs(await jax(), 'xla-noise.test: XLA CPU compiler (jaxlib)');
/** The contraction-barrier input: always 0. */
const ZERO = hostArray(BigInt64Array.of(0n), [], 'i64');
let runner: JaxRunner | undefined;
const run = (): JaxRunner => (runner ??= JaxRunner.start({ hostDevices: 1 }));

/** Count of positions where two arrays differ bitwise (float32 compared as bits). */
function bitDiffs(a: Float32Array | Float64Array | Uint32Array, b: Float32Array | Float64Array | Uint32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) n++;
  return n;
}

const rng = new Rng(99);
const words = (n: number): Uint32Array => {
  const u = new Uint32Array(n);
  for (let i = 0; i < n; i++) u[i] = rng.nextUint32();
  u.set([0, 1, 2, 3, 0x7fffffff, 0x80000000, 0xffffffff, 0x40000000, 0xbfffffff, 0x3fffffff]);
  return u;
};

withJax('philox4x32-10: every word equals the reference', async () => {
  const n = 257;
  const c = [words(n), words(n), words(n), words(n)];
  const fb = new FuncBuilder('main', [...c.map(() => ttype([n], 'ui32')), ttype([], 'ui32'), ttype([], 'ui32')]);
  const p = fb.params;
  fb.ret(philox(fb, [p[0]!, p[1]!, p[2]!, p[3]!], p[4]!, p[5]!));
  const prog = moduleOf(fb, 'philox');
  for (const [k0, k1] of [[0, 0], [0xdeadbeef, 0xffffffff], [12345, 3]]) {
    const out = (await run().run(prog, [[...c.map((x) => hostArray(x, [n])), scalarU32(k0!), scalarU32(k1!)]]))[0]!;
    const want = Array.from({ length: 4 }, () => new Uint32Array(n));
    const o = new Uint32Array(4);
    for (let i = 0; i < n; i++) {
      philox4x32(c[0]![i]!, c[1]![i]!, c[2]![i]!, c[3]![i]!, k0!, k1!, o);
      for (let w = 0; w < 4; w++) want[w]![i] = o[w]!;
    }
    for (let w = 0; w < 4; w++) assert.is(bitDiffs(out[w]!.data as Uint32Array, want[w]!), 0, `word ${w}, key ${k0},${k1}`);
  }
});

withJax('lnUnit and Box-Muller: bit-exact float64 log and float32 normals, all four quadrants', async () => {
  const n = 4099;
  const a = words(n), b = words(n);
  // b spans the quadrant boundaries t = 1, 2, 3 and f = 0.5 exactly.
  b.set([0x3fffffff, 0x40000000, 0x7fffffff, 0x80000000, 0xbfffffff, 0xc0000000, 0x1fffffff, 0x20000000, 0x60000000, 0xe0000000], 10);
  const fb = new FuncBuilder('main', [ttype([n], 'ui32'), ttype([n], 'ui32'), ttype([], 'i64')]);
  const [c, s] = boxMullerHlo(fb, fb.params[0]!, fb.params[1]!, fb.params[2]!);
  fb.ret([lnUnitHlo(fb, fb.params[0]!, fb.params[2]!), c, s]);
  const [ln, zc, zs] = (await run().run(moduleOf(fb, 'bm'), [[hostArray(a, [n]), hostArray(b, [n]), ZERO]]))[0]!;
  const wantLn = Float64Array.from(a, (x) => lnUnit(x));
  const wc = new Float32Array(n), ws = new Float32Array(n), pair = new Float32Array(2);
  for (let i = 0; i < n; i++) { boxMuller(a[i]!, b[i]!, pair, 0); wc[i] = pair[0]!; ws[i] = pair[1]!; }
  assert.is(bitDiffs(ln!.data as Float64Array, wantLn), 0, 'lnUnit float64 bits');
  assert.is(bitDiffs(zc!.data as Float32Array, wc), 0, 'r cos bits');
  assert.is(bitDiffs(zs!.data as Float32Array, ws), 0, 'r sin bits');
});

withJax('gaussianNoise: the ES noise of members x elements equals gaussianFill bit for bit', async () => {
  const n = 1003, members = Uint32Array.of(0, 1, 2, 7, 1000, 65535, 0xffffffff);
  const fb = new FuncBuilder('main', [ttype([members.length], 'ui32'), ttype([], 'ui32'), ttype([], 'ui32'), ttype([], 'ui32'), ttype([], 'i64')]);
  fb.ret([gaussianNoise(fb, fb.params[0]!, n, fb.params[1]!, fb.params[2]!, fb.params[3]!, fb.params[4]!)]);
  const prog = moduleOf(fb, 'noise');
  for (const [seed, step] of [[1, 0], [20261122, 17], [0xffffffff, 0xffffffff]] as const) {
    const out = (await run().run(prog, [[hostArray(members, [members.length]), scalarU32(seed), scalarU32(STREAM.esNoise), scalarU32(step), ZERO]]))[0]![0]!;
    const got = out.data as Float32Array;
    assert.equal(out.shape, [members.length, n]);
    const want = new Float32Array(n);
    let diffs = 0;
    members.forEach((m, i) => {
      gaussianFill(want, seed, STREAM.esNoise, step, m, 0);
      diffs += bitDiffs(got.subarray(i * n, (i + 1) * n), want);
    });
    assert.is(diffs, 0, `seed ${seed} step ${step}: ${diffs} of ${members.length * n} values differ`);
    // Sanity: it is noise (mean ~ 0, variance ~ 1).
    let s = 0, s2 = 0;
    for (const v of got) { s += v; s2 += v * v; }
    assert.ok(Math.abs(s / got.length) < 0.05 && Math.abs(s2 / got.length - 1) < 0.05);
  }
});

withJax("gaussianNoise 'f32' (fast path: float32 only, no 64-bit types): close to the reference", async () => {
  const n = 4001, members = Uint32Array.of(0, 5, 123456);
  const fb = new FuncBuilder('main', [ttype([members.length], 'ui32'), ttype([], 'ui32'), ttype([], 'ui32'), ttype([], 'ui32')]);
  fb.ret([gaussianNoise(fb, fb.params[0]!, n, fb.params[1]!, fb.params[2]!, fb.params[3]!, undefined, 'f32')]);
  const prog = moduleOf(fb, 'noise_f32');
  assert.not.match(prog.text, /f64|i64|ui64/, 'no 64-bit type in the program');
  const got = (await run().run(prog, [[hostArray(members, [members.length]), scalarU32(77), scalarU32(STREAM.esNoise), scalarU32(3)]]))[0]![0]!.data as Float32Array;
  const want = new Float32Array(n);
  let worst = 0, worstAbs = 0;
  members.forEach((m, i) => {
    gaussianFill(want, 77, STREAM.esNoise, 3, m, 0);
    for (let j = 0; j < n; j++) {
      const d = Math.abs(got[i * n + j]! - want[j]!);
      worst = Math.max(worst, d - 1e-5 * Math.abs(want[j]!));
      worstAbs = Math.max(worstAbs, d);
    }
  });
  if (process.env.XLA_TEST_VERBOSE) console.log(`  f32 noise: max abs error ${worstAbs.toExponential(2)}`);
  // float32 ln/sin/cos of the same Philox words, not a different draw. Error model: ~1e-6 relative,
  // plus up to ~5e-5 absolute near z = 0, where u = (x + 0.5) / 2^32 rounded to float32 near 1 loses 1 - u.
  assert.ok(worst < 1e-4, `float32 noise deviates by ${worst} beyond 1e-4 + 1e-5 |z|`);
});

test.after(async () => { await runner?.close(); });

test.run();
