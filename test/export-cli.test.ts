/** `evometa export` as a user runs it: default and explicit outputs, the JSON summary, and clear errors. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveCheckpoint } from '../lib/model/checkpoint.js';
import { decodeOnnx } from '../lib/export/onnx.js';
import { exportState } from './export-fixtures.js';

const cli = join(dirname(fileURLToPath(import.meta.url)), '../lib/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'evometa-export-cli-'));
const ckpt = join(dir, 'best.safetensors');
saveCheckpoint(ckpt, exportState(16, 28), { step: 50 });

function run(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [cli, 'export', ...args], { encoding: 'utf8', timeout: 120000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('export --format onnx writes beside the checkpoint by default and prints a JSON summary', () => {
  const r = run(['--format', 'onnx', ckpt]);
  assert.is(r.code, 0, r.err);
  const j = JSON.parse(r.out.trim()) as Record<string, unknown>;
  assert.is(j['out'], join(dir, 'best.onnx'));
  assert.is(j['bn'], 'fold');
  assert.is(j['opset'], 17);
  assert.is(j['nodes'], 13);
  assert.equal(j['input'], { name: 'images', shape: ['N', 1, 28, 28] });
  assert.equal(j['output'], { name: 'embeddings', shape: ['N', 16] });
  const m = decodeOnnx(readFileSync(join(dir, 'best.onnx')));
  assert.is(m.graph.node.length, 13);
  assert.is(j['bytes'], readFileSync(join(dir, 'best.onnx')).length);
});

test('export --format onnx --bn keep --opset 13 --batch 8 --out FILE', () => {
  const out = join(dir, 'sub', 'keep.onnx');
  const r = run(['--format', 'onnx', '--bn', 'keep', '--opset', '13', '--batch', '8', '--out', out, ckpt]);
  assert.is(r.code, 0, r.err);
  const m = decodeOnnx(readFileSync(out));
  assert.is(m.ir_version, 7);
  assert.is(m.opset_import[0]!.version, 13);
  assert.is(m.graph.node.filter((n) => n.op_type === 'BatchNormalization').length, 4);
  assert.is(m.graph.input[0]!.type.tensor_type.shape.dim[0]!.dim_value, 8);
});

test('export --format pytorch writes a .py module', () => {
  const r = run(['--format', 'pytorch', ckpt]);
  assert.is(r.code, 0, r.err);
  const j = JSON.parse(r.out.trim()) as Record<string, unknown>;
  assert.is(j['out'], join(dir, 'best.py'));
  const py = readFileSync(join(dir, 'best.py'), 'utf8');
  assert.match(py, /^def load\(path, device="cpu"\):$/m);
  assert.match(py, /^class ConvNet4\(nn\.Module\):$/m);
});

function expectUserError(args: string[], pattern: RegExp): void {
  const r = run(args);
  assert.is(r.code, 2, `exit code for ${args.join(' ')}: ${r.err}`);
  assert.match(r.err, pattern);
  assert.not.match(r.err, /\n\s+at /, 'no stack trace for a user mistake');
}

test('user mistakes give a clear message, exit 2 and no stack trace', () => {
  expectUserError(['--format', 'tflite', ckpt], /--format: expected one of onnx, pytorch, got "tflite"/);
  expectUserError(['--format', 'onnx', '--opset', '5', ckpt], /--opset: must be >= 9, got 5/);
  expectUserError(['--format', 'onnx', '--opset', '99', ckpt], /--opset: must be <= 23, got 99/);
  expectUserError(['--format', 'onnx', '--batch', 'lots', ckpt], /--batch: expected an integer, got "lots"/);
  expectUserError(['--format', 'onnx', '--bn', 'batch', ckpt], /--bn: expected one of fold, keep, got "batch"/);
  expectUserError(['--format', 'pytorch', '--opset', '13', ckpt], /--opset applies to --format onnx only/);
  expectUserError(['--format', 'onnx', join(dir, 'missing.safetensors')], /missing\.safetensors: cannot read checkpoint/);
  expectUserError(['--format', 'onnx', '--out', join(ckpt, 'x.onnx'), ckpt], /--out .*best\.safetensors\/x\.onnx: cannot write/);
  expectUserError(['--format', 'onnx', '--out', ckpt, ckpt], /would overwrite the checkpoint/);
  const r = run([ckpt]);
  assert.ok(r.code !== 0, 'missing --format fails');
  assert.match(r.err, /required option '--format <f>' not specified/);
  assert.ok(!existsSync(join(dir, 'missing.onnx')));
});

test.run();
