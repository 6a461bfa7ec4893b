/**
 * Checkpoint and safetensors validation: every corruption, crafted byte by byte, is refused with a
 * SafetensorsError (a UserError) naming the file and the tensor or field; valid files (ours and
 * PyTorch-written ones without metadata) still load; the CLI exits 2 with the message.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../lib/errors.js';
import { decodeSafetensors, encodeSafetensors, MAX_HEADER_BYTES, readSafetensors, SafetensorsError, type StData } from '../lib/io/safetensors.js';
import { loadCheckpoint, loadTrainState, saveCheckpoint, saveTrainState, trainStatePath } from '../lib/model/checkpoint.js';
import { initialBnState, ProtoNetLayout } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { pythonMissing, runPython } from './helpers/python.js';

const dir = mkdtempSync(join(tmpdir(), 'evometa-ckval-'));
const cli = join(dirname(fileURLToPath(import.meta.url)), '../lib/cli/main.js');
const layout = new ProtoNetLayout({ channels: 2, imageSize: 28 });
const params = initParams(layout, 5);
const bn = initialBnState(layout);
bn.numBatchesTracked = 9;
const good = join(dir, 'good.safetensors');
saveCheckpoint(good, { layout, params, bn }, { step: 3 });
const goodBytes = readFileSync(good);

/** A file from an 8-byte length (the JSON's, unless given), header text and data bytes. */
function craft(header: string | object, data: Uint8Array, len?: bigint): Buffer {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const l = Buffer.alloc(8);
  l.writeBigUInt64LE(len ?? BigInt(h.length));
  return Buffer.concat([l, h, data]);
}

/** The header object and data bytes of a safetensors buffer (no validation). */
function split(buf: Buffer): { header: Record<string, unknown>; data: Buffer } {
  const n = Number(buf.readBigUInt64LE(0));
  return { header: JSON.parse(buf.toString('utf8', 8, 8 + n)) as Record<string, unknown>, data: buf.subarray(8 + n) };
}

/** The good checkpoint with its header edited and/or its data bytes replaced. */
function edited(edit: (h: Record<string, any>) => void, data?: (d: Buffer) => Buffer): Buffer {
  const { header, data: d } = split(goodBytes);
  edit(header);
  return craft(header, data ? data(Buffer.from(d)) : d);
}

/** The good checkpoint with one tensor's value replaced (element i of `name`, float32). */
function withValue(name: string, i: number, v: number): Buffer {
  const { header } = split(goodBytes);
  const [b] = (header[name] as { data_offsets: [number, number] }).data_offsets;
  return edited(() => {}, (d) => { d.writeFloatLE(v, b + 4 * i); return d; });
}

function tensorsOf(edit?: (t: Record<string, { shape: number[]; data: StData }>) => void): Record<string, { shape: number[]; data: StData }> {
  const t: Record<string, { shape: number[]; data: StData }> = {};
  for (const e of layout.params) t[e.name] = { shape: e.shape, data: params.slice(e.offset, e.offset + e.size) };
  for (const e of layout.buffers) t[e.name] = { shape: e.shape, data: bn.buffers.slice(e.offset, e.offset + e.size) };
  for (let i = 0; i < layout.config.blocks; i++) t[`encoder.${i}.1.num_batches_tracked`] = { shape: [], data: BigInt64Array.of(9n) };
  edit?.(t);
  return t;
}

let n = 0;
function file(bytes: Uint8Array | Uint8Array[]): string {
  const p = join(dir, `case-${n++}.safetensors`);
  writeFileSync(p, Array.isArray(bytes) ? Buffer.concat(bytes) : bytes);
  return p;
}

/** Expect `fn(path)` to throw a SafetensorsError that names the file and contains every fragment (and names `tensor` if given). */
function refused(fn: (p: string) => unknown, bytes: Uint8Array | Uint8Array[], fragments: (string | RegExp)[], tensor?: string): void {
  const p = file(bytes);
  try {
    fn(p);
  } catch (e) {
    assert.instance(e, SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    assert.instance(e, UserError);
    const err = e as SafetensorsError;
    assert.is(err.name, 'SafetensorsError');
    assert.ok(err.message.startsWith(`${p}: `), `message does not start with the file: ${err.message}`);
    for (const f of fragments) {
      if (typeof f === 'string') assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
      else assert.match(err.message, f);
    }
    if (tensor !== undefined) {
      assert.is(err.tensor, tensor, `error.tensor for ${err.message}`);
      assert.ok(err.message.includes(tensor), `message ${JSON.stringify(err.message)} does not name tensor ${tensor}`);
    }
    return;
  }
  assert.unreachable(`accepted (expected an error with ${fragments.join(', ')})`);
}

const f32 = (...v: number[]): Uint8Array => new Uint8Array(Float32Array.from(v).buffer);
const A = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };

test('a valid file decodes; the same bytes through readSafetensors and decodeSafetensors', () => {
  const buf = craft({ a: A, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] }, __metadata__: { k: 'v' } }, f32(1, 2, 3));
  const p = file(buf);
  for (const f of [readSafetensors(p), decodeSafetensors(buf)]) {
    assert.equal([...(f.tensors.get('a')!.data as Float32Array)], [1, 2]);
    assert.equal([...(f.tensors.get('b')!.data as Float32Array)], [3]);
    assert.equal(f.metadata, { k: 'v' });
  }
  // zero-size tensors, an empty file of tensors, and null metadata are valid too
  const z = readSafetensors(file(craft({ e: { dtype: 'F32', shape: [0, 3], data_offsets: [0, 0] }, a: { ...A, data_offsets: [0, 8] }, __metadata__: null }, f32(1, 2))));
  assert.is(z.tensors.get('e')!.data.length, 0);
  assert.is(readSafetensors(file(craft({}, new Uint8Array(0)))).tensors.size, 0);
});

test('safetensors structure: each corruption is refused naming the file (and the tensor)', () => {
  const rd = (p: string) => readSafetensors(p);
  // header length
  refused(rd, craft({ a: A }, f32(1, 2), BigInt(MAX_HEADER_BYTES + 1)), [`exceeds the ${MAX_HEADER_BYTES}-byte limit`]);
  refused(rd, craft({ a: A }, f32(1, 2), 2n ** 63n), ['exceeds the']);
  refused(rd, craft({ a: A }, f32(1, 2), 1000n), ['header length 1000 exceeds the file size']);
  refused(rd, Buffer.from([1, 2, 3]), ['too short']);
  // header text
  refused(rd, craft('{"a": ', f32(1, 2)), ['header is not valid JSON']);
  refused(rd, [Buffer.from([4, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0xff, 0xfe, 0x7d])], ['not valid UTF-8']);
  refused(rd, craft('[1, 2]', new Uint8Array(0)), ['header is an array, expected a JSON object']);
  refused(rd, craft('null', new Uint8Array(0)), ['header is null']);
  // entries
  refused(rd, craft({ a: null }, new Uint8Array(0)), ['tensor a: header entry is null'], 'a');
  refused(rd, craft({ a: [1, 2] }, new Uint8Array(0)), ['header entry is an array'], 'a');
  refused(rd, craft({ a: { shape: [2], data_offsets: [0, 8] } }, f32(1, 2)), ['dtype is undefined'], 'a');
  refused(rd, craft({ a: { ...A, dtype: 'F16' } }, f32(1, 2)), ['unsupported dtype "F16"'], 'a');
  refused(rd, craft({ a: { ...A, dtype: 'toString' } }, f32(1, 2)), ['unsupported dtype "toString"'], 'a');
  refused(rd, craft({ a: { ...A, dtype: 7 } }, f32(1, 2)), ['dtype is number 7'], 'a');
  refused(rd, craft({ a: { ...A, shape: [-2] } }, f32(1, 2)), ['invalid shape [-2]'], 'a');
  refused(rd, craft({ a: { ...A, shape: [1.5] } }, f32(1, 2)), ['invalid shape'], 'a');
  refused(rd, craft({ a: { ...A, shape: '2' } }, f32(1, 2)), ['invalid shape'], 'a');
  refused(rd, craft({ a: { ...A, shape: [2 ** 60] } }, f32(1, 2)), ['invalid shape'], 'a');
  refused(rd, craft({ a: { ...A, shape: [2 ** 30, 2 ** 30, 2 ** 30] } }, f32(1, 2)), ['more than 2^53 elements'], 'a');
  refused(rd, craft({ a: { ...A, shape: [3] } }, f32(1, 2)), ['hold 8 bytes, but shape [3] of F32 needs 3 x 4 = 12'], 'a');
  refused(rd, craft({ a: { ...A, data_offsets: [0] } }, f32(1, 2)), ['invalid data_offsets [0]'], 'a');
  refused(rd, craft({ a: { ...A, data_offsets: [-8, 0] } }, f32(1, 2)), ['invalid data_offsets'], 'a');
  refused(rd, craft({ a: { ...A, data_offsets: [8, 0] } }, f32(1, 2)), ['end before they begin'], 'a');
  refused(rd, craft({ a: { ...A, data_offsets: [4, 12] } }, f32(1, 2)), ['run past the 8 data bytes'], 'a');
  // tiling: overlap, hole, misaligned start, trailing bytes, a duplicate name (JSON keeps the last)
  const B = { dtype: 'F32', shape: [2], data_offsets: [4, 12] };
  refused(rd, craft({ a: A, b: B }, f32(1, 2, 3)), ['tensor b: data_offsets [4, 12] overlap tensor a [0, 8]'], 'b');
  refused(rd, craft({ a: A, b: { ...B, data_offsets: [12, 20] } }, f32(1, 2, 3, 4, 5)), ['leave bytes [8, 12) after tensor a'], 'b');
  refused(rd, craft({ a: { ...A, data_offsets: [2, 10] } }, new Uint8Array(10)), ['leave bytes [0, 2) at the start'], 'a');
  refused(rd, craft({ a: A }, f32(1, 2, 3)), ['data bytes [8, 12) after the last tensor (a) belong to no tensor'], 'a');
  refused(rd, craft('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}', f32(1, 2, 3, 4)), ['leave bytes [0, 8) at the start'], 'a');
  // metadata
  refused(rd, craft({ a: A, __metadata__: { k: 1 } }, f32(1, 2)), ['__metadata__ field "k" is number 1, expected a string']);
  refused(rd, craft({ a: A, __metadata__: ['x'] }, f32(1, 2)), ['__metadata__ is an array']);
  // the in-memory decoder applies the same checks
  assert.throws(() => decodeSafetensors(craft({ a: A, b: B }, f32(1, 2, 3)), 'mem'), /^mem: tensor b: data_offsets \[4, 12\] overlap/);
});

test('checkpoint header corruptions (offsets, null entries, dtypes, absurd configs) are refused naming file and tensor or field', () => {
  const ld = (p: string) => loadCheckpoint(p);
  assert.is(loadCheckpoint(file(goodBytes)).bn.numBatchesTracked, 9);
  // offsets: shifted by 4 bytes (misaligned), overlapping a neighbour, swapped lengths
  refused(ld, edited((h) => { const o = h['encoder.0.0.bias'].data_offsets; h['encoder.0.0.bias'].data_offsets = [o[0] + 4, o[1] + 4]; }), ['leave bytes [72, 76) after tensor encoder.0.0.weight'], 'encoder.0.0.bias');
  refused(ld, edited((h) => { h['encoder.0.0.bias'].data_offsets = [0, 8]; }), ['encoder.0.0.weight', 'overlap tensor encoder.0.0.bias'], 'encoder.0.0.weight');
  refused(ld, edited((h) => { h['encoder.1.1.running_var'] = null; }), ['tensor encoder.1.1.running_var: header entry is null'], 'encoder.1.1.running_var');
  refused(ld, edited((h) => { h['encoder.2.0.weight'].shape = [2, 2, 3, -3]; }), ['invalid shape [2,2,3,-3]'], 'encoder.2.0.weight');
  refused(ld, edited((h) => { h['encoder.2.0.weight'].shape = [2, 2, 9, 1]; }), ['has shape [2, 2, 9, 1], expected [2, 2, 3, 3]'], 'encoder.2.0.weight');
  refused(ld, edited((h) => { h['encoder.3.1.bias'].dtype = 'I32'; }), ['dtype I32, expected F32'], 'encoder.3.1.bias');
  refused(ld, edited((h) => { h['encoder.0.1.num_batches_tracked'].dtype = 'F64'; }), ['expected an I64 scalar'], 'encoder.0.1.num_batches_tracked');
  refused(ld, edited((h) => { delete h['encoder.3.1.running_mean']; }, (d) => d), [/bytes \[\d+, \d+\) .*belong to no tensor/]);
  // model config: absurd sizes refused before anything is allocated, naming the field
  const model = (m: unknown) => edited((h) => { h['__metadata__'].model = typeof m === 'string' ? m : JSON.stringify(m); });
  const cfg = layout.config;
  const fieldOf = (fn: () => unknown): string | undefined => { try { fn(); } catch (e) { return (e as SafetensorsError).field; } return undefined; };
  for (const [m, frag, field] of [
    [{ ...cfg, channels: 1e9 }, 'channels is 1000000000, expected an integer in [1, 1024]', 'channels'],
    [{ ...cfg, channels: -2 }, 'channels is -2', 'channels'],
    [{ ...cfg, imageSize: 0 }, 'imageSize is 0', 'imageSize'],
    [{ ...cfg, imageSize: 1e300 }, 'imageSize is 1e+300', 'imageSize'],
    [{ ...cfg, blocks: 100 }, 'blocks is 100, expected an integer in [1, 8]', 'blocks'],
    [{ ...cfg, inChannels: 2.5 }, 'inChannels is 2.5', 'inChannels'],
    [{ ...cfg, bnEps: 0 }, 'bnEps is 0', 'bnEps'],
    [{ ...cfg, bnMomentum: 'x' }, 'bnMomentum is "x"', 'bnMomentum'],
    [{ ...cfg, imageSize: 8, blocks: 4 }, 'imageSize 8 is too small for 4 blocks', 'imageSize'],
    [{ ...cfg, hidden: 1 }, 'unknown field "hidden"', 'hidden'],
    [null, 'metadata "model" is null', 'model'],
    ['{"channels":', 'metadata field "model" is not valid JSON', 'model'],
  ] as [unknown, string, string][]) {
    const bytes = model(m);
    refused(ld, bytes, [frag]);
    assert.is(fieldOf(() => loadCheckpoint(file(bytes))), field, frag);
  }
  refused(ld, edited((h) => { h['__metadata__'].format = 'something-else'; }), ['metadata format is "something-else"']);
  refused(ld, edited((h) => { h['__metadata__'].model = JSON.stringify({ ...cfg, channels: 3 }); }), ['has shape [2, 1, 3, 3], expected [3, 1, 3, 3]'], 'encoder.0.0.weight');
  // a tensor the model does not have
  const extra = encodeSafetensors(tensorsOf((t) => { t['head.weight'] = { shape: [1], data: Float32Array.of(1) }; }), { model: JSON.stringify(cfg) });
  refused(ld, extra, ['unexpected tensor head.weight: not part of a 4-block ConvNet-4 with 2 channels'], 'head.weight');
  // a directory is not a checkpoint
  assert.throws(() => loadCheckpoint(dir), (e: Error) => e instanceof SafetensorsError && e.message.startsWith(`${dir}: `));
});

test('checkpoint values: NaN, inf, float32 overflow, negative running_var, negative num_batches_tracked are refused naming the tensor', () => {
  const ld = (p: string) => loadCheckpoint(p);
  refused(ld, withValue('encoder.1.0.weight', 5, NaN), ['tensor encoder.1.0.weight: element 5 is NaN'], 'encoder.1.0.weight');
  refused(ld, withValue('encoder.3.1.bias', 1, Infinity), ['element 1 is Infinity'], 'encoder.3.1.bias');
  refused(ld, withValue('encoder.0.1.running_mean', 0, -Infinity), ['element 0 is -Infinity'], 'encoder.0.1.running_mean');
  refused(ld, withValue('encoder.2.1.running_var', 1, -0.5), ['tensor encoder.2.1.running_var: element 1 is -0.5, but a running variance must be >= 0'], 'encoder.2.1.running_var');
  // F64 values are accepted when they fit float32, refused when they overflow it
  const f64 = (v: number) => encodeSafetensors(tensorsOf((t) => { t['encoder.0.0.bias'] = { shape: [2], data: Float64Array.of(0.5, v) }; }), { model: JSON.stringify(layout.config) });
  assert.is(loadCheckpoint(file(f64(0.25))).params[layout.param('encoder.0.0.bias').offset + 1], 0.25);
  refused(ld, f64(1e300), ['tensor encoder.0.0.bias: element 1 is 1e+300, which overflows float32'], 'encoder.0.0.bias');
  const nbt = (v: bigint) => encodeSafetensors(tensorsOf((t) => { t['encoder.2.1.num_batches_tracked'] = { shape: [], data: BigInt64Array.of(v) }; }), { model: JSON.stringify(layout.config) });
  refused(ld, nbt(-1n), ['tensor encoder.2.1.num_batches_tracked is -1, expected a non-negative count'], 'encoder.2.1.num_batches_tracked');
  refused(ld, nbt(2n ** 62n), ['num_batches_tracked is 4611686018427387904'], 'encoder.2.1.num_batches_tracked');
});

test('training-state sidecar: NaN in a tensor, a non-object state, bad structure are refused naming file and tensor', () => {
  const ck = join(dir, 'resume.safetensors');
  saveTrainState(ck, { tensors: { 'opt.m': Float32Array.of(1, NaN, 3) }, meta: { step: 1 } });
  assert.throws(() => loadTrainState(ck), (e: Error) => e instanceof SafetensorsError && e.message === `${trainStatePath(ck)}: tensor opt.m: element 1 is NaN (training state must be finite)` && e.tensor === 'opt.m');
  saveTrainState(ck, { tensors: { 'opt.m': Float32Array.of(1, 2, 3) }, meta: { step: 1 } });
  assert.equal(loadTrainState(ck).meta, { step: 1 });
  writeFileSync(trainStatePath(ck), Buffer.concat(encodeSafetensors({ 'opt.m': { shape: [1], data: Float32Array.of(1) } }, { state: '[1]' })));
  assert.throws(() => loadTrainState(ck), /state\.safetensors: metadata field "state" is not a JSON object/);
  writeFileSync(trainStatePath(ck), Buffer.concat(encodeSafetensors({ 'opt.n': { shape: [1], data: BigInt64Array.of(1n) } })));
  assert.throws(() => loadTrainState(ck), (e: Error) => e instanceof SafetensorsError && /tensor opt\.n has dtype I64, expected F32 or F64/.test(e.message));
  writeFileSync(trainStatePath(ck), craft({ 'opt.m': null }, new Uint8Array(0)));
  assert.throws(() => loadTrainState(ck), /state\.safetensors: tensor opt\.m: header entry is null/);
});

test('a checkpoint written as PyTorch writes it (no metadata, tensors sorted by dtype then name) loads', () => {
  const t = tensorsOf();
  const names = Object.keys(t).sort((a, b) => Number(t[b]!.data instanceof BigInt64Array) - Number(t[a]!.data instanceof BigInt64Array) || (a < b ? -1 : 1));
  const ordered: typeof t = {};
  for (const k of names) ordered[k] = t[k]!;
  const ck = loadCheckpoint(file(encodeSafetensors(ordered)));
  assert.equal(ck.params, params);
  assert.equal(ck.bn.buffers, bn.buffers);
  assert.is(ck.bn.numBatchesTracked, 9);
  assert.is(ck.layout.config.channels, 2);
  assert.is(ck.layout.config.blocks, 4);
  assert.equal(ck.meta, {});
});

const torchMissing = pythonMissing(['torch', 'safetensors']);
if (torchMissing) console.log(`skipping the PyTorch-written checkpoint test: ${torchMissing}`);
(torchMissing ? test.skip : test)('a state_dict saved by PyTorch (safetensors.torch.save_file, no metadata) loads with its values', () => {
  const out = join(dir, 'torch.safetensors');
  const py = [
    'import sys, torch, torch.nn as nn',
    'from safetensors.torch import save_file',
    'torch.manual_seed(0)',
    'blk = lambda cin, c: nn.Sequential(nn.Conv2d(cin, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2))',
    'm = nn.Module(); m.encoder = nn.Sequential(blk(1, 3), blk(3, 3), blk(3, 3), blk(3, 3))',
    'm.train(); m.encoder(torch.rand(4, 1, 28, 28)); m.encoder(torch.rand(4, 1, 28, 28))',
    'save_file({k: v.contiguous() for k, v in m.state_dict().items()}, sys.argv[1])',
    'print(float(m.state_dict()["encoder.2.1.running_var"][1]), float(m.state_dict()["encoder.0.0.weight"][2, 0, 1, 2]))',
  ].join('\n');
  const [rv, w] = runPython(['-c', py, out]).trim().split(' ').map(Number);
  const ck = loadCheckpoint(out);
  assert.is(ck.layout.config.channels, 3);
  assert.is(ck.bn.numBatchesTracked, 2);
  assert.is(ck.bn.buffers[ck.layout.buffer('encoder.2.1.running_var').offset + 1], Math.fround(rv!));
  assert.is(ck.params[ck.layout.param('encoder.0.0.weight').offset + 2 * 9 + 1 * 3 + 2], Math.fround(w!));
});

function runCli(args: string[]): { code: number | null; err: string; out: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, EVOMETA_CACHE: join(dir, 'cache') }, timeout: 120000 });
  return { code: r.status, err: r.stderr, out: r.stdout };
}

test('evometa eval on bad checkpoints: exit code 2, one line naming the file and the tensor or field, no stack', () => {
  const cases: [Buffer, RegExp][] = [
    [withValue('encoder.1.0.weight', 0, NaN), /tensor encoder\.1\.0\.weight: element 0 is NaN/],
    [withValue('encoder.0.1.running_var', 0, -1), /tensor encoder\.0\.1\.running_var: element 0 is -1, but a running variance must be >= 0/],
    [edited((h) => { h['encoder.0.0.bias'].data_offsets = [0, 8]; }), /tensor encoder\.0\.0\.weight: .*overlap tensor encoder\.0\.0\.bias/],
    [edited((h) => { h['encoder.1.1.running_var'] = null; }), /tensor encoder\.1\.1\.running_var: header entry is null/],
    [edited((h) => { h['__metadata__'].model = JSON.stringify({ ...layout.config, channels: 1e9 }); }), /channels is 1000000000, expected an integer in \[1, 1024\]/],
  ];
  for (const [bytes, pattern] of cases) {
    const p = file(bytes);
    const r = runCli(['eval', '--checkpoint', p, '--episodes', '2', '--no-progress']);
    assert.is(r.code, 2, `${p}: exit ${r.code}, stderr ${r.err}`);
    assert.is(r.out, '', 'nothing on stdout');
    assert.ok(r.err.startsWith(`evometa: ${p}: `), `stderr does not name the file: ${r.err}`);
    assert.match(r.err, pattern);
    assert.not.match(r.err, /\n\s+at /, 'no stack trace');
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
