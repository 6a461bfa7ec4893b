/**
 * Every op's StableHLO lowering, compiled and run by XLA's CPU compiler
 * (jaxlib, through tools/xla_runner.py), against the cpu-ts reference kernel,
 * forward and backward, float64 and float32, on odd shapes. Skips with the
 * reason when python/jax is unavailable.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import '../lib/device/xla/lower/index.js';
import { getDevice } from '../lib/device/registry.js';
import { lowerOp, loweredOps } from '../lib/device/xla/lowering.js';
import { JaxRunner } from '../lib/device/xla/jax-runner.js';
import type { OpAttrs, OpInputs, OpName } from '../lib/ops/contract.js';
import { OP_NAMES } from '../lib/ops/contract.js';
import { Rng } from '../lib/rng/philox.js';
import { Tensor, type DType } from '../lib/tensor/tensor.js';
import { awayFromZero, distinctTensor, maxRelErr, randTensor } from './helpers/random.js';
import { jax, needs } from './helpers/peers.js';

const cpu = getDevice('cpu-ts');
/** Tests that run programs need python + jax/jaxlib: skipped (counted, reason printed once) without them. */
const withJax = needs(await jax(), 'xla-ops.test: XLA CPU compiler (jaxlib)');
const rng = new Rng(7001);
let runner: JaxRunner | undefined;

async function onXla<K extends OpName>(op: K, inputs: OpInputs<K>, attrs: OpAttrs<K>): Promise<unknown> {
  runner ??= JaxRunner.start({ hostDevices: 1 });
  const l = lowerOp(op, inputs, attrs);
  const outs = await runner.run(l.program, [l.args]);
  return l.unpack(outs[0]!);
}

function close(what: string, got: unknown, want: unknown, tol: number): void {
  if (want instanceof Tensor) {
    assert.ok(got instanceof Tensor, `${what}: expected a Tensor`);
    const g = got as Tensor;
    assert.equal(g.shape, want.shape, `${what}: shape`);
    assert.is(g.dtype, want.dtype, `${what}: dtype`);
    const err = maxRelErr(g.data, want.data, 1e-3);
    assert.ok(err <= tol, `${what}: max rel err ${err} > ${tol}`);
  } else if (want instanceof Int32Array) {
    assert.equal(Array.from(got as Int32Array), Array.from(want), `${what}: indices`);
  } else if (typeof want === 'number') {
    assert.ok(Math.abs((got as number) - want) <= tol, `${what}: ${got} vs ${want}`);
  } else {
    for (const [k, v] of Object.entries(want as Record<string, unknown>)) close(`${what}.${k}`, (got as Record<string, unknown>)[k], v, tol);
  }
}

async function check<K extends OpName>(op: K, inputs: OpInputs<K>, attrs: OpAttrs<K>, tol: number): Promise<void> {
  const want = cpu.run(op, inputs, attrs);
  const got = await onXla(op, inputs, attrs);
  close(op, got, want, tol);
}

function labels(n: number, way: number): Int32Array {
  const l = new Int32Array(n);
  for (let i = 0; i < n; i++) l[i] = i < way ? i : rng.int(way);
  rng.shuffle(l);
  return l;
}

test('every op of the contract has a lowering', () => {
  assert.equal([...loweredOps()].sort(), [...OP_NAMES].sort());
});

for (const dtype of ['float64', 'float32'] as DType[]) {
  const tol = dtype === 'float64' ? 1e-9 : 3e-5;
  const r = (shape: number[], lo = -1, hi = 1): Tensor => randTensor(rng, shape, dtype, lo, hi);

  withJax(`conv2d ${dtype}: forward and both backwards, odd shapes, strides, paddings`, async () => {
    for (const [n, cin, h, w, cout, k, s, p] of [[2, 3, 7, 5, 4, 3, 1, 1], [1, 2, 9, 8, 3, 3, 2, 0], [3, 1, 6, 6, 2, 2, 2, 1], [2, 4, 5, 7, 5, 1, 1, 0]] as const) {
      const x = r([n, cin, h, w]), wt = r([cout, cin, k, k]), b = r([cout]);
      const attrs = { stride: s, padding: p };
      await check('conv2d', { x, w: wt, b }, attrs, tol);
      await check('conv2d', { x, w: wt }, attrs, tol);
      const y = cpu.run('conv2d', { x, w: wt }, attrs);
      const dy = r([...y.shape]);
      await check('conv2dBackwardInput', { dy, w: wt }, { ...attrs, inputShape: x.shape }, tol);
      await check('conv2dBackwardWeight', { dy, x }, { ...attrs, weightShape: wt.shape }, tol);
    }
  });

  withJax(`batchnorm2d ${dtype}: train, eval, backward`, async () => {
    const x = r([3, 5, 4, 3], -2, 3), gamma = r([5], 0.5, 1.5), beta = r([5]);
    await check('batchnorm2dTrain', { x, gamma, beta }, { eps: 1e-5 }, tol);
    await check('batchnorm2dEval', { x, gamma, beta, runningMean: r([5]), runningVar: r([5], 0.5, 2) }, { eps: 1e-5 }, tol);
    const st = cpu.run('batchnorm2dTrain', { x, gamma, beta }, { eps: 1e-5 });
    await check('batchnorm2dBackward', { dy: r([3, 5, 4, 3]), x, gamma, mean: st.mean, invStd: st.invStd }, {}, tol * 10);
  });

  withJax(`relu and maxpool2d ${dtype}: forward, argmax, backward`, async () => {
    const x = awayFromZero(rng, [2, 3, 5, 7], 0.05, dtype);
    await check('relu', { x }, {}, tol);
    await check('reluBackward', { dy: r([2, 3, 5, 7]), x }, {}, tol);
    for (const [k, s] of [[2, 2], [3, 2], [2, 1]] as const) {
      const xp = distinctTensor(rng, [2, 3, 7, 6], dtype);
      await check('maxpool2d', { x: xp }, { kernel: k, stride: s }, tol);
      const { y, argmax } = cpu.run('maxpool2d', { x: xp }, { kernel: k, stride: s });
      await check('maxpool2dBackward', { dy: r([...y.shape]), argmax }, { inputShape: xp.shape }, tol);
    }
    // Ties: the first maximum in window order wins, as in the reference.
    const tie = new Tensor(dtype === 'float64' ? new Float64Array(16).fill(1) : new Float32Array(16).fill(1), [1, 1, 4, 4]);
    await check('maxpool2d', { x: tie }, { kernel: 2, stride: 2 }, 0);
  });

  withJax(`prototypes, distances ${dtype}: forward and backward`, async () => {
    const way = 4, sl = labels(11, way), e = 6;
    const support = r([11, e]);
    await check('prototypes', { support, labels: sl }, { way }, tol);
    await check('prototypesBackward', { dproto: r([way, e]), labels: sl }, { way }, tol);
    const q = r([7, e]), p = r([way, e]);
    await check('sqEuclidean', { q, p }, {}, tol);
    await check('sqEuclideanBackward', { dd: r([7, way]), q, p }, {}, tol);
    await check('cosine', { q, p }, { eps: 1e-8 }, tol);
    await check('cosineBackward', { dc: r([7, way]), q, p }, { eps: 1e-8 }, tol);
    // A clamped norm (a zero query row) contributes no gradient through the norm.
    const qz = q.clone();
    qz.data.fill(0, 0, e);
    await check('cosineBackward', { dc: r([7, way]), q: qz, p }, { eps: 1e-8 }, tol);
  });

  withJax(`scale, logSoftmax, crossEntropy, accuracy ${dtype}`, async () => {
    const x = r([6, 5], -3, 3), lab = labels(6, 5);
    await check('scale', { x }, { alpha: -1.5 }, tol);
    await check('logSoftmax', { x }, {}, tol);
    const y = cpu.run('logSoftmax', { x }, {});
    await check('logSoftmaxBackward', { dy: r([6, 5]), y }, {}, tol);
    await check('crossEntropy', { logp: y, labels: lab }, {}, tol);
    await check('crossEntropyBackward', { dloss: 0.7, logp: y, labels: lab }, {}, tol);
    await check('accuracy', { scores: x, labels: lab }, {}, 1e-12);
    const ties = new Tensor(dtype === 'float64' ? Float64Array.of(1, 1, 0, 2, 2, 2) : Float32Array.of(1, 1, 0, 2, 2, 2), [2, 3]);
    await check('accuracy', { scores: ties, labels: Int32Array.of(1, 0) }, {}, 0);
  });
}

test('invalid inputs are refused before any program runs, naming the field', () => {
  const x = randTensor(rng, [3, 4], 'float32');
  assert.throws(() => lowerOp('crossEntropy', { logp: x, labels: Int32Array.of(0, 4, 1) }, {}), /crossEntropy: label 4 outside \[0, 4\)/);
  assert.throws(() => lowerOp('prototypes', { support: x, labels: Int32Array.of(0, 0, 2) }, { way: 3 }), /class 1 has no support example/);
  assert.throws(() => lowerOp('conv2d', { x: randTensor(rng, [1, 2, 5, 5], 'float32'), w: randTensor(rng, [3, 4, 3, 3], 'float32') }, { stride: 1, padding: 1 }), /input has 2 channels but weight expects 4/);
  assert.throws(() => lowerOp('maxpool2dBackward', { dy: randTensor(rng, [1, 1, 1, 1], 'float32'), argmax: Int32Array.of(9) }, { inputShape: [1, 1, 2, 2] }), /argmax index 9 outside input of 4 elements/);
});

test.after(async () => { await runner?.close(); });

test.run();
