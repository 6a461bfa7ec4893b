/** Forward mode: every op's JVP against central finite differences (float64), the one-hot conv path, the ProtoNet forward-mode meta-gradient. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { DirectOps, type TensorOps } from '../lib/ops/api.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { Rng } from '../lib/rng/philox.js';
import { DualOps, basisLeaf, type Dual } from '../lib/forward/dual.js';
import { allocJacobian, columnChunks, forwardJacobian } from '../lib/forward/jacobian.js';
import { protoNetForwardGradient } from '../lib/forward/protonet.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { concatImages, embed, episodeLoss, type LossOptions } from '../lib/model/protonet.js';
import { syntheticEpisode } from '../lib/memory/episodes.js';
import { episodeGradient } from '../lib/autodiff/protonet.js';
import { awayFromZero, centralDiff, distinctTensor, maxAbsErr, randTensor, relErr } from './helpers/random.js';

const dev = getDevice('cpu-ts');
const direct = new DirectOps(dev);

/**
 * JVP of f at `inputs` along K = 2 random directions (null entries: no tangent)
 * against central differences; returns the worst error relative to max(1, |ref|).
 */
function jvpError(f: <V>(ops: TensorOps<V>, xs: V[]) => V, inputs: Tensor[], withTangent: boolean[], seed: number, h = 1e-6): number {
  const rng = new Rng(seed);
  const k = 2;
  const dirs = inputs.map((x, i) => (withTangent[i] ? randTensor(rng, [k, ...x.shape]) : null));
  const ops = new DualOps(dev, k);
  const out = f(ops, inputs.map((x, i) => ops.dual(x, dirs[i]!)));
  let worst = 0;
  for (let kk = 0; kk < k; kk++) {
    const shifted = (sign: number): Tensor => f(direct, inputs.map((x, i) => {
      const dd = dirs[i];
      if (!dd) return x;
      const y = x.clone();
      for (let j = 0; j < y.size; j++) y.data[j] += sign * h * dd.data[kk * x.size + j]!;
      return y;
    }));
    const p = shifted(1), m = shifted(-1);
    const tan = out.t ? out.t.data.subarray(kk * out.v.size, (kk + 1) * out.v.size) : new Float64Array(out.v.size);
    for (let j = 0; j < p.size; j++) {
      const ref = (p.data[j]! - m.data[j]!) / (2 * h);
      worst = Math.max(worst, Math.abs(tan[j]! - ref) / Math.max(1, Math.abs(ref)));
    }
  }
  return worst;
}

const TOL = 1e-6;

test('conv2d JVP (x, w, b tangents; padding and stride) matches finite differences', () => {
  const rng = new Rng(1);
  for (const [attrs, shape] of [[{ stride: 1, padding: 1 }, [2, 3, 7, 5]], [{ stride: 2, padding: 0 }, [3, 2, 9, 8]]] as const) {
    const x = randTensor(rng, [...shape]), w = randTensor(rng, [4, shape[1], 3, 3]), b = randTensor(rng, [4]);
    for (const mask of [[true, false, false], [false, true, false], [false, false, true], [true, true, true]]) {
      const err = jvpError((ops, [a, c, d]) => ops.conv2d(a!, c!, d!, attrs), [x, w, b], mask, 2);
      assert.ok(err < TOL, `conv2d ${JSON.stringify(attrs)} mask ${mask}: ${err}`);
    }
  }
});

test('conv2d JVP: one-hot weight tangents (the direct path) equal the generic conv path', () => {
  const rng = new Rng(3);
  const x = randTensor(rng, [2, 3, 6, 7]), w = randTensor(rng, [4, 3, 3, 3]);
  for (const attrs of [{ stride: 1, padding: 1 }, { stride: 2, padding: 1 }, { stride: 1, padding: 0 }]) {
    for (const at of [0, 13, 4 * 3 * 9 - 1, 50]) {
      const oneHot = Tensor.zeros([1, 4, 3, 3, 3], 'float64');
      oneHot.data[at] = 0.7;
      const ops = new DualOps(dev, 1);
      const fast = ops.conv2d(ops.constant(x), ops.dual(w, oneHot), undefined, attrs).t!;
      const ref = dev.run('conv2d', { x, w: new Tensor(oneHot.data, w.shape) }, attrs);
      assert.ok(maxAbsErr(fast.data, ref.data) < 1e-14, `one-hot ${at} ${JSON.stringify(attrs)}`);
    }
  }
});

test('batchnorm JVPs (train: through the batch statistics; eval) match finite differences', () => {
  const rng = new Rng(4);
  const x = randTensor(rng, [3, 4, 5, 3]), g = randTensor(rng, [4], 'float64', 0.5, 1.5), b = randTensor(rng, [4]);
  const rm = randTensor(rng, [4]), rv = randTensor(rng, [4], 'float64', 0.5, 2);
  for (const mask of [[true, false, false], [false, true, true], [true, true, true]]) {
    const e1 = jvpError((ops, [a, c, d]) => ops.batchnorm2dTrain(a!, c!, d!, 1e-5).y, [x, g, b], mask, 5);
    const e2 = jvpError((ops, [a, c, d]) => ops.batchnorm2dEval(a!, c!, d!, rm, rv, 1e-5), [x, g, b], mask, 6);
    assert.ok(e1 < TOL, `bn train ${mask}: ${e1}`);
    assert.ok(e2 < TOL, `bn eval ${mask}: ${e2}`);
  }
});

test('relu, maxpool (away from kinks and ties), reshape, sliceRows JVPs match finite differences', () => {
  const rng = new Rng(7);
  assert.ok(jvpError((ops, [a]) => ops.relu(a!), [awayFromZero(rng, [2, 3, 4, 5])], [true], 8) < TOL);
  assert.ok(jvpError((ops, [a]) => ops.maxpool2d(a!, { kernel: 2, stride: 2 }), [distinctTensor(rng, [2, 3, 7, 6])], [true], 9) < TOL);
  assert.ok(jvpError((ops, [a]) => ops.sliceRows(ops.reshape(a!, [6, 20]), 2, 5), [randTensor(rng, [2, 3, 4, 5])], [true], 10) < TOL);
});

test('prototypes, sqEuclidean, cosine, scale, logSoftmax, crossEntropy JVPs match finite differences', () => {
  const rng = new Rng(11);
  const labels = Int32Array.from([0, 2, 1, 2, 0, 1, 1]);
  assert.ok(jvpError((ops, [a]) => ops.prototypes(a!, labels, 3), [randTensor(rng, [7, 5])], [true], 12) < TOL);
  const q = randTensor(rng, [6, 5]), p = randTensor(rng, [3, 5]);
  for (const mask of [[true, false], [false, true], [true, true]]) {
    assert.ok(jvpError((ops, [a, c]) => ops.sqEuclidean(a!, c!), [q, p], mask, 13) < TOL, `sqEuclidean ${mask}`);
    assert.ok(jvpError((ops, [a, c]) => ops.cosine(a!, c!, 1e-8), [q, p], mask, 14) < TOL, `cosine ${mask}`);
  }
  const x = randTensor(rng, [6, 4], 'float64', -3, 3);
  const y = Int32Array.from([0, 3, 1, 2, 2, 0]);
  assert.ok(jvpError((ops, [a]) => ops.scale(a!, -1.7), [x], [true], 15) < TOL);
  assert.ok(jvpError((ops, [a]) => ops.logSoftmax(a!), [x], [true], 16) < TOL);
  assert.ok(jvpError((ops, [a]) => ops.crossEntropy(ops.logSoftmax(a!), y), [x], [true], 17) < TOL);
});

test('the FD harness catches a wrong JVP (relu tangent scaled by 1.01)', () => {
  class WrongRelu extends DualOps {
    override relu(x: Dual): Dual {
      const r = super.relu(x);
      if (r.t) for (let i = 0; i < r.t.size; i++) r.t.data[i] *= 1.01;
      return r;
    }
  }
  const x = awayFromZero(new Rng(18), [2, 3, 4]);
  const ops = new WrongRelu(dev, 1);
  const dir = Tensor.from(Array.from({ length: x.size }, () => 1), [1, ...x.shape], 'float64');
  const got = ops.relu(ops.dual(x, dir)).t!;
  const h = 1e-6;
  let worst = 0;
  const p = x.clone(), m = x.clone();
  for (let j = 0; j < x.size; j++) { p.data[j] += h; m.data[j] -= h; }
  const rp = direct.relu(p), rm = direct.relu(m);
  for (let j = 0; j < x.size; j++) worst = Math.max(worst, Math.abs(got.data[j]! - (rp.data[j]! - rm.data[j]!) / (2 * h)));
  assert.ok(worst > 100 * TOL, `a 1% error must exceed the tolerance, got ${worst}`);
});

// A small ProtoNet: 3 blocks on 12 x 12 images (12 -> 6 -> 3 -> 1), so E = channels.
function small(blocks: number, channels: number, imageSize: number): { layout: ProtoNetLayout; params: Float64Array } {
  const layout = new ProtoNetLayout({ channels, imageSize, blocks });
  const params = Float64Array.from(initParams(layout, 21));
  // Nonzero BN shifts/scales so every parameter's column is exercised away from the init's symmetries.
  const rng = new Rng(22);
  for (const e of layout.params) if (/\.1\.(weight|bias)$/.test(e.name)) for (let i = 0; i < e.size; i++) params[e.offset + i] += 0.2 * (rng.uniform() - 0.5);
  return { layout, params };
}

test('forward accumulation: the prototype Jacobian matches finite differences, column by column', () => {
  const { layout, params } = small(3, 3, 12);
  const ep = syntheticEpisode({ way: 3, shot: 2, query: 2, imageSize: 12 }, 5, 0, 'float64');
  const bn = initialBnState(layout);
  const ns = ep.support.shape[0]!;
  const images = concatImages(ep.support, ep.query);
  const f = <V>(ops: TensorOps<V>, p: Float64Array, leaf?: (n: string, t: Tensor) => V): V =>
    ops.prototypes(ops.sliceRows(embed(ops, layout, p, bn, images, { bn: 'batch' }, leaf), 0, ns), ep.supportLabels, ep.way);
  const rows = ep.way * layout.embeddingSize;
  const jac = allocJacobian(rows, layout.numParams, 'float64');
  forwardJacobian(dev, layout.params, jac, (ops, leaf) => f(ops, params, leaf), { chunk: 7 });
  const h = 1e-6;
  let worst = 0;
  for (const c of [0, 5, 40, layout.numParams - 1, Math.floor(layout.numParams / 2)]) {
    const p = params.slice(), m = params.slice();
    p[c] += h;
    m[c] -= h;
    const fp = f(direct, p).data, fm = f(direct, m).data;
    const col = Array.from({ length: rows }, (_, r) => (fp[r]! - fm[r]!) / (2 * h));
    worst = Math.max(worst, relErr(jac.data.subarray(c * rows, (c + 1) * rows), col));
  }
  assert.ok(worst < 1e-6, `Jacobian columns vs FD: ${worst}`);
  assert.equal(columnChunks(10, 4), [[0, 4], [4, 8], [8, 10]]);
  assert.equal(columnChunks(10, 4, [[2, 3], [5, 10]]), [[2, 3], [5, 9], [9, 10]]);
  assert.throws(() => columnChunks(10, 4, [[5, 11]]), /outside/);
});

for (const [name, opts] of [
  ['euclidean, batch-norm batch statistics', { bn: 'batch', distance: 'euclidean' }],
  ['cosine, batch-norm running statistics', { bn: 'running', distance: 'cosine', cosineScale: 3 }],
] as [string, LossOptions][]) {
  test(`ProtoNet forward-mode meta-gradient (J^T dL/dpsi + direct) equals finite differences: ${name}`, () => {
    const { layout, params } = small(3, 3, 12);
    const ep = syntheticEpisode({ way: 3, shot: 2, query: 3, imageSize: 12 }, 9, 0, 'float64');
    const bn = initialBnState(layout);
    if (opts.bn === 'running') for (let i = 0; i < bn.buffers.length; i++) bn.buffers[i] += 0.1 * Math.sin(i);
    const r = protoNetForwardGradient(dev, layout, params, bn, ep, { ...opts, chunk: 5 });
    const loss = (p: Float64Array): number => episodeLoss(direct, layout, p, bn, ep, opts).loss.data[0]!;
    assert.ok(Math.abs(r.loss - loss(params)) < 1e-12);
    assert.ok(r.complete);
    assert.is(r.columns, layout.numParams);
    const fd = centralDiff(params, loss);
    const err = relErr(r.grad, fd);
    assert.ok(err < 1e-6, `forward-mode gradient vs FD: ${err}`);
    // The state path matters: without J^T dL/dpsi the gradient is wrong.
    assert.ok(relErr(r.direct, fd) > 1e-2, 'the direct term alone must not match');
    // Exact bytes: J is D_psi x D_phi float64; three float64 vectors.
    const dPsi = ep.way * layout.embeddingSize;
    assert.is(r.bytes.jacobian, dPsi * layout.numParams * 8);
    assert.is(r.bytes.vectors, (2 * layout.numParams + dPsi) * 8);
  });
}

test('ProtoNet forward-mode meta-gradient equals the reverse-mode (tape) gradient, float64 and float32', () => {
  const { layout, params } = small(3, 4, 12);
  const bn = initialBnState(layout);
  for (const distance of ['euclidean', 'cosine'] as const) {
    const ep = syntheticEpisode({ way: 4, shot: 2, query: 2, imageSize: 12 }, 13, 0, 'float64');
    const fm = protoNetForwardGradient(dev, layout, params, bn, ep, { bn: 'batch', distance, chunk: 8 });
    const rev = episodeGradient(dev, layout, params, bn, ep, { bn: 'batch', distance });
    assert.ok(Math.abs(fm.loss - rev.loss) < 1e-13);
    assert.ok(relErr(fm.grad, rev.grad) < 1e-10, `${distance} float64: ${relErr(fm.grad, rev.grad)}`);
    const p32 = Float32Array.from(params), ep32 = syntheticEpisode({ way: 4, shot: 2, query: 2, imageSize: 12 }, 13);
    const fm32 = protoNetForwardGradient(dev, layout, p32, bn, ep32, { bn: 'batch', distance, chunk: 8 });
    const rev32 = episodeGradient(dev, layout, p32, bn, ep32, { bn: 'batch', distance });
    assert.is(fm32.bytes.jacobian, 4 * 4 * layout.embeddingSize * layout.numParams);
    assert.ok(relErr(fm32.grad, rev32.grad) < 1e-4, `${distance} float32: ${relErr(fm32.grad, rev32.grad)}`);
  }
});

test('ProtoNet forward-mode gradient: chunk size does not change the result; column ranges compute only those columns', () => {
  const { layout, params } = small(3, 2, 12);
  const ep = syntheticEpisode({ way: 2, shot: 2, query: 2, imageSize: 12 }, 3, 0, 'float64');
  const bn = initialBnState(layout);
  const a = protoNetForwardGradient(dev, layout, params, bn, ep, { bn: 'batch', chunk: 1 });
  const b = protoNetForwardGradient(dev, layout, params, bn, ep, { bn: 'batch', chunk: 16 });
  assert.ok(maxAbsErr(a.grad, b.grad) < 1e-12);
  const c = protoNetForwardGradient(dev, layout, params, bn, ep, { bn: 'batch', chunk: 4, ranges: [[3, 9]] });
  assert.is(c.columns, 6);
  assert.not.ok(c.complete);
  const rows = ep.way * layout.embeddingSize;
  assert.ok(maxAbsErr(c.jacobian.data.subarray(3 * rows, 9 * rows), a.jacobian.data.subarray(3 * rows, 9 * rows)) < 1e-14);
  assert.ok(c.jacobian.data.subarray(0, 3 * rows).every((v) => v === 0));
});

test('basisLeaf: one-hot tangents inside a parameter, symbolic zero elsewhere', () => {
  const entries = [{ name: 'a', offset: 0, size: 4, shape: [4] }, { name: 'b', offset: 4, size: 6, shape: [2, 3] }];
  const leaf = basisLeaf(entries, 3, 3);
  const a = leaf('a', Tensor.zeros([4], 'float64')), b = leaf('b', Tensor.zeros([2, 3], 'float64'));
  assert.equal([...a.t!.data], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(b.t!.shape, [3, 2, 3]);
  assert.equal([...b.t!.data], [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
  assert.is(basisLeaf(entries, 0, 2)('b', Tensor.zeros([2, 3])).t, null);
  assert.throws(() => leaf('c', Tensor.zeros([1])), /no parameter named c/);
});

test.run();
