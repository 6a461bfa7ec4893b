/**
 * Gradient checks: the tape's gradients against central finite differences in
 * float64, for every differentiable op on random odd shapes (inputs drawn away
 * from ReLU's kink and from max-pool ties), and for the whole ProtoNet episode
 * loss; plus proof that the checker catches a wrong backward.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { Rng } from '../lib/rng/philox.js';
import type { TensorOps } from '../lib/ops/api.js';
import { checkGradient, packInputs, type GradCheckResult, type GradProgram } from '../lib/autodiff/gradcheck.js';
import { withGradient } from '../lib/autodiff/gradients.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { episodeLoss, type Distance } from '../lib/model/protonet.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';

const device = getDevice('cpu-ts');

function randn(rng: Rng, shape: number[], scale = 1): Tensor {
  const t = Tensor.zeros(shape, 'float64');
  for (let i = 0; i < t.size; i++) t.data[i] = scale * rng.normal();
  return t;
}

/** Values with |v| in [0.1, 1.1): at least 0.1 away from ReLU's kink, far beyond any FD step. */
function awayFromZero(rng: Rng, shape: number[]): Tensor {
  const t = Tensor.zeros(shape, 'float64');
  for (let i = 0; i < t.size; i++) t.data[i] = (rng.uniform() < 0.5 ? -1 : 1) * (0.1 + rng.uniform());
  return t;
}

/** Distinct values 0.01 apart in random order (no max-pool ties), plus a small jitter. */
function distinct(rng: Rng, shape: number[]): Tensor {
  const t = Tensor.zeros(shape, 'float64');
  const perm = new Int32Array(t.size).map((_, i) => i);
  rng.shuffle(perm);
  for (let i = 0; i < t.size; i++) t.data[i] = perm[i]! * 0.01 - t.size * 0.005 + 0.001 * rng.uniform();
  return t;
}

function report(name: string, r: GradCheckResult): string {
  return `${name}: checked ${r.checked}, skipped ${r.skipped}, refined ${r.refined}, worst ratio ${r.worstRatio.toExponential(2)}, ` +
    `max abs err ${r.maxAbsErr.toExponential(2)}` + (r.worst ? ` at ${r.worst.index} (analytic ${r.worst.analytic}, numeric ${r.worst.numeric})` : '');
}

function expectPass(name: string, r: GradCheckResult): void {
  assert.ok(r.checked > 0, `${name}: nothing checked`);
  assert.is(r.skipped, 0, report(name, r));
  assert.is(r.forwardDiff, 0, `${name}: the tape's forward differs from the plain forward by ${r.forwardDiff}`);
  assert.ok(r.ok, report(name, r));
}

interface OpCase { name: string; inputs: Record<string, Tensor>; body: <V>(ops: TensorOps<V>, get: (n: string) => V) => V; rtol: number; atol: number }

function runCase(c: OpCase, seed = 7): GradCheckResult {
  const { x, get } = packInputs(c.inputs);
  const program: GradProgram = (ops, leaf, xs) => c.body(ops, (n) => get(leaf, xs, n));
  return checkGradient({ device, x, program, rtol: c.rtol, atol: c.atol, seed });
}

const rng = new Rng(2024);
const labels3 = Int32Array.from([0, 2, 1, 2, 0, 1, 2]);
const cases: OpCase[] = [
  {
    name: 'conv2d stride 1 pad 1 with bias',
    inputs: { x: randn(rng, [2, 3, 7, 5]), w: randn(rng, [4, 3, 3, 3], 0.3), b: randn(rng, [4]) },
    body: (ops, g) => ops.conv2d(g('x'), g('w'), g('b'), { stride: 1, padding: 1 }), rtol: 1e-6, atol: 1e-9,
  },
  {
    name: 'conv2d stride 2 pad 0 without bias',
    inputs: { x: randn(rng, [3, 2, 9, 7]), w: randn(rng, [5, 2, 3, 3], 0.3) },
    body: (ops, g) => ops.conv2d(g('x'), g('w'), undefined, { stride: 2, padding: 0 }), rtol: 1e-6, atol: 1e-9,
  },
  {
    name: 'batchnorm2dTrain (through the batch statistics)',
    inputs: { x: randn(rng, [3, 5, 4, 3], 2), gamma: randn(rng, [5]), beta: randn(rng, [5]) },
    body: (ops, g) => ops.batchnorm2dTrain(g('x'), g('gamma'), g('beta'), 1e-5).y, rtol: 1e-5, atol: 1e-8,
  },
  {
    name: 'batchnorm2dEval (running statistics)',
    inputs: { x: randn(rng, [3, 5, 3, 7]), gamma: randn(rng, [5]), beta: randn(rng, [5]) },
    body: (ops, g) => ops.batchnorm2dEval(g('x'), g('gamma'), g('beta'),
      Tensor.from([0.1, -0.2, 0.3, 0, 0.5], [5], 'float64'), Tensor.from([1, 0.5, 2, 0.8, 1.3], [5], 'float64'), 1e-5),
    rtol: 1e-6, atol: 1e-9,
  },
  {
    name: 'bnReluPool (BN through the batch statistics, ReLU, 2x2 max-pool; odd sizes)',
    inputs: { x: distinct(rng, [3, 4, 5, 7]), gamma: randn(rng, [4]), beta: randn(rng, [4], 0.3) },
    // the tape records the fused op; the plain forward it is differenced against runs the three ops
    body: (ops, g) => ops.bnReluPool
      ? ops.bnReluPool(g('x'), g('gamma'), g('beta'), 1e-5).y
      : ops.maxpool2d(ops.relu(ops.batchnorm2dTrain(g('x'), g('gamma'), g('beta'), 1e-5).y), { kernel: 2, stride: 2 }),
    rtol: 1e-5, atol: 1e-8,
  },
  { name: 'relu', inputs: { x: awayFromZero(rng, [3, 4, 5, 3]) }, body: (ops, g) => ops.relu(g('x')), rtol: 1e-6, atol: 1e-9 },
  {
    name: 'maxpool2d 2x2 stride 2 (odd sizes, floor mode)',
    inputs: { x: distinct(rng, [2, 3, 7, 9]) }, body: (ops, g) => ops.maxpool2d(g('x'), { kernel: 2, stride: 2 }), rtol: 1e-6, atol: 1e-9,
  },
  {
    name: 'maxpool2d 3x3 stride 2 (overlapping windows)',
    inputs: { x: distinct(rng, [1, 2, 7, 5]) }, body: (ops, g) => ops.maxpool2d(g('x'), { kernel: 3, stride: 2 }), rtol: 1e-6, atol: 1e-9,
  },
  {
    name: 'reshape then relu',
    inputs: { x: awayFromZero(rng, [3, 2, 5]) }, body: (ops, g) => ops.relu(ops.reshape(g('x'), [6, 5])), rtol: 1e-6, atol: 1e-9,
  },
  {
    name: 'sliceRows (two overlapping slices of one value)',
    inputs: { x: randn(rng, [7, 3]) },
    body: (ops, g) => { const x = g('x'); return ops.sqEuclidean(ops.sliceRows(x, 0, 4), ops.sliceRows(x, 2, 7)); }, rtol: 1e-6, atol: 1e-9,
  },
  {
    name: 'prototypes (uneven class counts)',
    inputs: { s: randn(rng, [7, 5]) }, body: (ops, g) => ops.prototypes(g('s'), labels3, 3), rtol: 1e-6, atol: 1e-9,
  },
  { name: 'sqEuclidean', inputs: { q: randn(rng, [5, 7]), p: randn(rng, [3, 7]) }, body: (ops, g) => ops.sqEuclidean(g('q'), g('p')), rtol: 1e-6, atol: 1e-9 },
  { name: 'cosine', inputs: { q: randn(rng, [5, 7]), p: randn(rng, [3, 7]) }, body: (ops, g) => ops.cosine(g('q'), g('p'), 1e-8), rtol: 1e-6, atol: 1e-9 },
  { name: 'scale', inputs: { x: randn(rng, [3, 5]) }, body: (ops, g) => ops.scale(g('x'), -1.7), rtol: 1e-6, atol: 1e-9 },
  { name: 'logSoftmax', inputs: { x: randn(rng, [4, 5], 2) }, body: (ops, g) => ops.logSoftmax(g('x')), rtol: 1e-6, atol: 1e-9 },
  {
    name: 'crossEntropy',
    inputs: { logp: randn(rng, [5, 3]) }, body: (ops, g) => ops.crossEntropy(g('logp'), Int32Array.from([2, 0, 1, 1, 2])), rtol: 1e-6, atol: 1e-9,
  },
  {
    name: 'crossEntropy(logSoftmax(-sqEuclidean))',
    inputs: { q: randn(rng, [6, 4]), p: randn(rng, [3, 4]) },
    body: (ops, g) => ops.crossEntropy(ops.logSoftmax(ops.scale(ops.sqEuclidean(g('q'), g('p')), -1)), Int32Array.from([0, 1, 2, 2, 1, 0])),
    rtol: 1e-6, atol: 1e-9,
  },
];

for (const c of cases) test(`gradcheck op: ${c.name}`, () => expectPass(c.name, runCase(c)));

function protoProgram(layout: ProtoNetLayout, distance: Distance, bnMode: 'batch' | 'running', way: number, seed: number): { x: Float64Array; program: GradProgram } {
  const src = new SyntheticEpisodes({ classes: 6, way, shot: 2, query: 2, imageSize: layout.config.imageSize, seed, dtype: 'float64', noise: 0.5 });
  const ep = src.episode(0);
  const x = Float64Array.from(initParams(layout, seed));
  // Perturb BN gammas/betas away from their defaults so their gradients are generic.
  const prng = new Rng(seed + 1);
  for (const e of layout.params) if (e.name.includes('.1.')) for (let i = 0; i < e.size; i++) x[e.offset + i]! += 0.2 * prng.normal();
  const bn = initialBnState(layout);
  for (let i = 0; i < bn.buffers.length; i++) bn.buffers[i]! += 0.1 * Math.abs(prng.normal());
  const program: GradProgram = (ops, leaf, xs) =>
    episodeLoss(ops, layout, xs, bn, ep, { bn: bnMode, distance, cosineScale: 5 }, (name, t) => leaf(t, layout.param(name).offset)).loss;
  return { x, program };
}

for (const distance of ['euclidean', 'cosine'] as const) {
  test(`gradcheck ProtoNet episode loss: C=4, 16x16, 4 blocks, ${distance}, BN batch mode, every parameter`, () => {
    const layout = new ProtoNetLayout({ channels: 4, imageSize: 16, blocks: 4 });
    const { x, program } = protoProgram(layout, distance, 'batch', 3, 11);
    const r = checkGradient({ device, x, program, rtol: 1e-5, atol: 1e-8 });
    assert.is(r.checked, layout.numParams, report(distance, r));
    expectPass(`protonet C=4 ${distance}`, r);
  });
}

test('gradcheck ProtoNet episode loss: C=8, 12x12, 2 blocks, euclidean, BN batch mode, 150 random parameters', () => {
  const layout = new ProtoNetLayout({ channels: 8, imageSize: 12, blocks: 2 });
  const { x, program } = protoProgram(layout, 'euclidean', 'batch', 4, 5);
  expectPass('protonet C=8', checkGradient({ device, x, program, rtol: 1e-5, atol: 1e-8, coords: 150, seed: 3 }));
});

test('gradcheck ProtoNet episode loss: C=4, 16x16, cosine, BN running statistics (eval mode)', () => {
  const layout = new ProtoNetLayout({ channels: 4, imageSize: 16, blocks: 4 });
  const { x, program } = protoProgram(layout, 'cosine', 'running', 3, 13);
  expectPass('protonet running BN', checkGradient({ device, x, program, rtol: 1e-5, atol: 1e-8, coords: 200, seed: 4 }));
});

test('the checker catches a wrong backward: ReLU passing every gradient through', () => {
  const c = cases.find((k) => k.name === 'relu')!;
  const broken = withGradient('relu', (dy) => [dy.clone()], () => runCase(c));
  assert.not.ok(broken.ok, `a ReLU backward that ignores the sign of x went unnoticed: ${report('broken relu', broken)}`);
  assert.ok(runCase(c).ok, 'the registered ReLU gradient was not restored');
});

test('the checker catches a wrong backward: BN treating the batch statistics as constants, in the full loss', () => {
  const layout = new ProtoNetLayout({ channels: 4, imageSize: 16, blocks: 4 });
  const { x, program } = protoProgram(layout, 'euclidean', 'batch', 3, 11);
  // dx = dy * gamma * invStd: the gradient as if mean and variance did not depend on x.
  // (The tape records each block's BN, ReLU and max-pool as the fused bnReluPool: its backward is the one broken.)
  const broken = withGradient('bnReluPool', (dy, { device: d, saved: s }) => {
    const r = d.run('bnReluPoolBackward', { dy, y: s.y, argmax: s.argmax, x: s.x, gamma: s.gamma, mean: s.mean, invStd: s.invStd }, {});
    const masked = dy.clone();
    for (let i = 0; i < masked.size; i++) if (!(s.y.data[i]! > 0)) masked.data[i] = 0;
    const dx = d.run('maxpool2dBackward', { dy: masked, argmax: s.argmax }, { inputShape: s.x.shape });
    const [n, ch, h, w] = dx.shape as [number, number, number, number];
    for (let b = 0; b < n; b++) for (let c = 0; c < ch; c++) for (let k = 0; k < h * w; k++) {
      dx.data[(b * ch + c) * h * w + k]! *= s.gamma.data[c]! * s.invStd.data[c]!;
    }
    return [dx, r.dgamma, r.dbeta];
  }, () => checkGradient({ device, x, program, rtol: 1e-5, atol: 1e-8, coords: 60, seed: 9 }));
  assert.not.ok(broken.ok, `BN without the batch-statistics terms went unnoticed: ${report('broken bn', broken)}`);
});

test.run();
