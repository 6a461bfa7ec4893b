/**
 * ONNX export: the file decodes (protobufjs, our schema) to the expected graph, and onnxruntime-node
 * runs it to our eval-mode embeddings (BN folded or kept). The onnxruntime checks skip, saying why,
 * only where onnxruntime-node cannot be loaded.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveCheckpoint, type ProtoNetState } from '../lib/model/checkpoint.js';
import { exportOnnx, decodeOnnx, buildOnnxModel, irVersionForOpset, ONNX_OPSETS, type OnnxModel, type OnnxValueInfo } from '../lib/export/onnx.js';
import { evometaVersion } from '../lib/export/source.js';
import type { Tensor } from '../lib/tensor/tensor.js';
import { relErr } from './helpers/random.js';
import { exportState, ourEmbeddings, randomImages } from './export-fixtures.js';

type Ort = typeof import('onnxruntime-node');
let ort: Ort | null = null;
let ortMissing: string | null = null;
try {
  const m = (await import('onnxruntime-node')) as Ort & { default?: Ort };
  ort = m.default ?? m;
} catch (e) {
  ortMissing = `onnxruntime-node cannot be loaded (${(e as Error).message.split('\n')[0]})`;
}
if (ortMissing) console.log(`  export-onnx: skipping the onnxruntime checks: ${ortMissing}`);
const tOrt = ort ? test : test.skip;

const dir = mkdtempSync(join(tmpdir(), 'evometa-onnx-'));
const CONFIGS = [[16, 28], [32, 32]] as const;
const meta = { step: 123, config: { estimator: 'wsr', seed: 5 }, note: 'test checkpoint' };

function checkpointFor(channels: number, size: number): { path: string; state: ProtoNetState } {
  const state = exportState(channels, size);
  const path = join(dir, `c${channels}-s${size}.safetensors`);
  saveCheckpoint(path, state, meta);
  return { path, state };
}

const dims = (v: OnnxValueInfo): (number | string | undefined)[] => v.type.tensor_type.shape.dim.map((d) => d.dim_param ?? d.dim_value);
// decodeOnnx gives Buffers that may view a shared pool: copy before reinterpreting.
const f32 = (bytes: Uint8Array): Float32Array => new Float32Array(Uint8Array.prototype.slice.call(bytes).buffer);

async function runOrt(bytes: Uint8Array, x: Tensor): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const session = await ort!.InferenceSession.create(bytes);
  assert.equal(session.inputNames, ['images']);
  assert.equal(session.outputNames, ['embeddings']);
  const out = await session.run({ images: new ort!.Tensor('float32', x.data as Float32Array, x.shape) });
  const z = out['embeddings']!;
  return { data: z.data as Float32Array, dims: z.dims };
}

for (const [channels, size] of CONFIGS) {
  const { path, state } = checkpointFor(channels, size);
  const { layout, params, bn } = state;
  const E = layout.embeddingSize;

  test(`ONNX graph structure decodes as written (C=${channels}, ${size}x${size}, bn fold and keep)`, () => {
    for (const mode of ['fold', 'keep'] as const) {
      const m: OnnxModel = decodeOnnx(exportOnnx(path, { bn: mode }));
      assert.is(m.ir_version, 8);
      assert.equal(m.opset_import.map((o) => [o.domain ?? '', o.version]), [['', 17]]);
      assert.is(m.producer_name, 'evometa');
      assert.is(m.producer_version, evometaVersion());
      assert.match(m.doc_string, `"step":123`);
      assert.match(m.doc_string, 'test checkpoint');
      const props = Object.fromEntries(m.metadata_props.map((p) => [p.key, p.value]));
      assert.is(props['checkpoint.step'], '123');
      assert.is(props['evometa.bn'], mode);
      assert.equal(JSON.parse(props['evometa.model']!), layout.config);
      const block = mode === 'fold' ? ['Conv', 'Relu', 'MaxPool'] : ['Conv', 'BatchNormalization', 'Relu', 'MaxPool'];
      assert.equal(m.graph.node.map((n) => n.op_type), [...block, ...block, ...block, ...block, 'Flatten']);
      assert.equal(dims(m.graph.input[0]!), ['N', 1, size, size]);
      assert.equal(dims(m.graph.output[0]!), ['N', E]);
      assert.is(m.graph.input[0]!.type.tensor_type.elem_type, 1, 'float32 input');
      const conv = m.graph.node[0]!;
      const attr = Object.fromEntries((conv.attribute ?? []).map((a) => [a.name, a.type === 7 ? a.ints : a.i]));
      assert.equal(attr, { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1], dilations: [1, 1], group: 1 });
      const pool = m.graph.node[block.length - 1]!;
      assert.equal(Object.fromEntries((pool.attribute ?? []).map((a) => [a.name, a.ints])), { kernel_shape: [2, 2], strides: [2, 2] });
      const flat = m.graph.node.at(-1)!;
      assert.is(flat.attribute![0]!.name, 'axis');
      assert.is(flat.attribute![0]!.i, 1);
      // Each node reads the previous node's output; the last writes the graph output.
      for (let i = 1; i < m.graph.node.length; i++) assert.is(m.graph.node[i]!.input[0], m.graph.node[i - 1]!.output[0]);
      assert.is(m.graph.node.at(-1)!.output[0], 'embeddings');

      const inits = new Map(m.graph.initializer.map((t) => [t.name, t]));
      const expected: [string, number[]][] = [];
      for (let b = 0; b < 4; b++) {
        const cin = b === 0 ? 1 : channels;
        if (mode === 'fold') expected.push([`encoder.${b}.fused.weight`, [channels, cin, 3, 3]], [`encoder.${b}.fused.bias`, [channels]]);
        else {
          expected.push([`encoder.${b}.0.weight`, [channels, cin, 3, 3]], [`encoder.${b}.0.bias`, [channels]]);
          for (const s of ['1.weight', '1.bias', '1.running_mean', '1.running_var']) expected.push([`encoder.${b}.${s}`, [channels]]);
        }
      }
      assert.equal(m.graph.initializer.map((t) => [t.name, t.dims]), expected);
      for (const t of m.graph.initializer) {
        assert.is(t.data_type, 1);
        assert.is(t.raw_data!.length, 4 * t.dims.reduce((a, b) => a * b, 1), `${t.name} raw_data size`);
      }
      if (mode === 'keep') {
        // Kept tensors are the checkpoint's, bit for bit.
        for (const e of layout.params) assert.equal(f32(inits.get(e.name)!.raw_data!), params.slice(e.offset, e.offset + e.size), e.name);
        for (const e of layout.buffers) assert.equal(f32(inits.get(e.name)!.raw_data!), bn.buffers.slice(e.offset, e.offset + e.size), e.name);
        const bnNode = m.graph.node[1]!;
        assert.equal(bnNode.input, ['encoder.0.conv', 'encoder.0.1.weight', 'encoder.0.1.bias', 'encoder.0.1.running_mean', 'encoder.0.1.running_var']);
        assert.ok(Math.abs(bnNode.attribute![0]!.f! - 1e-5) < 1e-12, 'epsilon');
      } else {
        // Folded: W' = W * gamma / sqrt(var + eps), b' = (b - mean) * gamma / sqrt(var + eps) + beta, here from the raw vectors.
        for (let b = 0; b < 4; b++) {
          const at = (n: string): Float32Array => { const e = layout.params.find((x) => x.name === `encoder.${b}.${n}`)!; return params.subarray(e.offset, e.offset + e.size); };
          const buf = (n: string): Float32Array => { const e = layout.buffer(`encoder.${b}.1.${n}`); return bn.buffers.subarray(e.offset, e.offset + e.size); };
          const w = at('0.weight'), cb = at('0.bias'), g = at('1.weight'), beta = at('1.bias'), mu = buf('running_mean'), v = buf('running_var');
          const fw = f32(inits.get(`encoder.${b}.fused.weight`)!.raw_data!), fb = f32(inits.get(`encoder.${b}.fused.bias`)!.raw_data!);
          const per = w.length / channels;
          for (let o = 0; o < channels; o++) {
            const s = g[o]! / Math.sqrt(v[o]! + 1e-5);
            assert.ok(Math.abs(fb[o]! - ((cb[o]! - mu[o]!) * s + beta[o]!)) <= 1e-6 * (1 + Math.abs(fb[o]!)), `bias ${b}/${o}`);
            for (let k = 0; k < per; k++) assert.ok(Math.abs(fw[o * per + k]! - w[o * per + k]! * s) <= 1e-7 * (1 + Math.abs(fw[o * per + k]!)), `weight ${b}/${o}/${k}`);
          }
        }
      }
    }
  });

  tOrt(`onnxruntime runs the export to our eval-mode embeddings within 1e-4 (C=${channels}, ${size}x${size}, bn fold and keep)`, async () => {
    const n = 7;
    const x = randomImages(n, size);
    const ours = ourEmbeddings(state, x);
    for (const mode of ['fold', 'keep'] as const) {
      const z = await runOrt(exportOnnx(path, { bn: mode }), x);
      assert.equal([...z.dims], [n, E]);
      const rel = relErr(z.data, ours);
      console.log(`    C=${channels} ${size}x${size} bn ${mode}: relative error ${rel.toExponential(2)} (max |ort - ours| / max |ours|)`);
      assert.ok(rel < 1e-4, `bn ${mode}: relative error ${rel} >= 1e-4`);
    }
  });
}

tOrt('onnxruntime: in-memory state, fixed batch, and the lowest and highest opsets', async () => {
  const state = exportState(16, 28, 7);
  const x = randomImages(4, 28, 3);
  const ours = ourEmbeddings(state, x);
  for (const opts of [{ batch: 4 }, { opset: ONNX_OPSETS.min, bn: 'keep' as const }, { opset: ONNX_OPSETS.max }]) {
    const bytes = exportOnnx({ ...state, meta: { from: 'memory' } }, opts);
    const z = await runOrt(bytes, x);
    const rel = relErr(z.data, ours);
    assert.ok(rel < 1e-4, `${JSON.stringify(opts)}: relative error ${rel}`);
  }
  // A fixed batch of 4 refuses 3 images.
  const fixed = await ort!.InferenceSession.create(exportOnnx(state, { batch: 4 }));
  const x3 = randomImages(3, 28, 3);
  let refused = false;
  try {
    await fixed.run({ images: new ort!.Tensor('float32', x3.data as Float32Array, x3.shape) });
  } catch {
    refused = true;
  }
  assert.ok(refused, 'a fixed-batch model rejects another batch size');
});

test('options: IR version follows the opset; fixed batch; bad options and bad states are UserErrors that say what is wrong', () => {
  assert.equal([9, 10, 11, 13, 14, 15, 17, 18, 19, 21, 22, 23].map(irVersionForOpset), [4, 5, 6, 7, 7, 8, 8, 8, 9, 10, 10, 11]);
  const state = exportState(16, 28, 1);
  const m = buildOnnxModel(state, { opset: 13, batch: 5 });
  assert.is(m.ir_version, 7);
  assert.equal(dims(m.graph.input[0]!), [5, 1, 28, 28]);
  assert.equal(dims(m.graph.output[0]!), [5, 16]);
  const throwsUser = (f: () => unknown, re: RegExp): void => {
    try {
      f();
    } catch (e) {
      assert.is((e as Error).name, 'UserError', (e as Error).message);
      assert.match((e as Error).message, re);
      return;
    }
    assert.unreachable(`expected an error matching ${re}`);
  };
  throwsUser(() => exportOnnx(state, { opset: 8 }), /opset must be an integer from 9 to 23, got 8/);
  throwsUser(() => exportOnnx(state, { opset: 17.5 }), /opset must be an integer/);
  throwsUser(() => exportOnnx(state, { bn: 'batch' as 'fold' }), /bn must be "fold" or "keep", got "batch"/);
  throwsUser(() => exportOnnx(state, { batch: 0 }), /batch must be "dynamic" or a positive integer, got 0/);
  throwsUser(() => exportOnnx({ ...state, params: state.params.slice(1) }), /parameter vector has \d+ elements, the model needs \d+/);
  const nan = { ...state, params: state.params.slice() };
  nan[`params`][3] = NaN;
  throwsUser(() => exportOnnx(nan), /tensor encoder\.0\.0\.weight has a non-finite value \(NaN\) at index 3/);
  const neg = { ...state, bn: { buffers: state.bn.buffers.slice(), numBatchesTracked: 0 } };
  neg.bn.buffers[state.layout.buffer('encoder.2.1.running_var').offset + 4] = -1;
  throwsUser(() => exportOnnx(neg), /encoder\.2\.1\.running_var\[4\] = -1 makes running_var \+ eps <= 0/);
  throwsUser(() => decodeOnnx(new Uint8Array([0x0a, 0xff, 0xff, 0xff])), /not an ONNX model/);
  let missing: Error | null = null;
  try {
    exportOnnx(join(dir, 'nope.safetensors'));
  } catch (e) {
    missing = e as Error;
  }
  assert.ok(missing, 'a missing checkpoint throws');
  assert.is(missing!.name, 'SafetensorsError');
  assert.match(missing!.message, /nope\.safetensors: cannot read checkpoint/);
});

test.run();
