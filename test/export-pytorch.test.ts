/** PyTorch export: the written module imports in Python, loads our checkpoint strictly and gives our eval-mode embeddings (optional: needs torch). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { saveCheckpoint } from '../lib/model/checkpoint.js';
import { exportPytorch } from '../lib/export/pytorch.js';
import { relErr } from './helpers/random.js';
import { pythonMissing, runPython } from './helpers/python.js';
import { exportState, ourEmbeddings, randomImages } from './export-fixtures.js';

const script = join(dirname(fileURLToPath(import.meta.url)), '../../test/python/load_exported.py');
const missing = pythonMissing(['torch', 'safetensors', 'numpy']);
if (missing) console.log(`  export-pytorch: skipping the Python checks: ${missing}`);
const tTorch = missing ? test.skip : test;
const dir = mkdtempSync(join(tmpdir(), 'evometa-pt-'));

test('the PyTorch module names the architecture of the checkpoint and has a strict loader', () => {
  const state = exportState(32, 32);
  const path = join(dir, 'arch.safetensors');
  saveCheckpoint(path, state);
  const py = exportPytorch(path);
  for (const line of ['CHANNELS = 32', 'IN_CHANNELS = 1', 'IMAGE_SIZE = 32', 'BLOCKS = 4', 'BN_EPS = 0.00001', 'BN_MOMENTUM = 0.1', 'EMBEDDING_SIZE = 128', 'SOURCE_CHECKPOINT = "arch.safetensors"']) {
    assert.ok(py.includes(`\n${line}\n`), `missing ${line}`);
  }
  assert.match(py, 'load_state_dict(load_file(path, device=str(device)), strict=True)');
  assert.match(py, 'return model.to(device).eval()');
  assert.match(py, 'nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)');
  assert.is(exportPytorch(state).includes('SOURCE_CHECKPOINT = None'), true, 'an in-memory state has no source file');
});

for (const [channels, size] of [[16, 28], [32, 32]] as const) {
  tTorch(`Python imports the exported module, loads the checkpoint strictly and matches our embeddings (C=${channels}, ${size}x${size})`, () => {
    const state = exportState(channels, size, 11);
    const ckpt = join(dir, `c${channels}.safetensors`);
    saveCheckpoint(ckpt, state, { step: 9 });
    const mod = join(dir, `convnet4_c${channels}.py`);
    writeFileSync(mod, exportPytorch(ckpt));
    const n = 6;
    const x = randomImages(n, size, 21);
    writeFileSync(join(dir, 'x.f32'), x.data);
    const out = join(dir, `z${channels}.f32`);
    const info = JSON.parse(runPython([script, mod, ckpt, join(dir, 'x.f32'), String(n), out]).trim()) as
      { training: boolean; shape: number[]; embeddingSize: number; keys: string[] };
    assert.is(info.training, false, 'eval mode');
    assert.equal(info.shape, [n, state.layout.embeddingSize]);
    assert.is(info.embeddingSize, state.layout.embeddingSize);
    const expectKeys = [...state.layout.params.map((e) => e.name), ...state.layout.buffers.map((e) => e.name),
      ...[0, 1, 2, 3].map((i) => `encoder.${i}.1.num_batches_tracked`)].sort();
    assert.equal(info.keys, expectKeys);
    const theirs = new Float32Array(Uint8Array.prototype.slice.call(readFileSync(out)).buffer);
    const rel = relErr(theirs, ourEmbeddings(state, x));
    console.log(`    C=${channels} ${size}x${size}: relative error ${rel.toExponential(2)} (max |torch - ours| / max |ours|)`);
    assert.ok(rel < 1e-4, `relative error ${rel} >= 1e-4`);
  });
}

tTorch('the exported loader refuses a checkpoint of another architecture, naming it', () => {
  const a = join(dir, 'a16.safetensors'), b = join(dir, 'b32.safetensors');
  saveCheckpoint(a, exportState(16, 28));
  saveCheckpoint(b, exportState(32, 28));
  const mod = join(dir, 'convnet4_a16.py');
  writeFileSync(mod, exportPytorch(a));
  const r = spawnSync('python3', ['-c', `import importlib.util as u; s = u.spec_from_file_location("m", ${JSON.stringify(mod)}); m = u.module_from_spec(s); s.loader.exec_module(m); m.load(${JSON.stringify(b)})`], { encoding: 'utf8', timeout: 120000 });
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /b32\.safetensors: model channels is 32, this module was written for 16/);
});

test.run();
