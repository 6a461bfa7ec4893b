/**
 * The second-order baseline (lib/evograd/lookahead): the graph's first-order gradients equal the
 * tape's, and the T1-T2 hypergradient -- back-propagation through one inner update, with every
 * second-derivative rule of the ProtoNet loss (conv, batch-norm, ReLU, max-pool, prototypes,
 * squared distances, log-softmax) and the rotation -- equals central finite differences of
 * lambda -> L_val(theta - alpha grad_theta L_train(theta, lambda)), the inner gradient taken by
 * lib/autodiff's tape, in float64. Angles are kept away from the rotation's kinks.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { programLosses, tapeObjective } from '../lib/evograd/objective.js';
import { rotationProgram } from '../lib/evograd/rotation.js';
import { lookaheadHypergradient } from '../lib/evograd/lookahead/t1t2.js';
import { Graph } from '../lib/evograd/lookahead/graph.js';
import { episodeLoss } from '../lib/model/protonet.js';
import { TOY_PROGRAM } from '../lib/evograd/toy.js';
import { evoGradHypergradient } from '../lib/evograd/hypergrad.js';
import { fillCopyNoise } from '../lib/evograd/noise.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { rotationSetup } from './helpers/rotation-setup.js';

const dev = getDevice('cpu-ts');

const setup = (blocks: number, size: number, seed: number) => rotationSetup(dev, blocks, size, seed);

test('graph: first-order gradients of the ProtoNet loss equal the tape\'s (float64, plain and recorded backward)', () => {
  const { layout, bn, theta, train } = setup(4, 16, 5);
  const tapeObj = tapeObjective(dev, rotationProgram(layout, bn, 'euclidean', false));
  const want = new Float64Array(theta.length);
  tapeObj.trainTheta(theta, Float64Array.of(0), train, want);
  for (const createGraph of [false, true]) {
    const g = new Graph(dev);
    const leaves: { v: ReturnType<Graph['leaf']>; off: number }[] = [];
    const loss = episodeLoss(g, layout, theta, bn, train, { bn: 'batch', distance: 'euclidean' }, (name, t) => {
      const v = g.leaf(t);
      leaves.push({ v, off: layout.param(name).offset });
      return v;
    }).loss;
    const grads = g.backward(loss, leaves.map((l) => l.v), createGraph);
    let worst = 0;
    leaves.forEach((l, i) => grads[i]!.value.data.forEach((x, j) => { worst = Math.max(worst, Math.abs(x - want[l.off + j]!)); }));
    assert.ok(worst < 1e-14, `createGraph ${createGraph}: max difference ${worst}`);
  }
});

for (const [blocks, size, seed] of [[2, 12, 3], [4, 16, 7]] as const) {
  test(`T1-T2 hypergradient vs finite differences through the tape's inner step: ${blocks} blocks, ${size}x${size}, float64`, () => {
    const { program, theta, train, val } = setup(blocks, size, seed);
    const obj = tapeObjective(dev, program), losses = programLosses(dev, program);
    const alpha = 0.1;
    const g = new Float64Array(theta.length);
    const f = (deg: number): number => {
      obj.trainTheta(theta, Float64Array.of(deg), train, g);
      return losses.val(theta.map((t, i) => t - alpha * g[i]!), val);
    };
    let largest = 0;
    for (const deg of [7.31, 23.9, -13.7]) {
      const r = lookaheadHypergradient(dev, program, theta, Float64Array.of(deg), train, val, alpha);
      const h = 1e-5, fd = (f(deg + h) - f(deg - h)) / (2 * h);
      assert.ok(Math.abs(r.grad[0]! - fd) <= 1e-10 + 1e-6 * Math.abs(fd), `angle ${deg}: second order ${r.grad[0]}, finite differences ${fd}`);
      assert.ok(r.graphPeakBytes > 0);
      largest = Math.max(largest, Math.abs(fd));
    }
    assert.ok(largest > 1e-4, `not vacuous: the largest |h| is ${largest}`);
  });
}

test('T1-T2 on the toy: closed form -alpha * d/dlambda (2(x-1) + 2 lambda x) * 2(x\' - 0.5) = -4 alpha x (x\' - 0.5)', () => {
  for (const [x, lam, alpha] of [[0.3, 0.7, 0.1], [-1.2, 1.5, 0.05]] as const) {
    const r = lookaheadHypergradient(dev, TOY_PROGRAM, Float64Array.of(x), Float64Array.of(lam), null, null, alpha);
    const xp = x - alpha * (2 * (x - 1) + 2 * lam * x);
    const want = -4 * alpha * x * (xp - 0.5);
    assert.ok(Math.abs(r.grad[0]! - want) < 1e-14, `${r.grad[0]} vs ${want}`);
  }
});

test('EvoGrad and T1-T2 agree in expectation: for K = 2 sign noise, E[EvoGrad] = T1-T2 with alpha = sigma^2 / (2 tau) + O(sigma^2) relatively', () => {
  // On the toy (one parameter) the sign pairs (+,+), (-,-) give h = 0 exactly and (+,-), (-,+) are
  // equally likely, so the expectation over the noise is exact: the mean of the two mixed pairs / 2.
  const obj = tapeObjective(dev, TOY_PROGRAM);
  const e = new Float32Array(1), steps: number[] = [];
  for (let t = 0; steps.length < 2 && t < 64; t++) {
    fillCopyNoise(e, 'sign', 3, t, 0);
    const a = e[0]!;
    fillCopyNoise(e, 'sign', 3, t, 1);
    if (a !== e[0]! && !steps.some((u) => { fillCopyNoise(e, 'sign', 3, u, 0); return e[0] === a; })) steps.push(t);
  }
  assert.is(steps.length, 2, 'found a (+,-) and a (-,+) step');
  let last = Infinity;
  for (const sigma of [1e-2, 1e-3, 1e-4]) {
    const s = { copies: 2, sigma, tau: 0.5, noise: 'sign' as const, seed: 3 };
    const h = (t: number): number => evoGradHypergradient(obj, Float64Array.of(0.3), Float64Array.of(0.7), null, null, s, t).grad[0]!;
    const expected = (h(steps[0]!) + h(steps[1]!)) / 4;
    const t1t2 = lookaheadHypergradient(dev, TOY_PROGRAM, Float64Array.of(0.3), Float64Array.of(0.7), null, null, (sigma * sigma) / (2 * s.tau)).grad[0]!;
    const rel = Math.abs(expected / t1t2 - 1);
    assert.ok(rel < 10 * sigma * sigma && rel < last, `sigma ${sigma}: E[EvoGrad] ${expected}, T1-T2 ${t1t2}, relative difference ${rel}`);
    last = rel;
  }
});

test('a third derivative is refused with a clear error, and a bad alpha is named', () => {
  const { program, theta, train, val } = setup(2, 12, 3);
  assert.throws(() => lookaheadHypergradient(dev, program, theta, Float64Array.of(5), train, val, 0), /alpha must be a finite number > 0/);
  const g = new Graph(dev);
  const x = g.leaf(Tensor.from([0.3, -0.2, 0.5], [1, 3], 'float64'));
  const loss = g.reshape(g.sqEuclidean(x, g.constant(Tensor.from([1, 1, 1], [1, 3], 'float64'))), []);
  const [gx] = g.backward(loss, [x], true);
  assert.ok(gx!.requiresGrad, 'the recorded gradient is differentiable');
  const s = g.dot(gx!, Tensor.from([1, 2, 3], [1, 3], 'float64'));
  assert.throws(() => g.backward(s, [x], true), /second order at most/);
});

test.run();
