/**
 * ES trainer: bitwise worker-count invariance (1, 2, 4 workers; both schemes),
 * resume equality, the evaluator against the model's own loss, BN running
 * statistics of mu, NaN fitness inside a run, collapse detection.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { DirectOps } from '../lib/ops/api.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { episodeLoss } from '../lib/model/protonet.js';
import { loadCheckpoint } from '../lib/model/checkpoint.js';
import { MetricsLog } from '../lib/train/metrics.js';
import { EsTrainer, CollapseError } from '../lib/es/trainer.js';
import type { EsConfigInput } from '../lib/es/config.js';
import { SyntheticEpisodes } from '../lib/es/synthetic.js';
import { DirectOpsPopulationEvaluator } from '../lib/es/population-ts.js';
import { perturbMember } from '../lib/es/noise.js';
import { InlineRunner, type EvaluateJob } from '../lib/es/pool.js';
import { evaluatorSpecFor } from '../lib/es/evaluators.js';
import { device, needs } from './helpers/peers.js';

// The cpu-native device registers itself on import (it does not become the default of the tests
// below: they name cpu-ts); it is then available exactly when its addon loads.
await import('../lib/device/cpu-native/index.js');

const IMG = 16;
const train = new SyntheticEpisodes({ way: 5, shot: 2, query: 2, imageSize: IMG, seed: 1 });
const val = new SyntheticEpisodes({ way: 5, shot: 2, query: 3, imageSize: IMG, seed: 2 });
const sources = { train, val };
const base: EsConfigInput = { model: { channels: 4, imageSize: IMG }, pop: 16, shards: 4, steps: 3, seed: 5, valEpisodes: 3, valEvery: 0, sigma: 0.02 };

function bits(a: Float32Array): number[] { return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length)); }

/** Number of elements whose bits differ (0: bitwise equal). */
function diffBits(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.max(a.length, b.length);
  const x = bits(a), y = bits(b);
  let n = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) n++;
  return n;
}

async function runSteps(cfg: EsConfigInput, n: number, device = 'cpu-ts'): Promise<{ mu: Float32Array; bn: Float32Array; acc: number }> {
  const t = await EsTrainer.create({ ...base, ...cfg }, sources, { device });
  try {
    for (let i = 0; i < n; i++) await t.trainStep();
    const v = await t.validate();
    return { mu: t.mu.slice(), bn: t.bn.buffers.slice(), acc: v.acc };
  } finally {
    await t.close();
  }
}

for (const [estimator, scheme] of [['wsr', 'paper'], ['openai', 'openai'], ['nes', 'openai']] as const) {
  test(`${estimator}, ${scheme} scheme: parameters after 3 steps are bitwise identical for 1, 2 and 4 workers (4 shards)`, async () => {
    const cfg: EsConfigInput = { estimator, scheme, baseline: true, optimizer: estimator === 'openai' ? 'adam' : 'plain', lr: estimator === 'openai' ? 0.01 : 1 };
    const r1 = await runSteps({ ...cfg, workers: 1 }, 3);
    const r2 = await runSteps({ ...cfg, workers: 2 }, 3);
    const r4 = await runSteps({ ...cfg, workers: 4 }, 3);
    assert.is(diffBits(r2.mu, r1.mu), 0, '2 workers');
    assert.is(diffBits(r4.mu, r1.mu), 0, '4 workers');
    assert.is(diffBits(r4.bn, r1.bn), 0, 'BN running statistics');
    assert.is(r4.acc, r1.acc, 'validation accuracy');
    const init = await EsTrainer.create({ ...base, ...cfg }, sources, { device: 'cpu-ts' });
    assert.ok(diffBits(r1.mu, init.mu) > 0, 'the steps moved mu');
    await init.close();
  });
}

const withNative = needs(await device('cpu-native'), 'es-trainer.test: cpu-native population evaluator');

withNative('cpu-native population evaluator: bitwise identical for 1, 2 and 4 workers too', async () => {
  const r1 = await runSteps({ workers: 1 }, 2, 'cpu-native');
  const r2 = await runSteps({ workers: 2 }, 2, 'cpu-native');
  const r4 = await runSteps({ workers: 4 }, 2, 'cpu-native');
  assert.is(diffBits(r2.mu, r1.mu), 0, '2 workers');
  assert.is(diffBits(r4.mu, r1.mu), 0, '4 workers');
});

test('the shard count changes the paper scheme\'s math (per-shard standardization) but not the run\'s determinism', async () => {
  const a = await runSteps({ shards: 1 }, 2);
  const b = await runSteps({ shards: 4 }, 2);
  assert.ok(diffBits(a.mu, b.mu) > 0);
});

test('the DirectOps evaluator\'s fitness is minus the episode loss of the perturbed parameters (batch-mode BN)', async () => {
  const layout = new ProtoNetLayout(base.model);
  const ops = new DirectOps(getDevice('cpu-ts'));
  const mu = new Float32Array(layout.numParams).map((_, i) => Math.sin(i) * 0.1 + (i % 7 === 0 ? 1 : 0));
  const ep = train.episode(3);
  const ev = new DirectOpsPopulationEvaluator();
  const p = { kind: 'gaussian', sigma: 0.05, antithetic: true } as const;
  const f = await ev.evaluate({ model: layout.config, mu, perturbation: p, seed: 8, step: 2, start: 3, end: 6, episode: ep, distance: 'euclidean' });
  const theta = new Float32Array(mu.length), z = new Float32Array(mu.length);
  for (let m = 3; m < 6; m++) {
    perturbMember(theta, mu, p, 8, 2, m, z);
    assert.is(f[m - 3], -episodeLoss(ops, layout, theta, initialBnState(layout), ep, { bn: 'batch' }).loss.data[0]!);
  }
  assert.ok(ev.workingBytes() >= 8 * mu.length && ev.workingBytes() < 20 * mu.length, `working bytes ${ev.workingBytes()} are O(D)`);
});

test('each step tracks BN running statistics of mu (eval mode works), as a PyTorch train() forward would', async () => {
  const t = await EsTrainer.create({ ...base, workers: 1 }, sources, { device: 'cpu-ts' });
  const layout = t.layout, ops = new DirectOps(getDevice('cpu-ts'));
  const bn = initialBnState(layout);
  const mu0 = t.mu.slice();
  episodeLoss(ops, layout, mu0, bn, train.episode(0), { bn: 'batch', trackStats: bn });
  await t.trainStep();
  assert.is(diffBits(t.bn.buffers, bn.buffers), 0);
  assert.is(t.bn.numBatchesTracked, 1);
  await t.close();
});

test('resume: 2 steps + checkpoint + resume for 3 more equals 5 uninterrupted steps, bit for bit (Adam state, BN, best val)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-es-'));
  try {
    const cfg: EsConfigInput = { ...base, estimator: 'openai', scheme: 'openai', optimizer: 'adam', lr: 0.01, steps: 5, valEvery: 2, checkpointEvery: 2, weightDecay: 0.001 };
    const full = await EsTrainer.create(cfg, sources, { device: 'cpu-ts' });
    await full.run({ out: join(dir, 'full') });
    const part = await EsTrainer.create({ ...cfg, steps: 2 }, sources, { device: 'cpu-ts' });
    await part.run({ out: join(dir, 'part') });
    await part.close();
    const resumed = await EsTrainer.resume(join(dir, 'part', 'last.safetensors'), sources, { steps: 5, workers: 2 });
    assert.is(resumed.step, 2);
    await resumed.run({ out: join(dir, 'part') });
    assert.is(diffBits(resumed.mu, full.mu), 0);
    assert.is(diffBits(resumed.bn.buffers, full.bn.buffers), 0);
    assert.is(resumed.bestVal, full.bestVal);
    const a = loadCheckpoint(join(dir, 'full', 'last.safetensors')), b = loadCheckpoint(join(dir, 'part', 'last.safetensors'));
    assert.is(diffBits(a.params, b.params), 0);
    assert.is(a.bn.numBatchesTracked, 5);
    await full.close();
    await resumed.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resume refuses to change the training math', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-es-'));
  try {
    const t = await EsTrainer.create({ ...base, steps: 1 }, sources, { device: 'cpu-ts' });
    await t.run({ out: dir });
    await t.close();
    let msg = '';
    try { await EsTrainer.resume(join(dir, 'last.safetensors'), sources, { sigma: 0.5 }); } catch (e) { msg = (e as Error).message; }
    assert.match(msg, /sigma is 0\.02 in the saved run, cannot change it to 0\.5/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A runner that corrupts some members' fitness (as a diverging member would). */
class NanRunner extends InlineRunner {
  override async evaluate(job: EvaluateJob): Promise<Float64Array> {
    const f = await super.evaluate(job);
    f[1] = NaN;
    f[6] = Infinity;
    return f;
  }
}

test('NaN/inf fitness inside a run: mu stays finite, the count is logged per step', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-es-'));
  try {
    const spec = evaluatorSpecFor('cpu-ts');
    for (const nonFinite of ['worst', 'drop'] as const) {
      const runner = new NanRunner(new DirectOpsPopulationEvaluator(), spec);
      const t = await EsTrainer.create({ ...base, nonFinite, steps: 3 }, sources, { runner });
      const log = new MetricsLog(join(dir, `${nonFinite}.jsonl`));
      await t.run({ metrics: log });
      assert.ok(t.mu.every(Number.isFinite));
      const steps = readFileSync(log.path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; nonfinite?: number }).filter((r) => r.type === 'step');
      assert.equal(steps.map((s) => s.nonfinite), [2, 2, 2]);
      await t.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A runner whose evaluation of step 2 never finishes on its own (a long population). */
class StallRunner extends InlineRunner {
  onStall = (): void => {};
  override async evaluate(job: EvaluateJob): Promise<Float64Array> {
    if (job.step === 2) {
      setTimeout(this.onStall, 20);
      await new Promise((r) => setTimeout(r, 60000).unref());
    }
    return super.evaluate(job);
  }
}

test('abort (Ctrl-C) during a step abandons it and saves the last completed step; resuming then matches an uninterrupted run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-es-'));
  try {
    const runner = new StallRunner(new DirectOpsPopulationEvaluator(), evaluatorSpecFor('cpu-ts'));
    const t = await EsTrainer.create({ ...base, steps: 4 }, sources, { runner });
    const ac = new AbortController();
    runner.onStall = () => ac.abort();
    const r = await t.run({ out: dir, signal: ac.signal });
    assert.is(r.end, 'interrupted');
    assert.is(t.step, 2);
    assert.is(loadCheckpoint(join(dir, 'last.safetensors')).meta['step'], 2);
    await t.close();
    const resumed = await EsTrainer.resume(join(dir, 'last.safetensors'), sources);
    await resumed.run({});
    const full = await EsTrainer.create({ ...base, steps: 4 }, sources, { device: 'cpu-ts' });
    await full.run({});
    assert.is(diffBits(resumed.mu, full.mu), 0);
    await resumed.close();
    await full.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('collapse (alpha 25 / sigma 0.25 class of failure): the run stops with a clear error and keeps the last good checkpoint', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-es-'));
  try {
    // a sane phase, checkpointed
    const cfg: EsConfigInput = { ...base, steps: 2, checkpointEvery: 2, collapseWindow: 3, collapseLossFactor: 3 };
    const t = await EsTrainer.create(cfg, sources, { device: 'cpu-ts' });
    await t.run({ out: dir });
    await t.close();
    const good = readFileSync(join(dir, 'last.safetensors'));
    // then a destructive step size
    const runner = new InlineRunner(new DirectOpsPopulationEvaluator(), evaluatorSpecFor('cpu-ts'));
    const bad = await EsTrainer.create({ ...cfg, steps: 200, lr: 1e4, sigma: 0.25, checkpointEvery: 1000 }, sources, { runner, params: t.mu, bn: t.bn });
    let err: unknown = null;
    try { await bad.run({ out: dir }); } catch (e) { err = e; }
    assert.instance(err, CollapseError);
    assert.match((err as Error).message, /training collapsed: .*(exploded|no longer finite|NaN|Infinity)/);
    assert.ok((err as CollapseError).step < 200);
    assert.ok(existsSync(join(dir, 'last.safetensors')));
    assert.ok(readFileSync(join(dir, 'last.safetensors')).equals(good), 'the last good checkpoint is untouched');
    await bad.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
