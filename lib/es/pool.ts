/**
 * Running the population: inline (one evaluator on this thread) or on worker
 * threads (each worker owns an evaluator; mu, fitness and the noise-sum
 * accumulator live in SharedArrayBuffers). Shards fix the math, workers only
 * execute them:
 *  - fitness: member i's fitness depends only on (mu, seed, step, i, episode),
 *    so any split of the members over workers gives the same values;
 *  - noise sums: each shard's partial sum is computed by one worker in member
 *    order and added to the shared float64 accumulator strictly in shard order
 *    (a turn counter), so the result is bitwise the same for any worker count,
 *    and each worker holds O(D) at a time.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { Distance, Episode } from '../model/protonet.js';
import type { BnState, ModelConfig } from '../model/layout.js';
import type { Perturbation, PopulationEvaluator } from './population.js';
import { loadEvaluator, type EvaluatorSpec } from './evaluators.js';
import { episodeToWire, scoreEpisode, type EpisodeScore } from './validate.js';

export interface EvaluateJob {
  model: ModelConfig;
  mu: Float32Array;
  perturbation: Perturbation;
  seed: number;
  step: number;
  episode: Episode;
  distance: Distance;
  /** Members [0, population). */
  population: number;
}

export interface ShardSum { start: number; weights: Float64Array }

export interface NoiseJob {
  mu: Float32Array;
  seed: number;
  step: number;
  antithetic: boolean;
  sigma: number;
  /** In shard order; the result is sum over shards (in this order) of each shard's noise sum. */
  shards: ShardSum[];
}

export interface ValidateJob { model: ModelConfig; params: Float32Array; bn: BnState; distance: Distance }

export interface PopulationRunner {
  readonly workers: number;
  readonly spec: EvaluatorSpec;
  evaluate(job: EvaluateJob): Promise<Float64Array>;
  noiseSum(job: NoiseJob): Promise<Float64Array>;
  /** Fixed validation episodes, sent once. */
  setValidationEpisodes(episodes: Episode[]): Promise<void>;
  validate(job: ValidateJob): Promise<EpisodeScore[]>;
  /** ES working memory: evaluator scratch of every worker plus the shared buffers (bytes). */
  workingBytes(): number;
  close(): Promise<void>;
}

/** Add partial into acc (float64, one rounding per element). */
export function accumulate(acc: Float64Array<ArrayBufferLike>, partial: Float64Array): void {
  if (acc.length !== partial.length) throw new RangeError(`noise sum has ${partial.length} elements, expected ${acc.length}`);
  for (let j = 0; j < acc.length; j++) acc[j] = acc[j]! + partial[j]!;
}

/** Members [a, b) of worker w out of n for a population of p (contiguous, sizes differ by at most one). */
export function memberRange(p: number, n: number, w: number): [number, number] {
  return [Math.floor((w * p) / n), Math.floor(((w + 1) * p) / n)];
}

export class InlineRunner implements PopulationRunner {
  readonly workers = 1;
  private valEpisodes: Episode[] = [];
  private accBytes = 0;
  private ops: import('../ops/api.js').DirectOps | null = null;
  constructor(readonly evaluator: PopulationEvaluator, readonly spec: EvaluatorSpec) {}

  async evaluate(job: EvaluateJob): Promise<Float64Array> {
    const { population, ...rest } = job;
    return this.evaluator.evaluate({ ...rest, start: 0, end: population });
  }

  async noiseSum(job: NoiseJob): Promise<Float64Array> {
    const acc = new Float64Array(job.mu.length);
    this.accBytes = acc.byteLength;
    for (const s of job.shards) {
      accumulate(acc, await this.evaluator.noiseSum({ mu: job.mu, seed: job.seed, step: job.step, antithetic: job.antithetic, sigma: job.sigma, start: s.start, weights: s.weights }));
    }
    return acc;
  }

  async setValidationEpisodes(episodes: Episode[]): Promise<void> { this.valEpisodes = episodes; }

  async validate(job: ValidateJob): Promise<EpisodeScore[]> {
    if (!this.ops) {
      const [{ DirectOps }, { getDevice }] = await Promise.all([import('../ops/api.js'), import('../device/registry.js')]);
      this.ops = new DirectOps(getDevice(this.spec.device));
    }
    const { ProtoNetLayout } = await import('../model/layout.js');
    const layout = new ProtoNetLayout(job.model);
    return this.valEpisodes.map((ep) => scoreEpisode(this.ops!, layout, job.params, job.bn, ep, job.distance));
  }

  workingBytes(): number { return (this.evaluator.workingBytes?.() ?? 0) + this.accBytes; }

  async close(): Promise<void> { await this.evaluator.close?.(); }
}

type Reply = { type: 'ready' } | { type: 'done'; id: number; bytes: number; scores?: EpisodeScore[] } | { type: 'error'; id: number; message: string; stack?: string };

interface Pending { resolve: (r: Reply) => void; reject: (e: Error) => void }

/** How long close() waits for a worker to cancel or finish its work before terminating it anyway. */
const CLOSE_WAIT_MS = 10000;

/** Control words in the shared Int32Array: the shard whose turn it is to add, and an abort flag. */
export const CTL_TURN = 0, CTL_ABORT = 1;

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

export class WorkerRunner implements PopulationRunner {
  private nextId = 1;
  private mu: Float32Array<ArrayBufferLike> = new Float32Array(0);
  private fit: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private acc: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private readonly ctl = new Int32Array(new SharedArrayBuffer(8));
  private valCount = 0;

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

  private call(h: WorkerHandle, msg: Record<string, unknown>): Promise<Reply> {
    if (h.dead) return Promise.reject(h.dead);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      h.pending.set(id, { resolve, reject });
      h.worker.postMessage({ ...msg, id });
    });
  }

  /** Run one message per worker; on any failure raise the abort flag so workers waiting for their turn give up. */
  private async all(jobs: Array<[WorkerHandle, Record<string, unknown>]>): Promise<Reply[]> {
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
      changed = true;
    }
    if (this.fit.length < p) {
      this.fit = new Float64Array(new SharedArrayBuffer(8 * p));
      changed = true;
    }
    if (changed) for (const h of this.handles) h.worker.postMessage({ type: 'buffers', mu: this.mu, fit: this.fit, acc: this.acc, ctl: this.ctl });
  }

  async evaluate(job: EvaluateJob): Promise<Float64Array> {
    const p = job.population;
    this.ensureBuffers(job.mu.length, p);
    this.mu.set(job.mu);
    const episode = episodeToWire(job.episode);
    const jobs: Array<[WorkerHandle, Record<string, unknown>]> = [];
    this.handles.forEach((h, w) => {
      const [start, end] = memberRange(p, this.handles.length, w);
      if (end > start) {
        jobs.push([h, { type: 'evaluate', model: job.model, perturbation: job.perturbation, seed: job.seed, step: job.step, episode, distance: job.distance, start, end }]);
      }
    });
    await this.all(jobs);
    return this.fit.slice(0, p);
  }

  async noiseSum(job: NoiseJob): Promise<Float64Array> {
    const maxP = job.shards.reduce((m, s) => Math.max(m, s.start + s.weights.length), 0);
    this.ensureBuffers(job.mu.length, maxP);
    this.mu.set(job.mu);
    this.acc.fill(0);
    Atomics.store(this.ctl, CTL_TURN, 0);
    Atomics.store(this.ctl, CTL_ABORT, 0);
    const per: Array<Array<{ index: number; start: number; weights: Float64Array }>> = this.handles.map(() => []);
    job.shards.forEach((s, i) => per[i % this.handles.length]!.push({ index: i, start: s.start, weights: s.weights }));
    const jobs: Array<[WorkerHandle, Record<string, unknown>]> = [];
    this.handles.forEach((h, w) => {
      if (per[w]!.length > 0) jobs.push([h, { type: 'noise', seed: job.seed, step: job.step, antithetic: job.antithetic, sigma: job.sigma, shards: per[w] }]);
    });
    await this.all(jobs);
    return this.acc.slice();
  }

  async setValidationEpisodes(episodes: Episode[]): Promise<void> {
    this.valCount = episodes.length;
    await this.all(this.handles.map((h, w) => {
      const [a, b] = memberRange(episodes.length, this.handles.length, w);
      return [h, { type: 'valset', episodes: episodes.slice(a, b).map(episodeToWire) }] as [WorkerHandle, Record<string, unknown>];
    }));
  }

  async validate(job: ValidateJob): Promise<EpisodeScore[]> {
    const replies = await this.all(this.handles.map((h) => [h, { type: 'validate', model: job.model, params: job.params, bn: job.bn, distance: job.distance }] as [WorkerHandle, Record<string, unknown>]));
    const out: EpisodeScore[] = [];
    for (const r of replies) if (r.type === 'done' && r.scores) out.push(...r.scores);
    if (out.length !== this.valCount) throw new Error(`validation returned ${out.length} scores for ${this.valCount} episodes`);
    return out;
  }

  workingBytes(): number {
    return this.handles.reduce((s, h) => s + h.bytes, 0) + this.mu.byteLength + this.acc.byteLength + this.fit.byteLength + this.ctl.byteLength;
  }

  /**
   * Asks every worker to close (its evaluator cancels native work in flight, the message in
   * progress settles), waits for that (at most CLOSE_WAIT_MS), then terminates the threads:
   * no native call is running in a thread when it is torn down.
   */
  async close(): Promise<void> {
    Atomics.store(this.ctl, CTL_ABORT, 1); // workers waiting for their turn in a noise sum give up
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
          const timer = setTimeout(done, CLOSE_WAIT_MS);
          h.worker.on('message', onMessage);
          h.worker.once('exit', done);
          h.worker.postMessage({ type: 'close' });
        });
      }
      await h.worker.terminate();
    }));
  }
}

export async function createRunner(opts: { workers: number; spec: EvaluatorSpec }): Promise<PopulationRunner> {
  if (!(Number.isInteger(opts.workers) && opts.workers >= 1)) throw new RangeError(`workers must be a positive integer, got ${opts.workers}`);
  if (opts.workers === 1) return new InlineRunner(await loadEvaluator(opts.spec), opts.spec);
  // evaluators with their own thread pool share the cores among the workers
  const threads = opts.spec.threads ?? Math.max(1, Math.floor(availableParallelism() / opts.workers));
  return WorkerRunner.create(opts.workers, { ...opts.spec, threads });
}
