/**
 * The spec suite: EVERY op of the contract (forward and backward kernels alike) on EVERY
 * registered device, against the reference device cpu-ts, on random odd shapes (batch 3,
 * 5x7 images, 3 channels, ...), float32, with a tolerance per op (normalized error
 * |a - b| / |b|). Inputs are drawn away from kinks: ReLU inputs away from 0, max-pool
 * inputs distinct (no ties), accuracy scores distinct.
 *
 * A device that cannot initialize is reported with its reason (not silently skipped); a
 * device that initializes must support every op.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/index.js';
import { deviceReport, getDevice, registeredDevices, type Device } from '../lib/device/registry.js';
import { OP_NAMES, type OpName } from '../lib/ops/contract.js';
import { Rng } from '../lib/rng/philox.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { awayFromZero, distinctTensor, randTensor } from './helpers/random.js';

type Out = Tensor | Int32Array | number | Record<string, Tensor | Int32Array>;
interface Case { name: string; run(d: Device): Out }

const rng = new Rng(5_2026_11);
const f32 = (shape: number[], lo = -1, hi = 1): Tensor => randTensor(rng, shape, 'float32', lo, hi);
const ref = getDevice('cpu-ts');

/** Normalized error tolerance per op (float32 outputs; the reference accumulates in float64). */
const TOL: Record<OpName, number> = {
  conv2d: 2e-6, conv2dBackwardInput: 2e-6, conv2dBackwardWeight: 2e-6,
  batchnorm2dTrain: 2e-6, batchnorm2dEval: 1e-6, batchnorm2dBackward: 5e-6,
  relu: 0, reluBackward: 0, maxpool2d: 0, maxpool2dBackward: 0,
  prototypes: 1e-6, prototypesBackward: 1e-6, sqEuclidean: 1e-6, sqEuclideanBackward: 1e-6,
  cosine: 1e-6, cosineBackward: 2e-6, scale: 1e-7, logSoftmax: 1e-6, logSoftmaxBackward: 1e-6,
  crossEntropy: 1e-6, crossEntropyBackward: 0, accuracy: 0,
  rotate: 1e-6, rotateBackward: 2e-6,
};

const conv = [
  // [n, cin, h, w, cout, k, stride, padding]
  [3, 3, 5, 7, 4, 3, 1, 1], [3, 1, 7, 5, 5, 3, 1, 1], [2, 3, 9, 6, 5, 3, 2, 1], [3, 4, 5, 7, 3, 2, 1, 0], [1, 17, 5, 7, 33, 3, 1, 1],
] as const;

function cases(op: OpName): Case[] {
  switch (op) {
    case 'conv2d': return conv.map(([n, ci, h, w, co, k, s, p], i) => {
      const x = f32([n, ci, h, w]), wt = f32([co, ci, k, k]), b = f32([co]);
      return { name: `${i}`, run: (d) => d.run('conv2d', i % 2 ? { x, w: wt } : { x, w: wt, b }, { stride: s, padding: p }) };
    });
    case 'conv2dBackwardInput': return conv.map(([n, ci, h, w, co, k, s, p], i) => {
      const wt = f32([co, ci, k, k]);
      const oh = Math.floor((h + 2 * p - k) / s) + 1, ow = Math.floor((w + 2 * p - k) / s) + 1;
      const dy = f32([n, co, oh, ow]);
      return { name: `${i}`, run: (d) => d.run('conv2dBackwardInput', { dy, w: wt }, { stride: s, padding: p, inputShape: [n, ci, h, w] }) };
    });
    case 'conv2dBackwardWeight': return conv.map(([n, ci, h, w, co, k, s, p], i) => {
      const x = f32([n, ci, h, w]);
      const oh = Math.floor((h + 2 * p - k) / s) + 1, ow = Math.floor((w + 2 * p - k) / s) + 1;
      const dy = f32([n, co, oh, ow]);
      return { name: `${i}`, run: (d) => d.run('conv2dBackwardWeight', { dy, x }, { stride: s, padding: p, weightShape: [co, ci, k, k] }) };
    });
    case 'batchnorm2dTrain': return [[3, 3, 5, 7], [5, 2, 3, 3]].map((sh, i) => {
      const x = f32(sh, -2, 3), gamma = f32([sh[1]!], 0.5, 1.5), beta = f32([sh[1]!]);
      return { name: `${i}`, run: (d) => d.run('batchnorm2dTrain', { x, gamma, beta }, { eps: 1e-5 }) };
    });
    case 'batchnorm2dEval': return [[3, 3, 5, 7]].map((sh, i) => {
      const c = sh[1]!;
      const x = f32(sh), gamma = f32([c]), beta = f32([c]), runningMean = f32([c]), runningVar = f32([c], 0.5, 2);
      return { name: `${i}`, run: (d) => d.run('batchnorm2dEval', { x, gamma, beta, runningMean, runningVar }, { eps: 1e-5 }) };
    });
    case 'batchnorm2dBackward': return [[3, 3, 5, 7], [5, 2, 3, 3]].map((sh, i) => {
      const x = f32(sh, -2, 3), gamma = f32([sh[1]!], 0.5, 1.5), beta = f32([sh[1]!]), dy = f32(sh);
      const fwd = ref.run('batchnorm2dTrain', { x, gamma, beta }, { eps: 1e-5 });
      return { name: `${i}`, run: (d) => d.run('batchnorm2dBackward', { dy, x, gamma, mean: fwd.mean, invStd: fwd.invStd }, {}) };
    });
    case 'relu': {
      const x = awayFromZero(rng, [3, 3, 5, 7], 0.01, 'float32');
      return [{ name: '0', run: (d) => d.run('relu', { x }, {}) }];
    }
    case 'reluBackward': {
      const x = awayFromZero(rng, [3, 3, 5, 7], 0.01, 'float32'), dy = f32([3, 3, 5, 7]);
      return [{ name: '0', run: (d) => d.run('reluBackward', { dy, x }, {}) }];
    }
    case 'maxpool2d': return ([[[3, 3, 5, 7], 2, 2], [[2, 3, 7, 5], 3, 2], [[3, 1, 4, 4], 2, 1]] as const).map(([sh, k, s], i) => {
      const x = distinctTensor(rng, [...sh], 'float32');
      return { name: `${i}`, run: (d) => d.run('maxpool2d', { x }, { kernel: k, stride: s }) };
    });
    case 'maxpool2dBackward': return ([[[3, 3, 5, 7], 2, 2], [[2, 3, 7, 5], 3, 2], [[3, 1, 4, 4], 2, 1]] as const).map(([sh, k, s], i) => {
      const x = distinctTensor(rng, [...sh], 'float32');
      const fwd = ref.run('maxpool2d', { x }, { kernel: k, stride: s });
      const dy = f32([...fwd.y.shape]);
      return { name: `${i}`, run: (d) => d.run('maxpool2dBackward', { dy, argmax: fwd.argmax }, { inputShape: [...sh] }) };
    });
    case 'prototypes': {
      const support = f32([7, 5]), labels = Int32Array.from([0, 1, 2, 0, 1, 2, 1]);
      return [{ name: '0', run: (d) => d.run('prototypes', { support, labels }, { way: 3 }) }];
    }
    case 'prototypesBackward': {
      const dproto = f32([3, 5]), labels = Int32Array.from([2, 1, 0, 0, 1, 2, 1]);
      return [{ name: '0', run: (d) => d.run('prototypesBackward', { dproto, labels }, { way: 3 }) }];
    }
    case 'sqEuclidean': {
      const q = f32([5, 7]), p = f32([3, 7]);
      return [{ name: '0', run: (d) => d.run('sqEuclidean', { q, p }, {}) }];
    }
    case 'sqEuclideanBackward': {
      const q = f32([5, 7]), p = f32([3, 7]), dd = f32([5, 3]);
      return [{ name: '0', run: (d) => d.run('sqEuclideanBackward', { dd, q, p }, {}) }];
    }
    case 'cosine': {
      const q = f32([5, 7]), p = f32([3, 7]);
      p.data.fill(0, 7, 14); // a zero row: its norm is clamped at eps
      return [{ name: '0', run: (d) => d.run('cosine', { q, p }, { eps: 1e-8 }) }];
    }
    case 'cosineBackward': {
      const q = f32([5, 7]), p = f32([3, 7]), dc = f32([5, 3]);
      return [{ name: '0', run: (d) => d.run('cosineBackward', { dc, q, p }, { eps: 1e-8 }) }];
    }
    case 'scale': {
      const x = f32([3, 5, 7]);
      return [{ name: '0', run: (d) => d.run('scale', { x }, { alpha: -1.5 }) }];
    }
    case 'logSoftmax': {
      const x = f32([5, 7], -4, 4);
      return [{ name: '0', run: (d) => d.run('logSoftmax', { x }, {}) }];
    }
    case 'logSoftmaxBackward': {
      const y = ref.run('logSoftmax', { x: f32([5, 7], -4, 4) }, {}), dy = f32([5, 7]);
      return [{ name: '0', run: (d) => d.run('logSoftmaxBackward', { dy, y }, {}) }];
    }
    case 'crossEntropy': {
      const logp = ref.run('logSoftmax', { x: f32([5, 7], -4, 4) }, {}), labels = Int32Array.from([0, 6, 3, 3, 1]);
      return [{ name: '0', run: (d) => d.run('crossEntropy', { logp, labels }, {}) }];
    }
    case 'crossEntropyBackward': {
      const logp = ref.run('logSoftmax', { x: f32([5, 7], -4, 4) }, {}), labels = Int32Array.from([0, 6, 3, 3, 1]);
      return [{ name: '0', run: (d) => d.run('crossEntropyBackward', { dloss: 0.75, logp, labels }, {}) }];
    }
    // Odd and non-square images; at these angles every sample coordinate is at least 0.004 from an
    // integer (the derivative's kinks) except the centre pixel's, which does not move with the angle.
    case 'rotate': return ([[[3, 2, 7, 5], 0.4137], [[2, 1, 6, 6], -1.2291], [[1, 3, 9, 4], 2.9013]] as const).map(([sh, a], i) => {
      const x = f32([...sh]), angle = Tensor.from([a], [1], 'float32');
      return { name: `${i}`, run: (d) => d.run('rotate', { x, angle }, {}) };
    });
    case 'rotateBackward': return ([[[3, 2, 7, 5], 0.4137], [[2, 1, 6, 6], -1.2291], [[1, 3, 9, 4], 2.9013]] as const).map(([sh, a], i) => {
      const x = f32([...sh]), dy = f32([...sh]), angle = Tensor.from([a], [1], 'float32');
      return { name: `${i}`, run: (d) => d.run('rotateBackward', { dy, x, angle }, {}) };
    });
    case 'accuracy': {
      const scores = distinctTensor(rng, [9, 4], 'float32'), labels = Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3, 0]);
      return [{ name: '0', run: (d) => d.run('accuracy', { scores, labels }, {}) }];
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

function compare(op: OpName, what: string, got: Out, want: Out): void {
  if (typeof want === 'number') {
    assert.type(got, 'number', `${what}: expected a number`);
    const e = Math.abs((got as number) - want) / Math.max(Math.abs(want), 1e-30);
    assert.ok(e <= TOL[op], `${what}: ${got} vs ${want} (normalized error ${e} > ${TOL[op]})`);
  } else if (want instanceof Int32Array) {
    assert.ok(got instanceof Int32Array, `${what}: expected an Int32Array`);
    assert.equal([...(got as Int32Array)], [...want], `${what}: indices differ`);
  } else if (want instanceof Tensor) {
    assert.ok(got instanceof Tensor, `${what}: expected a Tensor`);
    const g = got as Tensor;
    assert.equal(g.shape, want.shape, `${what}: shape`);
    assert.is(g.dtype, want.dtype, `${what}: dtype`);
    const e = normErr(g.data, want.data);
    assert.ok(e <= TOL[op], `${what}: normalized error ${e.toExponential(3)} > ${TOL[op]}`);
  } else {
    const w = want as Record<string, Tensor | Int32Array>, g = got as Record<string, Tensor | Int32Array>;
    assert.equal(Object.keys(g).sort(), Object.keys(w).sort(), `${what}: output fields`);
    for (const k of Object.keys(w)) compare(op, `${what}.${k}`, g[k]!, w[k]!);
  }
}

const built = new Map(OP_NAMES.map((op) => [op, cases(op)] as const));

test('the spec covers every op of the contract', () => {
  for (const op of OP_NAMES) assert.ok((built.get(op)?.length ?? 0) > 0, `no spec case for ${op}`);
  assert.equal(Object.keys(TOL).sort(), [...OP_NAMES].sort());
});

for (const name of registeredDevices()) {
  test(`spec: device ${name}, every op forward and backward vs cpu-ts`, () => {
    const status = deviceReport().find((s) => s.name === name)!;
    if (status.available !== true) {
      console.log(`  [spec] device ${name} unavailable, not tested: ${status.reason}`);
      return;
    }
    const dev = getDevice(name);
    const missing = OP_NAMES.filter((op) => !dev.supportsOp(op));
    assert.equal(missing, [], `device ${name} lacks kernels`);
    for (const op of OP_NAMES) {
      for (const c of built.get(op)!) compare(op, `${name} ${op}#${c.name}`, c.run(dev), c.run(ref));
    }
  });
}

test.run();
