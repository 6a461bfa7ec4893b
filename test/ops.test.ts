/**
 * The reference device's ops against independent float64 computations on odd shapes: our own
 * (test/helpers/ref64.ts) and mathjs, an oracle we did not write (test/helpers/mathjs-oracle.ts:
 * convolutions as matrix products, statistics, distances, 50-digit log-softmax). Every op, forward
 * and backward, is also checked against test/helpers/ref64-ops.ts in the spec suite.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { Rng } from '../lib/rng/philox.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { awayFromZero, distinctTensor, maxAbsErr, maxRelErr, randTensor, relErr } from './helpers/random.js';
import { bnTrainRef, conv2dRef, flat4, maxpoolRef, rows, to4 } from './helpers/ref64.js';
import * as mj from './helpers/mathjs-oracle.js';

const dev = getDevice('cpu-ts');
const rng = new Rng(20261122);

for (const dtype of ['float64', 'float32'] as const) {
  const tol = dtype === 'float64' ? 1e-12 : 2e-5;

  test(`conv2d ${dtype}: odd shapes, strides and paddings`, () => {
    for (const [n, cin, h, w, cout, k, s, p] of [[3, 3, 5, 7, 4, 3, 1, 1], [2, 1, 9, 6, 5, 3, 2, 1], [1, 2, 4, 4, 3, 2, 1, 0], [3, 4, 7, 5, 2, 3, 1, 2]] as const) {
      const x = randTensor(rng, [n, cin, h, w], dtype), wt = randTensor(rng, [cout, cin, k, k], dtype), b = randTensor(rng, [cout], dtype);
      const y = dev.run('conv2d', { x, w: wt, b }, { stride: s, padding: p });
      const ref = conv2dRef(to4(x.data, [n, cin, h, w]), to4(wt.data, [cout, cin, k, k]), [...b.data], s, p);
      assert.equal(y.shape, [n, cout, ref[0]![0]!.length, ref[0]![0]![0]!.length]);
      assert.ok(maxAbsErr(y.data, flat4(ref)) < tol * 10, `conv2d mismatch ${maxAbsErr(y.data, flat4(ref))}`);
      const yNoBias = dev.run('conv2d', { x, w: wt }, { stride: s, padding: p });
      const refNoBias = conv2dRef(to4(x.data, [n, cin, h, w]), to4(wt.data, [cout, cin, k, k]), null, s, p);
      assert.ok(maxAbsErr(yNoBias.data, flat4(refNoBias)) < tol * 10);
    }
  });

  test(`batchnorm2d ${dtype}: training mode matches batch statistics; eval mode uses running stats`, () => {
    const shape = [3, 3, 5, 7];
    const x = randTensor(rng, shape, dtype, -2, 3), g = randTensor(rng, [3], dtype, 0.5, 1.5), b = randTensor(rng, [3], dtype);
    const r = dev.run('batchnorm2dTrain', { x, gamma: g, beta: b }, { eps: 1e-5 });
    const ref = bnTrainRef(to4(x.data, shape), [...g.data], [...b.data], 1e-5);
    assert.ok(maxAbsErr(r.y.data, flat4(ref.y)) < tol * 10);
    assert.ok(maxAbsErr(r.mean.data, ref.mean) < tol);
    assert.ok(maxAbsErr(r.variance.data, ref.variance) < tol);
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(r.invStd.data[c]! - 1 / Math.sqrt(ref.variance[c]! + 1e-5)) < tol * 10);
    const rm = randTensor(rng, [3], dtype), rv = randTensor(rng, [3], dtype, 0.5, 2);
    const e = dev.run('batchnorm2dEval', { x, gamma: g, beta: b, runningMean: rm, runningVar: rv }, { eps: 1e-5 });
    const x4 = to4(x.data, shape);
    const expect = x4.map((img) => img.map((ch, c) => ch.map((row) => row.map((t) => g.data[c]! * (t - rm.data[c]!) / Math.sqrt(rv.data[c]! + 1e-5) + b.data[c]!))));
    assert.ok(maxAbsErr(e.data, flat4(expect)) < tol * 10);
  });

  test(`relu ${dtype}`, () => {
    const x = awayFromZero(rng, [3, 2, 5, 7], 0.01, dtype);
    const y = dev.run('relu', { x }, {});
    assert.equal([...y.data], [...x.data].map((v) => Math.max(0, v)));
  });

  test(`maxpool2d ${dtype}: 2x2 stride 2 floor mode on odd sizes, argmax points at the max`, () => {
    for (const shape of [[3, 2, 5, 7], [1, 3, 4, 4], [2, 1, 3, 9]]) {
      const x = distinctTensor(rng, shape, dtype);
      const r = dev.run('maxpool2d', { x }, { kernel: 2, stride: 2 });
      const ref = maxpoolRef(to4(x.data, shape), 2, 2);
      assert.equal([...r.y.data], flat4(ref));
      for (let i = 0; i < r.argmax.length; i++) assert.is(x.data[r.argmax[i]!], r.y.data[i]);
      assert.equal(r.y.shape, [shape[0], shape[1], Math.floor(shape[2]! / 2), Math.floor(shape[3]! / 2)]);
    }
  });

  test(`prototypes ${dtype}: class means with unordered labels`, () => {
    const e = 7, way = 3;
    const labels = Int32Array.from([2, 0, 1, 0, 2, 2, 1]);
    const s = randTensor(rng, [labels.length, e], dtype);
    const p = dev.run('prototypes', { support: s, labels }, { way });
    const sr = rows(s.data, labels.length, e);
    for (let c = 0; c < way; c++) {
      const members = sr.filter((_, i) => labels[i] === c);
      const mean = Array.from({ length: e }, (_, j) => members.reduce((a, r) => a + r[j]!, 0) / members.length);
      assert.ok(maxAbsErr(p.data.subarray(c * e, (c + 1) * e), mean) < tol);
    }
  });

  test(`sqEuclidean and cosine ${dtype}`, () => {
    const m = 5, k = 3, e = 11;
    const q = randTensor(rng, [m, e], dtype), p = randTensor(rng, [k, e], dtype);
    const d = dev.run('sqEuclidean', { q, p }, {});
    const c = dev.run('cosine', { q, p }, { eps: 1e-8 });
    const qr = rows(q.data, m, e), pr = rows(p.data, k, e);
    const dot = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + v * b[i]!, 0);
    for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) {
      const ref = qr[i]!.reduce((s, v, t) => s + (v - pr[j]![t]!) ** 2, 0);
      assert.ok(Math.abs(d.data[i * k + j]! - ref) < tol * 10 * Math.max(1, ref));
      const cref = dot(qr[i]!, pr[j]!) / Math.sqrt(dot(qr[i]!, qr[i]!) * dot(pr[j]!, pr[j]!));
      assert.ok(Math.abs(c.data[i * k + j]! - cref) < tol * 10);
    }
  });

  test(`scale, logSoftmax, crossEntropy, accuracy ${dtype}`, () => {
    const m = 7, k = 5;
    const x = randTensor(rng, [m, k], dtype, -30, 30);
    const s = dev.run('scale', { x }, { alpha: -1 });
    assert.equal([...s.data], [...x.data].map((v) => -v));
    const y = dev.run('logSoftmax', { x }, {});
    const xr = rows(x.data, m, k);
    const refRows = xr.map((r) => r.map((v) => v - Math.log(r.reduce((a, t) => a + Math.exp(t), 0))));
    assert.ok(maxRelErr(y.data, refRows.flat(), 1e-3) < tol * 100);
    const labels = Int32Array.from({ length: m }, (_, i) => (i * 3) % k);
    const ce = dev.run('crossEntropy', { logp: y, labels }, {});
    assert.equal(ce.shape, []);
    const refCe = -refRows.reduce((a, r, i) => a + r[labels[i]!]!, 0) / m;
    assert.ok(Math.abs(ce.data[0]! - refCe) < tol * 100 * Math.max(1, Math.abs(refCe)));
    const acc = dev.run('accuracy', { scores: x, labels }, {});
    const refAcc = xr.filter((r, i) => r.indexOf(Math.max(...r)) === labels[i]).length / m;
    assert.is(acc, refAcc);
  });

  // mathjs: errors are relative to the largest reference entry; float32 kernels round once (~6e-8),
  // float64 kernels sum in another order than mathjs (~1e-15): both far inside tol.
  const near = (what: string, got: ArrayLike<number>, want: ArrayLike<number>): void => {
    assert.is(got.length, want.length, `${what}: length`);
    const e = relErr(got, want);
    assert.ok(e < tol, `${what}: error ${e.toExponential(2)} vs mathjs (tolerance ${tol})`);
  };

  test(`mathjs ${dtype}: conv2d, its input gradient and its weight gradient as matrix products (im2col)`, () => {
    for (const [n, cin, h, w, cout, k, s, p] of [[3, 3, 5, 7, 4, 3, 1, 1], [2, 1, 9, 6, 5, 3, 2, 1], [1, 2, 4, 4, 3, 2, 1, 0], [3, 4, 7, 5, 2, 3, 1, 2]] as const) {
      const x = randTensor(rng, [n, cin, h, w], dtype), wt = randTensor(rng, [cout, cin, k, k], dtype), b = randTensor(rng, [cout], dtype);
      const what = `[${n},${cin},${h},${w}] k${k} s${s} p${p}`;
      const y = dev.run('conv2d', { x, w: wt, b }, { stride: s, padding: p });
      near(`conv2d ${what}`, y.data, mj.conv2dGemm(x.data, x.shape, wt.data, wt.shape, b.data, s, p));
      const dy = randTensor(rng, [...y.shape], dtype);
      const dx = dev.run('conv2dBackwardInput', { dy, w: wt }, { stride: s, padding: p, inputShape: x.shape });
      near(`conv2dBackwardInput ${what}`, dx.data, mj.conv2dBackwardInputGemm(dy.data, dy.shape, wt.data, wt.shape, x.shape, s, p));
      const g = dev.run('conv2dBackwardWeight', { dy, x }, { stride: s, padding: p, weightShape: wt.shape });
      const want = mj.conv2dBackwardWeightGemm(dy.data, dy.shape, x.data, x.shape, k, s, p);
      near(`conv2dBackwardWeight dw ${what}`, g.dw.data, want.dw);
      near(`conv2dBackwardWeight db ${what}`, g.db.data, want.db);
    }
  });

  test(`mathjs ${dtype}: batch-norm statistics, prototypes and their backward, distances and the squared-distance backward`, () => {
    const x = randTensor(rng, [3, 4, 5, 7], dtype, -2, 3), g = randTensor(rng, [4], dtype, 0.5, 1.5), b = randTensor(rng, [4], dtype);
    const bn = dev.run('batchnorm2dTrain', { x, gamma: g, beta: b }, { eps: 1e-5 });
    const st = mj.bnStats(x.data, x.shape);
    near('batch mean', bn.mean.data, st.mean);
    near('batch variance', bn.variance.data, st.variance);
    const labels = Int32Array.from([1, 0, 2, 0, 1, 1, 2, 0]), e = 6;
    const sup = randTensor(rng, [labels.length, e], dtype);
    near('prototypes', dev.run('prototypes', { support: sup, labels }, { way: 3 }).data, mj.prototypes(sup.data, labels.length, e, labels, 3));
    const dproto = randTensor(rng, [3, e], dtype);
    near('prototypesBackward', dev.run('prototypesBackward', { dproto, labels }, { way: 3 }).data, mj.prototypesBackward(dproto.data, 3, e, labels));
    const m = 5, k = 3, q = randTensor(rng, [m, e], dtype), p = randTensor(rng, [k, e], dtype);
    const d = mj.distances(q.data, m, p.data, k, e);
    near('sqEuclidean', dev.run('sqEuclidean', { q, p }, {}).data, d.sq);
    near('cosine', dev.run('cosine', { q, p }, { eps: 1e-8 }).data, d.cos);
    const dd = randTensor(rng, [m, k], dtype);
    const gd = dev.run('sqEuclideanBackward', { dd, q, p }, {}), wd = mj.sqEuclideanBackward(dd.data, q.data, m, p.data, k, e);
    near('sqEuclideanBackward dq', gd.dq.data, wd.dq);
    near('sqEuclideanBackward dp', gd.dp.data, wd.dp);
  });

  test(`mathjs ${dtype}: cosine and batch-norm backward from symbolic derivatives (math.derivative)`, () => {
    const m = 4, k = 3, e = 5, q = randTensor(rng, [m, e], dtype), p = randTensor(rng, [k, e], dtype), dc = randTensor(rng, [m, k], dtype);
    const gc = dev.run('cosineBackward', { dc, q, p }, { eps: 1e-8 }), wc = mj.cosineBackwardSymbolic(dc.data, q.data, m, p.data, k, e);
    near('cosineBackward dq', gc.dq.data, wc.dq);
    near('cosineBackward dp', gc.dp.data, wc.dp);
    const x = randTensor(rng, [2, 3, 2, 2], dtype, -2, 3), gamma = randTensor(rng, [3], dtype, 0.5, 1.5), beta = randTensor(rng, [3], dtype), dy = randTensor(rng, [2, 3, 2, 2], dtype);
    const st = dev.run('batchnorm2dTrain', { x, gamma, beta }, { eps: 1e-5 });
    const gb = dev.run('batchnorm2dBackward', { dy, x, gamma, mean: st.mean, invStd: st.invStd }, {});
    const wb = mj.bnBackwardSymbolic(dy.data, x.data, x.shape, gamma.data, 1e-5);
    near('batchnorm2dBackward dx', gb.dx.data, wb.dx);
    near('batchnorm2dBackward dgamma', gb.dgamma.data, wb.dgamma);
    near('batchnorm2dBackward dbeta', gb.dbeta.data, wb.dbeta);
  });

  test(`mathjs ${dtype}: log-softmax and cross-entropy in 50-digit arithmetic (inputs up to |30|); log-softmax backward through its Jacobian`, () => {
    const m = 7, k = 5;
    const x = randTensor(rng, [m, k], dtype, -30, 30);
    const y = dev.run('logSoftmax', { x }, {});
    near('logSoftmax', y.data, mj.logSoftmaxBig(x.data, m, k));
    const labels = Int32Array.from({ length: m }, (_, i) => (i * 2 + 1) % k);
    const ce = dev.run('crossEntropy', { logp: y, labels }, {}).data[0]!;
    const want = mj.crossEntropyBig(x.data, m, k, labels);
    assert.ok(Math.abs(ce - want) < tol * Math.abs(want), `crossEntropy ${ce} vs mathjs ${want}`);
    const dy = randTensor(rng, [m, k], dtype);
    near('logSoftmaxBackward', dev.run('logSoftmaxBackward', { dy, y }, {}).data, mj.logSoftmaxBackward(dy.data, y.data, m, k));
  });
}

test('ops reject bad shapes and labels with clear errors', () => {
  const x = Tensor.zeros([2, 3, 5, 5]);
  assert.throws(() => dev.run('conv2d', { x, w: Tensor.zeros([4, 2, 3, 3]) }, { stride: 1, padding: 1 }), /3 channels but weight expects 2/);
  assert.throws(() => dev.run('prototypes', { support: Tensor.zeros([4, 3]), labels: Int32Array.from([0, 0, 2, 2]) }, { way: 3 }), /class 1 has no support example/);
  assert.throws(() => dev.run('crossEntropy', { logp: Tensor.zeros([2, 3]), labels: Int32Array.from([0, 3]) }, {}), /label 3 outside/);
  assert.throws(() => new Tensor(new Float32Array(5), [2, 3]), /5 elements but shape \[2, 3\] needs 6/);
});

test.run();
