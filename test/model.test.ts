/** ProtoNet layout, initialization, episode loss, checkpoints (safetensors), and the noise generator. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { DirectOps } from '../lib/ops/api.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { embed, episodeLoss } from '../lib/model/protonet.js';
import { loadCheckpoint, saveCheckpoint, loadTrainState, saveTrainState } from '../lib/model/checkpoint.js';
import { decodeSafetensors, encodeSafetensors, writeSafetensors } from '../lib/io/safetensors.js';
import { Rng, gaussianFill, philox4x32, STREAM } from '../lib/rng/philox.js';
import { randTensor } from './helpers/random.js';

const tmp = mkdtempSync(join(tmpdir(), 'evometa-model-'));

test('layout: PyTorch state_dict names, sizes and embedding size', () => {
  const l = new ProtoNetLayout({ channels: 64, imageSize: 28 });
  assert.equal(l.params.map((e) => e.name).slice(0, 4), ['encoder.0.0.weight', 'encoder.0.0.bias', 'encoder.0.1.weight', 'encoder.0.1.bias']);
  assert.equal(l.param('encoder.1.0.weight').shape, [64, 64, 3, 3]);
  assert.is(l.numParams, (64 * 9 + 64 + 128) + 3 * (64 * 64 * 9 + 64 + 128));
  assert.is(l.embeddingSize, 64); // 28 -> 14 -> 7 -> 3 -> 1
  assert.is(new ProtoNetLayout({ channels: 16, imageSize: 32 }).embeddingSize, 64); // 32 -> 16 -> 8 -> 4 -> 2
  assert.throws(() => new ProtoNetLayout({ channels: 0 }), /channels must be a positive integer/);
});

test('init: PyTorch default bounds, BN weight 1 bias 0, seeded', () => {
  const l = new ProtoNetLayout({ channels: 16, imageSize: 28 });
  const p = initParams(l, 7), q = initParams(l, 7), r = initParams(l, 8);
  assert.equal(p, q);
  assert.not.equal(p, r);
  const w1 = l.view(p, 'encoder.1.0.weight').data, bound = 1 / Math.sqrt(16 * 9);
  assert.ok(Math.max(...w1.map(Math.abs)) <= bound);
  assert.ok(Math.max(...w1.map(Math.abs)) > 0.95 * bound);
  assert.ok([...l.view(p, 'encoder.2.1.weight').data].every((v) => v === 1));
  assert.ok([...l.view(p, 'encoder.2.1.bias').data].every((v) => v === 0));
});

test('episode loss: near log(way) at init, finite; running-stat tracking updates buffers like PyTorch', () => {
  const l = new ProtoNetLayout({ channels: 8, imageSize: 28 });
  const p = initParams(l, 1), bn = initialBnState(l);
  const rng = new Rng(5);
  const lab = (w: number, k: number): Int32Array => Int32Array.from({ length: w * k }, (_, i) => Math.floor(i / k));
  const ep = { way: 5, support: randTensor(rng, [10, 1, 28, 28], 'float32', 0, 1), supportLabels: lab(5, 2), query: randTensor(rng, [15, 1, 28, 28], 'float32', 0, 1), queryLabels: lab(5, 3) };
  const ops = new DirectOps(getDevice('cpu-ts'));
  const out = episodeLoss(ops, l, p, bn, ep, { bn: 'batch', trackStats: bn });
  assert.ok(Number.isFinite(out.loss.data[0]!));
  assert.equal(out.logits.shape, [15, 5]);
  assert.is(bn.numBatchesTracked, 1);
  const rm = l.bufferView(bn.buffers, 'encoder.0.1.running_mean').data;
  assert.ok(rm.some((v) => v !== 0));
  const cos = episodeLoss(ops, l, p, bn, ep, { bn: 'running', distance: 'cosine' });
  assert.ok(Math.abs(cos.loss.data[0]! - Math.log(5)) < 0.5, `cosine loss ${cos.loss.data[0]} should be near log 5 at init`);
  const z = embed(ops, l, p, bn, ep.query, { bn: 'running' });
  assert.equal(z.shape, [15, l.embeddingSize]);
  assert.throws(() => embed(ops, l, p, bn, randTensor(rng, [2, 1, 32, 32], 'float32'), { bn: 'running' }), /images must be \[N, 1, 28, 28\]/);
});

test('safetensors: encode/decode round trip with metadata, header 8-byte aligned', () => {
  const chunks = encodeSafetensors({ a: { shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) }, n: { shape: [], data: BigInt64Array.of(42n) } }, { k: 'v' });
  const buf = Buffer.concat(chunks);
  assert.is(Number(buf.readBigUInt64LE(0)) % 8, 0);
  const f = decodeSafetensors(buf);
  assert.equal([...(f.tensors.get('a')!.data as Float32Array)], [1, 2, 3, 4, 5, 6]);
  assert.equal(f.tensors.get('n')!.data[0], 42n);
  assert.equal(f.metadata, { k: 'v' });
});

test('checkpoint: round trip, atomic (no temp files left), metadata, train-state sidecar', () => {
  const l = new ProtoNetLayout({ channels: 8, imageSize: 28 });
  const p = initParams(l, 3), bn = initialBnState(l);
  bn.buffers[0] = 0.25;
  bn.numBatchesTracked = 17;
  const path = join(tmp, 'ck.safetensors');
  saveCheckpoint(path, { layout: l, params: p, bn }, { step: 12, config: { lr: 1 } });
  const back = loadCheckpoint(path);
  assert.equal(back.params, p);
  assert.equal(back.bn.buffers, bn.buffers);
  assert.is(back.bn.numBatchesTracked, 17);
  assert.is(back.meta['step'], 12);
  assert.equal(back.meta['config'], { lr: 1 });
  assert.is(back.layout.config.channels, 8);
  saveTrainState(path, { tensors: { exp_avg: Float32Array.of(1, 2) }, meta: { rng: 5 } });
  const st = loadTrainState(path);
  assert.equal([...st.tensors['exp_avg']!], [1, 2]);
  assert.equal(st.meta, { rng: 5 });
  assert.equal(readdirSync(tmp).filter((f) => f.endsWith('.tmp')), []);
});

test('checkpoint errors name the file and the tensor', () => {
  const l = new ProtoNetLayout({ channels: 8, imageSize: 28 });
  const p = initParams(l, 3);
  const missing = join(tmp, 'missing.safetensors');
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const e of l.params) if (e.name !== 'encoder.2.0.bias') tensors[e.name] = { shape: e.shape, data: p.slice(e.offset, e.offset + e.size) };
  writeSafetensors(missing, tensors, { model: JSON.stringify(l.config) });
  assert.throws(() => loadCheckpoint(missing), (e: Error) => e.message.includes(missing) && e.message.includes('missing tensor encoder.2.0.bias'));
  const wrong = join(tmp, 'wrong.safetensors');
  tensors['encoder.2.0.bias'] = { shape: [7], data: new Float32Array(7) };
  writeSafetensors(wrong, tensors, { model: JSON.stringify(l.config) });
  assert.throws(() => loadCheckpoint(wrong), /encoder.2.0.bias has shape \[7\], expected \[8\]/);
  const corrupt = join(tmp, 'corrupt.safetensors');
  writeFileSync(corrupt, readFileSync(wrong).subarray(0, 100));
  assert.throws(() => loadCheckpoint(corrupt), (e: Error) => e.message.startsWith(corrupt));
  assert.throws(() => loadCheckpoint(join(tmp, 'nope.safetensors')), /cannot read checkpoint \(ENOENT\)/);
});

test('philox4x32-10 known-answer vectors (Random123)', () => {
  const o = new Uint32Array(4);
  philox4x32(0, 0, 0, 0, 0, 0, o);
  assert.equal([...o], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
  philox4x32(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, o);
  assert.equal([...o], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
  philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, o);
  assert.equal([...o], [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
});

test('gaussian noise: random access equals sequential, moments of N(0,1), streams differ', () => {
  const all = new Float32Array(1000);
  gaussianFill(all, 9, STREAM.esNoise, 4, 17);
  const part = new Float32Array(13);
  gaussianFill(part, 9, STREAM.esNoise, 4, 17, 501);
  assert.equal([...part], [...all.subarray(501, 514)]);
  const big = new Float32Array(200000);
  gaussianFill(big, 1, STREAM.esNoise, 0, 0);
  let m = 0, v = 0, k4 = 0;
  for (const z of big) { m += z; v += z * z; k4 += z ** 4; }
  m /= big.length; v /= big.length; k4 /= big.length;
  assert.ok(Math.abs(m) < 0.01 && Math.abs(v - 1) < 0.015 && Math.abs(k4 - 3) < 0.1, `moments ${m} ${v} ${k4}`);
  const other = new Float32Array(1000);
  gaussianFill(other, 9, STREAM.esNoise, 4, 18);
  assert.not.equal([...other], [...all]);
});

test('Rng: state save/restore reproduces the sequence', () => {
  const r = new Rng(11);
  for (let i = 0; i < 7; i++) r.nextUint32();
  const s = r.state;
  const a = [r.int(10), r.uniform(), r.nextUint32()];
  r.setState(s);
  assert.equal([r.int(10), r.uniform(), r.nextUint32()], a);
  assert.throws(() => new Rng(-1), /seed must be an integer/);
});

test.run();
