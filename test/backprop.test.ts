/** The backprop trainer on a synthetic episode source: config, learning, checkpoints, metrics, exact resume. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../lib/index.js';
import { getDevice } from '../lib/device/registry.js';
import { loadCheckpoint, loadTrainState, saveTrainState } from '../lib/model/checkpoint.js';
import { MetricsLog } from '../lib/train/metrics.js';
import { BackpropTrainer, evaluateEpisodes, type BackpropSources } from '../lib/train/backprop.js';
import { resolveBackpropConfig, PRESETS, type BackpropConfigInput } from '../lib/train/backprop-config.js';
import { TemplateEpisodes } from '../lib/train/backprop-source.js';
import { backpropInput } from '../lib/train/backprop-cli.js';
import type { TrainCliOptions } from '../lib/cli/train.js';

const device = getDevice();
const tmp = mkdtempSync(join(tmpdir(), 'evometa-backprop-'));

function sources(seed = 1): BackpropSources {
  return {
    train: new TemplateEpisodes({ classes: 30, way: 5, shot: 2, query: 3, imageSize: 16, seed, noise: 0.6 }),
    val: new TemplateEpisodes({ classes: 30, way: 5, shot: 2, query: 3, imageSize: 16, seed: seed + 100, noise: 0.6 }),
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
  const { time: _t, episode_s: _e, elapsed_s: _x, ...rest } = r;
  return rest;
}

test('snell preset is Snell et al.\'s recipe; options override it; bad values name the option', () => {
  const c = resolveBackpropConfig({});
  assert.equal({ ch: c.model.channels, s: c.model.imageSize, train: c.train, val: c.val, opt: c.optimizer, lr: c.lr, every: c.lrDecayEvery, g: c.lrGamma, epoch: c.episodesPerEpoch },
    { ch: 64, s: 28, train: { way: 60, shot: 5, query: 15 }, val: { way: 5, shot: 5, query: 15 }, opt: 'adam', lr: 1e-3, every: 2000, g: 0.5, epoch: 100 });
  assert.is(c.valSeed, c.seed);
  const o = resolveBackpropConfig({ train: { way: 20 }, lr: 5e-4, seed: 3 });
  assert.equal([o.train.way, o.train.shot, o.lr, o.valSeed], [20, 5, 5e-4, 3]);
  assert.ok(PRESETS['quick']);
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
  const t = BackpropTrainer.create({ ...small, model: { ...small.model, channels: 8 }, episodes: 40, valEpisodes: 20 }, sources(), { device });
  const p0 = t.params.slice(), bn0 = { buffers: t.bn.buffers.slice(), numBatchesTracked: t.bn.numBatchesTracked };
  const losses: number[] = [], lrs: number[] = [];
  await t.run({ onEpisode: (r) => { losses.push(r.loss); lrs.push(r.lr); } });
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

test('checkpoints and metrics: one line per episode and per epoch, best checkpoint = best validation', async () => {
  const out = join(tmp, 'run');
  const t = BackpropTrainer.create(small, sources(), { device });
  const res = await t.run({ out, metrics: new MetricsLog(join(out, 'metrics.jsonl')) });
  assert.is(res.end, 'done');
  assert.is(res.episode, 25);
  const m = lines(join(out, 'metrics.jsonl'));
  assert.equal(m.filter((r) => r['type'] === 'episode').map((r) => r['episode']), [...Array(25).keys()]);
  assert.equal(m.filter((r) => r['type'] === 'epoch').map((r) => [r['epoch'], r['episode']]), [[1, 10], [2, 20], [3, 25]]);
  const vals = m.filter((r) => r['type'] === 'val');
  assert.equal(vals.map((r) => r['epoch']), [0, 1, 2, 3]);
  assert.ok(m.filter((r) => r['type'] === 'episode').every((r) => typeof r['tape_peak_bytes'] === 'number' && (r['tape_peak_bytes'] as number) > 0));
  const bestAcc = Math.max(...vals.map((r) => r['val_acc'] as number));
  assert.is(res.bestVal, bestAcc);
  const best = loadCheckpoint(res.bestCheckpoint!);
  assert.is(best.meta['episode'], res.bestEpisode);
  assert.is(best.meta['val_acc'], bestAcc);
  const re = evaluateEpisodes(device, best.layout, best.params, best.bn, sources().val!, small.valEpisodes!, 'euclidean');
  assert.is(re.acc, bestAcc, 'the best checkpoint does not reproduce its validation accuracy');
  const last = loadCheckpoint(res.lastCheckpoint!);
  assert.equal(Array.from(last.params), Array.from(t.params));
  assert.equal(Array.from(last.bn.buffers), Array.from(t.bn.buffers));
  assert.is(last.bn.numBatchesTracked, 25);
});

test('resume: stopped at episode 13 and resumed equals the uninterrupted run bit for bit (params, BN, optimizer, metrics)', async () => {
  const a = BackpropTrainer.create(small, sources(), { device });
  const outA = join(tmp, 'a'), outB = join(tmp, 'b');
  await a.run({ out: outA, metrics: new MetricsLog(join(outA, 'metrics.jsonl')) });

  const b = BackpropTrainer.create(small, sources(), { device });
  const stopped = await b.run({ out: outB, metrics: new MetricsLog(join(outB, 'metrics.jsonl')), shouldStop: () => b.episode === 13 });
  assert.is(stopped.end, 'interrupted');
  assert.is(stopped.episode, 13);
  const c = BackpropTrainer.resume(stopped.lastCheckpoint!, sources(), {}, { device });
  assert.is(c.episode, 13);
  const done = await c.run({ out: outB, metrics: new MetricsLog(join(outB, 'metrics.jsonl')) });
  assert.is(done.episode, 25);
  assert.equal(Array.from(c.params), Array.from(a.params));
  assert.equal(Array.from(c.bn.buffers), Array.from(a.bn.buffers));
  assert.is(c.bn.numBatchesTracked, a.bn.numBatchesTracked);
  assert.equal([c.bestVal, c.bestEpisode], [a.bestVal, a.bestEpisode]);
  const sa = loadTrainState(join(outA, 'last.safetensors')), sb = loadTrainState(join(outB, 'last.safetensors'));
  for (const k of ['opt.exp_avg', 'opt.exp_avg_sq']) assert.equal(Array.from(sb.tensors[k]!), Array.from(sa.tensors[k]!), k);
  const ma = lines(join(outA, 'metrics.jsonl')).map(strip), mb = lines(join(outB, 'metrics.jsonl')).map(strip).filter((r) => r['type'] !== 'resume');
  assert.equal(mb, ma);
});

test('resume refuses a changed configuration and a checkpoint whose training state is at another episode', async () => {
  const out = join(tmp, 'r');
  const t = BackpropTrainer.create(small, sources(), { device });
  const r = await t.run({ out, shouldStop: () => t.episode === 4 });
  const path = r.lastCheckpoint!;
  assert.throws(() => BackpropTrainer.resume(path, sources(), { train: { way: 3 } }), /train\.way is 5 in the saved run/);
  assert.throws(() => BackpropTrainer.resume(path, sources(), { lr: 1 }), /lr is 0\.003/);
  const longer = BackpropTrainer.resume(path, sources(), { episodes: 30, lr: 3e-3 });
  assert.is(longer.cfg.episodes, 30);
  const st = loadTrainState(path);
  saveTrainState(path, { tensors: st.tensors, meta: { ...st.meta, episode: 3 } });
  assert.throws(() => BackpropTrainer.resume(path, sources()), /checkpoint is at episode 4 but its training state at 3/);
  assert.throws(() => BackpropTrainer.savedConfig(join(tmp, 'missing.safetensors')), /not found/);
});

test('maxMs stops and saves; a stop before any episode still leaves a resumable checkpoint', async () => {
  const out = join(tmp, 'time');
  const t = BackpropTrainer.create(small, sources(), { device });
  const r = await t.run({ out, maxMs: -1 });
  assert.is(r.end, 'time');
  assert.is(r.episode, 0);
  assert.ok(existsSync(join(out, 'last.safetensors')));
  assert.is(BackpropTrainer.resume(join(out, 'last.safetensors'), sources()).episode, 0);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
