/**
 * ES-ProtoNet on the one training loop, on synthetic episodes (cpu-ts):
 * worker-count invariance, BN tracking, exact resume through the loop's
 * checkpoint pairs, non-finite fitness, Ctrl-C mid-step, collapse.
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
import { CollapseError, runLoop } from '../lib/train/loop.js';
import { readRunState, resumeConfig, statePathOf } from '../lib/train/run-files.js';
import { ProtoNetEsMethod, ES_RESUME_CHANGEABLE } from '../lib/methods/protonet-es/method.js';
import { resolveEsConfig, type EsConfigInput } from '../lib/methods/protonet-es/config.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { DirectOpsPopulationEvaluator } from '../lib/es/population-ts.js';
import { perturbMember } from '../lib/es/noise.js';
import { InlineRunner } from '../lib/es/runner.js';
import { evaluatorSpecFor } from '../lib/es/evaluators.js';
import type { PopulationRequest } from '../lib/es/population.js';
import { needs, nativeAddon } from './helpers/peers.js';

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
  const t = await ProtoNetEsMethod.create({ ...base, ...cfg }, sources, { device });
  try {
    for (let i = 0; i < n; i++) await t.trainStep();
    const v = await t.validate();
    return { mu: t.mu.slice(), bn: t.bn.buffers.slice(), acc: v.score };
  } finally {
    await t.close();
  }
}

const cases: Array<[string, EsConfigInput]> = [
  ['wsr, paper scheme', { estimator: 'wsr', scheme: 'paper', optimizer: 'plain', lr: 1 }],
  ['openai, openai scheme', { estimator: 'openai', scheme: 'openai', optimizer: 'adam', lr: 0.01 }],
  ['nes with baseline, openai scheme', { estimator: 'nes', scheme: 'openai', baseline: true, optimizer: 'plain', lr: 1 }],
  ['pgpe (ClipUp, adapted sigma), paper scheme', { estimator: 'pgpe', scheme: 'paper', optimizer: 'clipup', lr: 0.01 }],
  ['snes (adapted sigma), openai scheme', { estimator: 'snes', scheme: 'openai', optimizer: 'plain', lr: 1 }],
];
for (const [name, cfg] of cases) {
  test(`${name}: parameters after 3 steps are bitwise identical for 1, 2 and 4 workers (4 shards)`, async () => {
    const r1 = await runSteps({ ...cfg, workers: 1 }, 3);
    const r2 = await runSteps({ ...cfg, workers: 2 }, 3);
    const r4 = await runSteps({ ...cfg, workers: 4 }, 3);
    assert.is(diffBits(r2.mu, r1.mu), 0, '2 workers');
    assert.is(diffBits(r4.mu, r1.mu), 0, '4 workers');
    assert.is(diffBits(r4.bn, r1.bn), 0, 'BN running statistics');
    assert.is(r4.acc, r1.acc, 'validation accuracy');
    const init = await ProtoNetEsMethod.create({ ...base, ...cfg }, sources, { device: 'cpu-ts' });
    assert.ok(diffBits(r1.mu, init.mu) > 0, 'the steps moved mu');
    await init.close();
  });
}

needs(await nativeAddon(), 'cpu-native worker invariance')('cpu-native population evaluator: bitwise identical for 1, 2 and 4 workers too', async () => {
  const r1 = await runSteps({ workers: 1 }, 2, 'cpu-native');
  const r2 = await runSteps({ workers: 2 }, 2, 'cpu-native');
  const r4 = await runSteps({ workers: 4 }, 2, 'cpu-native');
  assert.is(diffBits(r2.mu, r1.mu), 0, '2 workers');
  assert.is(diffBits(r4.mu, r1.mu), 0, '4 workers');
});

test('two episodes per step: each member\'s fitness is the mean over both; the run is still worker-invariant', async () => {
  const a = await runSteps({ episodesPerStep: 2, workers: 1 }, 2);
  const b = await runSteps({ episodesPerStep: 2, workers: 2 }, 2);
  const c = await runSteps({ episodesPerStep: 1, workers: 1 }, 2);
  assert.is(diffBits(a.mu, b.mu), 0);
  assert.ok(diffBits(a.mu, c.mu) > 0, 'a second episode changes the estimate');
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
  for (const p of [{ kind: 'gaussian', sigma: 0.05, antithetic: true } as const, { kind: 'diagonal', sigmas: mu.map((_, j) => 0.01 + 0.001 * (j % 5)), antithetic: false } as const]) {
    const f = await ev.evaluate({ model: layout.config, mu, perturbation: p, seed: 8, step: 2, start: 3, end: 6, episode: ep, distance: 'euclidean' });
    const theta = new Float32Array(mu.length), z = new Float32Array(mu.length);
    for (let m = 3; m < 6; m++) {
      perturbMember(theta, mu, p, 8, 2, m, z);
      assert.is(f[m - 3], -episodeLoss(ops, layout, theta, initialBnState(layout), ep, { bn: 'batch' }).loss.data[0]!);
    }
  }
  assert.ok(ev.workingBytes() >= 8 * mu.length && ev.workingBytes() < 20 * mu.length, `working bytes ${ev.workingBytes()} are O(D)`);
});

test('each step tracks BN running statistics of mu (eval mode works), as a PyTorch train() forward would', async () => {
  const t = await ProtoNetEsMethod.create({ ...base, workers: 1 }, sources, { device: 'cpu-ts' });
  const layout = t.layout, ops = new DirectOps(getDevice('cpu-ts'));
  const bn = initialBnState(layout);
  const mu0 = t.mu.slice();
  episodeLoss(ops, layout, mu0, bn, train.episode(0), { bn: 'batch', trackStats: bn });
  await t.trainStep();
  assert.is(diffBits(t.bn.buffers, bn.buffers), 0);
  assert.is(t.bn.numBatchesTracked, 1);
  await t.close();
});

/** A fresh method continued from the run state at `path` (as --resume does). */
async function resumed(path: string, over: EsConfigInput = {}): Promise<{ method: ProtoNetEsMethod; loop: ReturnType<typeof readRunState>['loop'] }> {
  const saved = readRunState(statePathOf(path));
  const cfg = resolveEsConfig(resumeConfig(path, saved.config as EsConfigInput, over, ES_RESUME_CHANGEABLE));
  const method = await ProtoNetEsMethod.create(cfg, sources, { device: 'cpu-ts' });
  method.loadState(saved.state);
  return { method, loop: saved.loop };
}

test('resume through the loop: 2 steps + checkpoint + resume for 3 more equals 5 uninterrupted steps, bit for bit (Adam, BN, best val, metrics)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-es-'));
  try {
    const cfg: EsConfigInput = { ...base, estimator: 'openai', scheme: 'openai', optimizer: 'adam', lr: 0.01, steps: 5, weightDecay: 0.001 };
    const full = await ProtoNetEsMethod.create(cfg, sources, { device: 'cpu-ts' });
    const rf = await runLoop(full, { out: join(dir, 'full'), valEvery: 2, checkpointEvery: 2 });
    const part = await ProtoNetEsMethod.create({ ...cfg, steps: 2 }, sources, { device: 'cpu-ts' });
    await runLoop(part, { out: join(dir, 'part'), valEvery: 2, checkpointEvery: 2 });
    await part.close();
    const r = await resumed(join(dir, 'part', 'last.safetensors'), { steps: 5, workers: 2 });
    assert.is(r.method.step, 2);
    assert.is(r.method.runner.workers, 2);
    const rr = await runLoop(r.method, { out: join(dir, 'part'), valEvery: 2, checkpointEvery: 2, resume: r.loop });
    assert.is(diffBits(r.method.mu, full.mu), 0);
    assert.is(diffBits(r.method.bn.buffers, full.bn.buffers), 0);
    assert.is(rr.loop.bestScore, rf.loop.bestScore);
    assert.is(rr.loop.bestStep, rf.loop.bestStep);
    assert.is(rr.loop.work, rf.loop.work);
    const a = loadCheckpoint(join(dir, 'full', 'last.safetensors')), b = loadCheckpoint(join(dir, 'part', 'last.safetensors'));
    assert.is(diffBits(a.params, b.params), 0);
    assert.is(a.bn.numBatchesTracked, 5);
    await full.close();
    await r.method.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resume refuses to change the training maths, naming the field', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-es-'));
  try {
    const t = await ProtoNetEsMethod.create({ ...base, steps: 1 }, sources, { device: 'cpu-ts' });
    await runLoop(t, { out: dir });
    await t.close();
    let msg = '';
    try { await resumed(join(dir, 'last.safetensors'), { sigma: 0.5 }); } catch (e) { msg = (e as Error).message; }
    assert.match(msg, /sigma is 0\.02 in the saved run; cannot change it to 0\.5/);
    try { await resumed(join(dir, 'last.safetensors'), { train: { way: 3 } }); } catch (e) { msg = (e as Error).message; }
    assert.match(msg, /train\.way is 5 in the saved run; cannot change it to 3/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** An evaluator whose members 1 and 6 diverge (NaN and +inf fitness). */
class NanEvaluator extends DirectOpsPopulationEvaluator {
  override async evaluate(req: PopulationRequest): Promise<Float64Array> {
    const f = await super.evaluate(req);
    for (const [m, v] of [[1, NaN], [6, Infinity]] as const) if (m >= req.start && m < req.end) f[m - req.start] = v;
    return f;
  }
}

test('NaN/inf fitness inside a run: mu stays finite, the count is logged per step (both policies)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-es-'));
  try {
    for (const nonFinite of ['worst', 'drop'] as const) {
      const runner = new InlineRunner(new NanEvaluator(), evaluatorSpecFor('cpu-ts'));
      const t = await ProtoNetEsMethod.create({ ...base, nonFinite, steps: 3 }, sources, { runner });
      const log = new MetricsLog(join(dir, `${nonFinite}.jsonl`));
      await runLoop(t, { sinks: [log] });
      assert.ok(t.mu.every(Number.isFinite));
      const steps = readFileSync(log.path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; nonfinite?: number }).filter((r) => r.type === 'step');
      assert.equal(steps.map((s) => s.nonfinite), [2, 2, 2]);
      await t.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** An evaluator whose evaluation of step 2 does not finish on its own (a long population). */
class StallEvaluator extends DirectOpsPopulationEvaluator {
  onStall = (): void => {};
  override async evaluate(req: PopulationRequest): Promise<Float64Array> {
    if (req.step === 2) {
      setTimeout(this.onStall, 20);
      await new Promise((r) => setTimeout(r, 60000).unref());
    }
    return super.evaluate(req);
  }
}

test('abort (Ctrl-C) during a step abandons it and saves the last completed step; resuming then matches an uninterrupted run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-es-'));
  try {
    const ev = new StallEvaluator();
    const t = await ProtoNetEsMethod.create({ ...base, steps: 4 }, sources, { runner: new InlineRunner(ev, evaluatorSpecFor('cpu-ts')) });
    const ac = new AbortController();
    ev.onStall = () => ac.abort();
    const bnAt2: Float32Array[] = [];
    const r = await runLoop(t, { out: dir, signal: ac.signal, onStep: (_s, step) => { if (step === 1) bnAt2.push(t.bn.buffers.slice()); } });
    assert.is(r.end, 'interrupted');
    assert.is(t.step, 2);
    assert.is(diffBits(t.bn.buffers, bnAt2[0]!), 0, 'the abandoned step left the BN statistics as they were');
    assert.is(loadCheckpoint(join(dir, 'last.safetensors')).meta['step'], 2);
    const res = await resumed(join(dir, 'last.safetensors'));
    await runLoop(res.method, { resume: res.loop });
    const full = await ProtoNetEsMethod.create({ ...base, steps: 4 }, sources, { device: 'cpu-ts' });
    await runLoop(full, {});
    assert.is(diffBits(res.method.mu, full.mu), 0);
    await res.method.close();
    await full.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('collapse (alpha 25 / sigma 0.25 class of failure): the run stops with a clear error and keeps the last good checkpoint', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-es-'));
  try {
    // a sane phase, checkpointed
    const cfg: EsConfigInput = { ...base, steps: 2 };
    const t = await ProtoNetEsMethod.create(cfg, sources, { device: 'cpu-ts' });
    await runLoop(t, { out: dir });
    await t.close();
    const good = readFileSync(join(dir, 'last.state.safetensors'));
    // then a destructive step size
    const bad = await ProtoNetEsMethod.create({ ...cfg, steps: 200, lr: 1e4, sigma: 0.25 }, sources, { device: 'cpu-ts', params: t.mu, bn: t.bn });
    let err: unknown = null;
    try { await runLoop(bad, { out: dir, checkpointEvery: 1000, collapse: { window: 3, lossFactor: 3, valChecks: 0 } }); } catch (e) { err = e; }
    assert.instance(err, CollapseError);
    assert.match((err as Error).message, /training collapsed: .*(exploded|NaN|Infinity)/);
    assert.ok((err as CollapseError).step < 200);
    assert.ok(existsSync(join(dir, 'last.safetensors')));
    assert.ok(readFileSync(join(dir, 'last.state.safetensors')).equals(good), 'the last good checkpoint is untouched');
    await bad.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
