/**
 * Backprop on real Omniglot (the embedded copy): a short run learns, and the
 * CLI's Ctrl-C + --resume continues exactly where an uninterrupted run goes.
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
import { loadOmniglot } from '../lib/data/omniglot.js';
import { getSplit } from '../lib/data/splits.js';
import { EpisodeSampler } from '../lib/data/sampler.js';
import { loadCheckpoint } from '../lib/model/checkpoint.js';
import { BackpropMethod } from '../lib/methods/backprop/method.js';
import { runLoop } from '../lib/train/loop.js';
import { readRunState } from '../lib/train/run-files.js';

const tmp = mkdtempSync(join(tmpdir(), 'evometa-bp-omniglot-'));
const cache = join(tmp, 'cache');
const main = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'cli', 'main.js');

test('a short backprop run on Omniglot (C=8, 28x28) lowers the training loss and beats the untrained model on validation', async () => {
  const ds = loadOmniglot({ imageSize: 28, cacheDir: cache });
  const seed = 11;
  const train = new EpisodeSampler(getSplit(ds, 'vinyals', 'train'), { way: 20, shot: 5, query: 5, seed });
  const val = new EpisodeSampler(getSplit(ds, 'vinyals', 'val'), { way: 5, shot: 5, query: 15, seed });
  const t = BackpropMethod.create({
    model: { channels: 8, imageSize: 28 }, train: { way: 20, shot: 5, query: 5 }, episodes: 60, episodesPerEpoch: 20, valEpisodes: 30, seed,
  }, { train, val }, { device: getDevice() });
  const losses: number[] = [], vals: number[] = [];
  const t0 = Date.now();
  const r = await runLoop(t, { valEvery: 20, onStep: (s) => losses.push(s.loss), onVal: (v) => vals.push(v.score) });
  const secs = (Date.now() - t0) / 1000;
  const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
  const first = mean(losses.slice(0, 20)), lastL = mean(losses.slice(-20));
  const untrained = vals[0]!, lastV = vals[vals.length - 1]!;
  console.log(`  omniglot C=8 60 episodes of 20-way 5-shot 5-query on ${t.device.name} in ${secs.toFixed(1)} s: train loss ${first.toFixed(3)} -> ${lastL.toFixed(3)}, ` +
    `val acc (5-way 5-shot, 30 episodes) untrained ${untrained.toFixed(3)} -> ${lastV.toFixed(3)}`);
  assert.is(vals.length, 4, 'validations at steps 0, 20, 40, 60');
  assert.ok(lastL < 0.85 * first, `train loss ${first} -> ${lastL}`);
  assert.ok(lastV > untrained + 0.1, `validation accuracy ${untrained} -> ${lastV}`);
  // the best checkpoint is the first highest validation (step 0 = the untrained model, then each epoch)
  const k = vals.indexOf(Math.max(...vals));
  assert.equal([r.loop.bestScore, r.loop.bestStep], [vals[k], [0, 20, 40, 60][k]]);
});

interface Run { code: number | null; signal: NodeJS.Signals | null; stderr: string }

const ARGS = ['train', '--method', 'backprop', '--preset', 'quick', '--channels', '8', '--way', '10', '--query', '5', '--steps', '120',
  '--val-every', '40', '--val-episodes', '5', '--seed', '3', '--cache', cache, '--no-progress'];

function cli(args: string[]): Run {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8' });
  return { code: r.status, signal: r.signal, stderr: r.stderr };
}

function episodesLogged(out: string): number {
  const p = join(out, 'metrics.jsonl');
  if (!existsSync(p)) return 0;
  return readFileSync(p, 'utf8').split('\n').filter((l) => l.includes('"type":"step"')).length;
}

/** Start the CLI, send SIGINT once it has logged `after` episodes, wait for it to exit. */
function interrupted(args: string[], out: string, after: number): Promise<Run & { sentAt: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '', sentAt = -1;
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const poll = setInterval(() => {
      const n = episodesLogged(out);
      if (sentAt < 0 && n >= after) {
        sentAt = n;
        child.kill('SIGINT');
      }
    }, 10);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearInterval(poll);
      resolve({ code, signal, stderr, sentAt });
    });
  });
}

test('CLI: Ctrl-C saves and exits cleanly; --resume then ends bit-identical to an uninterrupted run', async () => {
  if (!existsSync(main)) throw new Error(`${main} is not built (run npx tsc -p .)`);
  const outA = join(tmp, 'a'), outB = join(tmp, 'b');
  const a = cli([...ARGS, '--out', outA]);
  assert.is(a.code, 0, a.stderr);

  const b = await interrupted([...ARGS, '--out', outB], outB, 15);
  assert.ok(b.sentAt >= 15, `SIGINT was never sent (run ended first?): ${b.stderr}`);
  assert.is(b.signal, null, 'killed by the signal instead of handling it');
  assert.is(b.code, 130, b.stderr);
  assert.match(b.stderr, /interrupted at step \d+/);
  assert.match(b.stderr, /--resume .*last\.safetensors/);
  const stoppedAt = readRunState(join(outB, 'last.state.safetensors')).loop.step;
  assert.ok(stoppedAt >= 15 && stoppedAt < 120, `stopped at episode ${stoppedAt}`);
  assert.is(episodesLogged(outB), stoppedAt, 'every trained episode is logged, and only those');

  const c = cli(['train', '--method', 'backprop', '--resume', join(outB, 'last.safetensors'), '--cache', cache, '--no-progress']);
  assert.is(c.code, 0, c.stderr);
  assert.match(c.stderr, new RegExp(`resuming at step ${stoppedAt}`));
  const fa = loadCheckpoint(join(outA, 'last.safetensors')), fb = loadCheckpoint(join(outB, 'last.safetensors'));
  assert.is(fb.meta['step'], 120);
  assert.is(episodesLogged(outB), 120, 'every step logged once after Ctrl-C + resume');
  assert.equal(Array.from(fb.params), Array.from(fa.params));
  assert.equal(Array.from(fb.bn.buffers), Array.from(fa.bn.buffers));
  const ba = loadCheckpoint(join(outA, 'best.safetensors')), bb = loadCheckpoint(join(outB, 'best.safetensors'));
  assert.equal([bb.meta['step'], bb.meta['val_acc']], [ba.meta['step'], ba.meta['val_acc']]);
  assert.equal(Array.from(bb.params), Array.from(ba.params));
});

test('CLI: refuses to overwrite a run, an option that would change a resumed run, and ES-only options', () => {
  const outA = join(tmp, 'a');
  const again = cli([...ARGS, '--out', outA]);
  assert.is(again.code, 2);
  assert.match(again.stderr, /already holds a run.*--resume/);
  const changed = cli(['train', '--method', 'backprop', '--resume', join(outA, 'last.safetensors'), '--way', '20', '--cache', cache, '--no-progress']);
  assert.is(changed.code, 2);
  assert.match(changed.stderr, /train\.way is 10 in the saved run/);
  const es = cli(['train', '--method', 'backprop', '--pop', '8', '--no-progress']);
  assert.is(es.code, 2);
  assert.match(es.stderr, /--pop does not apply to --method backprop/);
  const missing = cli(['train', '--method', 'backprop', '--resume', join(tmp, 'nope.safetensors'), '--no-progress']);
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /does not exist/);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
