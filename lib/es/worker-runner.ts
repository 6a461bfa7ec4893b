/**
 * The population on worker threads (see lib/es/runner.ts for the guarantees):
 * each worker owns an evaluator built from the spec; mu, fitness and the
 * noise-sum accumulators are SharedArrayBuffers; a turn counter orders the
 * shard additions. Closing waits for work in flight (bounded) before
 * terminating the threads, so no native call is cut off mid-flight.
 */
import { Worker } from 'node:worker_threads';
import type { Episode } from '../model/protonet.js';
import type { EvaluatorSpec } from './evaluators.js';
import { ruleWeights } from './estimators.js';
import { memberRange, type EstimateJob, type EstimateResult, type EvaluateJob, type NoiseJob, type PopulationRunner, type ValidateJob } from './runner.js';
import { episodeToWire, type EpisodeScore } from './validate.js';

type Reply =
  | { type: 'ready' }
  | { type: 'done'; id: number; bytes: number; scores?: EpisodeScore[]; nonFinite?: number; degenerate?: number; evalSeconds?: number; sumSeconds?: number }
  | { type: 'error'; id: number; message: string; stack?: string };

interface Pending { resolve: (r: Reply) => void; reject: (e: Error) => void; settled: Promise<void> }

/** Control words in the shared Int32Array: the shard whose turn it is to add, and an abort flag. */
export const CTL_TURN = 0, CTL_ABORT = 1;

/** How long close() waits for a worker to cancel or finish its work before terminating it anyway. */
export const CLOSE_GRACE_MS = 10_000;

class WorkerHandle {
  readonly pending = new Map<number, Pending>();
  bytes = 0;
  dead: Error | null = null;
  constructor(readonly worker: Worker, readonly index: number) {
    worker.on('message', (r: Reply) => {
      if (r.type === 'ready') return;
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.type === 'error') {
        const e = new Error(`ES worker ${index}: ${r.message}`);
        if (r.stack) e.stack = r.stack;
        p.reject(e);
      } else {
        this.bytes = r.bytes;
        p.resolve(r);
      }
    });
    const fail = (e: Error): void => {
      this.dead = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on('error', (e) => fail(new Error(`ES worker ${index} crashed: ${e.message}`)));
    worker.on('exit', (code) => fail(new Error(`ES worker ${index} exited (code ${code})`)));
  }
}

type Job = Record<string, unknown>;

export class WorkerRunner implements PopulationRunner {
  readonly inProcess = true;
  private nextId = 1;
  private mu: Float32Array<ArrayBufferLike> = new Float32Array(0);
  private fit: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private acc: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private acc2: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private readonly ctl = new Int32Array(new SharedArrayBuffer(8));
  private valCount = 0;
  private closed = false;

  private constructor(private readonly handles: WorkerHandle[], readonly spec: EvaluatorSpec) {}

  get workers(): number { return this.handles.length; }

  static async create(workers: number, spec: EvaluatorSpec): Promise<WorkerRunner> {
    const url = new URL('./worker.js', import.meta.url);
    const handles: WorkerHandle[] = [];
    for (let i = 0; i < workers; i++) handles.push(new WorkerHandle(new Worker(url, { workerData: { spec, index: i } }), i));
    const r = new WorkerRunner(handles, spec);
    try {
      await Promise.all(handles.map((h) => r.call(h, { type: 'init' })));
    } catch (e) {
      await r.close();
      throw e;
    }
    return r;
  }

  private call(h: WorkerHandle, msg: Job): Promise<Reply> {
    if (this.closed) return Promise.reject(new Error('ES runner closed'));
    if (h.dead) return Promise.reject(h.dead);
    const id = this.nextId++;
    let settle!: () => void;
    const settled = new Promise<void>((r) => { settle = r; });
    return new Promise<Reply>((resolve, reject) => {
      h.pending.set(id, { resolve: (x) => { settle(); resolve(x); }, reject: (e) => { settle(); reject(e); }, settled });
      h.worker.postMessage({ ...msg, id });
    });
  }

  /** Run one message per worker; on any failure raise the abort flag so workers waiting for their turn give up. */
  private async all(jobs: Array<[WorkerHandle, Job]>): Promise<Reply[]> {
    const ps = jobs.map(([h, m]) => this.call(h, m).catch((e: Error) => {
      Atomics.store(this.ctl, CTL_ABORT, 1);
      Atomics.notify(this.ctl, CTL_TURN);
      throw e;
    }));
    const settled = await Promise.allSettled(ps);
    const bad = settled.find((s) => s.status === 'rejected');
    if (bad) throw (bad as PromiseRejectedResult).reason;
    return settled.map((s) => (s as PromiseFulfilledResult<Reply>).value);
  }

  private ensureBuffers(d: number, p: number): void {
    let changed = false;
    if (this.mu.length !== d) {
      this.mu = new Float32Array(new SharedArrayBuffer(4 * d));
      this.acc = new Float64Array(new SharedArrayBuffer(8 * d));
      this.acc2 = new Float64Array(new SharedArrayBuffer(8 * d));
      changed = true;
    }
    if (this.fit.length < p) {
      this.fit = new Float64Array(new SharedArrayBuffer(8 * p));
      changed = true;
    }
    if (changed) for (const h of this.handles) h.worker.postMessage({ type: 'buffers', mu: this.mu, fit: this.fit, acc: this.acc, acc2: this.acc2, ctl: this.ctl });
  }

  private resetTurns(): void {
    this.acc.fill(0);
    this.acc2.fill(0);
    Atomics.store(this.ctl, CTL_TURN, 0);
    Atomics.store(this.ctl, CTL_ABORT, 0);
  }

  private taskWire(job: EvaluateJob): Job {
    return {
      perturbation: job.perturbation, seed: job.seed, step: job.step, model: job.model, distance: job.distance, context: job.context,
      episodes: job.episodes?.map(episodeToWire),
    };
  }

  async evaluate(job: EvaluateJob): Promise<Float64Array> {
    const p = job.population;
    this.ensureBuffers(job.mu.length, p);
    this.mu.set(job.mu);
    const task = this.taskWire(job);
    const jobs: Array<[WorkerHandle, Job]> = [];
    this.handles.forEach((h, w) => {
      const [start, end] = memberRange(p, this.handles.length, w);
      if (end > start) jobs.push([h, { type: 'evaluate', ...task, start, end }]);
    });
    await this.all(jobs);
    return this.fit.slice(0, p);
  }

  async noiseSum(job: NoiseJob): Promise<Float64Array> {
    const maxP = job.shards.reduce((m, s) => Math.max(m, s.start + s.weights.length), 0);
    this.ensureBuffers(job.mu.length, maxP);
    this.mu.set(job.mu);
    this.resetTurns();
    const per: Array<Array<{ index: number; start: number; weights: Float64Array }>> = this.handles.map(() => []);
    job.shards.forEach((s, i) => per[i % this.handles.length]!.push({ index: i, start: s.start, weights: s.weights }));
    const { shards: _s, mu: _m, ...rest } = job;
    const jobs: Array<[WorkerHandle, Job]> = [];
    this.handles.forEach((h, w) => { if (per[w]!.length > 0) jobs.push([h, { type: 'noise', ...rest, shards: per[w] }]); });
    await this.all(jobs);
    return this.acc.slice();
  }

  async estimate(job: EstimateJob): Promise<EstimateResult> {
    const w = this.handles.length;
    if (job.shards < w) return this.estimateTwoPhase(job);
    this.ensureBuffers(job.mu.length, job.population);
    this.mu.set(job.mu);
    this.resetTurns();
    const task = this.taskWire(job);
    const jobs: Array<[WorkerHandle, Job]> = this.handles.map((h, i) => {
      const mine: number[] = [];
      for (let s = i; s < job.shards; s += w) mine.push(s);
      return [h, { type: 'estimate', ...task, population: job.population, nshards: job.shards, rule: job.rule, square: job.square, shards: mine }];
    });
    const replies = await this.all(jobs);
    const r: EstimateResult = {
      fitness: this.fit.slice(0, job.population), linear: this.acc.slice(), ...(job.square ? { square: this.acc2.slice() } : {}),
      nonFinite: 0, degenerate: 0, evalSeconds: 0, sumSeconds: 0,
    };
    for (const x of replies) {
      if (x.type !== 'done') continue;
      r.nonFinite += x.nonFinite ?? 0;
      r.degenerate += x.degenerate ?? 0;
      r.evalSeconds = Math.max(r.evalSeconds, x.evalSeconds ?? 0);
      r.sumSeconds = Math.max(r.sumSeconds, x.sumSeconds ?? 0);
    }
    return r;
  }

  /** Fewer shards than workers: members split over every worker, weights here, sums by shard (the same result). */
  private async estimateTwoPhase(job: EstimateJob): Promise<EstimateResult> {
    const t0 = performance.now();
    const fitness = await this.evaluate(job);
    const t1 = performance.now();
    const per = job.population / job.shards;
    const lin: Array<{ start: number; weights: Float64Array }> = [], sq: Array<{ start: number; weights: Float64Array }> = [];
    let nonFinite = 0, degenerate = 0;
    for (let s = 0; s < job.shards; s++) {
      const wts = ruleWeights(fitness.subarray(s * per, (s + 1) * per), job.rule, 1 / job.shards);
      lin.push({ start: s * per, weights: wts.linear });
      if (job.square) sq.push({ start: s * per, weights: wts.square! });
      nonFinite += wts.nonFinite;
      if (wts.degenerate) degenerate++;
    }
    const p = job.perturbation;
    if (p.kind === 'coordinate') throw new RangeError('estimate: coordinate perturbations have no noise sums');
    const base = { mu: job.mu, seed: job.seed, step: job.step, antithetic: p.antithetic, sigma: p.kind === 'gaussian' ? p.sigma : 1, ...(p.kind === 'diagonal' ? { sigmas: p.sigmas } : {}) };
    const linear = await this.noiseSum({ ...base, kind: 'linear', shards: lin });
    const square = job.square ? await this.noiseSum({ ...base, kind: 'square', shards: sq }) : undefined;
    return { fitness, linear, ...(square ? { square } : {}), nonFinite, degenerate, evalSeconds: (t1 - t0) / 1000, sumSeconds: (performance.now() - t1) / 1000 };
  }

  async setValidationEpisodes(episodes: Episode[]): Promise<void> {
    this.valCount = episodes.length;
    await this.all(this.handles.map((h, w) => {
      const [a, b] = memberRange(episodes.length, this.handles.length, w);
      return [h, { type: 'valset', episodes: episodes.slice(a, b).map(episodeToWire) }] as [WorkerHandle, Job];
    }));
  }

  async validate(job: ValidateJob): Promise<EpisodeScore[]> {
    const replies = await this.all(this.handles.map((h) => [h, { type: 'validate', model: job.model, params: job.params, bn: job.bn, distance: job.distance }] as [WorkerHandle, Job]));
    const out: EpisodeScore[] = [];
    for (const r of replies) if (r.type === 'done' && r.scores) out.push(...r.scores);
    if (out.length !== this.valCount) throw new Error(`validation returned ${out.length} scores for ${this.valCount} episodes`);
    return out;
  }

  workingBytes(): number {
    return this.handles.reduce((s, h) => s + h.bytes, 0) + this.mu.byteLength + this.acc.byteLength + this.acc2.byteLength + this.fit.byteLength + this.ctl.byteLength;
  }

  /**
   * Stop the workers: refuse new work, raise the abort flag (workers waiting
   * for a shard turn give up), ask every worker to close (its evaluator
   * cancels native work in flight within one member; the message in progress
   * settles), wait for that (at most CLOSE_GRACE_MS), then terminate the
   * threads: no native call is running in a thread when it is torn down.
   * Safe to call more than once.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ctl, CTL_ABORT, 1);
    Atomics.notify(this.ctl, CTL_TURN);
    await Promise.all(this.handles.map(async (h) => {
      h.worker.removeAllListeners('exit');
      h.worker.removeAllListeners('error');
      h.worker.on('error', () => {}); // a worker failing while it closes must not throw here
      for (const p of h.pending.values()) p.reject(new Error('ES runner closed'));
      h.pending.clear();
      if (!h.dead) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            h.worker.off('message', onMessage);
            h.worker.off('exit', done);
            resolve();
          };
          const onMessage = (r: { type?: string }): void => { if (r.type === 'closed') done(); };
          const timer = setTimeout(done, CLOSE_GRACE_MS);
          h.worker.on('message', onMessage);
          h.worker.once('exit', done);
          h.worker.postMessage({ type: 'close' });
        });
      }
      await h.worker.terminate();
    }));
  }
}
