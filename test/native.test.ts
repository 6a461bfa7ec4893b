/**
 * cpu-native beyond the op spec: the loader and its fallback, the boundary checks, the Philox
 * noise (bit-identical to gaussianFill), and the population loop (fitness vs the cpu-ts
 * evaluator, noise sums bit-identical to the TypeScript spec), on every ISA variant the CPU runs.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../lib/index.js';
import { deviceReport, getDevice } from '../lib/device/registry.js';
import { NativePopulationEvaluator, gaussianFillNative, nativeInfo, setNativeIsa } from '../lib/device/cpu-native/index.js';
import { addon, PACKAGE_ROOT } from '../lib/device/cpu-native/addon.js';
import { DirectOpsPopulationEvaluator } from '../lib/es/population-ts.js';
import type { PopulationRequest } from '../lib/es/population.js';
import { ProtoNetLayout, type ModelConfig } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import type { Distance, Episode } from '../lib/model/protonet.js';
import { Rng, gaussianFill } from '../lib/rng/philox.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { needs, nativeAddon } from './helpers/peers.js';

const native = await nativeAddon();
/** Tests that need the addon: skipped (counted as skips, reason printed once) when it does not load. */
const withAddon = needs(native, 'native.test: the addon');
const ISAS = (['avx512', 'avx2', 'scalar'] as const).filter((isa) => native.ok && setNativeIsa(isa));
const best = native.ok ? nativeInfo().detectedIsa : 'scalar';
const restore = (): void => { if (native.ok) setNativeIsa(best); };

withAddon('the loader: cpu-native is the default device when the addon loads, and says which ISA and why', () => {
  const d = getDevice();
  assert.is(d.name, 'cpu-native');
  const info = d.info();
  assert.ok(['avx512', 'avx2', 'scalar'].includes(info.isa!), `isa ${info.isa}`);
  assert.match(info.reason!, /native addon/);
  assert.ok((info.detail!.threads as number) >= 1);
  assert.is(info.detail!.float64, 'cpu-ts');
  assert.ok(ISAS.includes('scalar') && ISAS.includes(best), `the ISA loops below cover ${ISAS.join(', ')}`);
});

test('the loader: without a build or prebuild, getDevice() falls back to cpu-ts and the report says why', () => {
  // a copy of the compiled package with no build/ and no prebuilds/
  const dir = mkdtempSync(join(tmpdir(), 'evometa-nobuild-'));
  try {
    cpSync(join(PACKAGE_ROOT, 'dist', 'lib'), join(dir, 'dist', 'lib'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'evometa', type: 'module' }));
    symlinkSync(join(PACKAGE_ROOT, 'node_modules'), join(dir, 'node_modules'));
    const script = `import('./dist/lib/index.js').then((m) => { console.log(JSON.stringify({ name: m.getDevice().name, report: m.deviceReport() })); });`;
    const env = { ...process.env };
    delete env.EVOMETA_NATIVE_ADDON;
    const r = spawnSync(process.execPath, ['-e', script], { cwd: dir, env, encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { name: string; report: { name: string; available: boolean; reason?: string }[] };
    assert.is(out.name, 'cpu-ts');
    const status = out.report.find((s) => s.name === 'cpu-native')!;
    assert.is(status.available, false);
    assert.match(status.reason!, /addon not built/);
    assert.match(status.reason!, /npm rebuild evometa/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

withAddon('the boundary: wrong types and lengths throw TypeError/RangeError, never crash', () => {
  const a = addon();
  const x = new Float32Array(6), y = new Float32Array(6);
  assert.throws(() => a.relu({ x: new Float64Array(6), y, size: 6 }), (e: unknown) => e instanceof TypeError && /'x' must be a Float32Array/.test((e as Error).message));
  assert.throws(() => a.relu({ x, y: new Float32Array(5), size: 6 }), (e: unknown) => e instanceof RangeError && /'y' has 5 elements, expected 6/.test((e as Error).message));
  assert.throws(() => a.relu({ x, y, size: -1 }), RangeError);
  assert.throws(() => (a.relu as unknown as (v: unknown) => void)(42), TypeError);
  assert.throws(() => a.maxpool2dBackward({ dy: new Float32Array(2), argmax: Int32Array.from([0, 9]), outputSize: 2, inputSize: 4, dx: new Float32Array(4) }),
    (e: unknown) => e instanceof RangeError && /argmax'\[1\] = 9/.test((e as Error).message));
  assert.throws(() => a.conv2d({ x, xShape: [1, 1, 2, 3], w: new Float32Array(9), wShape: [1, 2, 3, 3], stride: 1, padding: 1, y }), RangeError);
  assert.throws(() => a.conv2d({ x, xShape: [1, 1, 2, 3.5], w: new Float32Array(9), wShape: [1, 1, 3, 3], stride: 1, padding: 1, y }), RangeError);
  assert.throws(() => a.prototypes({ support: new Float32Array(6), rows: 3, e: 2, labels: Int32Array.from([0, 0, 2]), way: 3, out: new Float32Array(6) }),
    (e: unknown) => e instanceof RangeError && /class 1 has no support example/.test((e as Error).message));
  assert.throws(() => a.gaussianFill({ out: new Float32Array(4), seed: 2 ** 32, stream: 0, step: 0, member: 0, start: 0 }), RangeError);
  // through the device: shapes checked before the call
  const dev = getDevice('cpu-native');
  assert.throws(() => dev.run('conv2d', { x: Tensor.zeros([1, 2, 3, 3]), w: Tensor.zeros([1, 3, 3, 3]) }, { stride: 1, padding: 1 }), RangeError);
  assert.throws(() => dev.run('crossEntropy', { logp: Tensor.zeros([2, 3]), labels: Int32Array.from([0, 3]) }, {}), RangeError);
});

withAddon('float64 inputs run the cpu-ts kernels (exactly the reference)', () => {
  const rng = new Rng(3);
  const x = Tensor.zeros([3, 3, 5, 7], 'float64'), w = Tensor.zeros([4, 3, 3, 3], 'float64');
  for (const t of [x, w]) for (let i = 0; i < t.size; i++) t.data[i] = rng.uniform() - 0.5;
  const a = getDevice('cpu-native').run('conv2d', { x, w }, { stride: 1, padding: 1 });
  const b = getDevice('cpu-ts').run('conv2d', { x, w }, { stride: 1, padding: 1 });
  assert.ok(a.data instanceof Float64Array);
  assert.equal([...a.data], [...b.data]);
});

withAddon('noise: the native Philox/Box-Muller fill is bit-identical to gaussianFill (every ISA, odd offsets)', () => {
  for (const isa of ISAS) {
    setNativeIsa(isa);
    for (const [n, seed, stream, step, member, start] of [[1000, 42, 0, 9, 0, 0], [1003, 7, 0, 0, 5, 5], [20001, 2 ** 32 - 1, 3, 2 ** 32 - 1, 2 ** 32 - 1, 3], [77, 1, 1, 1, 1, 2 ** 34 + 1]]) {
      const want = new Float32Array(n!), got = new Float32Array(n!);
      gaussianFill(want, seed!, stream!, step!, member!, start!);
      gaussianFillNative(got, seed!, stream!, step!, member!, start!);
      const wb = new Uint32Array(want.buffer), gb = new Uint32Array(got.buffer);
      let diff = -1;
      for (let i = 0; i < n! && diff < 0; i++) if (wb[i] !== gb[i]) diff = i;
      assert.is(diff, -1, `${isa}: first differing index ${diff}: ${got[diff]} vs ${want[diff]}`);
    }
  }
  restore();
});

// ---- population loop vs the cpu-ts evaluator ----

/** Binary stroke images on a white (1) background, like Omniglot. */
function strokes(rng: Rng, n: number, c: number, s: number): Tensor {
  const t = Tensor.zeros([n, c, s, s], 'float32');
  t.data.fill(1);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 3; k++) {
      let y = rng.int(s), x = rng.int(s);
      const ch = rng.int(c);
      for (let step = 0; step < s; step++) {
        t.data[((i * c + ch) * s + y) * s + x] = 0;
        y = Math.min(s - 1, Math.max(0, y + rng.int(3) - 1));
        x = Math.min(s - 1, Math.max(0, x + rng.int(3) - 1));
      }
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
  { name: 'C=16 28x28 4 blocks (5w2s3q)', model: { channels: 16, imageSize: 28 }, way: 5, shot: 2, query: 3, distance: 'euclidean', members: [0, 4] },
  { name: 'C=6 (channel padding) 28x28 cosine', model: { channels: 6, imageSize: 28 }, way: 3, shot: 2, query: 2, distance: 'cosine', members: [3, 6] },
  { name: 'C=32 3 input channels 9x9 2 blocks', model: { channels: 32, inChannels: 3, imageSize: 9, blocks: 2 }, way: 3, shot: 1, query: 2, distance: 'euclidean', members: [0, 3] },
  { name: 'C=64 10x10 3 blocks', model: { channels: 64, imageSize: 10, blocks: 3 }, way: 4, shot: 1, query: 2, distance: 'euclidean', members: [1, 4] },
  // 60 images: blocks run in several image chunks, the last one partial
  { name: 'C=32 28x28 20w1s2q (image chunks)', model: { channels: 32, imageSize: 28 }, way: 20, shot: 1, query: 2, distance: 'euclidean', members: [0, 2] },
];

function close(got: Float64Array, want: Float64Array, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    // float32 forward passes on both sides; the loss is O(1): agree to float32 rounding, amplified by 4 BN layers
    const err = Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!));
    assert.ok(err < 2e-5, `${what}: member ${i}: native ${got[i]} vs cpu-ts ${want[i]} (error ${err.toExponential(2)})`);
  }
}

withAddon('population: fitness matches the cpu-ts evaluator (gaussian antithetic, every ISA, odd shapes)', async () => {
  const ref = new DirectOpsPopulationEvaluator('cpu-ts');
  const nat = new NativePopulationEvaluator();
  const rng = new Rng(11);
  for (const c of POP) {
    const layout = new ProtoNetLayout(c.model);
    const req: PopulationRequest = {
      model: layout.config, mu: initParams(layout, 5), perturbation: { kind: 'gaussian', sigma: 0.05, antithetic: true },
      seed: 1234, step: 7, start: c.members[0], end: c.members[1],
      episode: episode(rng, c.way, c.shot, c.query, layout.config.inChannels, layout.config.imageSize), distance: c.distance,
    };
    const want = await ref.evaluate(req);
    for (const isa of ISAS) {
      setNativeIsa(isa);
      close(await nat.evaluate(req), want, `${c.name} ${isa}`);
    }
    restore();
  }
});

withAddon('population: coordinate perturbations, plain gaussian, thread counts agree', async () => {
  const ref = new DirectOpsPopulationEvaluator('cpu-ts');
  const layout = new ProtoNetLayout({ channels: 16, imageSize: 28 });
  const ep = episode(new Rng(12), 4, 1, 2, 1, 28);
  const base = { model: layout.config, mu: initParams(layout, 9), seed: 77, step: 3, episode: ep, distance: 'euclidean' as const };
  const coord: PopulationRequest = { ...base, perturbation: { kind: 'coordinate', delta: 0.25 }, start: 0, end: 4 };
  close(await new NativePopulationEvaluator().evaluate(coord), await ref.evaluate(coord), 'coordinate');
  const gauss: PopulationRequest = { ...base, perturbation: { kind: 'gaussian', sigma: 0.1, antithetic: false }, start: 5, end: 9 };
  const want = await ref.evaluate(gauss);
  const one = await new NativePopulationEvaluator({ threads: 1 }).evaluate(gauss);
  const two = await new NativePopulationEvaluator({ threads: 2 }).evaluate(gauss);
  close(one, want, 'gaussian, 1 thread');
  assert.equal([...two], [...one], 'the thread count does not change results');
});

withAddon('population: the noise sum is bit-identical to the TypeScript spec', async () => {
  const layout = new ProtoNetLayout({ channels: 16 });
  const mu = new Float32Array(layout.numParams);
  const rng = new Rng(4);
  const weights = Float64Array.from({ length: 7 }, () => rng.uniform() * 2 - 1);
  const req = { mu, seed: 99, step: 12, antithetic: true, sigma: 0.03, start: 3, weights };
  const want = await new DirectOpsPopulationEvaluator('cpu-ts').noiseSum(req);
  for (const isa of ISAS) {
    setNativeIsa(isa);
    const got = await new NativePopulationEvaluator().noiseSum(req);
    assert.equal([...got], [...want], `${isa}: noise sums differ`);
  }
  restore();
});

withAddon('population: bad requests reject with a clear error and the process survives', async () => {
  const layout = new ProtoNetLayout({ channels: 16 });
  const ep = episode(new Rng(1), 3, 1, 1, 1, 28);
  const base: PopulationRequest = { model: layout.config, mu: new Float32Array(layout.numParams), perturbation: { kind: 'gaussian', sigma: 0.1, antithetic: false }, seed: 1, step: 0, start: 0, end: 2, episode: ep, distance: 'euclidean' };
  const nat = new NativePopulationEvaluator();
  assert.throws(() => nat.evaluate({ ...base, mu: new Float32Array(5) }), RangeError);
  const badLabels = { ...ep, queryLabels: Int32Array.from([0, 1, 7]) };
  assert.throws(() => nat.evaluate({ ...base, episode: badLabels }), (e: unknown) => e instanceof RangeError && /queryLabels/.test((e as Error).message));
  assert.throws(() => nat.evaluate({ ...base, start: 3, end: 2 }), RangeError);
  assert.throws(() => nat.evaluate({ ...base, seed: -1 }), RangeError);
  const ok = await nat.evaluate(base);
  assert.is(ok.length, 2);
  assert.ok(ok.every((v) => Number.isFinite(v) && v < 0));
  assert.ok(deviceReport().some((s) => s.name === 'cpu-native' && s.available === true));
});

test.run();
