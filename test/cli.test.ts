/** The evometa command as a user runs it: eval on a fresh checkpoint, and clear errors for user mistakes. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { writeSafetensors } from '../lib/io/safetensors.js';
import '../lib/index.js';
import { getDevice } from '../lib/device/registry.js';
import { DirectOps } from '../lib/ops/api.js';
import { episodeLoss } from '../lib/model/protonet.js';
import { loadCheckpoint, saveCheckpoint } from '../lib/model/checkpoint.js';
import { loadOmniglot } from '../lib/data/omniglot.js';
import { EpisodeSampler } from '../lib/data/sampler.js';
import { getSplit } from '../lib/data/splits.js';

const cli = join(dirname(fileURLToPath(import.meta.url)), '../lib/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'evometa-cli-'));
const env = { ...process.env, EVOMETA_CACHE: join(dir, 'cache') };

function run(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env, timeout: 120000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const layout = new ProtoNetLayout({ channels: 8, imageSize: 28 });
const ckpt = join(dir, 'fresh.safetensors');
saveCheckpoint(ckpt, { layout, params: initParams(layout, 1), bn: initialBnState(layout) });

test('eval prints one JSON line with accuracy, std, ci95, episodes, way, shot and the BN mode', () => {
  const r = run(['eval', '--checkpoint', ckpt, '--episodes', '12', '--way', '5', '--shot', '1', '--query', '3', '--seed', '4', '--no-progress']);
  assert.is(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  assert.is(lines.length, 1);
  const j = JSON.parse(lines[0]!) as Record<string, number | string>;
  for (const k of ['accuracy', 'std', 'ci95', 'episodes', 'way', 'shot', 'bn']) assert.ok(k in j, `missing ${k}`);
  assert.is(j['episodes'], 12);
  assert.is(j['shot'], 1);
  assert.is(j['bn'], 'running');
  // The same 12 episodes scored here (same device, deterministic): accuracy is their mean query
  // accuracy exactly, std their sample standard deviation; an untrained model has no accuracy to bound.
  const want = episodeAccuracies(12, { way: 5, shot: 1, query: 3, seed: 4 });
  const mean = want.reduce((a, b) => a + b, 0) / want.length;
  assert.is(j['accuracy'], mean);
  const std = Math.sqrt(want.reduce((a, b) => a + (b - mean) ** 2, 0) / (want.length - 1));
  assert.ok(Math.abs((j['std'] as number) - std) <= 1e-12 * Math.max(1, std), `std ${j['std']} vs ${std}`);
  assert.ok(Math.abs((j['ci95'] as number) - (1.96 * (j['std'] as number)) / Math.sqrt(12)) < 1e-12);
  const again = run(['eval', '--checkpoint', ckpt, '--episodes', '12', '--way', '5', '--shot', '1', '--query', '3', '--seed', '4', '--no-progress']);
  assert.is(again.out, r.out, 'same seed, same result');
  const batch = JSON.parse(run(['eval', '--checkpoint', ckpt, '--episodes', '3', '--bn', 'batch', '--no-progress']).out) as { bn: string };
  assert.is(batch.bn, 'batch');
});

/**
 * Per-episode query accuracy of the fresh checkpoint on vinyals/test (the split eval picks for a 28x28
 * model), BN running statistics, euclidean: argmax of the logits against the labels, counted here.
 */
function episodeAccuracies(episodes: number, spec: { way: number; shot: number; query: number; seed: number }): number[] {
  const ds = loadOmniglot({ imageSize: 28, cacheDir: env.EVOMETA_CACHE });
  const sampler = new EpisodeSampler(getSplit(ds, 'vinyals', 'test'), spec);
  const ops = new DirectOps(getDevice());
  const { params, bn } = loadCheckpoint(ckpt);
  return Array.from({ length: episodes }, (_, i) => {
    const ep = sampler.episode(i);
    const { logits } = episodeLoss(ops, layout, params, bn, ep, { bn: 'running', distance: 'euclidean' });
    const [nq, way] = logits.shape as [number, number];
    let right = 0;
    for (let q = 0; q < nq; q++) {
      const row = Array.from(logits.data.subarray(q * way, (q + 1) * way));
      if (row.indexOf(Math.max(...row)) === ep.queryLabels[q]) right++;
    }
    return right / nq;
  });
}

function expectUserError(args: string[], pattern: RegExp): void {
  const r = run(args);
  assert.ok(r.code !== 0 && r.code !== null, `expected a non-zero exit for ${args.join(' ')}`);
  assert.match(r.err, pattern);
  assert.not.match(r.err, /\n\s+at /, 'no stack trace for a user mistake');
}

test('user mistakes give a clear message, a non-zero exit and no stack trace', () => {
  expectUserError(['eval', '--checkpoint', join(dir, 'nope.safetensors')], /nope\.safetensors: cannot read checkpoint/);
  expectUserError(['eval', '--checkpoint', ckpt, '--way', '5000'], /way 5000 exceeds the 1692 classes of split vinyals\/test/);
  expectUserError(['eval', '--checkpoint', ckpt, '--shot', '10', '--query', '11'], /exceeds the 20 drawings/);
  expectUserError(['eval', '--checkpoint', ckpt, '--episodes', 'many'], /--episodes: expected an integer, got "many"/);
  const corrupt = join(dir, 'corrupt.safetensors');
  writeFileSync(corrupt, 'not a checkpoint at all');
  expectUserError(['eval', '--checkpoint', corrupt], /corrupt\.safetensors: header length/);
  const bad = join(dir, 'badshape.safetensors');
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const e of layout.params) t[e.name] = { shape: e.name === 'encoder.1.0.weight' ? [8, 8, 3, 2] : e.shape, data: new Float32Array(e.name === 'encoder.1.0.weight' ? 8 * 8 * 6 : e.size) };
  writeSafetensors(bad, t, { model: JSON.stringify(layout.config) });
  expectUserError(['eval', '--checkpoint', bad], /encoder\.1\.0\.weight has shape \[8, 8, 3, 2\], expected \[8, 8, 3, 3\]/);
  expectUserError(['eval', '--checkpoint', ckpt, '--data', join(dir, 'no-such-dir')], /no-such-dir/);
});

test.run();
