/**
 * ES on real Omniglot (the embedded copy): a short run beats its starting
 * validation accuracy by a clear margin; `evometa train` end to end: Ctrl-C
 * saves and exits cleanly, kill -9 then --resume reproduces the uninterrupted
 * run bit for bit, bad options are refused with exit code 2.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../lib/index.js';
import { getDevice } from '../lib/device/registry.js';
import { loadCheckpoint } from '../lib/model/checkpoint.js';
import { ProtoNetEsMethod } from '../lib/methods/protonet-es/method.js';
import { omniglotSources } from '../lib/methods/protonet/data.js';
import { resolveEsConfig } from '../lib/methods/protonet-es/config.js';
import { runLoop } from '../lib/train/loop.js';
import { readRunState } from '../lib/train/run-files.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'cli', 'main.js');

test('ES on real Omniglot: 150 steps (C 8, pop 16) lift 5-way 5-shot validation accuracy by more than 10 points', async () => {
  const cfg = resolveEsConfig({
    model: { channels: 8, imageSize: 28 }, pop: 16, shards: 1, lr: 2, sigma: 0.01, steps: 150, seed: 0,
    train: { way: 5, shot: 2, query: 3 }, val: { way: 5, shot: 5, query: 5 }, valEvery: 50, valEpisodes: 30, checkpointEvery: 0,
  });
  const dev = getDevice();
  const t = await ProtoNetEsMethod.create(cfg, omniglotSources(cfg), { device: dev.name });
  const vals: Array<{ step: number; acc: number }> = [];
  const t0 = Date.now();
  await runLoop(t, { valEvery: cfg.valEvery, onVal: (v, step) => vals.push({ step, acc: v.score }) });
  await t.close();
  const start = vals[0]!.acc, end = vals[vals.length - 1]!.acc;
  console.log(`  [${dev.name}] validation ${vals.map((v) => `${v.step}:${(100 * v.acc).toFixed(1)}%`).join(' ')} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.is(vals[0]!.step, 0);
  assert.is(vals[vals.length - 1]!.step, 150);
  assert.ok(end > start + 0.10, `start ${start}, end ${end}`);
});

function cli(args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'train', ...args], { encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr };
}

const SMALL = ['--device', 'cpu-ts', '--channels', '4', '--pop', '8', '--shards', '2', '--workers', '2', '--way', '5', '--shot', '1', '--query', '1',
  '--val-every', '0', '--checkpoint-every', '5', '--seed', '3', '--no-progress'];

/** Number of elements whose bits differ (0: bitwise equal). */
function diffBits(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.max(a.length, b.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let n = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) n++;
  return n;
}

async function waitForStep(metrics: string, step: number, child: ReturnType<typeof spawn>): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the run exited (code ${child.exitCode}) before step ${step}`);
    if (existsSync(metrics) && readFileSync(metrics, 'utf8').includes(`"type":"step","step":${step},`)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

function exited(child: ReturnType<typeof spawn>): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
}

test('evometa train (es): kill -9 then --resume, and Ctrl-C then --resume, reproduce the uninterrupted run exactly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-es-cli-'));
  try {
    const steps = ['--steps', '80'];
    const full = cli([...SMALL, ...steps, '--out', join(dir, 'full')]);
    assert.is(full.code, 0, full.stderr);
    const ref = loadCheckpoint(join(dir, 'full', 'last.safetensors'));
    assert.is(ref.meta['step'], 80);

    // kill -9 in the middle
    const k = spawn(process.execPath, [CLI, 'train', ...SMALL, ...steps, '--out', join(dir, 'killed')], { stdio: 'ignore' });
    await waitForStep(join(dir, 'killed', 'metrics.jsonl'), 12, k);
    k.kill('SIGKILL');
    const ke = await exited(k);
    assert.is(ke.signal, 'SIGKILL');
    const at = readRunState(join(dir, 'killed', 'last.state.safetensors')).loop.step;
    assert.ok(at >= 10 && at < 80, `killed run checkpoint at step ${at}`);
    const resumed = cli(['--no-progress', '--resume', join(dir, 'killed', 'last.safetensors')]);
    assert.is(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`resuming at step ${at}`));
    const r = loadCheckpoint(join(dir, 'killed', 'last.safetensors'));
    assert.is(r.meta['step'], 80);
    assert.is(diffBits(r.params, ref.params), 0, 'parameters after kill -9 + resume');
    assert.is(diffBits(r.bn.buffers, ref.bn.buffers), 0, 'BN running statistics after kill -9 + resume');
    assert.is(r.bn.numBatchesTracked, 80);
    const stepsLogged = readFileSync(join(dir, 'killed', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; step: number })
      .filter((x) => x.type === 'step').map((x) => x.step);
    assert.equal(stepsLogged, [...Array(80).keys()], 'metrics hold every step once after kill -9 + resume');

    // Ctrl-C: saves and exits cleanly
    const c = spawn(process.execPath, [CLI, 'train', ...SMALL, ...steps, '--out', join(dir, 'ctrlc')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    await waitForStep(join(dir, 'ctrlc', 'metrics.jsonl'), 7, c);
    c.kill('SIGINT');
    const ce = await exited(c);
    assert.is(ce.code, 130, err);
    assert.match(err, /interrupted at step \d+/);
    const saved = readRunState(join(dir, 'ctrlc', 'last.state.safetensors')).loop.step;
    assert.ok(saved >= 8 && saved < 80, `Ctrl-C checkpoint at step ${saved}`);
    const again = cli(['--no-progress', '--resume', join(dir, 'ctrlc'), '--workers', '1']);
    assert.is(again.code, 0, again.stderr);
    assert.is(diffBits(loadCheckpoint(join(dir, 'ctrlc', 'last.safetensors')).params, ref.params), 0, 'parameters after Ctrl-C + resume (1 worker)');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('evometa train (es): invalid options exit with code 2 and a clear message', () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-es-cli-'));
  try {
    const cases: Array<[string[], RegExp]> = [
      [['--sigma', '0'], /sigma \(--sigma\) must be a finite number > 0, got 0/],
      [['--pop', '7', '--shards', '1', '--antithetic'], /even number of members with antithetic sampling/],
      [['--pop', '8', '--workers', '9'], /9 workers for pop 8/],
      [['--preset', 'nope'], /unknown preset "nope"; presets: quick, paper-t1/],
      [['--estimator', 'fd', '--channels', '64'], /estimator fd needs a population of parameters \+ 1/],
      [['--image-size', '30'], /--image-size: expected 28 or 32, got 30/],
      [['--pop', '1000000000'], /pop \(--pop\) must be at most 1048576/],
      [['--val-episodes', '1000000'], /would hold .* GiB of validation episodes/],
      [['--lr-schedule', 'cosine', '--lr-warmup', 'x'], /--lr-warmup: expected an integer/],
      [['--method', 'backprop', '--pop', '8'], /--pop does not apply to --method backprop/],
    ];
    for (const [args, re] of cases) {
      const r = cli([...args, '--out', join(dir, 'x'), '--no-progress']);
      assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
