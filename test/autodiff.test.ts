/** The tape: same forward as plain ops, gradients into the flat vector, exact memory accounting, iterative walk. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/index.js';
import { getDevice, registeredDevices } from '../lib/device/registry.js';
import { DirectOps } from '../lib/ops/api.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { Rng } from '../lib/rng/philox.js';
import { Tape, layoutLeaves } from '../lib/autodiff/tape.js';
import { checkGradient, packInputs, type GradProgram } from '../lib/autodiff/gradcheck.js';
import { episodeGradient } from '../lib/autodiff/protonet.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { episodeLoss } from '../lib/model/protonet.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { device as devicePeer, needs } from './helpers/peers.js';

const device = getDevice('cpu-ts');

test('tape forward equals the plain forward bit for bit (ProtoNet, float32, BN batch mode)', () => {
  const layout = new ProtoNetLayout({ channels: 8, imageSize: 28 });
  const params = initParams(layout, 3);
  const ep = new SyntheticEpisodes({ classes: 10, way: 5, shot: 2, query: 3, imageSize: 28, seed: 1 }).episode(4);
  const direct = episodeLoss(new DirectOps(device), layout, params, initialBnState(layout), ep, { bn: 'batch' });
  const tape = new Tape(device);
  const taped = episodeLoss(tape, layout, params, initialBnState(layout), ep, { bn: 'batch' }, layoutLeaves(tape, layout));
  assert.equal(Array.from(tape.value(taped.logits).data), Array.from(direct.logits.data));
  assert.equal(Array.from(tape.value(taped.loss).data), Array.from(direct.loss.data));
});

test('BN running statistics tracked on the tape equal those tracked by plain ops', () => {
  const layout = new ProtoNetLayout({ channels: 4, imageSize: 28 });
  const params = initParams(layout, 5);
  const ep = new SyntheticEpisodes({ classes: 10, way: 3, shot: 2, query: 2, imageSize: 28, seed: 2 }).episode(0);
  const a = initialBnState(layout), b = initialBnState(layout);
  episodeLoss(new DirectOps(device), layout, params, a, ep, { bn: 'batch', trackStats: a });
  episodeGradient(device, layout, params, b, ep, { bn: 'batch', trackStats: b });
  assert.equal(Array.from(b.buffers), Array.from(a.buffers));
  assert.is(b.numBatchesTracked, 1);
  assert.ok(b.buffers.some((v, i) => v !== initialBnState(layout).buffers[i]), 'running statistics did not move');
});

// Every registered device; one that cannot initialize here is a counted skip with its reason.
for (const dev of registeredDevices()) {
  needs(await devicePeer(dev), `autodiff.test: device ${dev}`)(`${dev}: float32 gradient of the episode loss agrees with the float64 gradient (relative L2 error < 1e-4)`, () => {
    const d = getDevice(dev);
    const layout = new ProtoNetLayout({ channels: 8, imageSize: 28 });
    const p32 = initParams(layout, 9);
    const ep32 = new SyntheticEpisodes({ classes: 10, way: 5, shot: 2, query: 2, imageSize: 28, seed: 4 }).episode(1);
    const ep64 = { ...ep32, support: ep32.support.cast('float64'), query: ep32.query.cast('float64') };
    const g32 = episodeGradient(d, layout, p32, initialBnState(layout), ep32, { bn: 'batch' });
    const g64 = episodeGradient(device, layout, Float64Array.from(p32), initialBnState(layout), ep64, { bn: 'batch' });
    assert.ok(g32.grad instanceof Float32Array && g64.grad instanceof Float64Array);
    let num = 0, den = 0;
    for (let i = 0; i < g32.grad.length; i++) {
      num += (g32.grad[i]! - g64.grad[i]!) ** 2;
      den += g64.grad[i]! ** 2;
    }
    assert.ok(den > 0, 'zero gradient');
    assert.ok(Math.sqrt(num / den) < 1e-4, `relative error ${Math.sqrt(num / den)}`);
    assert.ok(Math.abs(g32.loss - g64.loss) < 1e-4 * Math.abs(g64.loss), `loss ${g32.loss} vs ${g64.loss}`);
  });
}

test('memory: exact bytes on a hand-countable graph, forward and at the backward peak', () => {
  const F = 8; // float64 bytes
  const tape = new Tape(device);
  const x = tape.constant(Tensor.from(Array.from({ length: 48 }, (_, i) => Math.sin(i)), [3, 1, 4, 4], 'float64'));
  const flat = new Float64Array(27 + 3 + 3 + 3).map((_, i) => 0.1 * Math.cos(i));
  const leaf = (o: number, shape: number[]): ReturnType<Tape['leaf']> =>
    tape.leaf(new Tensor(flat.subarray(o, o + shape.reduce((a, b) => a * b, 1)), shape), o);
  const w = leaf(0, [3, 1, 3, 3]), b = leaf(27, [3]), gamma = leaf(30, [3]), beta = leaf(33, [3]);
  const y = tape.conv2d(x, w, b, { stride: 1, padding: 1 });            // [3,3,4,4]; saves x (external)
  const bn = tape.batchnorm2dTrain(y, gamma, beta, 1e-5);               // saves y, mean [3], invStd [3]
  const r = tape.relu(bn.y);                                            // saves bn.y
  const p = tape.maxpool2d(r, { kernel: 2, stride: 2 });                // [3,3,2,2]; saves argmax (Int32)
  const z = tape.reshape(p, [3, 12]);                                   // saves nothing
  const zs = tape.sliceRows(z, 0, 2), zq = tape.sliceRows(z, 2, 3);     // views; save nothing
  const labS = Int32Array.of(0, 1), labQ = Int32Array.of(1);
  const protos = tape.prototypes(zs, labS, 2);                          // saves labS (external)
  const d = tape.sqEuclidean(zq, protos);                               // saves zq (a third of p's data) and protos [2,12]
  const lsm = tape.logSoftmax(tape.scale(d, -1));                       // scale saves nothing; logSoftmax saves its [1,2] output
  const loss = tape.crossEntropy(lsm, labQ);                            // saves lsm (already held) and labQ
  const bytesX = 48 * F, bytesY = 144 * F, bytesC = 3 * F, bytesArg = 36 * 4, row = 12 * F, bytesLabS = 8, bytesLabQ = 4;
  const external = bytesX + bytesLabS + bytesLabQ;
  const activation = bytesY + 2 * bytesC + bytesY + bytesArg + row + 2 * row + 2 * F;
  assert.equal(tape.memory(), { activation, external, gradient: 0, total: activation + external });
  assert.is(tape.bytesHeld(), 3196);
  // Backward, node by node in reverse: remaining saved + pending gradients + the node's fresh gradients.
  const s0 = activation + external, s1 = s0 - bytesLabQ - 2 * F - 3 * row, s2 = s1 - bytesLabS;
  const steps = [
    s0 + F + 2 * F,                                    // crossEntropy: seed; fresh dlogp
    s0 - bytesLabQ + 2 * F + 2 * F,                    // logSoftmax
    s0 - bytesLabQ - 2 * F + 2 * F + 2 * F,            // scale
    s0 - bytesLabQ - 2 * F + 2 * F + row + 2 * row,    // sqEuclidean: dd; fresh dq, dp
    s1 + row + 2 * row + 2 * row,                      // prototypes: dq, dprotos pending; fresh dzs
    s2 + row + 2 * row + 3 * row,                      // slice zq: dzq, dzs pending; fresh full-size
    s2 + 3 * row + 2 * row + 3 * row,                  // slice zs: dz, dzs pending; fresh full-size
    s2 + 3 * row,                                      // reshape: its fresh gradient shares dz's data
    s2 + 3 * row + bytesY,                             // maxpool: dp pending; fresh dr
    s2 - bytesArg + 2 * bytesY,                        // relu: dr pending; fresh dbn
    bytesX + bytesY + 2 * bytesC + bytesY + bytesY + 2 * bytesC, // BN: dy pending; fresh dx, dgamma, dbeta
    bytesX + bytesY + 27 * F + bytesC,                 // conv: dy pending; fresh dw, db (x is a constant: no dx)
  ];
  const grad = new Float64Array(flat.length);
  const res = tape.backward(loss, grad);
  assert.is(res.nodesRun, 12);
  assert.is(tape.peakBytes, Math.max(...steps));
  assert.is(tape.peakBytes, 5040);
  // At the peak (relu's step): BN's saved x, mean, invStd and relu's saved input; the image batch; dr and dbn.
  assert.equal(tape.peakMemory(), { activation: 2 * bytesY + 2 * bytesC, external: bytesX, gradient: 2 * bytesY, total: 5040 });
  assert.is(tape.bytesHeld(), 0);
  assert.is(tape.heldArrays, 0);
  assert.ok(grad.some((g) => g !== 0), 'no gradient reached the leaves');
});

for (const fuse of [true, false]) {
  test(`memory: ProtoNet forward holds exactly the per-block activations (float32, hand formula, ${fuse ? 'fused bnReluPool' : 'BN, ReLU and max-pool recorded separately'})`, () => {
    const layout = new ProtoNetLayout({ channels: 8, imageSize: 28 });
    const params = initParams(layout, 1);
    const way = 5, shot = 2, query = 3;
    const ep = new SyntheticEpisodes({ classes: 10, way, shot, query, imageSize: 28, seed: 3 }).episode(0);
    const tape = new Tape(device);
    const out = episodeLoss(tape, layout, params, initialBnState(layout), ep, { bn: 'batch', fuse }, layoutLeaves(tape, layout));
    const n = way * (shot + query), nq = way * query, c = 8, F = 4, E = layout.embeddingSize;
    let activation = 0, side = 28;
    const external = n * 28 * 28 * F + (way * shot + nq) * 4;          // the concatenated image batch; both label arrays
    for (let i = 0; i < 4; i++) {
      activation += n * c * side * side * F + 2 * c * F;                // conv output (the block op's input), BN mean and invStd
      if (!fuse) activation += n * c * side * side * F;                 // BN output (ReLU's input)
      side = Math.floor(side / 2);
      activation += n * c * side * side * 4;                            // max-pool argmax (Int32)
      // the pooled output: saved by bnReluPool itself, or (unfused) by the next conv as its input; the last block's
      // pooled output is the embeddings, of which the query rows are a view (saved whole by bnReluPool, else only those rows)
      if (fuse) activation += n * c * side * side * F;
      else activation += (i < 3 ? n : nq) * c * side * side * F;
    }
    activation += way * E * F + nq * way * F;                           // prototypes, log-softmax
    assert.equal(tape.memory(), { activation, external, gradient: 0, total: activation + external });
    const grad = new Float32Array(layout.numParams);
    tape.backward(out.loss, grad);
    assert.ok(tape.peakBytes > activation + external, 'backward adds pending gradients on top of the saved tensors');
  });
}

test('iterative walk: a chain of 100000 ops back-propagates without recursion', () => {
  const tape = new Tape(device);
  const flat = Float64Array.of(1.5, -2);
  let v = tape.leaf(new Tensor(flat, [1, 2]), 0);
  for (let i = 0; i < 100000; i++) v = tape.scale(v, i % 2 === 0 ? 1.0001 : 1 / 1.0001);
  const grad = new Float64Array(2);
  tape.backward(v, grad, Tensor.from([1, 1], [1, 2], 'float64'));
  assert.ok(Math.abs(grad[0]! - 1) < 1e-9 && Math.abs(grad[1]! - 1) < 1e-9, `grad ${grad}`);
});

test('a leaf used twice accumulates; a branch the loss does not use is skipped and released', () => {
  const rng = new Rng(8);
  const q = Tensor.zeros([4, 3], 'float64').data.map(() => rng.normal());
  const { x, get } = packInputs({ q: new Tensor(q, [4, 3]) });
  const program: GradProgram = (ops, leaf, xs) => { const v = get(leaf, xs, 'q'); return ops.sqEuclidean(v, v); };
  const r = checkGradient({ device, x, program, rtol: 1e-6, atol: 1e-9, seed: 2 });
  assert.ok(r.ok && r.checked === 12, `shared leaf: worst ratio ${r.worstRatio}`);

  const tape = new Tape(device);
  const flat = Float64Array.of(0.3, -0.7, 1.1);
  const a = tape.leaf(new Tensor(flat, [1, 3]), 0);
  tape.relu(tape.scale(a, 2)); // unused branch
  const loss = tape.crossEntropy(tape.logSoftmax(a), Int32Array.of(2));
  const grad = new Float64Array(3);
  const res = tape.backward(loss, grad);
  assert.is(res.nodesRun, 2);
  assert.is(tape.heldArrays, 0);
  const e = [0.3, -0.7, 1.1].map(Math.exp), s = e[0]! + e[1]! + e[2]!;
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(grad[i]! - (e[i]! / s - (i === 2 ? 1 : 0))) < 1e-12);
});

test('misuse is an error: backward twice, recording after backward, a value from another tape, a non-scalar loss without seed', () => {
  const t1 = new Tape(device), t2 = new Tape(device);
  const a = t1.leaf(Tensor.from([1, 2], [1, 2], 'float64'), 0);
  const s = t1.scale(a, 2);
  assert.throws(() => t1.backward(s, new Float64Array(2)), /scalar/);
  const loss = t1.crossEntropy(t1.logSoftmax(a), Int32Array.of(0));
  t1.backward(loss, new Float64Array(2));
  assert.throws(() => t1.backward(loss, new Float64Array(2)), /already/);
  assert.throws(() => t1.scale(a, 1), /after backward/);
  assert.throws(() => t2.scale(a, 1), /another tape/);
  const t3 = new Tape(device);
  const l3 = t3.crossEntropy(t3.logSoftmax(t3.leaf(Tensor.from([1, 2], [1, 2], 'float64'), 5)), Int32Array.of(0));
  assert.throws(() => t3.backward(l3, new Float64Array(2)), /gradient vector has 2/);
});

test('embed on the tape: gradient flows to every parameter of every block', () => {
  const layout = new ProtoNetLayout({ channels: 4, imageSize: 28 });
  const params = initParams(layout, 2), ep = new SyntheticEpisodes({ classes: 8, way: 4, shot: 2, query: 2, imageSize: 28, seed: 6 }).episode(0);
  const g = episodeGradient(device, layout, params, initialBnState(layout), ep, { bn: 'batch' });
  for (const e of layout.params) {
    if (e.name.endsWith('.0.bias')) continue; // a conv bias before batch-mode BN has zero gradient
    const part = g.grad.subarray(e.offset, e.offset + e.size);
    assert.ok(part.some((v) => v !== 0), `no gradient for ${e.name}`);
  }
  // loss and accuracy are those of the plain forward, exactly (the tape's forward is the plain forward)
  const plain = episodeLoss(new DirectOps(device), layout, params, initialBnState(layout), ep, { bn: 'batch' });
  assert.is(g.loss, plain.loss.data[0]);
  const [nq, way] = plain.logits.shape as [number, number];
  let right = 0;
  for (let i = 0; i < nq; i++) {
    const row = Array.from(plain.logits.data.subarray(i * way, (i + 1) * way));
    if (row.indexOf(Math.max(...row)) === ep.queryLabels[i]) right++;
  }
  assert.is(g.accuracy, right / nq);
});

test.run();
