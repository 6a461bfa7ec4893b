/**
 * A worker process's compute threads (lib/cluster/shard-thread.ts), one
 * evaluator each. Units run whole on one thread, so a process with T threads
 * works on up to T units at once, and its main thread stays free for Redis
 * (heartbeats that keep its units claimed, results, new units). Noise sums of
 * several shards run spread over the threads and are added here in shard
 * order, from zero, in float64: bitwise what the in-process runners add.
 */
import { Worker } from 'node:worker_threads';
import type { EvaluatorSpec } from '../es/evaluators.js';
import type { NoiseSumRequest } from '../es/population.js';
import { accumulate, type NoiseJob, type ShardPart } from '../es/runner.js';
import type { ThreadJob, ThreadMsg } from './shard-thread.js';

type Reply = { id: number; ok: true; [k: string]: unknown } | { id: number; ok: false; message: string; name: string };

type ThreadMsgBody = ThreadMsg extends infer M ? (M extends { id: number } ? Omit<M, 'id'> : never) : never;

interface Slot {
  worker: Worker;
  busy: boolean;
  pending: Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>;
  dead: Error | null;
}

export class ComputePool {
  private readonly slots: Slot[] = [];
  private readonly queue: Array<() => void> = [];
  private nextId = 1;
  private closed = false;

  private constructor(readonly spec: EvaluatorSpec) {}

  get threads(): number { return this.slots.length; }

  static async create(threads: number, spec: EvaluatorSpec): Promise<ComputePool> {
    const pool = new ComputePool(spec);
    const url = new URL('./shard-thread.js', import.meta.url);
    for (let i = 0; i < threads; i++) {
      const slot: Slot = { worker: new Worker(url, { workerData: { spec } }), busy: false, pending: new Map(), dead: null };
      slot.worker.on('message', (r: Reply) => {
        const p = slot.pending.get(r.id);
        if (!p) return;
        slot.pending.delete(r.id);
        p.resolve(r);
      });
      const fail = (e: Error): void => {
        slot.dead = e;
        for (const p of slot.pending.values()) p.reject(e);
        slot.pending.clear();
      };
      slot.worker.on('error', (e) => fail(new Error(`compute thread ${i} crashed: ${e.message}`)));
      slot.worker.on('exit', (code) => fail(new Error(`compute thread ${i} exited (code ${code})`)));
      pool.slots.push(slot);
    }
    try {
      await Promise.all(pool.slots.map((s) => pool.send(s, { type: 'init' })));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  private send(s: Slot, msg: ThreadMsgBody, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (s.dead) return Promise.reject(s.dead);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      s.pending.set(id, { resolve, reject });
      s.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  /** Run one message on the next free thread (waiting for one). */
  private async run(msg: ThreadMsgBody): Promise<Record<string, unknown>> {
    if (this.closed) throw new Error('compute pool closed');
    let slot = this.slots.find((s) => !s.busy);
    while (!slot) {
      await new Promise<void>((r) => this.queue.push(r));
      if (this.closed) throw new Error('compute pool closed');
      slot = this.slots.find((s) => !s.busy);
    }
    slot.busy = true;
    try {
      const r = await this.send(slot, msg);
      if (!r.ok) {
        const e = new Error(r.message);
        e.name = r.name;
        throw e;
      }
      return r;
    } finally {
      slot.busy = false;
      this.queue.shift()?.();
    }
  }

  /** Shard `shard` of an estimate job: fitness, weights, noise sums (lib/es shardEstimate). */
  async estimate(job: ThreadJob, shard: number): Promise<ShardPart> {
    const r = await this.run({ type: 'estimate', job, shard });
    return { ...(r as unknown as ShardPart), degenerate: r['degenerate'] === 1 };
  }

  /** Fitness of members [start, end). */
  async evaluate(job: ThreadJob, start: number, end: number): Promise<{ fitness: Float64Array; evalSeconds: number }> {
    const r = await this.run({ type: 'evaluate', job, start, end });
    return { fitness: r['fitness'] as Float64Array, evalSeconds: r['evalSeconds'] as number };
  }

  /** The noise sum over a job's shards: partials on the threads, added here in shard order. */
  async noiseSum(job: NoiseJob): Promise<Float64Array> {
    const { shards, ...rest } = job;
    const parts = await Promise.all(shards.map((s) => this.run({ type: 'noise', req: { ...rest, start: s.start, weights: s.weights } as NoiseSumRequest })));
    const acc = new Float64Array(job.mu.length);
    for (const p of parts) accumulate(acc, p['sum'] as Float64Array);
    return acc;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const q of this.queue.splice(0)) q();
    await Promise.all(this.slots.map(async (s) => {
      s.worker.removeAllListeners('exit');
      s.worker.removeAllListeners('error');
      for (const p of s.pending.values()) p.reject(new Error('compute pool closed'));
      s.pending.clear();
      await s.worker.terminate();
    }));
  }
}
