/**
 * `evometa evograd` as a user runs it (tiny settings on the embedded Omniglot): a run, a run
 * stopped by a real SIGINT and resumed to the end -- bit-identical parameters, angle and
 * checkpoints -- and clear errors (exit 2) for bad options, an existing run and a resumed run whose
 * options would change it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../lib/index.js';
import { getDevice } from '../lib/device/registry.js';
import { loadCheckpoint } from '../lib/model/checkpoint.js';
import { loadOmniglot } from '../lib/data/omniglot.js';
import { ROTATION_TEST_SHAPE, rotationTest } from '../lib/evograd/data.js';
import { readRunState } from '../lib/train/run-files.js';

const main = join(dirname(fileURLToPath(import.meta.url)), '../lib/cli/main.js');
const tmp = mkdtempSync(join(tmpdir(), 'evometa-evograd-cli-'));
const cache = join(tmp, 'cache');
const ARGS = ['evograd', '--preset', 'quick', '--channels', '4', '--way', '5', '--query', '3', '--val-way', '5', '--val-query', '3',
  '--steps', '8', '--val-every', '4', '--val-episodes', '2', '--seed', '2', '--cache', cache, '--no-progress', '--no-report'];

interface Run { code: number | null; signal: NodeJS.Signals | null; stderr: string }

function cli(args: string[]): Run {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8' });
  return { code: r.status, signal: r.signal, stderr: r.stderr };
}

function stepsLogged(out: string): number {
  const p = join(out, 'metrics.jsonl');
  return existsSync(p) ? readFileSync(p, 'utf8').split('\n').filter((l) => l.includes('"type":"step"')).length : 0;
}

function interrupted(args: string[], out: string, after: number): Promise<Run & { sentAt: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '', sentAt = -1;
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const poll = setInterval(() => {
      const n = stepsLogged(out);
      if (sentAt < 0 && n >= after) { sentAt = n; child.kill('SIGINT'); }
    }, 10);
    child.on('error', reject);
    child.on('exit', (code, signal) => { clearInterval(poll); resolve({ code, signal, stderr, sentAt }); });
  });
}

test('evograd CLI: a run; Ctrl-C saves and exits 130; --resume ends bit-identical to the uninterrupted run', async () => {
  const outA = join(tmp, 'a'), outB = join(tmp, 'b');
  const a = cli([...ARGS, '--test-episodes', '2', '--out', outA]);
  assert.is(a.code, 0, a.stderr);
  assert.match(a.stderr, /learned angle: -?\d+\.\d+ degrees/);
  const records = readFileSync(join(outA, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  // the test pass: the best checkpoint on the rotated and upright test episodes, as rotationTest computes them (test seed 0)
  const tests = records.filter((r) => r['type'] === 'test');
  assert.equal(tests.map((r) => [r['test'], r['angle'], r['episodes'], r['way'], r['shot'], r['query']]),
    [['rotated', 30, 2, ...Object.values(ROTATION_TEST_SHAPE)], ['upright', 0, 2, ...Object.values(ROTATION_TEST_SHAPE)]]);
  const best = loadCheckpoint(join(outA, 'best.safetensors'));
  const ss = Number(readRunState(join(outA, 'last.state.safetensors')).config['supersample']);
  const expect = rotationTest(getDevice(String(records[0]!['device'])), best, loadOmniglot({ imageSize: best.layout.config.imageSize * ss, cacheDir: cache }), { episodes: 2, seed: 0, angle: 30, supersample: ss });
  assert.equal(tests.map((r) => r['test_acc']), [expect.rotated.acc, expect.upright.acc]);
  assert.equal(tests.map((r) => r['test_loss']), [expect.rotated.loss, expect.upright.loss]);
  const steps = records.filter((r) => r['type'] === 'step');
  assert.is(steps.length, 8);
  assert.ok(steps.every((r) => typeof r['angle'] === 'number' && typeof r['hypergrad'] === 'number'), 'step records carry the angle and the hypergradient');
  assert.ok(records.some((r) => r['type'] === 'val' && typeof r['angle'] === 'number'));

  const b = await interrupted([...ARGS, '--out', outB], outB, 3);
  assert.ok(b.sentAt >= 3, `SIGINT was never sent: ${b.stderr}`);
  assert.is(b.signal, null, 'killed by the signal instead of handling it');
  assert.is(b.code, 130, b.stderr);
  assert.match(b.stderr, /--resume .*last\.safetensors/);
  const stoppedAt = readRunState(join(outB, 'last.state.safetensors')).loop.step;
  assert.ok(stoppedAt >= 3 && stoppedAt < 8, `stopped at step ${stoppedAt}`);
  const c = cli(['evograd', '--resume', join(outB, 'last.safetensors'), '--cache', cache, '--no-progress', '--no-report']);
  assert.is(c.code, 0, c.stderr);
  assert.match(c.stderr, new RegExp(`resuming at step ${stoppedAt}`));
  assert.is(stepsLogged(outB), 8, 'every step logged once after Ctrl-C and resume');
  const fa = loadCheckpoint(join(outA, 'last.safetensors')), fb = loadCheckpoint(join(outB, 'last.safetensors'));
  assert.equal(Array.from(fb.params), Array.from(fa.params));
  assert.equal(Array.from(fb.bn.buffers), Array.from(fa.bn.buffers));
  assert.is(fb.meta['angle_degrees'], fa.meta['angle_degrees']);
  assert.equal(Array.from(readRunState(join(outB, 'last.state.safetensors')).state.tensors['lambda']!),
    Array.from(readRunState(join(outA, 'last.state.safetensors')).state.tensors['lambda']!));
});

test('evograd CLI: clear errors for bad options, an existing run, a changed resumed run', () => {
  for (const [args, re] of [
    [['--copies', '1'], /--copies: must be >= 2/],
    [['--noise', 'uniform'], /--noise: expected one of sign, gaussian/],
    [['--task', 'mnist'], /--task: expected one of rotation/],
    [['--preset', 'nope'], /preset \(--preset\) must be one of rotation, quick/],
    [['--sigma', 'abc'], /--sigma: expected a number/],
    [['--unroll', '0'], /--unroll: must be >= 1/],
    [['--preset', 'rotation-unrolled', '--hyper-delta', '-2'], /hyperDelta \(--hyper-delta\) must be a finite number > 0, got -2/],
    [['--hyper-lr-schedule', 'wavy'], /--hyper-lr-schedule: expected one of constant, linear, cosine, exp/],
  ] as const) {
    const r = cli(['evograd', ...args, '--no-progress']);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  const outA = join(tmp, 'a');
  const again = cli([...ARGS, '--out', outA]);
  assert.is(again.code, 2);
  assert.match(again.stderr, /already holds a run.*--resume/);
  const changed = cli(['evograd', '--resume', join(outA, 'last.safetensors'), '--copies', '4', '--cache', cache, '--no-progress']);
  assert.is(changed.code, 2);
  assert.match(changed.stderr, /copies is 2 in the saved run/);
});

test.run();
