/**
 * Per-parameter sigma (SNES, PGPE) in the population contract (lib/es/population.ts):
 * perturbation kind 'diagonal' (eps_j = f32(sigmas_j * z_j)) and noise sums with `sigmas` and
 * kind 'square' (sum_i w_i (z_ij^2 - 1)). The spec is lib/es/noise.ts; cpu-native, the cpu-ts
 * evaluator and the function evaluator must match it: noise sums bit for bit (every thread
 * count, several D including odd ones and ones that cross the native chunk boundaries),
 * fitness within float32 rounding (as test/native.test.ts does for 'gaussian'), and the
 * diagonal perturbation exactly where it can be compared exactly.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/index.js';
import { deviceReport } from '../lib/device/registry.js';
import { NativePopulationEvaluator, nativeInfo, setNativeIsa } from '../lib/device/cpu-native/index.js';
import { DirectOpsPopulationEvaluator } from '../lib/es/population-ts.js';
import { FunctionPopulationEvaluator } from '../lib/es/function-evaluator.js';
import { XlaPopulationEvaluator } from '../lib/device/xla/evaluator.js';
import type { XlaDevice } from '../lib/device/xla/device.js';
import { noiseSumInto, perturbMember } from '../lib/es/noise.js';
import type { NoiseSumRequest, Perturbation, PopulationEvaluator, PopulationRequest } from '../lib/es/population.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { ProtoNetLayout, type ModelConfig } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { Rng } from '../lib/rng/philox.js';

const haveNative = deviceReport().find((d) => d.name === 'cpu-native')?.available === true;
if (!haveNative) console.log('noise-diag: native cases SKIP: cpu-native unavailable');
const tn = haveNative ? test : test.skip;
const ISAS = haveNative ? (['avx512', 'avx2', 'scalar'] as const).filter((isa) => setNativeIsa(isa)) : [];
const best = haveNative ? nativeInfo().detectedIsa : 'scalar';
if (haveNative) setNativeIsa(best);

const rng = new Rng(20261201);
const f32 = Math.fround;

function sigmasFor(d: number, lo = 0.005, hi = 0.1): Float32Array {
  return Float32Array.from({ length: d }, () => lo + (hi - lo) * rng.uniform());
}

/** Index of the first element whose float64 bits differ, or -1. */
function firstDiff(a: Float64Array | Float32Array, b: Float64Array | Float32Array): number {
  if (a.length !== b.length) return -2;
  const ua = new Uint8Array(a.buffer, a.byteOffset, a.byteLength), ub = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  const w = a.BYTES_PER_ELEMENT;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return Math.floor(i / w);
  return -1;
}

function spec(req: NoiseSumRequest): Float64Array {
  const out = new Float64Array(req.mu.length);
  noiseSumInto(out, req, new Float32Array(req.mu.length));
  return out;
}

// ---- the spec itself ----

test('spec: a diagonal perturbation whose sigmas all equal a float32 sigma is exactly the gaussian one', () => {
  for (const d of [1, 7, 1000]) {
    const mu = Float32Array.from({ length: d }, () => rng.normal());
    const sigma = f32(0.03);
    const z = new Float32Array(d), a = new Float32Array(d), b = new Float32Array(d);
    for (const antithetic of [false, true]) {
      for (const m of [0, 1, 6, 11]) {
        perturbMember(a, mu, { kind: 'gaussian', sigma, antithetic }, 5, 2, m, z);
        perturbMember(b, mu, { kind: 'diagonal', sigmas: new Float32Array(d).fill(sigma), antithetic }, 5, 2, m, z);
        assert.is(firstDiff(a, b), -1, `d ${d} member ${m} antithetic ${antithetic}`);
      }
    }
    // and the noise sum with sigmas == sigma is the scalar one
    const w = Float64Array.from({ length: 5 }, () => rng.normal());
    const base: NoiseSumRequest = { mu, seed: 5, step: 2, antithetic: true, sigma, start: 3, weights: w };
    assert.is(firstDiff(spec({ ...base, sigmas: new Float32Array(d).fill(sigma) }), spec(base)), -1, `noise sum d ${d}`);
  }
});

test('spec: eps_j = f32(sigmas_j * z_j), antithetic pairs mirror it, theta = f32(mu + s eps)', () => {
  const d = 33, mu = Float32Array.from({ length: d }, () => rng.normal()), sigmas = sigmasFor(d);
  const z = new Float32Array(d), t0 = new Float32Array(d), t1 = new Float32Array(d), zz = new Float32Array(d);
  perturbMember(t0, mu, { kind: 'diagonal', sigmas, antithetic: true }, 8, 4, 6, z);
  perturbMember(t1, mu, { kind: 'diagonal', sigmas, antithetic: true }, 8, 4, 7, z);
  perturbMember(zz, new Float32Array(d), { kind: 'gaussian', sigma: 1, antithetic: false }, 8, 4, 3, z); // z of noise id 3
  for (let j = 0; j < d; j++) {
    const eps = f32(sigmas[j]! * zz[j]!);
    assert.is(t0[j], f32(mu[j]! + eps), `member 6, j ${j}`);
    assert.is(t1[j], f32(mu[j]! - eps), `member 7, j ${j}`);
  }
});

test('spec: the square noise sum is sum_i w_i (z_i^2 - 1), one term per member, no sign', () => {
  const d = 17, mu = new Float32Array(d), w = Float64Array.from([0.5, -1.25, 2]);
  const got = spec({ mu, seed: 1, step: 9, antithetic: true, sigma: 1, kind: 'square', start: 4, weights: w });
  const z = new Float32Array(d), want = new Float64Array(d);
  for (let i = 0; i < 3; i++) {
    perturbMember(z, new Float32Array(d), { kind: 'gaussian', sigma: 1, antithetic: false }, 1, 9, Math.floor((4 + i) / 2), new Float32Array(d));
    for (let j = 0; j < d; j++) want[j] = want[j]! + w[i]! * (z[j]! * z[j]! - 1);
  }
  assert.is(firstDiff(got, want), -1);
});

test('requests outside the contract are refused with a RangeError naming the field', async () => {
  const d = 8, mu = new Float32Array(d);
  const evs: PopulationEvaluator[] = [new DirectOpsPopulationEvaluator('cpu-ts'), new FunctionPopulationEvaluator(() => 0)];
  if (haveNative) evs.push(new NativePopulationEvaluator({ threads: 1 }));
  const bad: Array<[Float32Array, RegExp]> = [
    [Float32Array.from({ length: d }, (_, j) => (j === 3 ? 0 : 0.1)), /sigmas\[3\] must be finite and > 0, got 0/],
    [Float32Array.from({ length: d }, (_, j) => (j === 5 ? NaN : 0.1)), /sigmas\[5\] must be finite and > 0, got NaN/],
    [new Float32Array(d - 1).fill(0.1), /sigmas has 7 elements, mu 8/],
  ];
  for (const ev of evs) {
    for (const [sigmas, re] of bad) {
      let err: unknown;
      try {
        await ev.noiseSum({ mu, seed: 0, step: 0, antithetic: false, sigma: 0.1, sigmas, start: 0, weights: new Float64Array(2) });
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof RangeError && re.test(err.message), `${ev.device} noiseSum: ${String(err)}`);
    }
    let err: unknown;
    try {
      await ev.noiseSum({ mu, seed: 0, step: 0, antithetic: false, sigma: 0.1, kind: 'cube' as 'square', start: 0, weights: new Float64Array(2) });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof RangeError && /kind must be 'linear' or 'square'/.test(err.message), `${ev.device} kind: ${String(err)}`);
  }
});

// ---- implementations against the spec ----

const DS = [1, 7, 1025, 8195, 20001]; // odd sizes; 8195 and 20001 cross the native 8192-element chunks

function evaluators(): Array<[string, PopulationEvaluator]> {
  const list: Array<[string, PopulationEvaluator]> = [['cpu-ts', new DirectOpsPopulationEvaluator('cpu-ts')], ['function', new FunctionPopulationEvaluator(() => 0)]];
  if (haveNative) list.push(['native 1 thread', new NativePopulationEvaluator({ threads: 1 })], ['native 2 threads', new NativePopulationEvaluator({ threads: 2 })]);
  return list;
}

test('noise sums are bit-identical to the spec: linear (sigma, sigmas) and square, antithetic or not, several D, every evaluator and ISA', async () => {
  const isas: Array<'avx512' | 'avx2' | 'scalar' | 'none'> = ISAS.length ? [...ISAS] : ['none'];
  for (const d of DS) {
    const mu = new Float32Array(d), sigmas = sigmasFor(d);
    for (const antithetic of [false, true]) {
      const w = Float64Array.from({ length: 7 }, () => rng.normal());
      const base: NoiseSumRequest = { mu, seed: 4242, step: 17, antithetic, sigma: 0.02, start: 5, weights: w };
      const variants: Array<[string, NoiseSumRequest]> = [
        ['linear sigma', base], ['linear sigmas', { ...base, sigmas }], ['square', { ...base, kind: 'square' }], ['square with sigmas', { ...base, kind: 'square', sigmas }],
      ];
      for (const [what, req] of variants) {
        const want = spec(req);
        assert.ok(want.some((v) => v !== 0) && want.every(Number.isFinite), `${what}: the spec sum is non-trivial`);
        for (const isa of isas) {
          if (isa !== 'none') setNativeIsa(isa);
          for (const [name, ev] of evaluators()) {
            if (isa !== isas[0] && !name.startsWith('native')) continue;
            const got = await ev.noiseSum(req);
            assert.is(firstDiff(got, want), -1, `${name} (${isa}) ${what}, D ${d}, antithetic ${antithetic}`);
          }
        }
        if (haveNative) setNativeIsa(best);
      }
    }
  }
  // the square sum does not depend on sigma or sigmas at all
  const mu = new Float32Array(101), w = Float64Array.from([1, 2, 3]);
  const sq = (o: Partial<NoiseSumRequest>): Float64Array => spec({ mu, seed: 1, step: 1, antithetic: false, sigma: 0.5, kind: 'square', start: 0, weights: w, ...o });
  assert.is(firstDiff(sq({ sigma: 3 }), sq({ sigmas: sigmasFor(101) })), -1);
});

test('function evaluator: members get exactly the spec\'s diagonal perturbation', async () => {
  const d = 257, mu = Float32Array.from({ length: d }, () => rng.normal()), sigmas = sigmasFor(d);
  const pert: Perturbation = { kind: 'diagonal', sigmas, antithetic: true };
  const seen = new Map<number, Float32Array>();
  const ev = new FunctionPopulationEvaluator((theta, m) => { seen.set(m, theta.slice()); return 0; });
  await ev.evaluate({ model: {} as ModelConfig, mu, perturbation: pert, seed: 3, step: 1, start: 2, end: 6, episode: null as never, distance: 'euclidean' });
  const want = new Float32Array(d), z = new Float32Array(d);
  for (let m = 2; m < 6; m++) {
    perturbMember(want, mu, pert, 3, 1, m, z);
    assert.is(firstDiff(seen.get(m)!, want), -1, `member ${m}`);
  }
});

const MODELS: Array<{ name: string; model: Partial<ModelConfig>; way: number; shot: number; query: number }> = [
  { name: 'C=16 28x28 4 blocks', model: { channels: 16, imageSize: 28 }, way: 3, shot: 2, query: 2 },
  { name: 'C=32 9x9 2 blocks', model: { channels: 32, imageSize: 9, blocks: 2 }, way: 3, shot: 1, query: 2 },
];

tn('native diagonal perturbation: fitness = cpu-ts within float32 rounding (every ISA, antithetic or not), = native gaussian bit for bit when the sigmas are one float32', async () => {
  const ref = new DirectOpsPopulationEvaluator('cpu-ts');
  const nat = new NativePopulationEvaluator({ threads: 1 });
  const nat2 = new NativePopulationEvaluator({ threads: 2 });
  for (const c of MODELS) {
    const layout = new ProtoNetLayout(c.model);
    const cfg = layout.config;
    const ep = new SyntheticEpisodes({ way: c.way, shot: c.shot, query: c.query, imageSize: cfg.imageSize, seed: 2 }).episode(3);
    const mu = initParams(layout, 6), d = mu.length;
    for (const antithetic of [true, false]) {
      const pert: Perturbation = { kind: 'diagonal', sigmas: sigmasFor(d, 0.01, 0.2), antithetic };
      const req: PopulationRequest = { model: cfg, mu, perturbation: pert, seed: 99, step: 4, start: 1, end: 5, episode: ep, distance: 'euclidean' };
      const want = await ref.evaluate(req);
      assert.ok(new Set(Array.from(want)).size > 1 && want.every(Number.isFinite), 'members differ and are finite');
      for (const isa of ISAS) {
        setNativeIsa(isa);
        const got = await nat.evaluate(req);
        for (let i = 0; i < want.length; i++) {
          const err = Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!));
          assert.ok(err < 2e-5, `${c.name} ${isa} antithetic ${antithetic} member ${i}: native ${got[i]} vs cpu-ts ${want[i]} (${err.toExponential(2)})`);
        }
        assert.is(firstDiff(await nat2.evaluate(req), got), -1, `${c.name} ${isa}: 2 threads = 1 thread`);
        // exact: one float32 sigma everywhere is the gaussian perturbation
        const s = f32(0.04);
        const g = await nat.evaluate({ ...req, perturbation: { kind: 'gaussian', sigma: s, antithetic } });
        const dg = await nat.evaluate({ ...req, perturbation: { kind: 'diagonal', sigmas: new Float32Array(d).fill(s), antithetic } });
        assert.is(firstDiff(dg, g), -1, `${c.name} ${isa}: diagonal(sigma) = gaussian(sigma) bit for bit`);
      }
      setNativeIsa(best);
    }
  }
});

test('the xla evaluator refuses per-parameter sigma and square sums with a clear error', async () => {
  const ev = new XlaPopulationEvaluator({} as XlaDevice); // refused before the device is touched
  const d = 4, mu = new Float32Array(d);
  const expectError = async (f: () => Promise<unknown>, re: RegExp): Promise<void> => {
    let err: unknown;
    try {
      await f();
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof Error && re.test(err.message), String(err));
  };
  await expectError(() => ev.evaluate({ model: {} as ModelConfig, mu, perturbation: { kind: 'diagonal', sigmas: new Float32Array(d).fill(0.1), antithetic: false }, seed: 0, step: 0, start: 0, end: 1, episode: null as never, distance: 'euclidean' }),
    /xla population: per-parameter sigma \(perturbation kind 'diagonal'\) is not implemented on the xla device/);
  await expectError(() => ev.noiseSum({ mu, seed: 0, step: 0, antithetic: false, sigma: 0.1, kind: 'square', start: 0, weights: new Float64Array(1) }), /xla noiseSum: kind 'square' is not implemented on the xla device/);
  await expectError(() => ev.noiseSum({ mu, seed: 0, step: 0, antithetic: false, sigma: 0.1, sigmas: new Float32Array(d).fill(0.1), start: 0, weights: new Float64Array(1) }), /xla noiseSum: per-parameter sigmas are not implemented/);
});

test.run();
