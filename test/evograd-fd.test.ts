/**
 * The T1-T2 hypergradient by a central difference along the validation gradient
 * (lib/evograd/lookahead/fd.ts): equal to the second-order graph's (lookahead/t1t2.ts) on ProtoNet with
 * the rotation, in float64, when alpha is small enough that v at theta and at the lookahead point
 * coincide; the toy's closed form; zero validation gradient; errors naming the bad value. And a
 * validation batch of several episodes (meanValObjective): the mean of the episodes' hypergradients.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { meanValObjective, tapeObjective } from '../lib/evograd/objective.js';
import { evoGradHypergradient, type EvoGradSettings } from '../lib/evograd/hypergrad.js';
import { rotateEpisode } from '../lib/evograd/rotation.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { lookaheadHypergradient } from '../lib/evograd/lookahead/t1t2.js';
import { fdLookaheadHypergradient, FdWorkspace, lambdaFdHypergradient } from '../lib/evograd/lookahead/fd.js';
import { TOY_PROGRAM } from '../lib/evograd/toy.js';
import { rotationSetup } from './helpers/rotation-setup.js';

const dev = getDevice('cpu-ts');

for (const [blocks, size, seed] of [[2, 12, 3], [4, 16, 7]] as const) {
  test(`fd T1-T2 equals the second-order graph's T1-T2 at small alpha: ${blocks} blocks, ${size}x${size}, float64`, () => {
    const { program, theta, train, val } = rotationSetup(dev, blocks, size, seed);
    const obj = tapeObjective(dev, program);
    const ws = new FdWorkspace(theta);
    // alpha small enough that v at theta and at theta - alpha grad agree (this model's curvature moves
    // the lookahead hypergradient by ~30% at alpha = 1e-3); eps small enough that the displacement
    // crosses no ReLU or max-pool switch (at 1e-4 it does, and the difference quotient is off).
    const alpha = 1e-10, eps = 1e-6;
    const rows = [7.31, 23.9, -13.7].map((deg) => ({
      deg,
      exact: lookaheadHypergradient(dev, program, theta, Float64Array.of(deg), train, val, alpha).grad[0]! / alpha,
      fd: fdLookaheadHypergradient(obj, theta, Float64Array.of(deg), train, val, alpha, eps, ws),
    }));
    const largest = Math.max(...rows.map((r) => Math.abs(r.exact)));
    for (const { deg, exact, fd } of rows) {
      assert.ok(fd.valGradNorm > 0 && Number.isFinite(fd.valLoss));
      const got = fd.grad[0]! / alpha;
      assert.ok(Math.abs(got - exact) <= 1e-5 * largest, `angle ${deg}: fd ${got}, second-order graph ${exact} (per unit alpha)`);
    }
    assert.ok(largest > 1e-6, `not vacuous: the largest |h / alpha| is ${largest}`);
  });
}

test('fd T1-T2 on the toy: -alpha * d/dlambda (2(x-1) + 2 lambda x) * 2(x - 0.5) = -4 alpha x (x - 0.5), exact for a quadratic', () => {
  const obj = tapeObjective(dev, TOY_PROGRAM);
  for (const [x, lam, alpha, eps] of [[0.3, 0.7, 0.1, 0.01], [-1.2, 1.5, 0.05, 0.3]] as const) {
    const r = fdLookaheadHypergradient(obj, Float64Array.of(x), Float64Array.of(lam), null, null, alpha, eps);
    const want = -4 * alpha * x * (x - 0.5);
    assert.ok(Math.abs(r.grad[0]! - want) < 1e-12, `${r.grad[0]} vs ${want}`);
    assert.ok(Math.abs(r.valGradNorm - Math.abs(2 * (x - 0.5))) < 1e-15);
  }
  const zero = fdLookaheadHypergradient(obj, Float64Array.of(0.5), Float64Array.of(1), null, null, 0.1, 0.01);
  assert.is(zero.valGradNorm, 0);
  assert.is(zero.grad[0], 0, 'a zero validation gradient gives a zero hypergradient');
});

test('lambda fd (the benches\' exact one-step hypergradient): the toy\'s -4 x (x - 0.5) exactly; on ProtoNet with the rotation, the second-order graph\'s T1-T2 per unit alpha, float64', () => {
  const toy = tapeObjective(dev, TOY_PROGRAM);
  for (const [x, lam, delta] of [[0.3, 0.7, 0.01], [-1.2, 1.5, 0.5]] as const) {
    const r = lambdaFdHypergradient(toy, Float64Array.of(x), Float64Array.of(lam), null, null, delta);
    const want = -4 * x * (x - 0.5);
    assert.ok(Math.abs(r.grad[0]! - want) < 1e-12, `${r.grad[0]} vs ${want}`);
    assert.ok(Math.abs(r.valLoss - (x - 0.5) ** 2) < 1e-15);
  }
  const { program, theta, train, val } = rotationSetup(dev, 2, 12, 3);
  const obj = tapeObjective(dev, program);
  const ws = new FdWorkspace(theta), alpha = 1e-10;
  const rows = [7.31, 23.9, -13.7].map((deg) => ({
    deg,
    exact: lookaheadHypergradient(dev, program, theta, Float64Array.of(deg), train, val, alpha).grad[0]! / alpha,
    // delta small enough to cross no whole-pixel kink of the bilinear resampling (at 1e-4 degrees, -13.7 crosses one and is off)
    fd: lambdaFdHypergradient(obj, theta, Float64Array.of(deg), train, val, 1e-6, ws).grad[0]!,
  }));
  const largest = Math.max(...rows.map((r) => Math.abs(r.exact)));
  for (const { deg, exact, fd } of rows) assert.ok(Math.abs(fd - exact) <= 1e-5 * largest, `angle ${deg}: lambda fd ${fd}, second-order graph ${exact} (per unit alpha)`);
  assert.ok(largest > 1e-6, `not vacuous: the largest |h / alpha| is ${largest}`);
  assert.throws(() => lambdaFdHypergradient(toy, Float64Array.of(0), Float64Array.of(1), null, null, 0), /delta must be a finite number > 0, got 0/);
});

test('fd T1-T2: bad alpha, eps and workspace are named', () => {
  const obj = tapeObjective(dev, TOY_PROGRAM);
  const x = Float64Array.of(0.3), l = Float64Array.of(0.7);
  assert.throws(() => fdLookaheadHypergradient(obj, x, l, null, null, 0, 0.01), /alpha must be a finite number > 0, got 0/);
  assert.throws(() => fdLookaheadHypergradient(obj, x, l, null, null, 0.1, -1), /eps must be a finite number > 0, got -1/);
  assert.throws(() => fdLookaheadHypergradient(obj, x, l, null, null, 0.1, 0.01, new FdWorkspace(new Float32Array(1))), /workspace is for 1 parameters of another dtype/);
});


test('a validation batch of several episodes (meanValObjective): EvoGrad\'s hypergradient is the mean of the single episodes\', with the same copies (float64)', () => {
  const { program, theta, train, layout } = rotationSetup(dev, 2, 12, 5);
  const obj = tapeObjective(dev, program), mean = meanValObjective(obj);
  const src = new SyntheticEpisodes({ classes: 6, way: 3, shot: 2, query: 2, imageSize: 12, seed: 9, dtype: 'float64' });
  const vals = [0, 1, 2].map((i) => rotateEpisode(dev, src.episode(i), 30));
  const s: EvoGradSettings = { copies: 3, sigma: 0.05, tau: 0.05, noise: 'sign', seed: 2 };
  const lambda = Float64Array.of(7.31);
  // L_val and its theta-gradient are the means of the episodes'
  const g = new Float64Array(layout.numParams), gi = new Float64Array(layout.numParams), gsum = new Float64Array(layout.numParams);
  const loss = mean.val(theta, vals, g);
  let lsum = 0;
  for (const v of vals) { lsum += obj.val(theta, v, gi); for (let i = 0; i < gi.length; i++) gsum[i]! += gi[i]! / 3; }
  assert.ok(Math.abs(loss - lsum / 3) <= 1e-14, `loss ${loss}, mean ${lsum / 3}`);
  for (let i = 0; i < g.length; i++) assert.ok(Math.abs(g[i]! - gsum[i]!) <= 1e-13, `gradient ${i}: ${g[i]} vs ${gsum[i]}`);
  // EvoGrad's h is linear in the validation gradient at theta*, and theta* does not depend on the validation batch
  const h = evoGradHypergradient(mean, theta, lambda, train, vals, s, 4).grad[0]!;
  const each = vals.map((v) => evoGradHypergradient(obj, theta, lambda, train, v, s, 4).grad[0]!);
  const avg = each.reduce((a, b) => a + b, 0) / 3;
  assert.ok(Math.abs(h - avg) <= 1e-12 * Math.max(...each.map(Math.abs)), `batch ${h}, mean of episodes ${avg} (${each.join(', ')})`);
  assert.ok(Math.abs(avg) > 1e-8 && new Set(each.map((x) => x.toPrecision(6))).size === 3, 'not vacuous: the episodes\' hypergradients differ and are non-zero');
  // one episode: the objective's own
  assert.is(mean.val(theta, [vals[0]!], g), obj.val(theta, vals[0]!, gi));
  assert.throws(() => mean.val(theta, [], g), /validation batch list is empty/);
});

test.run();
