/**
 * The one training loop with a toy method (ES on a quadratic): the
 * validation and checkpoint schedule, best tracking, exact resume from the
 * state file alone, metrics cut back on resume, interruption, the time limit,
 * collapse, and the driver closing the method on every exit path.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WSR } from '../lib/es/strategies.js';
import type { MethodState, StepMetrics, TrainMethod, ValResult } from '../lib/train/method.js';
import { CollapseError, runLoop } from '../lib/train/loop.js';
import { MetricsLog, truncateMetrics } from '../lib/train/metrics.js';
import { readRunState, resolveResumePath, statePathOf } from '../lib/train/run-files.js';
import { runTraining } from '../lib/cli/run.js';

const D = 6;
const target = Float32Array.from({ length: D }, (_, j) => 1 - j / 5);
const fit = (x: Float32Array): number => { let s = 0; for (let j = 0; j < D; j++) s -= (x[j]! - target[j]!) ** 2; return s; };

/** ES on a quadratic as a TrainMethod; `explodeAt` makes the loss infinite from that step on. */
class QuadMethod implements TrainMethod {
  readonly name = 'quad';
  readonly es: WSR;
  closed = 0;
  constructor(readonly config: { steps: number; lr: number; explodeAt?: number }) {
    this.es = new WSR({ dim: D, pop: 8, sigma: 0.1, lr: config.lr, optimizer: 'adam', seed: 3 });
  }
  get step(): number { return this.es.step; }
  get totalSteps(): number { return this.config.steps; }
  readonly chanceScore = -1e9;
  async trainStep(): Promise<StepMetrics> {
    const r = await this.es.evaluate(fit);
    const loss = this.config.explodeAt !== undefined && r.step >= this.config.explodeAt ? Infinity : -fit(this.es.mean);
    return { loss, work: 8, gNorm: r.gNorm };
  }
  async validate(): Promise<ValResult> { return { score: fit(this.es.mean) }; }
  saveState(): MethodState { return this.es.state(); }
  loadState(s: MethodState): void { this.es.load(s); }
  async close(): Promise<void> { this.closed++; }
}

function records(path: string): Array<Record<string, unknown>> {
  return readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('schedule: validation at 0, every valEvery and at the end; checkpoints every checkpointEvery; best = best validation', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-loop-'));
  try {
    const m = new QuadMethod({ steps: 7, lr: 0.05 });
    const log = new MetricsLog(join(dir, 'metrics.jsonl'));
    const ck: number[] = [];
    const r = await runLoop(m, { out: dir, sinks: [log], valEvery: 3, checkpointEvery: 2, onStep: (_s, step) => { if (existsSync(statePathOf(join(dir, 'last.safetensors')))) ck.push(readRunState(statePathOf(join(dir, 'last.safetensors'))).loop.step); else ck.push(-1); void step; } });
    assert.is(r.end, 'done');
    const rec = records(log.path);
    assert.equal(rec.filter((x) => x['type'] === 'val').map((x) => x['step']), [0, 3, 6, 7]);
    assert.equal(rec.filter((x) => x['type'] === 'step').map((x) => x['step']), [0, 1, 2, 3, 4, 5, 6]);
    assert.equal(rec.filter((x) => x['type'] === 'step').map((x) => x['work']), [8, 16, 24, 32, 40, 48, 56]);
    assert.equal([rec[0]!['type'], rec[rec.length - 1]!['type']], ['start', 'end']);
    assert.equal(ck, [-1, -1, 2, 2, 4, 4, 6], 'last checkpoint after steps 2, 4, 6 (seen at the next step)');
    const vals = rec.filter((x) => x['type'] === 'val').map((x) => x['val_acc'] as number);
    assert.is(r.loop.bestScore, Math.max(...vals));
    assert.is(readRunState(join(dir, 'best.state.safetensors')).loop.step, r.loop.bestStep);
    assert.is(readRunState(join(dir, 'last.state.safetensors')).loop.step, 7);
    assert.not.ok(existsSync(join(dir, 'last.safetensors')), 'a method without a model writes only the state file');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('interrupt at step 4 + resume from the state file = uninterrupted, bit for bit; metrics hold each step once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-loop-'));
  try {
    const full = new QuadMethod({ steps: 9, lr: 0.05 });
    const fr = await runLoop(full, { valEvery: 2 });
    const a = new QuadMethod({ steps: 9, lr: 0.05 });
    const ac = new AbortController();
    const log = join(dir, 'metrics.jsonl');
    const ra = await runLoop(a, { out: dir, sinks: [new MetricsLog(log)], valEvery: 2, signal: ac.signal, onStep: (_s, step) => { if (step === 3) ac.abort(); } });
    assert.is(ra.end, 'interrupted');
    assert.is(ra.loop.step, 4);
    // a crash later would have logged steps past the checkpoint: simulate, then cut back
    const extra = JSON.stringify({ type: 'step', step: 4, loss: 1 }) + '\n' + JSON.stringify({ type: 'val', step: 5, val_acc: 0 }) + '\n{"type":"st';
    writeFileSync(log, readFileSync(log, 'utf8') + extra);
    assert.is(truncateMetrics(log, 4), 4, 'dropped: the end record, the replayed step, the validation past the checkpoint and the torn last line');
    const saved = readRunState(resolveResumePath(dir));
    const b = new QuadMethod({ steps: 9, lr: 0.05 });
    b.loadState(saved.state);
    const rb = await runLoop(b, { out: dir, sinks: [new MetricsLog(log)], valEvery: 2, resume: saved.loop });
    assert.equal(Array.from(b.es.mean), Array.from(full.es.mean));
    assert.equal([rb.loop.bestScore, rb.loop.bestStep, rb.loop.work], [fr.loop.bestScore, fr.loop.bestStep, fr.loop.work]);
    const steps = records(log).filter((x) => x['type'] === 'step').map((x) => x['step']);
    assert.equal(steps, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert.ok(rb.loop.elapsedS >= ra.loop.elapsedS, 'elapsed time accumulates across sessions');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('time limit: stops and saves; collapse: a non-finite loss stops with CollapseError and keeps the last good state', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-loop-'));
  try {
    const r = await runLoop(new QuadMethod({ steps: 5, lr: 0.05 }), { out: dir, maxMs: -1 });
    assert.equal([r.end, r.loop.step], ['time', 0]);
    const dir2 = join(dir, 'c');
    const m = new QuadMethod({ steps: 10, lr: 0.05, explodeAt: 6 });
    let err: unknown;
    try { await runLoop(m, { out: dir2, checkpointEvery: 4 }); } catch (e) { err = e; }
    assert.instance(err, CollapseError);
    assert.match((err as Error).message, /training loss is Infinity at step 6.*last good checkpoint is .*last\.safetensors/);
    assert.is(readRunState(join(dir2, 'last.state.safetensors')).loop.step, 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the driver closes the method on every exit path (done, collapse, an error inside a step) and sets exit codes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-loop-'));
  const code = process.exitCode;
  try {
    const ok = new QuadMethod({ steps: 2, lr: 0.05 });
    await runTraining({ method: ok, out: join(dir, 'a'), valEvery: 1, checkpointEvery: 0, progress: false, describe: [] });
    assert.is(ok.closed, 1);
    const bad = new QuadMethod({ steps: 9, lr: 0.05, explodeAt: 1 });
    let e1: unknown;
    try { await runTraining({ method: bad, out: join(dir, 'b'), valEvery: 0, checkpointEvery: 0, progress: false, describe: [] }); } catch (e) { e1 = e; }
    assert.instance(e1, CollapseError);
    assert.is(bad.closed, 1);
    const thrower = new QuadMethod({ steps: 9, lr: 0.05 });
    thrower.trainStep = async () => { throw new Error('ENOSPC: no space left on device'); };
    let e2: unknown;
    try { await runTraining({ method: thrower, out: join(dir, 'c'), valEvery: 0, checkpointEvery: 0, progress: false, describe: [] }); } catch (e) { e2 = e; }
    assert.match((e2 as Error).message, /ENOSPC/);
    assert.is(thrower.closed, 1);
  } finally {
    process.exitCode = code;
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
