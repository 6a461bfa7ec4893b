/**
 * ES estimators on functions with a known gradient (linear, quadratic), the FD
 * estimator against finite differences (a quadratic and the real ProtoNet loss
 * in float64), non-finite fitness, and the noise-sum spec against a direct
 * float64 evaluation of sum_i w_i s_i eps_i.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { DirectOps } from '../lib/ops/api.js';
import { Rng, gaussianAt, STREAM } from '../lib/rng/philox.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { episodeLoss } from '../lib/model/protonet.js';
import { resolveEsConfig, type EsConfig } from '../lib/methods/protonet-es/config.js';
import { strategyFor } from '../lib/methods/protonet-es/method.js';
import { centeredRanks, fdGradient, groupWeights, sanitizeFitness } from '../lib/es/estimators.js';
import { objectiveRunner } from '../lib/es/objective.js';
import { noiseSumInto, perturbMember } from '../lib/es/noise.js';
import { DirectOpsPopulationEvaluator } from '../lib/es/population-ts.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';

/** The ES core's estimate (ascent direction) of generation `step` around mu for the objective f, as the trainer computes it. */
async function estimateGradient(f: (x: Float32Array, m: number) => number, cfg: EsConfig, mu: Float32Array, step: number): Promise<{ g: Float64Array; fitness: Float64Array; nonFinite: number }> {
  const es = strategyFor(cfg, mu);
  es.step = step;
  const r = await es.run(await objectiveRunner({ objective: (x, ctx) => f(x, ctx.member) }));
  return { g: r.grad, fitness: r.fitness, nonFinite: r.nonFinite };
}

const D = 10;

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i]! * b[i]!; aa += a[i]! * a[i]!; bb += b[i]! * b[i]!; }
  return ab / Math.sqrt(aa * bb);
}
function norm(a: ArrayLike<number>): number { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! ** 2; return Math.sqrt(s); }

const rng = new Rng(7);
const a = Array.from({ length: D }, () => rng.normal());
const h = Array.from({ length: D }, () => 0.5 + 1.5 * rng.uniform());
const c = Array.from({ length: D }, () => rng.normal());
const linear = (x: Float32Array): number => { let s = 0; for (let j = 0; j < D; j++) s += a[j]! * x[j]!; return s; };
const quadratic = (x: Float32Array): number => { let s = 0; for (let j = 0; j < D; j++) s -= 0.5 * h[j]! * (x[j]! - c[j]!) ** 2; return s; };
const mu0 = new Float32Array(D);
const quadGrad = Array.from({ length: D }, (_, j) => h[j]! * (c[j]! - mu0[j]!));

function cfgFor(over: Partial<EsConfig>): EsConfig {
  // model is irrelevant to a function evaluator; resolveEsConfig validates the ES fields.
  return resolveEsConfig({ model: { channels: 1, imageSize: 16 }, seed: 3, sigma: 0.01, ...over });
}

// Stated bound: D = 10 parameters, population 2000, sigma 0.01: cosine(estimate, true gradient) > 0.95
// (for an isotropic linear model the expected cosine is about 1 / sqrt(1 + D / n) = 0.9975).
const P = 2000, COS = 0.95;
const cases: Array<{ name: string; over: Partial<EsConfig> }> = [
  { name: 'wsr (paper scheme, 4 shards)', over: { estimator: 'wsr', scheme: 'paper', shards: 4 } },
  { name: 'wsr (openai scheme)', over: { estimator: 'wsr', scheme: 'openai', shards: 4 } },
  { name: 'nes with baseline', over: { estimator: 'nes', baseline: true } },
  { name: 'nes raw (eq. 6) with antithetic pairs', over: { estimator: 'nes', antithetic: true } },
  { name: 'openai (antithetic, centered ranks)', over: { estimator: 'openai', scheme: 'openai', shards: 2 } },
];

for (const fn of [{ name: 'linear', f: linear, grad: a }, { name: 'quadratic', f: quadratic, grad: quadGrad }]) {
  for (const k of cases) {
    test(`${k.name} points along the true gradient of a ${fn.name} function (cos > ${COS}, D ${D}, pop ${P})`, async () => {
      const cfg = cfgFor({ pop: P, ...k.over });
      const est = await estimateGradient(fn.f, cfg, mu0, 5);
      const cs = cosine(est.g, fn.grad);
      assert.ok(cs > COS, `cosine ${cs}`);
      const gn = norm(est.g), tn = norm(fn.grad);
      if (cfg.estimator === 'wsr') {
        // standardized rewards: |g| ~ sigma (the direction scaled by sigma), independent of |grad F|
        assert.ok(gn > 0.8 * cfg.sigma && gn < 1.25 * cfg.sigma, `|g| ${gn} vs sigma ${cfg.sigma}`);
      } else if (cfg.estimator === 'nes') {
        // the Gaussian score estimator is unbiased for grad E[F]: |g| ~ |grad F|
        assert.ok(gn > 0.85 * tn && gn < 1.15 * tn, `|g| ${gn} vs |grad| ${tn}`);
      } else {
        // centered ranks: shaped_i ~ Phi(u_i) - 1/2 with u_i the noise along grad F, so
        // E[g] = E[u Phi(u)] grad/|grad| = grad/|grad| / (2 sqrt(pi)): |g| ~ 0.282, whatever |grad F| and sigma
        const want = 1 / (2 * Math.sqrt(Math.PI));
        assert.ok(gn > 0.85 * want && gn < 1.15 * want, `|g| ${gn} vs 1/(2 sqrt(pi)) = ${want}`);
      }
    });
  }
}

test('estimates are seeded: same seed and step give the same bits, another step another estimate', async () => {
  const cfg = cfgFor({ pop: 64, estimator: 'wsr' });
  const g1 = (await estimateGradient(linear, cfg, mu0, 2)).g;
  const g2 = (await estimateGradient(linear, cfg, mu0, 2)).g;
  const g3 = (await estimateGradient(linear, cfg, mu0, 3)).g;
  assert.equal(Array.from(g1), Array.from(g2));
  assert.not.equal(Array.from(g1), Array.from(g3));
});

test('FD estimator (population D + 1) equals forward differences and the analytic gradient of a quadratic within delta * h / 2', async () => {
  const cfg = { ...cfgFor({ estimator: 'fd' }), pop: D + 1 };
  const mu = Float32Array.from({ length: D }, (_, j) => 0.3 * Math.sin(j + 1));
  const est = await estimateGradient(quadratic, cfg, mu, 0);
  assert.is(est.fitness.length, D + 1);
  for (let j = 0; j < D; j++) {
    const x = Float32Array.from(mu);
    x[j] = mu[j]! + 0.001;
    const fd = (quadratic(x) - quadratic(mu)) / 0.001;
    assert.is(est.g[j], fd, `coordinate ${j}`);
    const exact = h[j]! * (c[j]! - mu[j]!);
    assert.ok(Math.abs(est.g[j]! - exact) <= 0.001 * h[j]! / 2 + 1e-3 * Math.abs(exact) + 1e-6, `coordinate ${j}: ${est.g[j]} vs ${exact}`);
  }
});

test('FD estimator on the ProtoNet loss matches float64 forward differences (max error < 0.1% of the largest component: float32 rounding only) and central differences (cos > 0.999)', async () => {
  const layout = new ProtoNetLayout({ channels: 2, imageSize: 16 });
  const d = layout.numParams;
  const ep = new SyntheticEpisodes({ way: 3, shot: 2, query: 2, imageSize: 16, seed: 4 }).episode(0);
  const mu = initParams(layout, 11);
  const bn = initialBnState(layout);
  const ev = new DirectOpsPopulationEvaluator('cpu-ts');
  const f = await ev.evaluate({ model: layout.config, mu, perturbation: { kind: 'coordinate', delta: 0.001 }, seed: 0, step: 0, start: 0, end: d + 1, episode: ep, distance: 'euclidean' });
  const { g } = fdGradient(f, 0.001);
  const ops = new DirectOps(getDevice('cpu-ts'));
  const fwd = new Float64Array(d), central = new Float64Array(d);
  const p64 = Float64Array.from(mu);
  const fit64 = (p: Float64Array): number => -episodeLoss(ops, layout, p, bn, ep, { bn: 'batch' }).loss.data[0]!;
  const f0 = fit64(p64);
  for (let j = 0; j < d; j++) {
    const keep = p64[j]!;
    p64[j] = Math.fround(keep + 0.001); // the float32 nudge the estimator applies
    fwd[j] = (fit64(p64) - f0) / 0.001;
    const e = 1e-6;
    p64[j] = keep + e; const fp = fit64(p64);
    p64[j] = keep - e; const fm = fit64(p64);
    p64[j] = keep;
    central[j] = (fp - fm) / (2 * e);
  }
  let maxErr = 0, maxRef = 0;
  for (let j = 0; j < d; j++) { maxErr = Math.max(maxErr, Math.abs(g[j]! - fwd[j]!)); maxRef = Math.max(maxRef, Math.abs(fwd[j]!)); }
  assert.ok(maxErr < 0.001 * maxRef, `max error ${maxErr} vs max component ${maxRef}`);
  const cs = cosine(g, central);
  assert.ok(cs > 0.999, `cosine with central differences ${cs}`);
});

test('noise sum follows the contract: sum_i w_i s_i f32(sigma z_i) in member order, antithetic signs', () => {
  const mu = new Float32Array(7);
  const weights = Float64Array.from([0.5, -1.25, 2, 0.125, -0.75]);
  const out = new Float64Array(7), z = new Float32Array(7);
  noiseSumInto(out, { mu, seed: 9, step: 4, antithetic: true, sigma: 0.05, start: 3, weights }, z);
  for (let j = 0; j < 7; j++) {
    let s = 0;
    for (let i = 0; i < weights.length; i++) {
      const m = 3 + i, k = Math.floor(m / 2), sign = m % 2 === 0 ? 1 : -1;
      s += weights[i]! * sign * Math.fround(0.05 * gaussianAt(9, STREAM.esNoise, 4, k, j));
    }
    assert.is(out[j], s, `element ${j}`);
  }
  const theta = new Float32Array(7);
  perturbMember(theta, Float32Array.from([1, 2, 3, 4, 5, 6, 7]), { kind: 'gaussian', sigma: 0.05, antithetic: true }, 9, 4, 5, z);
  for (let j = 0; j < 7; j++) assert.is(theta[j], Math.fround(j + 1 - Math.fround(0.05 * gaussianAt(9, STREAM.esNoise, 4, 2, j))));
});

test('non-finite fitness: "worst" ranks it below every finite member, "drop" gives it weight 0; both are counted', () => {
  const f = [1, NaN, 3, -Infinity, 2, Infinity];
  const s = sanitizeFitness(f, 'worst');
  assert.is(s.nonFinite, 3);
  assert.equal(Array.from(s.values), [1, 1, 3, 1, 2, 1]);
  const wDrop = groupWeights(f, { estimator: 'wsr', sigma: 0.1, baseline: false, nonFinite: 'drop' });
  assert.is(wDrop.nonFinite, 3);
  assert.is(wDrop.used, 3);
  assert.equal([wDrop.weights[1], wDrop.weights[3], wDrop.weights[5]], [0, 0, 0]);
  // the three finite members standardized: (1, 3, 2) -> mean 2, std sqrt(2/3), weights / 3
  const sd = Math.sqrt(2 / 3);
  assert.ok(Math.abs(wDrop.weights[0]! - (-1 / sd) / 3) < 1e-15 && Math.abs(wDrop.weights[2]! - (1 / sd) / 3) < 1e-15);
  const wWorst = groupWeights(f, { estimator: 'openai', sigma: 0.1, baseline: false, nonFinite: 'worst' });
  const finiteMin = Math.min(wWorst.weights[0]!, wWorst.weights[2]!, wWorst.weights[4]!);
  for (const i of [1, 3, 5]) assert.ok(wWorst.weights[i]! < finiteMin, `member ${i}`);
  for (const w of wWorst.weights) assert.ok(Number.isFinite(w));
  const allBad = groupWeights([NaN, NaN], { estimator: 'wsr', sigma: 0.1, baseline: false, nonFinite: 'worst' });
  assert.ok(allBad.degenerate && allBad.weights.every((w) => w === 0));
});

test('NaN fitness never poisons the estimate (both policies) and is reported', async () => {
  for (const nonFinite of ['worst', 'drop'] as const) {
    const cfg = cfgFor({ pop: 400, estimator: 'wsr', nonFinite });
    const est = await estimateGradient((x, m) => (m % 7 === 3 ? NaN : linear(x)), cfg, mu0, 1);
    assert.is(est.nonFinite, Math.floor((400 - 4) / 7) + 1);
    assert.ok(est.g.every(Number.isFinite), nonFinite);
    assert.ok(cosine(est.g, a) > 0.9, `${nonFinite}: cosine ${cosine(est.g, a)}`);
  }
});

test('centered ranks: in [-1/2, 1/2], ties broken by member index', () => {
  const r = centeredRanks(Float64Array.from([5, 1, 5, 3]), Uint8Array.from([1, 1, 1, 1]));
  assert.equal(Array.from(r), [2 / 3 - 0.5, -0.5, 3 / 3 - 0.5, 1 / 3 - 0.5]);
});

test.run();
