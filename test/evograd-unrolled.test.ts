/**
 * The longer-horizon hypergradient (lib/evograd/unrolled.ts: antithetic ES over lambda on T-step
 * unrolls) on the paper's 1-D toy, L_train = (x - 1)^2 + lambda x^2, L_val = (x - 0.5)^2, where T
 * steps of SGD have a closed recursion: the window's hypergradient equals the central difference of
 * L_val after T steps computed independently, and approaches the exact T-step derivative (forward
 * recursion) as delta shrinks; the copies merge to their average; the learner finds the toy's optimum
 * lambda = 1 from 0.1; a state saved mid-window continues bit for bit; errors name the value.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { tapeObjective } from '../lib/evograd/objective.js';
import { TOY_PROGRAM } from '../lib/evograd/toy.js';
import { UnrolledEsLearner, type UnrolledEsConfig } from '../lib/evograd/unrolled.js';

const dev = getDevice('cpu-ts');
const obj = tapeObjective(dev, TOY_PROGRAM);
const valLoss = (theta: Float32Array): number => (theta[0]! - 0.5) ** 2;

/** x after T SGD steps of size a from x0 at lambda, and dx_T/dlambda, in float64. */
function unrollToy(x0: number, lambda: number, a: number, T: number): { x: number; dx: number } {
  let x = x0, dx = 0;
  for (let t = 0; t < T; t++) {
    const k = 1 - 2 * a * (1 + lambda);
    dx = dx * k - 2 * a * x;
    x = x * k + 2 * a;
  }
  return { x, dx };
}

const sgd = (unroll: number, delta: number, lr = 0.1, hyperLr = 0.05): UnrolledEsConfig => ({
  settings: { unroll, delta, seed: 3 }, thetaOptimizer: { name: 'sgd', lr }, lambdaOptimizer: { name: 'adam', lr: hyperLr },
});

test('one window: h is the central difference of L_val after T steps (independent recursion), and nears dL_val(x_T)/dlambda as delta shrinks', () => {
  const x0 = -0.4, lam = 0.3, a = 0.1, T = 7;
  for (const delta of [0.2, 0.02]) {
    const l = new UnrolledEsLearner(obj, Float32Array.of(x0), Float32Array.of(lam), sgd(T, delta));
    const eps = l.epsOf(0)[0]!;
    let r;
    const seen: number[] = [];
    for (let t = 0; t < T; t++) r = l.trainStep(null, (theta, w) => { seen.push(w); return valLoss(theta); });
    assert.equal(seen, [0, 0], 'both copies scored once, in window 0, at the end of the window');
    const plus = unrollToy(x0, lam + delta * eps, a, T).x, minus = unrollToy(x0, lam - delta * eps, a, T).x;
    const want = (((plus - 0.5) ** 2 - (minus - 0.5) ** 2) / (2 * delta)) * eps;
    assert.ok(Math.abs(r!.hypergrad![0]! - want) <= 2e-5 * Math.abs(want) + 1e-6, `delta ${delta}: ${r!.hypergrad![0]} vs ${want}`);
    const exact = unrollToy(x0, lam, a, T);
    const deriv = 2 * (exact.x - 0.5) * exact.dx;
    assert.ok(Math.abs(want - deriv) <= (delta === 0.2 ? 0.05 : 5e-4) * Math.abs(deriv), `delta ${delta}: difference ${want} vs derivative ${deriv}`);
    assert.ok(Math.abs(r!.valLoss! - ((plus - 0.5) ** 2 + (minus - 0.5) ** 2) / 2) < 1e-6);
    // after the window both copies restart from their average
    const s = l.state();
    assert.equal(Array.from(s.plus.theta), Array.from(s.minus.theta));
    assert.ok(Math.abs(s.plus.theta[0]! - (plus + minus) / 2) < 1e-6);
    assert.is(l.theta[0], s.plus.theta[0]);
    assert.ok(l.lambda[0] !== lam, 'lambda took a step');
  }
});

test('learns the toy\'s optimum lambda = 1 (x* = 1 / (1 + lambda) = 0.5) from lambda = 0.1', () => {
  const l = new UnrolledEsLearner(obj, Float32Array.of(0), Float32Array.of(0.1), sgd(10, 0.05, 0.1, 0.05));
  for (let t = 0; t < 3000; t++) l.trainStep(null, valLoss);
  assert.ok(Math.abs(l.lambda[0]! - 1) < 0.05, `lambda ${l.lambda[0]}`);
  assert.ok(Math.abs(l.theta[0]! - 0.5) < 0.02, `x ${l.theta[0]}`);
});

test('a state saved mid-window (Adam, both copies apart) continues bit for bit; stateBytes counts both copies', () => {
  const cfg: UnrolledEsConfig = { settings: { unroll: 4, delta: 0.1, seed: 9 }, thetaOptimizer: { name: 'adam', lr: 0.05 }, lambdaOptimizer: { name: 'adam', lr: 0.02 } };
  const full = new UnrolledEsLearner(obj, Float32Array.of(0.2), Float32Array.of(0.4), cfg);
  for (let t = 0; t < 18; t++) full.trainStep(null, valLoss);
  const first = new UnrolledEsLearner(obj, Float32Array.of(0.2), Float32Array.of(0.4), cfg);
  for (let t = 0; t < 10; t++) first.trainStep(null, valLoss);
  const mid = first.state();
  assert.ok(mid.plus.theta[0] !== mid.minus.theta[0], 'mid-window the copies differ');
  const resumed = new UnrolledEsLearner(obj, Float32Array.of(0), Float32Array.of(0), cfg);
  resumed.load(mid);
  for (let t = 10; t < 18; t++) resumed.trainStep(null, valLoss);
  assert.equal(resumed.state(), full.state());
  assert.ok(full.stateBytes >= 2 * 4 * 3 + 4, `${full.stateBytes}`);
});

test('bad settings and states are named', () => {
  const mk = (unroll: number, delta: number) => () => new UnrolledEsLearner(obj, Float32Array.of(0), Float32Array.of(0), sgd(unroll, delta));
  assert.throws(mk(0, 0.1), /unroll must be an integer >= 1, got 0/);
  assert.throws(mk(3, 0), /delta must be a finite number > 0, got 0/);
  const l = new UnrolledEsLearner(obj, Float32Array.of(0), Float32Array.of(0), sgd(2, 0.1));
  const s = l.state();
  assert.throws(() => l.load({ ...s, minus: { ...s.minus, theta: new Float32Array(2) } }), /theta of the minus copy has 2 elements, the model 1/);
  assert.throws(() => l.load({ ...s, lambda: new Float32Array(3) }), /lambda has 3 elements, expected 1/);
  assert.throws(() => l.trainStep(null, () => NaN) && l.trainStep(null, () => NaN), /validation losses of window 0 are NaN and NaN/);
});

test.run();
