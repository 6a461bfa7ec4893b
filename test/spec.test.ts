/**
 * The spec suite: EVERY op of the contract (forward and backward kernels alike) on random odd
 * shapes (batch 3, 5x7 images, 3 channels, ...), float32, with a tolerance per op (normalized
 * error |a - b| / |b|). Inputs are drawn away from kinks: ReLU inputs away from 0, max-pool
 * inputs distinct (no ties), accuracy scores distinct.
 *
 * - The reference device cpu-ts against independent float64 references of every op
 *   (test/helpers/ref64-ops.ts): never against itself.
 * - EVERY other registered device against cpu-ts. The xla device runs through its PJRT plugin when
 *   one is configured, else through XLA's CPU compiler (the jaxlib executor, as test/xla-*.test.ts
 *   do). A device that cannot run here is an explicit skip (counted as skipped, reason printed);
 *   a device that runs must support every op.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/index.js';
import { getDevice, registeredDevices, type Device } from '../lib/device/registry.js';
import { XlaDevice } from '../lib/device/xla/device.js';
import { JaxRunner } from '../lib/device/xla/jax-runner.js';
import { OP_NAMES, type OpAttrs, type OpInputs, type OpName, type OpOutput } from '../lib/ops/contract.js';
import { Rng } from '../lib/rng/philox.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { awayFromZero, distinctTensor, randTensor } from './helpers/random.js';
import { device as devicePeer, hidden, jax, needs, peer, type Peer } from './helpers/peers.js';
import { REFERENCED_OPS, reference, type RefOutput } from './helpers/ref64-ops.js';

type Out = Tensor | Int32Array | number | Record<string, Tensor | Int32Array>;
interface Case { name: string; run(d: Device): Out; ref(): RefOutput }

/** A case: the op on these inputs, on a device or in the float64 reference. */
function mk<K extends OpName>(name: string, op: K, inputs: OpInputs<K>, attrs: OpAttrs<K>): Case {
  return { name, run: (d) => d.run(op, inputs, attrs) as OpOutput<K> as Out, ref: () => reference(op, inputs, attrs) };
}

const rng = new Rng(5_2026_11);
const f32 = (shape: number[], lo = -1, hi = 1): Tensor => randTensor(rng, shape, 'float32', lo, hi);
const REFERENCE = 'cpu-ts';
const ref = getDevice(REFERENCE);

/** Normalized error tolerance per op (float32 outputs; the reference accumulates in float64). */
const TOL: Record<OpName, number> = {
  conv2d: 2e-6, conv2dBackwardInput: 2e-6, conv2dBackwardWeight: 2e-6,
  batchnorm2dTrain: 2e-6, batchnorm2dEval: 1e-6, batchnorm2dBackward: 5e-6,
  relu: 0, reluBackward: 0, maxpool2d: 0, maxpool2dBackward: 0,
  // the composition of BN, ReLU and max-pool: BN's tolerances (argmax exact)
  bnReluPool: 2e-6, bnReluPoolBackward: 5e-6,
  prototypes: 1e-6, prototypesBackward: 1e-6, sqEuclidean: 1e-6, sqEuclideanBackward: 1e-6,
  cosine: 1e-6, cosineBackward: 2e-6, scale: 1e-7, logSoftmax: 1e-6, logSoftmaxBackward: 1e-6,
  crossEntropy: 1e-6, crossEntropyBackward: 0, accuracy: 0,
  matmul: 1e-6, add: 0, mul: 0, sumTo: 1e-6, sigmoid: 1e-6, sigmoidBackward: 1e-6, tanh: 1e-6, tanhBackward: 1e-6,
  // rotate: the xla lowering computes cos, sin and the sample coordinates in float32 (cpu-ts and cpu-native in
  // float64); the angle's gradient sums signed terms over every pixel (measured on xla: 3.8e-6).
  rotate: 1e-6, rotateBackward: 1e-5,
};

/**
 * Normalized error tolerance of cpu-ts against the float64 references rounded to float32. cpu-ts
 * accumulates in float64 and rounds once, so each output lies within one float32 ulp of the rounded
 * truth: normalized error <= 2^-23 (measured on these cases: at most 5.5e-8, in cosineBackward and
 * sqEuclideanBackward; 0 for most ops). Exact where the result is one rounding or none (ReLU,
 * max-pool, scale, the cross-entropy gradient, argmax indices, accuracy). maxpool2dBackward sums
 * the gradients of up to 4 overlapping windows in float32 (the output dtype): at most 3 roundings,
 * <= 3 * 2^-24 (measured 3.8e-8).
 */
const ULP = 2 ** -23;
const REF_TOL: Record<OpName, number> = {
  conv2d: ULP, conv2dBackwardInput: ULP, conv2dBackwardWeight: ULP,
  batchnorm2dTrain: ULP, batchnorm2dEval: ULP, batchnorm2dBackward: ULP,
  relu: 0, reluBackward: 0, maxpool2d: 0, maxpool2dBackward: 3 * 2 ** -24,
  // BN's rounding (ReLU and the pool are exact; each input gets at most one window's gradient)
  bnReluPool: ULP, bnReluPoolBackward: ULP,
  prototypes: ULP, prototypesBackward: ULP, sqEuclidean: ULP, sqEuclideanBackward: ULP,
  cosine: ULP, cosineBackward: ULP, scale: 0, logSoftmax: ULP, logSoftmaxBackward: ULP,
  crossEntropy: ULP, crossEntropyBackward: 0, accuracy: 0,
  // one float64 sum (matmul, sumTo) or one double expression rounded once; the references use other formulas for sigmoid and tanh
  matmul: ULP, add: 0, mul: 0, sumTo: ULP, sigmoid: ULP, sigmoidBackward: ULP, tanh: ULP, tanhBackward: ULP,
  rotate: ULP, rotateBackward: ULP,
};

const conv = [
  // [n, cin, h, w, cout, k, stride, padding]
  [3, 3, 5, 7, 4, 3, 1, 1], [3, 1, 7, 5, 5, 3, 1, 1], [2, 3, 9, 6, 5, 3, 2, 1], [3, 4, 5, 7, 3, 2, 1, 0], [1, 17, 5, 7, 33, 3, 1, 1],
] as const;

function cases(op: OpName): Case[] {
  switch (op) {
    case 'conv2d': return conv.map(([n, ci, h, w, co, k, s, p], i) => {
      const x = f32([n, ci, h, w]), wt = f32([co, ci, k, k]), b = f32([co]);
      return mk(`${i}`, 'conv2d', i % 2 ? { x, w: wt } : { x, w: wt, b }, { stride: s, padding: p });
    });
    case 'conv2dBackwardInput': return conv.map(([n, ci, h, w, co, k, s, p], i) => {
      const wt = f32([co, ci, k, k]);
      const oh = Math.floor((h + 2 * p - k) / s) + 1, ow = Math.floor((w + 2 * p - k) / s) + 1;
      const dy = f32([n, co, oh, ow]);
      return mk(`${i}`, 'conv2dBackwardInput', { dy, w: wt }, { stride: s, padding: p, inputShape: [n, ci, h, w] });
    });
    case 'conv2dBackwardWeight': return conv.map(([n, ci, h, w, co, k, s, p], i) => {
      const x = f32([n, ci, h, w]);
      const oh = Math.floor((h + 2 * p - k) / s) + 1, ow = Math.floor((w + 2 * p - k) / s) + 1;
      const dy = f32([n, co, oh, ow]);
      return mk(`${i}`, 'conv2dBackwardWeight', { dy, x }, { stride: s, padding: p, weightShape: [co, ci, k, k] });
    });
    case 'batchnorm2dTrain': return [[3, 3, 5, 7], [5, 2, 3, 3]].map((sh, i) => {
      const x = f32(sh, -2, 3), gamma = f32([sh[1]!], 0.5, 1.5), beta = f32([sh[1]!]);
      return mk(`${i}`, 'batchnorm2dTrain', { x, gamma, beta }, { eps: 1e-5 });
    });
    case 'batchnorm2dEval': return [[3, 3, 5, 7]].map((sh, i) => {
      const c = sh[1]!;
      const x = f32(sh), gamma = f32([c]), beta = f32([c]), runningMean = f32([c]), runningVar = f32([c], 0.5, 2);
      return mk(`${i}`, 'batchnorm2dEval', { x, gamma, beta, runningMean, runningVar }, { eps: 1e-5 });
    });
    case 'batchnorm2dBackward': return [[3, 3, 5, 7], [5, 2, 3, 3]].map((sh, i) => {
      const x = f32(sh, -2, 3), gamma = f32([sh[1]!], 0.5, 1.5), beta = f32([sh[1]!]), dy = f32(sh);
      const fwd = ref.run('batchnorm2dTrain', { x, gamma, beta }, { eps: 1e-5 });
      return mk(`${i}`, 'batchnorm2dBackward', { dy, x, gamma, mean: fwd.mean, invStd: fwd.invStd }, {});
    });
    case 'relu': {
      const x = awayFromZero(rng, [3, 3, 5, 7], 0.01, 'float32');
      return [mk('0', 'relu', { x }, {})];
    }
    case 'reluBackward': {
      const x = awayFromZero(rng, [3, 3, 5, 7], 0.01, 'float32'), dy = f32([3, 3, 5, 7]);
      return [mk('0', 'reluBackward', { dy, x }, {})];
    }
    case 'maxpool2d': return ([[[3, 3, 5, 7], 2, 2], [[2, 3, 7, 5], 3, 2], [[3, 1, 4, 4], 2, 1]] as const).map(([sh, k, s], i) => {
      const x = distinctTensor(rng, [...sh], 'float32');
      return mk(`${i}`, 'maxpool2d', { x }, { kernel: k, stride: s });
    });
    case 'maxpool2dBackward': return ([[[3, 3, 5, 7], 2, 2], [[2, 3, 7, 5], 3, 2], [[3, 1, 4, 4], 2, 1]] as const).map(([sh, k, s], i) => {
      const x = distinctTensor(rng, [...sh], 'float32');
      const fwd = ref.run('maxpool2d', { x }, { kernel: k, stride: s });
      const dy = f32([...fwd.y.shape]);
      return mk(`${i}`, 'maxpool2dBackward', { dy, argmax: fwd.argmax }, { inputShape: [...sh] });
    });
    case 'bnReluPool': return [[3, 3, 5, 7], [2, 4, 6, 4]].map((sh, i) => {
      const x = distinctTensor(rng, sh, 'float32'), gamma = f32([sh[1]!], 0.5, 1.5), beta = f32([sh[1]!], -0.5, 0.5);
      return mk(`${i}`, 'bnReluPool', { x, gamma, beta }, { eps: 1e-5 });
    });
    case 'bnReluPoolBackward': return [[3, 3, 5, 7], [2, 4, 6, 4]].map((sh, i) => {
      const x = distinctTensor(rng, sh, 'float32'), gamma = f32([sh[1]!], 0.5, 1.5), beta = f32([sh[1]!], -0.5, 0.5);
      const fwd = ref.run('bnReluPool', { x, gamma, beta }, { eps: 1e-5 });
      const dy = f32([...fwd.y.shape]);
      return mk(`${i}`, 'bnReluPoolBackward', { dy, y: fwd.y, argmax: fwd.argmax, x, gamma, mean: fwd.mean, invStd: fwd.invStd }, {});
    });
    case 'prototypes': {
      const support = f32([7, 5]), labels = Int32Array.from([0, 1, 2, 0, 1, 2, 1]);
      return [mk('0', 'prototypes', { support, labels }, { way: 3 })];
    }
    case 'prototypesBackward': {
      const dproto = f32([3, 5]), labels = Int32Array.from([2, 1, 0, 0, 1, 2, 1]);
      return [mk('0', 'prototypesBackward', { dproto, labels }, { way: 3 })];
    }
    case 'sqEuclidean': {
      const q = f32([5, 7]), p = f32([3, 7]);
      return [mk('0', 'sqEuclidean', { q, p }, {})];
    }
    case 'sqEuclideanBackward': {
      const q = f32([5, 7]), p = f32([3, 7]), dd = f32([5, 3]);
      return [mk('0', 'sqEuclideanBackward', { dd, q, p }, {})];
    }
    case 'cosine': {
      const q = f32([5, 7]), p = f32([3, 7]);
      p.data.fill(0, 7, 14); // a zero row: its norm is clamped at eps
      return [mk('0', 'cosine', { q, p }, { eps: 1e-8 })];
    }
    case 'cosineBackward': {
      const q = f32([5, 7]), p = f32([3, 7]), dc = f32([5, 3]);
      return [mk('0', 'cosineBackward', { dc, q, p }, { eps: 1e-8 })];
    }
    case 'scale': {
      const x = f32([3, 5, 7]);
      return [mk('0', 'scale', { x }, { alpha: -1.5 })];
    }
    case 'logSoftmax': {
      const x = f32([5, 7], -4, 4);
      return [mk('0', 'logSoftmax', { x }, {})];
    }
    case 'logSoftmaxBackward': {
      const y = ref.run('logSoftmax', { x: f32([5, 7], -4, 4) }, {}), dy = f32([5, 7]);
      return [mk('0', 'logSoftmaxBackward', { dy, y }, {})];
    }
    case 'crossEntropy': {
      const logp = ref.run('logSoftmax', { x: f32([5, 7], -4, 4) }, {}), labels = Int32Array.from([0, 6, 3, 3, 1]);
      return [mk('0', 'crossEntropy', { logp, labels }, {})];
    }
    case 'crossEntropyBackward': {
      const logp = ref.run('logSoftmax', { x: f32([5, 7], -4, 4) }, {}), labels = Int32Array.from([0, 6, 3, 3, 1]);
      return [mk('0', 'crossEntropyBackward', { dloss: 0.75, logp, labels }, {})];
    }
    // Odd and non-square images; at these angles every sample coordinate is at least 0.004 from an
    // integer (the derivative's kinks) except the centre pixel's, which does not move with the angle.
    case 'rotate': return ([[[3, 2, 7, 5], 0.4137], [[2, 1, 6, 6], -1.2291], [[1, 3, 9, 4], 2.9013]] as const).map(([sh, a], i) => {
      const x = f32([...sh]), angle = Tensor.from([a], [1], 'float32');
      return mk(`${i}`, 'rotate', { x, angle }, {});
    });
    case 'rotateBackward': return ([[[3, 2, 7, 5], 0.4137], [[2, 1, 6, 6], -1.2291], [[1, 3, 9, 4], 2.9013]] as const).map(([sh, a], i) => {
      const x = f32([...sh]), dy = f32([...sh]), angle = Tensor.from([a], [1], 'float32');
      return mk(`${i}`, 'rotateBackward', { dy, x, angle }, {});
    });
    case 'accuracy': {
      const scores = distinctTensor(rng, [9, 4], 'float32'), labels = Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3, 0]);
      return [mk('0', 'accuracy', { scores, labels }, {})];
    }
    case 'matmul': return ([[false, false], [true, false], [false, true], [true, true]] as const).map(([ta, tb], i) => {
      const a = f32(ta ? [7, 5] : [5, 7]), b = f32(tb ? [3, 7] : [7, 3]);
      return mk(`${i}`, 'matmul', { a, b }, { transA: ta, transB: tb });
    });
    case 'add': case 'mul': return ([[[3, 5, 7], [3, 5, 7]], [[3, 5, 7], [5, 1]], [[3, 5, 7], [7]], [[4, 6], [4, 1]], [[4, 6], []]] as const).map(([sa, sb], i) => {
      const a = f32([...sa]), b = f32([...sb]);
      return mk(`${i}`, op, { a, b }, {});
    });
    case 'sumTo': return ([[[3, 5, 7], [5, 1]], [[3, 5, 7], [7]], [[4, 6], [4, 1]], [[4, 6], []], [[4, 6], [4, 6]]] as const).map(([sx, shape], i) => {
      const x = f32([...sx]);
      return mk(`${i}`, 'sumTo', { x }, { shape: [...shape] });
    });
    case 'sigmoid': case 'tanh': {
      const x = f32([3, 5, 7], -6, 6);
      return [mk('0', op, { x }, {})];
    }
    case 'sigmoidBackward': case 'tanhBackward': {
      const y = ref.run(op === 'sigmoidBackward' ? 'sigmoid' : 'tanh', { x: f32([3, 5, 7], -3, 3) }, {}), dy = f32([3, 5, 7]);
      return [mk('0', op, { dy, y }, {})];
    }
  }
}

function normErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

type Tol = Record<OpName, number>;

/**
 * Compare a device's output with the wanted one. `want` may be a float64 reference: it is then
 * rounded to the output's dtype first (the best answer that dtype can hold), so exact ops compare
 * exactly and the tolerance measures the kernel's own error.
 */
function compare(op: OpName, what: string, got: Out, want: Out | RefOutput, tol: Tol): void {
  if (typeof want === 'number') {
    assert.type(got, 'number', `${what}: expected a number`);
    const e = Math.abs((got as number) - want) / Math.max(Math.abs(want), 1e-30);
    assert.ok(e <= tol[op], `${what}: ${got} vs ${want} (normalized error ${e} > ${tol[op]})`);
  } else if (want instanceof Int32Array) {
    assert.ok(got instanceof Int32Array, `${what}: expected an Int32Array`);
    assert.equal([...(got as Int32Array)], [...want], `${what}: indices differ`);
  } else if (want instanceof Tensor) {
    assert.ok(got instanceof Tensor, `${what}: expected a Tensor`);
    const g = got as Tensor;
    assert.equal(g.shape, want.shape, `${what}: shape`);
    const w = want.dtype === g.dtype ? want : want.cast(g.dtype);
    assert.is(g.dtype, w.dtype, `${what}: dtype`);
    const e = normErr(g.data, w.data);
    assert.ok(e <= tol[op], `${what}: normalized error ${e.toExponential(3)} > ${tol[op]}`);
  } else {
    const w = want as Record<string, Tensor | Int32Array>, g = got as Record<string, Tensor | Int32Array>;
    assert.equal(Object.keys(g).sort(), Object.keys(w).sort(), `${what}: output fields`);
    for (const k of Object.keys(w)) compare(op, `${what}.${k}`, g[k]!, w[k]!, tol);
  }
}

const built = new Map(OP_NAMES.map((op) => [op, cases(op)] as const));

test('the spec covers every op of the contract, and the float64 references cover every op', () => {
  for (const op of OP_NAMES) assert.ok((built.get(op)?.length ?? 0) > 0, `no spec case for ${op}`);
  assert.equal(Object.keys(TOL).sort(), [...OP_NAMES].sort());
  assert.equal(Object.keys(REF_TOL).sort(), [...OP_NAMES].sort());
  assert.equal([...REFERENCED_OPS].sort(), [...OP_NAMES].sort());
});

test(`spec: reference device ${REFERENCE}, every op forward and backward vs independent float64 references`, () => {
  for (const op of OP_NAMES) {
    for (const c of built.get(op)!) compare(op, `${REFERENCE} ${op}#${c.name}`, c.run(ref), c.ref(), REF_TOL);
  }
});

/** How each device other than the reference runs here, or why it cannot (decided at load). */
interface Target { label: string; peer: Peer; open: () => Device; close?: () => Promise<void> }

async function target(name: string): Promise<Target> {
  const p = await devicePeer(name);
  if (p.ok || name !== 'xla' || hidden(['xla'])) return { label: name, peer: p, open: () => getDevice(name) };
  // No PJRT plugin here: the same device class on XLA's CPU compiler through jaxlib.
  const j = await jax();
  let runner: JaxRunner | undefined;
  return {
    label: 'xla (XLA CPU compiler through jaxlib: no PJRT plugin here)',
    peer: j.ok ? j : peer(false, `${p.reason}; and the jaxlib executor cannot run: ${j.reason}`, 'xla'),
    open: () => new XlaDevice((runner ??= JaxRunner.start({ hostDevices: 1 })), 'spec: jaxlib executor'),
    close: async () => { await runner?.close(); },
  };
}

const targets = await Promise.all(registeredDevices().filter((n) => n !== REFERENCE).map(target));
for (const t of targets) {
  needs(t.peer, `spec.test: device ${t.label}`)(`spec: device ${t.label}, every op forward and backward vs ${REFERENCE}`, () => {
    const dev = t.open();
    const missing = OP_NAMES.filter((op) => !dev.supportsOp(op));
    assert.equal(missing, [], `device ${dev.name} lacks kernels`);
    for (const op of OP_NAMES) {
      for (const c of built.get(op)!) compare(op, `${t.label} ${op}#${c.name}`, c.run(dev), c.run(ref), TOL);
    }
  });
}

test.after(async () => { for (const t of targets) await t.close?.(); });

test.run();
