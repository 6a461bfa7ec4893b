/**
 * The prelude every training command shares (lib/cli/run.ts): planRun (preset or resumed
 * configuration, --show-config, the output directory and its "already holds a run" check) and
 * resumeMethod (loads the saved state; closes the method, and its workers, when that fails), and
 * loopOptions (--max-minutes, --checkpoint-every, --test-episodes with one set of bounds).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../lib/index.js';
import { getDevice } from '../lib/device/registry.js';
import { runLoop } from '../lib/train/loop.js';
import { BackpropMethod } from '../lib/methods/backprop/method.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { loopOptions, planRun, resumeMethod, type RunPlanSpec } from '../lib/cli/run.js';
import type { TrainMethod } from '../lib/train/method.js';

const tmp = mkdtempSync(join(tmpdir(), 'evometa-cli-run-'));
const runDir = join(tmp, 'run');
const src = (seed: number): SyntheticEpisodes => new SyntheticEpisodes({ classes: 10, way: 3, shot: 1, query: 2, imageSize: 12, seed });
const small = { model: { channels: 2, imageSize: 12, blocks: 2 }, train: { way: 3, shot: 1, query: 2 }, val: { way: 3, shot: 1, query: 2 }, episodes: 3, episodesPerEpoch: 2, valEpisodes: 2, lr: 1e-3, seed: 1 };
const made = BackpropMethod.create(small, { train: src(1), val: src(2) }, { device: getDevice('cpu-ts') });
await runLoop(made, { out: runDir, valEvery: 2, checkpointEvery: 2 });

const spec = (method: string, label: string): RunPlanSpec<{ from: string; steps?: unknown }> => ({
  method, label, outName: () => 'kind', fresh: () => ({ from: 'preset' }), resumed: (saved) => ({ from: 'saved', steps: (saved.config as { episodes?: unknown }).episodes }),
});

test('loopOptions: the three loop options parsed with one set of bounds, errors naming the option; absent ones stay absent', () => {
  assert.equal(loopOptions({}), { testEpisodes: 0 });
  assert.equal(loopOptions({ maxMinutes: '1.5', checkpointEvery: '20', testEpisodes: '1000' }), { maxMinutes: 1.5, checkpointEvery: 20, testEpisodes: 1000 });
  assert.throws(() => loopOptions({ maxMinutes: '-1' }), /--max-minutes/);
  assert.throws(() => loopOptions({ checkpointEvery: '2.5' }), /--checkpoint-every/);
  assert.throws(() => loopOptions({ testEpisodes: '1e12' }), /--test-episodes/);
  assert.throws(() => loopOptions({ testEpisodes: 'many' }), /--test-episodes/);
});

test('planRun: a resumed run keeps its directory and its saved configuration; a new one gets runs/NAME-TIME', () => {
  const r = planRun({ resume: runDir }, spec('backprop', 'a backprop run'));
  assert.ok(r);
  assert.equal(r.cfg, { from: 'saved', steps: 3 });
  assert.is(r.out, runDir);
  assert.is(r.saved?.method, 'backprop');
  assert.ok(r.statePath?.startsWith(runDir));
  const f = planRun({}, spec('backprop', 'a backprop run'));
  assert.ok(f);
  assert.equal(f.cfg, { from: 'preset' });
  assert.match(f.out, /^runs[\\/]kind-\d{4}-\d\d-\d\dT/);
  assert.is(f.statePath, undefined);
});

test('planRun refuses --preset with --resume, a run of another method (with the hint), and an --out that holds a run', () => {
  assert.throws(() => planRun({ resume: runDir, preset: 'quick' }, spec('backprop', 'a backprop run')), /--preset does not apply with --resume/);
  assert.throws(() => planRun({ resume: runDir }, { ...spec('es', 'an ES run'), hint: (m) => `(use --method ${m})` }), /a backprop run, not an ES run \(use --method backprop\)/);
  assert.throws(() => planRun({ out: runDir }, spec('backprop', 'a backprop run')), /already holds a run: continue it with --resume/);
  assert.throws(() => planRun({ resume: join(tmp, 'nothing-here') }, spec('backprop', 'a backprop run')), /nothing-here/);
});

test('planRun with --show-config prints the configuration as JSON and returns null', () => {
  const written: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => { written.push(s); return true; }) as typeof process.stdout.write;
  let r;
  try {
    r = planRun({ resume: runDir, showConfig: true }, spec('backprop', 'a backprop run'));
  } finally {
    process.stdout.write = write;
  }
  assert.is(r, null);
  assert.equal(JSON.parse(written.join('')), { from: 'saved', steps: 3 });
});

test('resumeMethod loads the state and returns the loop; when loading fails it closes the method first', async () => {
  const fresh = BackpropMethod.create(small, { train: src(1), val: src(2) }, { device: getDevice('cpu-ts') });
  const loop = await resumeMethod(fresh, planRun({ resume: runDir }, spec('backprop', 'a backprop run'))!.statePath);
  assert.is(loop?.step, 3);
  assert.equal(Array.from(fresh.params), Array.from(made.params));
  assert.is(await resumeMethod(fresh, undefined), undefined);
  let closed = 0;
  const failing = { loadState: () => { throw new Error('state does not fit'); }, close: async () => { closed++; } } as unknown as TrainMethod;
  let err: unknown;
  try { await resumeMethod(failing, planRun({ resume: runDir }, spec('backprop', 'a backprop run'))!.statePath); } catch (e) { err = e; }
  assert.match(String(err), /state does not fit/);
  assert.is(closed, 1);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
