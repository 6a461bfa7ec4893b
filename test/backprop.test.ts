/** The backprop method on the one training loop, on a synthetic episode source: config, learning, checkpoints, metrics, exact resume. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../lib/index.js';
import { getDevice } from '../lib/device/registry.js';
import { loadCheckpoint } from '../lib/model/checkpoint.js';
import { MetricsLog, truncateMetrics } from '../lib/train/metrics.js';
import { runLoop, type LoopOptions } from '../lib/train/loop.js';
import { readRunState, resumeConfig, statePathOf } from '../lib/train/run-files.js';
import { writeSafetensors, readSafetensors } from '../lib/io/safetensors.js';
import { BackpropMethod, evaluateEpisodes } from '../lib/methods/backprop/method.js';
import { resolveBackpropConfig, BACKPROP_PRESETS, BACKPROP_RESUME_CHANGEABLE, type BackpropConfig, type BackpropConfigInput } from '../lib/methods/backprop/config.js';
import type { ProtoNetSources } from '../lib/methods/protonet/data.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { backpropInput } from '../lib/cli/train-backprop.js';
import type { TrainCliOptions } from '../lib/cli/train.js';

const device = getDevice();
const tmp = mkdtempSync(join(tmpdir(), 'evometa-backprop-'));

function sources(seed = 1): ProtoNetSources {
  return {
    train: new SyntheticEpisodes({ classes: 30, way: 5, shot: 2, query: 3, imageSize: 16, seed, noise: 0.6 }),
    val: new SyntheticEpisodes({ classes: 30, way: 5, shot: 2, query: 3, imageSize: 16, seed: seed + 100, noise: 0.6 }),
  };
}

const small: BackpropConfigInput = {
  model: { channels: 4, imageSize: 16, blocks: 3 }, train: { way: 5, shot: 2, query: 3 }, val: { way: 5, shot: 2, query: 3 },
  episodes: 25, episodesPerEpoch: 10, valEpisodes: 8, lrDecayEvery: 10, lrGamma: 0.5, lr: 3e-3, seed: 5,
};

function lines(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

function strip(r: Record<string, unknown>): Record<string, unknown> {
  const { time: _t, step_s: _e, elapsed_s: _x, ...rest } = r;
  return rest;
}

/** The loop options of the backprop CLI: validation every epoch, a checkpoint every epoch. */
function loopOpts(cfg: BackpropConfig, o: LoopOptions = {}): LoopOptions {
  return { valEvery: cfg.episodesPerEpoch, checkpointEvery: cfg.episodesPerEpoch, ...o };
}

/** A fresh method continued from the run state at `path` (as --resume does). */
function resumed(path: string, over: BackpropConfigInput = {}): { m: BackpropMethod; loop: ReturnType<typeof readRunState>['loop'] } {
  const saved = readRunState(statePathOf(path));
  const cfg = resolveBackpropConfig(resumeConfig(path, saved.config as BackpropConfigInput, over, BACKPROP_RESUME_CHANGEABLE));
  const m = new BackpropMethod(cfg, sources(), { device });
  m.loadState(saved.state);
  return { m, loop: saved.loop };
}

test('snell preset is Snell et al.\'s recipe; options override it; bad values name the option', () => {
  const c = resolveBackpropConfig({});
  assert.equal({ ch: c.model.channels, s: c.model.imageSize, train: c.train, val: c.val, opt: c.optimizer, lr: c.lr, every: c.lrDecayEvery, g: c.lrGamma, epoch: c.episodesPerEpoch },
    { ch: 64, s: 28, train: { way: 60, shot: 5, query: 15 }, val: { way: 5, shot: 5, query: 15 }, opt: 'adam', lr: 1e-3, every: 2000, g: 0.5, epoch: 100 });
  assert.is(c.valSeed, c.seed);
  const o = resolveBackpropConfig({ train: { way: 20 }, lr: 5e-4, seed: 3 });
  assert.equal([o.train.way, o.train.shot, o.lr, o.valSeed], [20, 5, 5e-4, 3]);
  assert.ok(BACKPROP_PRESETS['quick']);
  assert.throws(() => resolveBackpropConfig({ train: { way: 1 } }), /train\.way \(--way\)/);
  assert.throws(() => resolveBackpropConfig({ lr: 0 }), /lr \(--lr\)/);
  assert.throws(() => resolveBackpropConfig({ momentum: 0.9 }), /momentum.*sgd only/);
  assert.throws(() => resolveBackpropConfig({ train: { shot: 5, query: 16 } }), /at most 20/);
  assert.throws(() => resolveBackpropConfig({}, 'nope'), /preset.*snell/);
  const cli = (o: Partial<TrainCliOptions>): BackpropConfigInput => backpropInput({ method: 'backprop', progress: false, ...o });
  assert.throws(() => cli({ pop: '64' }), /--pop does not apply to --method backprop/);
  assert.throws(() => cli({ sigmaFinal: '0.1' } as Partial<TrainCliOptions>), /--sigma-final does not apply/);
  assert.throws(() => cli({ optimizer: 'plain' }), /ES-only/);
  assert.throws(() => cli({ way: 'x' }), /--way: expected an integer/);
  assert.equal(cli({ shot: '1', valQuery: '5' }).val, { way: undefined, shot: 1, query: 5 });
});

test('training lowers the loss and beats the untrained model on validation; lr follows the step schedule', async () => {
  const t = BackpropMethod.create({ ...small, model: { ...small.model, channels: 8 }, episodes: 40, valEpisodes: 20 }, sources(), { device });
  const p0 = t.params.slice(), bn0 = { buffers: t.bn.buffers.slice(), numBatchesTracked: t.bn.numBatchesTracked };
  const losses: number[] = [], lrs: number[] = [];
  await runLoop(t, loopOpts(t.cfg, { onStep: (r) => { losses.push(r.loss); lrs.push(r['lr']!); } }));
  const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
  assert.ok(mean(losses.slice(-10)) < 0.8 * mean(losses.slice(0, 10)), `loss ${mean(losses.slice(0, 10))} -> ${mean(losses.slice(-10))}`);
  // 40 episodes of training gain about 6 points (38% -> 44%, chance 20%): measured on 200 validation
  // episodes (3000 queries), where each accuracy's 95% half-width is about 0.02, the two intervals
  // must not overlap (20 episodes, the trainer's own validation, cannot separate them).
  const val = sources().val!;
  const before = evaluateEpisodes(device, t.layout, p0, bn0, val, 200, 'euclidean');
  const after = evaluateEpisodes(device, t.layout, t.params, t.bn, val, 200, 'euclidean');
  assert.ok(after.acc - after.ci95 > before.acc + before.ci95, `validation accuracy ${before.acc} ± ${before.ci95} -> ${after.acc} ± ${after.ci95}`);
  assert.equal([lrs[0], lrs[9], lrs[10], lrs[25]], [3e-3, 3e-3, 1.5e-3, 7.5e-4]);
  assert.is(t.bn.numBatchesTracked, 40);
});

test('checkpoints and metrics: one line per step and per validation, best checkpoint = best validation', async () => {
  const out = join(tmp, 'run');
  const t = BackpropMethod.create(small, sources(), { device });
  const res = await runLoop(t, loopOpts(t.cfg, { out, sinks: [new MetricsLog(join(out, 'metrics.jsonl'))] }));
  assert.is(res.end, 'done');
  assert.is(res.loop.step, 25);
  const m = lines(join(out, 'metrics.jsonl'));
  assert.equal(m.filter((r) => r['type'] === 'step').map((r) => r['step']), [...Array(25).keys()]);
  const vals = m.filter((r) => r['type'] === 'val');
  assert.equal(vals.map((r) => r['step']), [0, 10, 20, 25]);
  assert.ok(m.filter((r) => r['type'] === 'step').every((r) => typeof r['tape_peak_bytes'] === 'number' && (r['tape_peak_bytes'] as number) > 0));
  assert.equal(m.filter((r) => r['type'] === 'step').map((r) => r['work']), [...Array(25).keys()].map((i) => i + 1));
  const bestAcc = Math.max(...vals.map((r) => r['val_acc'] as number));
  assert.is(res.loop.bestScore, bestAcc);
  const best = loadCheckpoint(res.bestCheckpoint!);
  assert.is(best.meta['step'], res.loop.bestStep);
  assert.is(best.meta['val_acc'], bestAcc);
  const re = evaluateEpisodes(device, best.layout, best.params, best.bn, sources().val!, small.valEpisodes!, 'euclidean');
  assert.is(re.acc, bestAcc, 'the best checkpoint does not reproduce its validation accuracy');
  assert.is(readRunState(statePathOf(res.bestCheckpoint!)).loop.step, res.loop.bestStep, 'the best checkpoint has its own training state');
  const last = loadCheckpoint(res.lastCheckpoint!);
  assert.equal(Array.from(last.params), Array.from(t.params));
  assert.equal(Array.from(last.bn.buffers), Array.from(t.bn.buffers));
  assert.is(last.bn.numBatchesTracked, 25);
});

test('resume: stopped at step 13 and resumed equals the uninterrupted run bit for bit (params, BN, optimizer, metrics after truncation)', async () => {
  const a = BackpropMethod.create(small, sources(), { device });
  const outA = join(tmp, 'a'), outB = join(tmp, 'b');
  await runLoop(a, loopOpts(a.cfg, { out: outA, sinks: [new MetricsLog(join(outA, 'metrics.jsonl'))] }));

  const b = BackpropMethod.create(small, sources(), { device });
  const ac = new AbortController();
  const stopped = await runLoop(b, loopOpts(b.cfg, { out: outB, sinks: [new MetricsLog(join(outB, 'metrics.jsonl'))], signal: ac.signal, onStep: (_r, step) => { if (step === 12) ac.abort(); } }));
  assert.is(stopped.end, 'interrupted');
  assert.is(stopped.loop.step, 13);
  const c = resumed(stopped.lastCheckpoint!);
  assert.is(c.m.step, 13);
  truncateMetrics(join(outB, 'metrics.jsonl'), 13);
  const done = await runLoop(c.m, loopOpts(c.m.cfg, { out: outB, sinks: [new MetricsLog(join(outB, 'metrics.jsonl'))], resume: c.loop }));
  assert.is(done.loop.step, 25);
  assert.equal(Array.from(c.m.params), Array.from(a.params));
  assert.equal(Array.from(c.m.bn.buffers), Array.from(a.bn.buffers));
  assert.is(c.m.bn.numBatchesTracked, a.bn.numBatchesTracked);
  const sa = readRunState(join(outA, 'last.state.safetensors')), sb = readRunState(join(outB, 'last.state.safetensors'));
  for (const k of ['opt.exp_avg', 'opt.exp_avg_sq']) assert.equal(Array.from(sb.state.tensors[k]!), Array.from(sa.state.tensors[k]!), k);
  assert.equal([sb.loop.bestScore, sb.loop.bestStep, sb.loop.work], [sa.loop.bestScore, sa.loop.bestStep, sa.loop.work]);
  const keep = (r: Record<string, unknown>): boolean => r['type'] !== 'resume' && r['type'] !== 'end';
  const ma = lines(join(outA, 'metrics.jsonl')).filter(keep).map(strip), mb = lines(join(outB, 'metrics.jsonl')).filter(keep).map(strip);
  assert.equal(mb, ma, 'the resumed run\'s metrics equal the uninterrupted run\'s, no step twice');
});

test('resume refuses a changed configuration; a state file is all a resume needs', async () => {
  const out = join(tmp, 'r');
  const t = BackpropMethod.create(small, sources(), { device });
  const ac = new AbortController();
  const r = await runLoop(t, loopOpts(t.cfg, { out, signal: ac.signal, onStep: (_x, step) => { if (step === 3) ac.abort(); } }));
  const path = r.lastCheckpoint!;
  assert.throws(() => resumed(path, { train: { way: 3 } }), /train\.way is 5 in the saved run/);
  assert.throws(() => resumed(path, { lr: 1 }), /lr is 0\.003/);
  const longer = resumed(path, { episodes: 30, lr: 3e-3 });
  assert.is(longer.m.cfg.episodes, 30);
  assert.is(longer.m.step, 4);
  // a kill between the two writes leaves the model file behind the state: the state alone resumes
  const st = readSafetensors(statePathOf(path));
  writeSafetensors(path, { x: { shape: [1], data: Float32Array.of(1) } });
  assert.is(resumed(path).m.step, 4);
  assert.ok(st.tensors.size > 0);
  assert.throws(() => readRunState(join(tmp, 'missing.state.safetensors')), /no such file|ENOENT|not found|does not exist/i);
});

test('maxMs stops and saves; a stop before any step still leaves a resumable checkpoint', async () => {
  const out = join(tmp, 'time');
  const t = BackpropMethod.create(small, sources(), { device });
  const r = await runLoop(t, loopOpts(t.cfg, { out, maxMs: -1 }));
  assert.is(r.end, 'time');
  assert.is(r.loop.step, 0);
  assert.ok(existsSync(join(out, 'last.safetensors')));
  assert.is(resumed(join(out, 'last.safetensors')).m.step, 0);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
