/**
 * Whole programs on XLA's CPU compiler (jaxlib) against the cpu-ts path:
 * fitness per member (population as a batch dimension), the noise sum, the
 * whole ES step with 1 and 4 replicas in both schemes (all_reduce of the
 * per-replica estimates; all_gather of rewards), and a few chained ES steps.
 * Skips with the reason when python/jax is unavailable.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { DirectOps } from '../lib/ops/api.js';
import { ProtoNetLayout, initialBnState, type ModelConfig } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { episodeLoss, type Distance, type Episode } from '../lib/model/protonet.js';
import { createDirectOpsEvaluator } from '../lib/es/population-ts.js';
import { noiseSumInto, perturbMember } from '../lib/es/noise.js';
import { groupWeights } from '../lib/es/estimators.js';
import type { Perturbation } from '../lib/es/population.js';
import { Rng } from '../lib/rng/philox.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { JaxRunner } from '../lib/device/xla/jax-runner.js';
import { evaluateProgram, noiseSumProgram, type PopulationShape } from '../lib/device/xla/population.js';
import { esStepProgram, type EsStepSpec } from '../lib/device/xla/esstep.js';
import { episodeInputs, hostArray, scalarU32, ZERO_I64 } from '../lib/device/xla/inputs.js';
import { relErr as relErrFloored } from './helpers/random.js';
import { jax, needs } from './helpers/peers.js';

/** Error relative to the reference's largest entry (no floor: an all-zero reference fails). */
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => relErrFloored(a, b, 0);

/** Tests that run programs need python + jax/jaxlib: skipped (counted, reason printed once) without them. */
const withJax = needs(await jax(), 'xla-es.test: XLA CPU compiler (jaxlib)');
let runner: JaxRunner | undefined;
const run = (): JaxRunner => (runner ??= JaxRunner.start({ hostDevices: 4 }));

const MODEL: Partial<ModelConfig> = { channels: 3, imageSize: 20, blocks: 3 };
const layout = new ProtoNetLayout(MODEL);
const cfg = layout.config;

function makeEpisode(rng: Rng, way: number, shot: number, query: number): Episode {
  const img = (n: number): Tensor => {
    const t = Tensor.zeros([n, 1, cfg.imageSize, cfg.imageSize], 'float32');
    for (let i = 0; i < t.size; i++) t.data[i] = rng.uniform();
    return t;
  };
  const lab = (per: number): Int32Array => Int32Array.from({ length: way * per }, (_, i) => i % way);
  return { way, support: img(way * shot), supportLabels: lab(shot), query: img(way * query), queryLabels: lab(query) };
}

/** The cpu-ts fitness of members [start, end), with theta in float64 (the tight reference) or float32 (the cpu-ts evaluator's path). */
function refFitness(mu: Float32Array, pert: Perturbation, seed: number, step: number, start: number, end: number, ep: Episode, distance: Distance): Float64Array {
  const ops = new DirectOps(getDevice('cpu-ts'));
  const theta = new Float32Array(mu.length), z = new Float32Array(mu.length);
  const bn = initialBnState(layout);
  const out = new Float64Array(end - start);
  const cast = (t: Tensor): Tensor => t.cast('float64');
  const ep64: Episode = { ...ep, support: cast(ep.support), query: cast(ep.query) };
  for (let m = start; m < end; m++) {
    perturbMember(theta, mu, pert, seed, step, m, z);
    out[m - start] = -episodeLoss(ops, layout, Float64Array.from(theta), bn, ep64, { bn: 'batch', distance }).loss.data[0]!;
  }
  return out;
}

/** The cpu-ts ES step: fitness, WSR weights per shard ('paper', scale 1/R) or global ('openai'), noise sum, update. */
function refStep(mu: Float32Array, spec: EsStepSpec, seed: number, step: number, ep: Episode): { mu: Float32Array; g: Float64Array; fitness: Float64Array } {
  const pert: Perturbation = { kind: 'gaussian', sigma: spec.sigma, antithetic: spec.antithetic };
  const fitness = refFitness(mu, pert, seed, step, 0, spec.population, ep, spec.distance);
  const per = spec.population / spec.replicas;
  const opts = { estimator: 'wsr' as const, sigma: spec.sigma, baseline: false, nonFinite: 'worst' as const };
  const weights = new Float64Array(spec.population);
  if (spec.scheme === 'paper') {
    for (let r = 0; r < spec.replicas; r++) weights.set(groupWeights(fitness.subarray(r * per, (r + 1) * per), opts, 1 / spec.replicas).weights, r * per);
  } else {
    weights.set(groupWeights(fitness, opts).weights);
  }
  const g = new Float64Array(mu.length);
  noiseSumInto(g, { mu, seed, step, antithetic: spec.antithetic, sigma: spec.sigma, start: 0, weights }, new Float32Array(mu.length));
  const next = Float32Array.from(mu, (v, j) => v + spec.alpha * g[j]!);
  return { mu: next, g, fitness };
}

const rng = new Rng(424242);
const mu = initParams(layout, 5);
const seed = 20261122;

withJax('population evaluation: fitness per member = cpu-ts (gaussian, antithetic, coordinate; euclidean and cosine)', async () => {
  const ep = makeEpisode(rng, 4, 2, 2);
  const cases: [Perturbation, Distance, number, number][] = [
    [{ kind: 'gaussian', sigma: 0.05, antithetic: false }, 'euclidean', 3, 9],
    [{ kind: 'gaussian', sigma: 0.05, antithetic: true }, 'euclidean', 0, 6],
    [{ kind: 'coordinate', delta: 0.01 }, 'euclidean', 0, 5],
    [{ kind: 'gaussian', sigma: 0.05, antithetic: false }, 'cosine', 0, 4],
  ];
  const batched: PopulationShape = { model: cfg, episode: { way: 4, support: 8, query: 8 }, distance: 'euclidean', compute: 'f64', memberConv: 'batched' };
  const cpu = createDirectOpsEvaluator({ device: 'cpu-ts' });
  for (const [pert, distance, start, end] of cases) {
    const shape = (compute: 'f32' | 'f64'): PopulationShape => ({ model: cfg, episode: { way: 4, support: 8, query: 8 }, distance, compute });
    const args = [hostArray(mu, [mu.length]), scalarU32(seed), scalarU32(7), scalarU32(start), ...episodeInputs(ep), ZERO_I64];
    const [f64] = (await run().run(evaluateProgram(shape('f64'), end - start, pert), [args]))[0]!;
    const [f32] = (await run().run(evaluateProgram(shape('f32'), end - start, pert), [args]))[0]!;
    const tight = refFitness(mu, pert, seed, 7, start, end, ep, distance);
    const ts32 = await cpu.evaluate({ model: cfg, mu, perturbation: pert, seed, step: 7, start, end, episode: ep, distance });
    const what = `${pert.kind}${'antithetic' in pert && pert.antithetic ? ' antithetic' : ''} ${distance}`;
    if (process.env.XLA_TEST_VERBOSE) console.log(`  ${what}: f64 ${relErr(f64!.data as Float64Array, tight).toExponential(2)}, f32 ${relErr(f32!.data as Float32Array, ts32).toExponential(2)}`);
    // float64 network on both sides from bit-identical float32 thetas: agreement to float64 rounding.
    assert.ok(relErr(f64!.data as Float64Array, tight) < 1e-12, `${what}: f64 program vs float64 reference ${relErr(f64!.data as Float64Array, tight)}`);
    // float32 network: the cpu-ts evaluator's float32 path, within float32 rounding.
    assert.ok(relErr(f32!.data as Float32Array, ts32) < 2e-5, `${what}: f32 program vs cpu-ts evaluator ${relErr(f32!.data as Float32Array, ts32)}`);
    if (distance === 'euclidean') {
      // The batched-dot form of the member convolutions computes the same function.
      const [fb] = (await run().run(evaluateProgram({ ...batched, distance }, end - start, pert), [args]))[0]!;
      assert.ok(relErr(fb!.data as Float64Array, tight) < 1e-12, `${what}: batched member convs ${relErr(fb!.data as Float64Array, tight)}`);
    }
    // Members differ (the perturbation is real) and fitness is finite.
    assert.ok(new Set(Array.from(ts32)).size > 1 && ts32.every(Number.isFinite));
  }
});

withJax('noise sum: sum_i w_i s_i eps_i = lib/es/noise.ts (float64, order aside)', async () => {
  for (const antithetic of [false, true]) {
    const p = 6, start = 4, sigma = 0.02;
    const w = Float64Array.from({ length: p }, () => rng.uniform() - 0.5);
    const [out] = (await run().run(noiseSumProgram(mu.length, p, sigma, antithetic), [[hostArray(w, [p]), scalarU32(seed), scalarU32(3), scalarU32(start), ZERO_I64]]))[0]!;
    const want = new Float64Array(mu.length);
    noiseSumInto(want, { mu, seed, step: 3, antithetic, sigma, start, weights: w }, new Float32Array(mu.length));
    assert.ok(relErr(out!.data as Float64Array, want) < 1e-13, `antithetic ${antithetic}: ${relErr(out!.data as Float64Array, want)}`);
  }
});

const base = (over: Partial<EsStepSpec>): EsStepSpec => ({
  model: cfg, episode: { way: 4, support: 8, query: 8 }, distance: 'euclidean', population: 8, replicas: 1,
  sigma: 0.05, alpha: 0.5, antithetic: false, scheme: 'paper', compute: 'f64', ...over,
});

async function xlaStep(spec: EsStepSpec, m: Float32Array, step: number, ep: Episode): Promise<{ mu: Float32Array; g: Float64Array; fitness: Float64Array; perReplica: Float32Array[] }> {
  const args = [hostArray(m, [m.length]), scalarU32(seed), scalarU32(step), ...episodeInputs(ep), ZERO_I64];
  const outs = await run().run(esStepProgram(spec), Array.from({ length: spec.replicas }, () => args));
  // Every replica ends with the same mu and g.
  for (const o of outs.slice(1)) {
    assert.equal(Array.from(o[0]!.data as Float32Array), Array.from(outs[0]![0]!.data as Float32Array), 'replicas agree on mu');
  }
  const fit = spec.scheme === 'paper' ? Float64Array.from(outs.flatMap((o) => Array.from(o[2]!.data as Float64Array))) : Float64Array.from(outs[0]![2]!.data as Float64Array);
  return { mu: outs[0]![0]!.data as Float32Array, g: outs[0]![1]!.data as Float64Array, fitness: fit, perReplica: outs.map((o) => o[0]!.data as Float32Array) };
}

for (const scheme of ['paper', 'openai'] as const) {
  withJax(`ES step (${scheme}): 1 and 4 replicas = the cpu-ts step (fitness, gradient estimate, update)`, async () => {
    const ep = makeEpisode(rng, 4, 2, 2);
    for (const [replicas, antithetic] of [[1, false], [4, false], [4, true]] as const) {
      const spec = base({ scheme, replicas, antithetic });
      const want = refStep(mu, spec, seed, 11, ep);
      const got = await xlaStep(spec, mu, 11, ep);
      const what = `${scheme} R=${replicas}${antithetic ? ' antithetic' : ''}`;
      if (process.env.XLA_TEST_VERBOSE) console.log(`  ${what}: fitness ${relErr(got.fitness, want.fitness).toExponential(2)}, g ${relErr(got.g, want.g).toExponential(2)}`);
      assert.ok(relErr(got.fitness, want.fitness) < 1e-12, `${what}: fitness ${relErr(got.fitness, want.fitness)}`);
      assert.ok(relErr(got.g, want.g) < 1e-9, `${what}: gradient estimate ${relErr(got.g, want.g)}`);
      const moved = relErr(Float64Array.from(got.mu, (v, j) => v - mu[j]!), Float64Array.from(want.mu, (v, j) => v - mu[j]!));
      assert.ok(moved < 1e-5, `${what}: update ${moved}`);
    }
    // The paper's scheme depends on the sharding (per-replica standardization); the rewards-only scheme does not.
    const g1 = (await xlaStep(base({ scheme, replicas: 1 }), mu, 11, ep)).g, g4 = (await xlaStep(base({ scheme, replicas: 4 }), mu, 11, ep)).g;
    if (scheme === 'openai') assert.ok(relErr(g4, g1) < 1e-12, `openai: R=4 vs R=1 ${relErr(g4, g1)}`);
    else assert.ok(relErr(g4, g1) > 1e-6, 'paper: per-replica standardization changes the estimate');
  });
}

withJax('ES step in float32 (the fast path): within float32 rounding of the cpu-ts step', async () => {
  const ep = makeEpisode(rng, 4, 2, 2);
  const spec = base({ compute: 'f32', replicas: 4, population: 16 });
  const want = refStep(mu, spec, seed, 2, ep);
  const got = await xlaStep(spec, mu, 2, ep);
  const fe = relErr(got.fitness, want.fitness);
  assert.ok(fe < 2e-5, `fitness ${fe}`);
  // Standardized rewards amplify fitness rounding by |F| / std(F); bound the estimate's error by that.
  const f = Array.from(want.fitness), mean = f.reduce((a, b) => a + b) / f.length;
  const std = Math.sqrt(f.reduce((a, b) => a + (b - mean) ** 2, 0) / f.length);
  const bound = 4 * fe * Math.abs(mean) / std * Math.sqrt(f.length);
  const ge = relErr(got.g, want.g);
  if (process.env.XLA_TEST_VERBOSE) console.log(`  f32: fitness ${fe.toExponential(2)}, g ${ge.toExponential(2)}, bound ${bound.toExponential(2)}`);
  assert.ok(ge < bound, `gradient estimate ${ge} (bound from float32 fitness rounding ${bound})`);
});

withJax("ES step, precision 'fast' (float32 only: TPU-friendly) with 4 replicas: within float32 rounding of the cpu-ts step", async () => {
  const ep = makeEpisode(rng, 4, 2, 2);
  for (const scheme of ['paper', 'openai'] as const) {
    const spec = base({ compute: 'f32', precision: 'fast', replicas: 4, population: 16, scheme });
    const prog = esStepProgram(spec);
    // Value types only: attributes (dense<...> : tensor<..xi64>, array<i64: ...>, ... : i64) are compile-time metadata.
    const body = prog.text.slice(prog.text.indexOf('{', prog.text.indexOf('func.func')))
      .replace(/dense<[^>]*> : tensor<[^>]*>/g, '').replace(/array<i64[^>]*>/g, '').replace(/ : i64/g, '');
    assert.not.match(body, /f64|i64|ui64/, 'no 64-bit value type in the program body (the unused barrier input aside)');
    const want = refStep(mu, spec, seed, 5, ep);
    const got = await xlaStep(spec, mu, 5, ep);
    const fe = relErr(got.fitness, want.fitness), ge = relErr(got.g, want.g);
    const f = Array.from(want.fitness), mean = f.reduce((a, b) => a + b) / f.length;
    const std = Math.sqrt(f.reduce((a, b) => a + (b - mean) ** 2, 0) / f.length);
    const bound = 4 * Math.max(fe, 1e-7) * Math.abs(mean) / std * Math.sqrt(f.length) + 1e-5;
    if (process.env.XLA_TEST_VERBOSE) console.log(`  fast ${scheme}: fitness ${fe.toExponential(2)}, g ${ge.toExponential(2)}, bound ${bound.toExponential(2)}`);
    assert.ok(fe < 2e-5, `${scheme}: fitness ${fe}`);
    assert.ok(ge < bound, `${scheme}: gradient estimate ${ge} (bound ${bound})`);
  }
});

withJax('a few chained ES steps (4 replicas, all_reduce) track the cpu-ts trajectory', async () => {
  const spec = base({ replicas: 4, population: 8, alpha: 0.3 });
  let a = mu, b = mu;
  for (let step = 0; step < 3; step++) {
    const ep = makeEpisode(rng, 4, 2, 2);
    const got = await xlaStep(spec, a, step, ep);
    const want = refStep(b, spec, seed, step, ep);
    a = got.mu; b = want.mu;
    const drift = relErr(Float64Array.from(a, (v, j) => v - mu[j]!), Float64Array.from(b, (v, j) => v - mu[j]!));
    if (process.env.XLA_TEST_VERBOSE) console.log(`  chained step ${step}: drift ${drift.toExponential(2)}`);
    assert.ok(drift < 1e-5, `step ${step}: parameters drift ${drift}`);
  }
  assert.ok(relErr(Float64Array.from(a, (v, j) => v - mu[j]!), new Float64Array(mu.length)) > 0, 'the parameters moved');
});

test('invalid ES step specs are refused, naming the field', () => {
  assert.throws(() => esStepProgram(base({ population: 6, replicas: 4 })), /population must be a positive multiple of replicas \(4\), got 6/);
  assert.throws(() => esStepProgram(base({ population: 12, replicas: 4, antithetic: true })), /per replica \(3\) must be even/);
  assert.throws(() => esStepProgram(base({ sigma: 0 })), /sigma must be > 0/);
});

test.after(async () => { await runner?.close(); });

test.run();
