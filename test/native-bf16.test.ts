/**
 * cpu-native precision 'bf16': every convolution's products on bf16-rounded operands with fp32
 * accumulation, on every kernel this CPU has (amx, avx512bf16; 'emulated' everywhere, on every
 * ISA variant), skipped with the reason where it lacks one.
 *
 * The bounds (u = 2^-8, the unit roundoff of bf16's 8-bit significand; g(K) = K 2^-24 / (1 - K 2^-24)):
 * - rounding: every conversion equals an independent round-to-nearest-even reference, bit for bit;
 * - one conv block: |kernel - sum_i bf16(a_i) bf16(w_i)| <= g(K) sum_i |bf16(a_i) bf16(w_i)|: the
 *   products of two bf16 are exact in fp32, so only the fp32 summation order may differ (K = 9 C);
 * - whole fitness, bf16 vs fp32: relative error <= 8u per member, median over members in
 *   [u/64, 2u]. Each operand is off by at most u, a product by at most 2u; the errors have random
 *   signs, so they average over the K-term sums, and BN renormalizes every layer: about
 *   sqrt(2/3) u of relative error per bf16 convolution, 4 of them in quadrature ~1.6u in the
 *   embedding, twice that (~3.3u) in the logits (squared distances), and up to about twice that
 *   again in the loss, a difference of logits (log-sum-exp minus the true class's logit): 8u.
 *   The median is of order u, well above the fp32 noise (~1e-6): bf16 is in effect. (Measured
 *   on Omniglot episodes at initialization, docs/native.md: medians 0.1u-1.8u, the largest 7.4u
 *   for a member whose loss, 0.07-0.4, is small beside the logits it comes from.)
 * - whole fitness, hardware kernel vs emulated (the same products, summed in another order):
 *   relative error <= u/4. The only difference beyond fp32 rounding is an activation that falls
 *   on the other side of a bf16 rounding boundary (a fraction of about 2 x 1e-6 / u of them) and
 *   moves by one bf16 unit, a small fraction of the bf16 vs fp32 difference;
 * - results do not depend on the thread count (bit for bit), as for fp32.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import '../lib/index.js';
import { NativePopulationEvaluator, nativeInfo, setNativeBf16Kernel, setNativeIsa, type Bf16Kernel } from '../lib/device/cpu-native/index.js';
import { addon, PACKAGE_ROOT } from '../lib/device/cpu-native/addon.js';
import { evaluatorSpecFor, loadEvaluator } from '../lib/es/evaluators.js';
import type { PopulationRequest } from '../lib/es/population.js';
import { UserError } from '../lib/errors.js';
import { resolvePrecision } from '../lib/methods/protonet-es/precision.js';
import { ProtoNetLayout, type ModelConfig } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import type { Distance, Episode } from '../lib/model/protonet.js';
import { Rng } from '../lib/rng/philox.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { needs, nativeAddon, peer } from './helpers/peers.js';

const native = await nativeAddon();
const withAddon = needs(native, 'native-bf16: the addon');
const bf = native.ok ? nativeInfo().bf16 : undefined;
const has = (k: Bf16Kernel): boolean => bf?.available.includes(k) ?? false;
const amxPeer = peer(has('amx'), `no AMX-BF16 kernel here (${bf?.reason ?? 'no addon'})`, 'amx');
const avxPeer = peer(has('avx512bf16'), `this CPU has no AVX512_BF16 (${bf?.reason ?? 'no addon'})`, 'avx512bf16');
const withAmx = needs([native, amxPeer], 'native-bf16: the amx kernel');
const withAvx = needs([native, avxPeer], 'native-bf16: the avx512bf16 kernel');
const withHw = needs([native, peer(amxPeer.ok || avxPeer.ok, 'no hardware bf16 kernel (amx, avx512bf16) on this CPU', 'bf16')], 'native-bf16: a hardware bf16 kernel');
/** The hardware kernels the tests run (best first). */
const HW: Bf16Kernel[] = [...(amxPeer.ok ? ['amx' as const] : []), ...(avxPeer.ok ? ['avx512bf16' as const] : [])];
const ISAS = (['avx512', 'avx2', 'scalar'] as const).filter((isa) => native.ok && setNativeIsa(isa));
const bestIsa = native.ok ? nativeInfo().detectedIsa : 'scalar';
const restore = (): void => { if (native.ok) setNativeIsa(bestIsa); };

const U = 2 ** -8;
const gamma = (k: number): number => (k * 2 ** -24) / (1 - k * 2 ** -24);

// ---- rounding ----

/** Round to nearest even to 8 significant bits, computed from the two neighbours (not by the bias trick). */
function refBf16Bits(bits: number): number {
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  u[0] = bits;
  const x = f[0]!;
  const exp = (bits >>> 23) & 0xff;
  if (exp === 0) return (bits >>> 16) & 0x8000; // zero and denormals: a zero of the sign
  if (Number.isNaN(x)) return ((bits >>> 16) | 0x40) & 0xffff; // quiet NaN, payload kept
  if (exp === 0xff) return bits >>> 16; // infinities
  const lo = bits >>> 16, hi = lo + 1;
  u[0] = (lo << 16) >>> 0;
  const flo = f[0]!;
  u[0] = (hi << 16) >>> 0;
  const fhi = hi === 0x7f80 || hi === 0xff80 ? Math.sign(x) * 2 ** 128 : f[0]!; // one past the largest: where it would lie
  const dlo = Math.abs(x - flo), dhi = Math.abs(fhi - x);
  const r = dlo < dhi ? lo : dhi < dlo ? hi : (lo & 1) === 0 ? lo : hi;
  return r & 0xffff;
}

function roundingInputs(): Uint32Array {
  const rng = new Rng(5);
  const v: number[] = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffa12345, 0x7f7fffff, 0xff7fffff,
    0x7f7f8000, 0x7f7f7fff, 0x00000001, 0x807fffff, 0x00800000, 0x80800000, 0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001, 0x3f800000];
  for (let i = 0; i < 4000; i++) {
    const b = (rng.int(0x10000) << 16 | rng.int(0x10000)) >>> 0;
    v.push(b);
    v.push(((b & 0xffff0000) | 0x8000) >>> 0); // an exact tie
    v.push(((b & 0xffff0000) | (0x8000 + (rng.int(2) ? 1 : -1))) >>> 0); // next to one
  }
  for (let e = 0; e < 256; e++) v.push(((e << 23) | (rng.int(0x800000))) >>> 0);
  return Uint32Array.from(v);
}

withAddon('rounding: the scalar reference, the emulated kernel (every ISA) and the hardware conversions round to nearest even, bit for bit', () => {
  const bits = roundingInputs();
  const x = new Float32Array(bits.buffer.slice(0));
  const want = Uint32Array.from(bits, (b) => (refBf16Bits(b) << 16) >>> 0);
  const check = (kernel: 'reference' | Bf16Kernel, label: string): void => {
    const out = new Float32Array(x.length);
    addon().bf16Round({ kernel, x, out });
    const got = new Uint32Array(out.buffer);
    for (let i = 0; i < x.length; i++) {
      if (got[i] !== want[i]) assert.unreachable(`${label}: input 0x${bits[i]!.toString(16)} rounds to 0x${got[i]!.toString(16)}, want 0x${want[i]!.toString(16)}`);
    }
  };
  check('reference', 'reference');
  for (const isa of ISAS) {
    setNativeIsa(isa);
    check('emulated', `emulated (${isa})`);
  }
  restore();
  for (const k of HW) check(k, k);
});

// ---- one conv block against the exact sum of the rounded products ----

interface ConvCase { n: number; side: number; c: number }
const CONV: ConvCase[] = [
  { n: 2, side: 7, c: 16 }, // odd side: windows and leftover pixels
  { n: 3, side: 5, c: 6 }, // channel padding (cp 16)
  { n: 1, side: 3, c: 48 }, // cp 48: panels of 16 channels
  { n: 2, side: 14, c: 32 }, // several pixel groups, the last partial
  { n: 1, side: 9, c: 64 },
  { n: 5, side: 1, c: 80 }, // no pooling window at all; K = 720 (AMX: padded to 736)
];

function rb(x: number): number {
  const f = new Float32Array([x]), u = new Uint32Array(f.buffer);
  u[0] = (refBf16Bits(u[0]!) << 16) >>> 0;
  return f[0]!;
}

function convCase(cs: ConvCase, seed: number): { act: Float32Array; w: Float32Array } {
  const rng = new Rng(seed);
  // post-ReLU activations over several binades (some exactly zero), weights of both signs
  const act = Float32Array.from({ length: cs.n * cs.side * cs.side * cs.c }, () => (rng.uniform() < 0.2 ? 0 : rng.uniform() * 2 ** (rng.int(6) - 3)));
  const w = Float32Array.from({ length: cs.c * cs.c * 9 }, () => (rng.uniform() - 0.5) * 2 ** -rng.int(4));
  return { act, w };
}

/** out (NHWC) of the 3x3 pad-1 convolution in float64 from the given operand rounding, and sum |products|. */
function refConv(cs: ConvCase, act: Float32Array, w: Float32Array, round: (x: number) => number): { y: Float64Array; abs: Float64Array } {
  const { n, side: s, c } = cs;
  const a = Float64Array.from(act, round), wr = Float64Array.from(w, round);
  const y = new Float64Array(n * s * s * c), abs = new Float64Array(y.length);
  for (let i = 0; i < n; i++)
    for (let py = 0; py < s; py++)
      for (let px = 0; px < s; px++)
        for (let co = 0; co < c; co++) {
          let acc = 0, aa = 0;
          for (let t = 0; t < 9; t++) {
            const iy = py + Math.floor(t / 3) - 1, ix = px + (t % 3) - 1;
            if (iy < 0 || iy >= s || ix < 0 || ix >= s) continue;
            const base = ((i * s + iy) * s + ix) * c;
            for (let ci = 0; ci < c; ci++) {
              const p = a[base + ci]! * wr[(co * c + ci) * 9 + t]!; // exact: 8 x 8 (or 24 x 24) significant bits in a double
              acc += p;
              aa += Math.abs(p);
            }
          }
          const o = ((i * s + py) * s + px) * c + co;
          y[o] = acc;
          abs[o] = aa;
        }
  return { y, abs };
}

function checkConv(kernel: 'fp32' | Bf16Kernel, label: string): void {
  for (const [ci, cs] of CONV.entries()) {
    const { act, w } = convCase(cs, 100 + ci);
    const round = kernel === 'fp32' ? (x: number) => x : rb;
    const ref = refConv(cs, act, w, round);
    const out = new Float32Array(act.length), sum = new Float64Array(cs.c), sumsq = new Float64Array(cs.c);
    addon().bf16Conv({ kernel, images: cs.n, side: cs.side, channels: cs.c, act, w, out, sum, sumsq });
    // K = 9 C products (the padding adds exact zeros); the double reference sum is off by < 1e-15 of sum|p|
    const g = gamma(9 * cs.c) + 1e-14;
    let worst = 0;
    for (let o = 0; o < out.length; o++) {
      const err = Math.abs(out[o]! - ref.y[o]!), bound = g * ref.abs[o]! + 1e-35;
      worst = Math.max(worst, err / bound);
      if (!(err <= bound)) assert.unreachable(`${label} n${cs.n} side ${cs.side} C ${cs.c}: output ${o}: ${out[o]} vs exact ${ref.y[o]} (error ${err.toExponential(2)} > bound ${bound.toExponential(2)})`);
    }
    // the batch statistics: per-channel sums of the fp32 outputs (fp32 within a pixel group, then float64)
    for (let c = 0; c < cs.c; c++) {
      let s = 0, ss = 0, as = 0, ass = 0;
      for (let p = c; p < out.length; p += cs.c) {
        s += out[p]!;
        ss += out[p]! * out[p]!;
        as += Math.abs(out[p]!);
        ass += out[p]! * out[p]!;
      }
      const gs = gamma(cs.n * cs.side * cs.side) + 1e-14;
      assert.ok(Math.abs(sum[c]! - s) <= gs * as + 1e-30, `${label} C ${cs.c}: sum[${c}] ${sum[c]} vs ${s}`);
      assert.ok(Math.abs(sumsq[c]! - ss) <= 2 * gs * ass + 1e-30, `${label} C ${cs.c}: sumsq[${c}] ${sumsq[c]} vs ${ss}`);
    }
    assert.ok(worst <= 1, label);
  }
}

withAddon('conv block: fp32 and the emulated kernel (every ISA) equal the exact sums of their products within fp32 summation error', () => {
  for (const isa of ISAS) {
    setNativeIsa(isa);
    checkConv('fp32', `fp32 (${isa})`);
    checkConv('emulated', `emulated (${isa})`);
  }
  restore();
});

withAmx('conv block: the AMX kernel equals the exact sum of the bf16-rounded products within fp32 summation error', () => {
  checkConv('amx', 'amx');
});

withAvx('conv block: the AVX512_BF16 kernel equals the exact sum of the bf16-rounded products within fp32 summation error', () => {
  checkConv('avx512bf16', 'avx512bf16');
});

withAddon('conv block: bf16 is really in effect (it differs from fp32 by more than fp32 rounding)', () => {
  const cs = CONV[4]!;
  const { act, w } = convCase(cs, 104);
  const exact = refConv(cs, act, w, (x) => x);
  let beyond = 0;
  for (const k of ['emulated' as const, ...HW]) {
    const out = new Float32Array(act.length), sum = new Float64Array(cs.c), sumsq = new Float64Array(cs.c);
    addon().bf16Conv({ kernel: k, images: cs.n, side: cs.side, channels: cs.c, act, w, out, sum, sumsq });
    let n = 0;
    for (let o = 0; o < out.length; o++) if (Math.abs(out[o]! - exact.y[o]!) > gamma(9 * cs.c) * exact.abs[o]!) n++;
    assert.ok(n > out.length / 2, `${k}: only ${n} of ${out.length} outputs differ from the fp32 products beyond fp32 rounding`);
    beyond += n;
  }
  assert.ok(beyond > 0);
});

// ---- the whole fitness ----

function strokes(rng: Rng, n: number, c: number, s: number): Tensor {
  const t = Tensor.zeros([n, c, s, s], 'float32');
  t.data.fill(1);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < 3; k++) {
      let y = rng.int(s), x = rng.int(s);
      const ch = rng.int(c);
      for (let step = 0; step < s; step++) {
        t.data[((i * c + ch) * s + y) * s + x] = 0;
        y = Math.min(s - 1, Math.max(0, y + rng.int(3) - 1));
        x = Math.min(s - 1, Math.max(0, x + rng.int(3) - 1));
      }
    }
  return t;
}

function episode(rng: Rng, way: number, shot: number, query: number, c: number, s: number): Episode {
  const lab = (k: number): Int32Array => Int32Array.from({ length: way * k }, (_, i) => i % way);
  return { way, support: strokes(rng, way * shot, c, s), supportLabels: lab(shot), query: strokes(rng, way * query, c, s), queryLabels: lab(query) };
}

interface PopCase { name: string; model: Partial<ModelConfig>; way: number; shot: number; query: number; distance: Distance; members: [number, number] }
const POP: PopCase[] = [
  { name: 'C=16 28x28 4 blocks (5w2s3q)', model: { channels: 16, imageSize: 28 }, way: 5, shot: 2, query: 3, distance: 'euclidean', members: [0, 8] },
  { name: 'C=6 (channel padding) 28x28 cosine', model: { channels: 6, imageSize: 28 }, way: 3, shot: 2, query: 2, distance: 'cosine', members: [3, 9] },
  { name: 'C=32 3 input channels 9x9 2 blocks', model: { channels: 32, inChannels: 3, imageSize: 9, blocks: 2 }, way: 3, shot: 1, query: 2, distance: 'euclidean', members: [0, 6] },
  { name: 'C=64 10x10 3 blocks', model: { channels: 64, imageSize: 10, blocks: 3 }, way: 4, shot: 1, query: 2, distance: 'euclidean', members: [1, 7] },
  { name: 'C=32 28x28 20w1s2q (image chunks)', model: { channels: 32, imageSize: 28 }, way: 20, shot: 1, query: 2, distance: 'euclidean', members: [0, 6] },
];

function requestFor(c: PopCase, rng: Rng): PopulationRequest {
  const layout = new ProtoNetLayout(c.model);
  return {
    model: layout.config, mu: initParams(layout, 5), perturbation: { kind: 'gaussian', sigma: 0.05, antithetic: true },
    seed: 1234, step: 7, start: c.members[0], end: c.members[1],
    episode: episode(rng, c.way, c.shot, c.query, layout.config.inChannels, layout.config.imageSize), distance: c.distance,
  };
}

const rel = (a: Float64Array, b: Float64Array): number[] => [...a].map((v, i) => Math.abs(v - b[i]!) / Math.max(1e-3, Math.abs(b[i]!)));
const median = (x: number[]): number => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)]!;

withAddon('fitness: bf16 vs fp32 within 8u per member (u = 2^-8), median in [u/64, 2u]; every kernel vs emulated within u/4; 1 and 2 threads bit for bit', async () => {
  const rng = new Rng(11);
  const all: number[] = [], vsEmu: number[] = [];
  for (const c of POP) {
    const req = requestFor(c, rng);
    const fp32 = await new NativePopulationEvaluator({ threads: 2 }).evaluate(req);
    assert.equal([...await new NativePopulationEvaluator({ threads: 2, precision: 'fp32' }).evaluate(req)], [...fp32], `${c.name}: explicit fp32 = default`);
    const emu = await new NativePopulationEvaluator({ threads: 1, precision: 'bf16', bf16Kernel: 'emulated' }).evaluate(req);
    for (const k of ['emulated' as const, ...HW]) {
      const one = await new NativePopulationEvaluator({ threads: 1, precision: 'bf16', bf16Kernel: k }).evaluate(req);
      const two = await new NativePopulationEvaluator({ threads: 2, precision: 'bf16', bf16Kernel: k }).evaluate(req);
      assert.equal([...two], [...one], `${c.name} ${k}: 2 threads differ from 1`);
      const e = rel(one, fp32);
      for (const [i, v] of e.entries()) assert.ok(v <= 8 * U, `${c.name} ${k}: member ${i}: bf16 ${one[i]} vs fp32 ${fp32[i]} (relative ${v.toExponential(2)} > 8u)`);
      all.push(...e);
      const ve = rel(one, emu);
      vsEmu.push(...ve);
      for (const [i, v] of ve.entries()) assert.ok(v <= U / 4, `${c.name} ${k}: member ${i}: ${one[i]} vs emulated ${emu[i]} (relative ${v.toExponential(2)} > u/4)`);
    }
    // the emulated kernel on the lower ISAs (its products and rounding are the same)
    for (const isa of ISAS.filter((i) => i !== bestIsa)) {
      setNativeIsa(isa);
      const got = await new NativePopulationEvaluator({ threads: 1, precision: 'bf16', bf16Kernel: 'emulated' }).evaluate(req);
      for (const [i, v] of rel(got, emu).entries()) assert.ok(v <= U / 4, `${c.name} emulated on ${isa}: member ${i} (relative ${v.toExponential(2)})`);
      restore();
    }
  }
  const m = median(all);
  console.log(`  bf16 vs fp32: median ${(m / U).toFixed(2)}u, max ${(Math.max(...all) / U).toFixed(2)}u; hardware vs emulated: max ${(Math.max(...vsEmu) / U).toFixed(3)}u (${all.length} member evaluations)`);
  assert.ok(m >= U / 64 && m <= 2 * U, `median relative bf16 vs fp32 difference ${m.toExponential(2)} is outside [u/64, 2u]`);
});

withHw('fitness: the process-wide bf16 kernel choice (setNativeBf16Kernel) is what an evaluator without bf16Kernel runs', async () => {
  const req = requestFor(POP[3]!, new Rng(3));
  const ev = new NativePopulationEvaluator({ threads: 1, precision: 'bf16' });
  assert.is(ev.info().kernel, bf!.detected);
  try {
    assert.ok(setNativeBf16Kernel('emulated'));
    assert.is(ev.info().kernel, 'emulated');
    const viaProcess = await ev.evaluate(req);
    const explicit = await new NativePopulationEvaluator({ threads: 1, precision: 'bf16', bf16Kernel: 'emulated' }).evaluate(req);
    assert.equal([...viaProcess], [...explicit]);
  } finally {
    assert.ok(setNativeBf16Kernel('auto'));
  }
  assert.is(nativeInfo().bf16.kernel, bf!.detected);
  assert.is(new NativePopulationEvaluator().info().kernel, 'none');
});

withAddon('fitness: NaN or inf in the parameters gives a non-finite fitness on every bf16 kernel (as fp32)', async () => {
  const req = requestFor(POP[0]!, new Rng(8));
  const layout = new ProtoNetLayout(POP[0]!.model);
  for (const [what, v, at] of [['NaN in a block-0 weight', NaN, 3], ['inf in a block-3 weight', Infinity, layout.numParams - 200], ['NaN in a block-1 weight', NaN, 16 * 9 + 16 * 3 + 50]] as const) {
    const mu = Float32Array.from(req.mu);
    mu[at] = v;
    const bad = { ...req, mu, start: 0, end: 2 };
    assert.ok((await new NativePopulationEvaluator({ threads: 1 }).evaluate(bad)).every((f) => !Number.isFinite(f)), `fp32: ${what}`);
    for (const k of ['emulated' as const, ...HW]) {
      const got = await new NativePopulationEvaluator({ threads: 1, precision: 'bf16', bf16Kernel: k }).evaluate(bad);
      assert.ok(got.every((f) => !Number.isFinite(f)), `${k}: ${what}: fitness ${[...got]}`);
    }
  }
});

// ---- the boundary ----

withAddon('boundary: a bad precision or kernel is refused with an error naming the field and the value', async () => {
  const req = requestFor(POP[0]!, new Rng(1));
  assert.throws(() => new NativePopulationEvaluator({ precision: 'fp16' as never }), (e: unknown) => e instanceof RangeError && /precision must be one of fp32, bf16, got "fp16"/.test((e as Error).message));
  assert.throws(() => new NativePopulationEvaluator({ bf16Kernel: 'amx' }), (e: unknown) => e instanceof RangeError && /bf16Kernel applies to precision 'bf16' only/.test((e as Error).message));
  assert.throws(() => new NativePopulationEvaluator({ precision: 'bf16', bf16Kernel: 'tpu' as never }), (e: unknown) => e instanceof RangeError && /bf16Kernel must be one of .*got "tpu"/.test((e as Error).message));
  const raw = (extra: Record<string, unknown>): unknown => addon().evaluatePopulation({
    blocks: 4, inChannels: 1, imageSize: 28, channels: 16, bnEps: 1e-5, way: 5, supportCount: 10, queryCount: 15,
    support: req.episode!.support.data, query: req.episode!.query.data, supportLabels: req.episode!.supportLabels, queryLabels: req.episode!.queryLabels,
    distance: 'euclidean', cosineScale: 1, mu: req.mu, kind: 'gaussian', sigma: 0.1, antithetic: false, seed: 1, step: 0, start: 0, end: 1, threads: 1, ...extra,
  });
  assert.throws(() => raw({ precision: 'bf8' }), (e: unknown) => e instanceof RangeError && /evaluatePopulation: field 'precision' must be one of fp32, bf16, got 'bf8'/.test((e as Error).message));
  assert.throws(() => raw({ precision: 16 }), (e: unknown) => e instanceof TypeError && /field 'precision' must be a string/.test((e as Error).message));
  assert.throws(() => raw({ bf16Kernel: 'amx' }), (e: unknown) => e instanceof RangeError && /'bf16Kernel' applies to precision 'bf16' only/.test((e as Error).message));
  assert.throws(() => raw({ precision: 'bf16', bf16Kernel: 'gpu' }), (e: unknown) => e instanceof RangeError && /field 'bf16Kernel' must be one of auto, amx, avx512bf16, emulated/.test((e as Error).message));
  assert.throws(() => addon().bf16Round({ kernel: 'fast' as never, x: new Float32Array(2), out: new Float32Array(2) }), RangeError);
  assert.throws(() => addon().bf16Round({ kernel: 'reference', x: new Float32Array(2), out: new Float32Array(3) }), RangeError);
  assert.throws(() => addon().bf16Conv({ kernel: 'emulated', images: 1, side: 3, channels: 4, act: new Float32Array(36), w: new Float32Array(143), out: new Float32Array(36), sum: new Float64Array(4), sumsq: new Float64Array(4) }), (e: unknown) => e instanceof RangeError && /'w' has 143 elements, expected 144/.test((e as Error).message));
  assert.throws(() => setNativeBf16Kernel('fp8' as never), (e: unknown) => e instanceof RangeError && /setBf16Kernel: expected/.test((e as Error).message));
  // the evaluator registry: bf16 only where an evaluator supports it
  assert.throws(() => evaluatorSpecFor('cpu-ts', { precision: 'bf16' }), (e: unknown) => e instanceof UserError && /precision bf16: .*supports fp32 only; bf16 runs on cpu-native/.test((e as Error).message));
  assert.throws(() => evaluatorSpecFor('cpu-native', { precision: 'half' as never }), (e: unknown) => e instanceof UserError && /precision \(--precision\) must be one of fp32, bf16, got "half"/.test((e as Error).message));
  const ok = await raw({ precision: 'bf16', bf16Kernel: 'emulated' }) as Float64Array;
  assert.ok(ok.length === 1 && Number.isFinite(ok[0]!));
});

withHw('the evaluator registry hands precision bf16 to the cpu-native factory (as a worker builds it)', async () => {
  const spec = evaluatorSpecFor('cpu-native', { precision: 'bf16' });
  assert.is(spec.precision, 'bf16');
  assert.match(spec.reason, /precision bf16/);
  assert.is(evaluatorSpecFor('cpu-native').precision, undefined);
  // a structured clone, as the runner posts it to a worker thread
  const ev = await loadEvaluator(structuredClone(spec));
  assert.is(ev.precision, 'bf16');
  await ev.close?.();
});

// ---- CPUs without bf16 (or without AMX), in a child process ----

function child(env: Record<string, string>): { kernel: string; available: string[]; reason: string; error?: string; emulated?: number; auto: string } {
  const script = `
    import('./dist/lib/internal.js').then(async (m) => {
      const info = m.nativeInfo().bf16;
      let error;
      try { new m.NativePopulationEvaluator({ precision: 'bf16' }); } catch (e) { error = e.message; }
      console.log(JSON.stringify({ ...info, error, auto: m.resolvePrecision('auto', 'cpu-native') }));
    });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: PACKAGE_ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as never;
}

withAddon('a CPU without bf16 (EVOMETA_BF16=off): precision bf16 is refused naming the CPU flags; the emulated kernel still runs', () => {
  const r = child({ EVOMETA_BF16: 'off' });
  assert.is(r.kernel, 'none');
  assert.equal(r.available, ['emulated']);
  assert.match(r.error ?? '', /precision 'bf16' needs a CPU with AVX512_BF16 \(cpuid flag avx512_bf16.*\) or AMX-BF16 \(amx_bf16 \+ amx_tile\); this one has neither/);
  assert.match(r.reason, /EVOMETA_BF16=off|avx512_bf16 no/);
  assert.is(r.auto, 'fp32', 'precision auto without bf16: fp32');
});

withAvx('a CPU without AMX (EVOMETA_BF16=noamx, as Zen 4/5): the default kernel is avx512bf16', () => {
  const r = child({ EVOMETA_BF16: 'noamx' });
  assert.is(r.kernel, 'avx512bf16');
  assert.ok(!r.available.includes('amx'));
  assert.is(r.error, undefined);
  assert.is(r.auto, 'fp32', 'precision auto without AMX: fp32 (AVX512_BF16 is slower than fp32 on the CPUs measured)');
});

withAddon('precision auto: bf16 exactly where the kernel is AMX, fp32 on other devices; explicit precisions pass through', () => {
  assert.is(resolvePrecision('auto', 'cpu-native'), bf!.kernel === 'amx' ? 'bf16' : 'fp32');
  assert.is(resolvePrecision('auto', 'cpu-ts'), 'fp32');
  assert.is(resolvePrecision('fp32', 'cpu-native'), 'fp32');
  assert.is(resolvePrecision('bf16', 'cpu-native'), 'bf16');
});

test.run();
