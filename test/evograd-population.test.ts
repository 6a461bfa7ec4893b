/**
 * EvoGrad with the copies evaluated by a population evaluator (lib/evograd/population.ts) and the
 * supersampled rotation of the rotation task (lib/evograd/rotation.ts):
 *  - the population hypergradient equals EvoGrad's formula computed by hand on the same copies
 *    (the ES population's members), on a quadratic whose training loss is linear in lambda (so
 *    central differences are exact);
 *  - at 0 degrees a supersampled rotation is the s x s block average, and the program's loss on
 *    a supersampled episode is the loss on the pooled episode, bit for bit;
 *  - EvoGradMethod with copyEval 'population': exact state round trip, the angle moves;
 *  - configuration errors name the option.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { FunctionPopulationEvaluator } from '../lib/es/function-evaluator.js';
import { fillMemberNoise, memberNoise } from '../lib/es/noise.js';
import { copyWeights } from '../lib/evograd/hypergrad.js';
import { populationHypergradient, type CopyLosses, type PopulationCopies } from '../lib/evograd/population.js';
import { programLosses } from '../lib/evograd/objective.js';
import { rotateEpisode, rotationProgram, RotatedEpisodes } from '../lib/evograd/rotation.js';
import { resolveEvoGradConfig, savedEvoGradConfig, type EvoGradConfigInput } from '../lib/evograd/config.js';
import { EvoGradMethod } from '../lib/evograd/method.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { UserError } from '../lib/errors.js';
import { assertSameState, viaFile } from './helpers/method-state.js';

const dev = getDevice('cpu-ts');

// L_train(x, lambda) = |x - 1|^2 + lambda_0 |x|^2 + lambda_1 sum(x),  L_val(x) = |x - 0.5|^2.
const trainLoss = (x: ArrayLike<number>, l: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i]! - 1) ** 2 + l[0]! * x[i]! ** 2 + l[1]! * x[i]!;
  return s;
};
const dTrain = (x: ArrayLike<number>): number[] => {
  let sq = 0, sum = 0;
  for (let i = 0; i < x.length; i++) { sq += x[i]! ** 2; sum += x[i]!; }
  return [sq, sum];
};

test('population EvoGrad equals EvoGrad\'s formula on the same copies (quadratic, D = 5, two hyperparameters)', async () => {
  const theta = Float32Array.of(0.3, -0.2, 0.9, 1.4, 0.05);
  const lambda = Float32Array.of(0.7, -0.3);
  const step = 3;
  for (const copies of [2, 8, 64]) {
    const c: PopulationCopies = { copies, sigma: 0.05, tau: 0.5, antithetic: true, delta: 0.25, seed: 11 };
    const losses: CopyLosses<null> = async (th, l, _b, cc, t) => {
      const ev = new FunctionPopulationEvaluator((x) => -trainLoss(x, l));
      const f = await ev.evaluate({ mu: th, perturbation: { kind: 'gaussian', sigma: cc.sigma, antithetic: cc.antithetic }, seed: cc.seed, step: t, start: 0, end: cc.copies });
      return f.map((v) => -v);
    };
    const val = {
      val(x: Float32Array, _b: null, g: Float32Array): number {
        let s = 0;
        for (let i = 0; i < x.length; i++) { s += (x[i]! - 0.5) ** 2; g[i] = 2 * (x[i]! - 0.5); }
        return s;
      },
    };
    const h = await populationHypergradient(losses, new FunctionPopulationEvaluator(() => 0), val as never, theta, lambda, null, null, c, step);
    // by hand: the members' parameters, weights, theta*, g*, a_k and h = sum_k -(w_k / tau)(a_k - abar) dl_k/dlambda
    const z = new Float32Array(theta.length);
    const eps: Float32Array[] = [], xs: Float32Array[] = [];
    for (let k = 0; k < copies; k++) {
      const { id, sign } = memberNoise(k, true);
      fillMemberNoise(z, c.seed, step, id);
      const e = Float32Array.from(z, (v) => sign * Math.fround(c.sigma * v));
      eps.push(e);
      xs.push(Float32Array.from(theta, (v, i) => v + e[i]!));
    }
    const l = xs.map((x) => trainLoss(x, lambda));
    const w = copyWeights(l, c.tau);
    for (let k = 0; k < copies; k++) assert.ok(Math.abs(w[k]! - h.weights[k]!) < 1e-9, `weight ${k}`);
    const merged = theta.map((v, i) => v + eps.reduce((s, e, k) => s + w[k]! * e[i]!, 0));
    const g = Array.from(merged, (v) => 2 * (v - 0.5));
    const a = eps.map((e) => e.reduce((s, v, i) => s + g[i]! * v, 0));
    const abar = a.reduce((s, v, k) => s + w[k]! * v, 0);
    for (let j = 0; j < 2; j++) {
      const want = xs.reduce((s, x, k) => s - (w[k]! / c.tau) * (a[k]! - abar) * dTrain(x)[j]!, 0);
      assert.ok(Math.abs(h.grad[j]! - want) <= 1e-6 * Math.abs(want) + 1e-12, `K ${copies}, lambda ${j}: ${h.grad[j]} vs ${want}`);
      assert.ok(want !== 0);
    }
  }
});

test('supersampled rotation: at 0 degrees the block average; the program on the supersampled episode = on the pooled one, bit for bit', () => {
  const s = 3, side = 12;
  const big = new SyntheticEpisodes({ classes: 6, way: 3, shot: 2, query: 2, imageSize: side * s, seed: 5 }).episode(0);
  const pooled = rotateEpisode(dev, big, 0, s);
  assert.equal(pooled.support.shape, [6, 1, side, side]);
  const x = big.support.data, y = pooled.support.data;
  for (const [n, i, j] of [[0, 0, 0], [3, 5, 7], [5, 11, 11]] as const) {
    let sum = 0;
    for (let a = 0; a < s; a++) for (let b = 0; b < s; b++) sum += x[n * side * side * s * s + (i * s + a) * side * s + j * s + b]!;
    assert.ok(Math.abs(y[n * side * side + i * side + j]! - sum / (s * s)) < 1e-6);
  }
  const layout = new ProtoNetLayout({ channels: 4, imageSize: side, blocks: 2 });
  const theta = initParams(layout, 2);
  const viaProgram = programLosses(dev, rotationProgram(layout, initialBnState(layout), 'euclidean', true, s)).train(theta, Float32Array.of(0), big);
  const viaPooled = programLosses(dev, rotationProgram(layout, initialBnState(layout), 'euclidean', true, 1)).train(theta, Float32Array.of(0), pooled);
  assert.is(viaProgram, viaPooled);
  // a non-zero angle rotates at the supersampled side: not the pooled episode's rotation
  const r = rotateEpisode(dev, big, 20, s), r1 = rotateEpisode(dev, pooled, 20, 1);
  assert.equal(r.query.shape, r1.query.shape);
  assert.ok(r.query.data.some((v, i) => v !== r1.query.data[i]));
  assert.throws(() => new RotatedEpisodes(new SyntheticEpisodes({ classes: 6, way: 3, shot: 2, query: 2, imageSize: side, seed: 5 }), 30, dev, 0), /supersample must be an integer >= 1/);
});

const SMALL: EvoGradConfigInput = {
  model: { channels: 4, imageSize: 12, blocks: 2 }, train: { way: 3, shot: 2, query: 2 }, val: { way: 3, shot: 2, query: 2 }, steps: 5, valEpisodes: 3, seed: 4,
  supersample: 2, copyEval: 'population', copies: 6, noise: 'gaussian', sigma: 0.01, fdDelta: 2,
};

function sources() {
  const mk = (seed: number) => new SyntheticEpisodes({ classes: 8, way: 3, shot: 2, query: 2, imageSize: 24, seed });
  return { train: mk(1), hyperVal: new RotatedEpisodes(mk(2), 30, dev, 2), val: new RotatedEpisodes(mk(3), 30, dev, 2) };
}


test('EvoGradMethod, copyEval population (generic evaluator): save after 2 steps, load, continue: bit-identical; the angle moves', async () => {
  const make = () => new EvoGradMethod(resolveEvoGradConfig(SMALL, 'quick'), sources(), { device: dev });
  const full = make();
  while (full.step < full.totalSteps) {
    const r = await full.trainStep();
    assert.ok(r && Number.isFinite(r['hypergrad']!) && Number.isFinite(r['val_loss']!));
  }
  await full.close();
  assert.ok(full.angle !== 0, 'the angle moved');
  const first = make();
  for (let i = 0; i < 2; i++) await first.trainStep();
  const saved = viaFile(first.saveState());
  await first.close();
  const resumed = make();
  resumed.loadState(saved);
  while (resumed.step < resumed.totalSteps) await resumed.trainStep();
  await resumed.close();
  assertSameState(resumed.saveState(), full.saveState());
  const v = await full.validate();
  assert.ok(v.score >= 0 && v.score <= 1);
});

test('configuration errors name the option (supersample, copy evaluation, precision)', () => {
  const bad = (input: EvoGradConfigInput, re: RegExp): void => {
    assert.throws(() => resolveEvoGradConfig(input), (e: unknown) => e instanceof UserError && re.test((e as Error).message), `${JSON.stringify(input)} should fail with ${re}`);
  };
  bad({ supersample: 4 }, /supersample \(--supersample\) times the image side must be at most 105/);
  bad({ supersample: 0 }, /supersample \(--supersample\) must be an integer/);
  bad({ copyEval: 'population', noise: 'sign' }, /noise \(--noise\) must be gaussian with --copy-eval population/);
  bad({ copyEval: 'population', noise: 'gaussian', copies: 7 }, /copies \(--copies\) must be even/);
  bad({ copyEval: 'gpu' as never }, /copyEval \(--copy-eval\) must be one of tape, population/);
  bad({ precision: 'bf16' }, /precision \(--precision\) applies to --copy-eval population only/);
  bad({ fdDelta: 0 }, /fdDelta \(--fd-delta\) must be a finite number > 0/);
  assert.is(resolveEvoGradConfig({}).supersample, 3);
  // a run saved before supersample existed resumes as it was trained; a saved value is kept
  const old = { ...resolveEvoGradConfig({}) } as Partial<ReturnType<typeof resolveEvoGradConfig>>;
  delete old.supersample;
  assert.is(resolveEvoGradConfig(savedEvoGradConfig(old as EvoGradConfigInput)).supersample, 1);
  assert.is(resolveEvoGradConfig(savedEvoGradConfig({ supersample: 2 })).supersample, 2);
});

test.run();
