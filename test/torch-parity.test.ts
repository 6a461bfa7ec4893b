/** A checkpoint saved by evometa loads unchanged in PyTorch and gives the same embeddings (optional: needs torch). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { DirectOps } from '../lib/ops/api.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { embed } from '../lib/model/protonet.js';
import { saveCheckpoint } from '../lib/model/checkpoint.js';
import { Rng } from '../lib/rng/philox.js';
import { randTensor } from './helpers/random.js';
import { needs, pythonModules, runPython } from './helpers/peers.js';

const script = join(dirname(fileURLToPath(import.meta.url)), '../../test/python/torch_protonet.py');
const withTorch = needs(pythonModules(['torch', 'safetensors', 'numpy']), 'torch-parity.test: PyTorch loads our checkpoints');

for (const [channels, size] of [[16, 28], [32, 32]] as const) {
  withTorch(`PyTorch loads the checkpoint and matches embeddings (C=${channels}, ${size}x${size}, eval and train BN)`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'evometa-torch-'));
    const layout = new ProtoNetLayout({ channels, imageSize: size });
    const params = initParams(layout, 42);
    const rng = new Rng(99);
    // Non-trivial BN affine parameters and running statistics, so every tensor matters.
    for (const e of layout.params) if (e.name.includes('.1.')) for (let i = 0; i < e.size; i++) params[e.offset + i] = 0.5 + rng.uniform();
    const bn = initialBnState(layout);
    for (const e of layout.buffers) for (let i = 0; i < e.size; i++) bn.buffers[e.offset + i] = e.name.endsWith('var') ? 0.5 + rng.uniform() : rng.uniform() - 0.5;
    bn.numBatchesTracked = 3;
    const ckpt = join(dir, 'model.safetensors');
    saveCheckpoint(ckpt, { layout, params, bn });
    const n = 6;
    const x = randTensor(rng, [n, 1, size, size], 'float32', 0, 1);
    writeFileSync(join(dir, 'x.f32'), x.data);
    const ops = new DirectOps(getDevice('cpu-ts'));
    for (const mode of ['eval', 'train'] as const) {
      runPython([script, ckpt, join(dir, 'x.f32'), String(n), String(size), join(dir, `z-${mode}.f32`), mode]);
      const theirs = new Float32Array(Uint8Array.prototype.slice.call(readFileSync(join(dir, `z-${mode}.f32`))).buffer);
      const ours = embed(ops, layout, params, bn, x, { bn: mode === 'eval' ? 'running' : 'batch' });
      assert.is(theirs.length, ours.size);
      let num = 0, den = 0;
      for (let i = 0; i < ours.size; i++) { num += (ours.data[i]! - theirs[i]!) ** 2; den += theirs[i]! ** 2; }
      const rel = Math.sqrt(num / den);
      assert.ok(rel < 1e-4, `${mode}: relative error ${rel} >= 1e-4`);
    }
  });
}

test.run();
