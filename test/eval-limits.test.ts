/**
 * evometa eval bounds every count up front with an error naming the option (no "Invalid typed array
 * length"), refuses episodes whose activations would not fit, and prints data warnings on stderr.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../lib/device/cpu-ts/index.js';
import { UserError } from '../lib/errors.js';
import { EVAL_LIMITS, evaluateCheckpoint } from '../lib/eval/evaluate.js';
import { loadOmniglot } from '../lib/data/omniglot.js';
import { saveCheckpoint } from '../lib/model/checkpoint.js';
import { initialBnState, ProtoNetLayout } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';

const dir = mkdtempSync(join(tmpdir(), 'evometa-evlim-'));
const cli = join(dirname(fileURLToPath(import.meta.url)), '../lib/cli/main.js');
const layout = new ProtoNetLayout({ channels: 64, imageSize: 28 });
const ckpt = join(dir, 'c64.safetensors');
saveCheckpoint(ckpt, { layout, params: initParams(layout, 2), bn: initialBnState(layout) });

function userError(fn: () => unknown, ...fragments: string[]): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, UserError, `expected a UserError, got ${String(e)}`);
    for (const f of fragments) assert.ok((e as Error).message.includes(f), `message ${JSON.stringify((e as Error).message)} lacks ${JSON.stringify(f)}`);
    return;
  }
  assert.unreachable(`no error (expected ${fragments.join(', ')})`);
}

test('evaluateCheckpoint: episode counts and sizes are checked before the checkpoint is read', () => {
  const missing = join(dir, 'does-not-exist.safetensors');
  userError(() => evaluateCheckpoint({ checkpoint: missing, episodes: 1e12 }), `episodes must be an integer in [1, ${EVAL_LIMITS.episodes}], got 1000000000000`);
  userError(() => evaluateCheckpoint({ checkpoint: missing, episodes: 0 }), 'episodes must be');
  userError(() => evaluateCheckpoint({ checkpoint: missing, episodes: 2.5 }), 'episodes must be');
  userError(() => evaluateCheckpoint({ checkpoint: missing, way: 1 }), 'way must be an integer >= 2');
  userError(() => evaluateCheckpoint({ checkpoint: missing, shot: 25 }), 'shot 25 + query 15 = 40 exceeds the 20 drawings');
  userError(() => evaluateCheckpoint({ checkpoint: missing, query: -1 }), 'query must be an integer >= 1');
  userError(() => evaluateCheckpoint({ checkpoint: missing }), missing, 'cannot read checkpoint');
});

test('an episode whose activations exceed the bound is refused before any episode is built', () => {
  const dataset = loadOmniglot({ imageSize: 28, cacheDir: false });
  // 400 x 20 = 8000 images x 64 channels x 28 x 28 x 4 bytes = 1531 MiB > 1024 MiB
  userError(() => evaluateCheckpoint({ checkpoint: ckpt, dataset, way: 400, shot: 5, query: 15, episodes: 1 }),
    'way 400 x (shot 5 + query 15) = 8000 images through 64 channels at 28x28 needs 1531 MiB per activation, more than the 1024 MiB allowed');
  userError(() => evaluateCheckpoint({ checkpoint: ckpt, dataset, way: 1693, shot: 1, query: 1, episodes: 1 }), 'way 1693 exceeds the 1692 classes of split vinyals/test');
  const ok = evaluateCheckpoint({ checkpoint: ckpt, dataset, way: 5, shot: 1, query: 1, episodes: 2, device: 'cpu-ts' });
  assert.is(ok.episodes, 2);
});

function run(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, EVOMETA_CACHE: join(dir, 'cache') }, timeout: 120000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('evometa eval: every count option is bounded with an error naming the option (exit 2, no stack)', () => {
  for (const [args, pattern] of [
    [['--episodes', '1e12'], /^evometa: --episodes: must be <= 1000000, got 1000000000000$/m],
    [['--shot', '25'], /^evometa: --shot: must be <= 19, got 25$/m],
    [['--query', '1e9'], /^evometa: --query: must be <= 19, got 1000000000$/m],
    [['--way', '1'], /^evometa: --way: must be >= 2, got 1$/m],
    [['--seed', '1e20'], /^evometa: --seed: must be <= 4294967295/m],
    [['--way', '400'], /8000 images through 64 channels at 28x28 needs 1531 MiB per activation/],
    [['--way', '1e12'], /way 1000000000000 exceeds the 1692 classes/],
  ] as [string[], RegExp][]) {
    const r = run(['eval', '--checkpoint', ckpt, '--no-progress', ...args]);
    assert.is(r.code, 2, `${args.join(' ')}: exit ${r.code}: ${r.err}`);
    assert.match(r.err, pattern);
    assert.not.match(r.err, /\n\s+at |Invalid typed array length/);
    assert.is(r.out, '');
  }
});

test('evometa eval with an unwritable --cache prints one warning on stderr and still evaluates', () => {
  writeFileSync(join(dir, 'afile'), 'x');
  const cache = join(dir, 'afile', 'cache');
  const r = run(['eval', '--checkpoint', ckpt, '--cache', cache, '--episodes', '2', '--way', '5', '--shot', '1', '--query', '1', '--no-progress', '--device', 'cpu-ts']);
  assert.is(r.code, 0, r.err);
  const warnings = r.err.split('\n').filter((l) => l.startsWith('evometa: warning:'));
  assert.is(warnings.length, 1, r.err);
  assert.ok(warnings[0]!.includes(cache) && warnings[0]!.includes('ENOTDIR'), warnings[0]);
  assert.is((JSON.parse(r.out) as { episodes: number }).episodes, 2);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
