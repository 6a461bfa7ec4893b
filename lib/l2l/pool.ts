/**
 * Parallel evaluation of a meta-step's work units on worker threads (the
 * pattern of lib/es/pool.ts: a module URL per worker, parameters in a
 * SharedArrayBuffer, results gathered in unit order). Units are split into
 * contiguous blocks, one per worker; each unit's result depends only on its
 * inputs and the caller reduces them in unit order, so the numbers are the
 * same for any worker count (tested).
 */
import { Worker } from 'node:worker_threads';
import type { EngineSpec, EsJob, Executor, UnrollJob, UnrollOut } from './engine.js';

/** Units [a, b) of worker w out of n for u units (contiguous, sizes differ by at most one). */
function memberRange(u: number, n: number, w: number): [number, number] {
  return [Math.floor((w * u) / n), Math.floor(((w + 1) * u) / n)];
}

type Reply = { type: 'ready' } | { type: 'done'; id: number; outs?: UnrollOut[]; fitness?: Float64Array } | { type: 'error'; id: number; message: string; stack?: string };

interface Handle { worker: Worker; pending: Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>; dead: Error | null }

export class WorkerExecutor implements Executor {
  private nextId = 1;
  private phi: Float32Array<ArrayBufferLike> = new Float32Array(0);
  private constructor(private readonly handles: Handle[]) {}

  get workers(): number { return this.handles.length; }

  static async create(workers: number, spec: EngineSpec): Promise<WorkerExecutor> {
    if (!(Number.isInteger(workers) && workers >= 1)) throw new RangeError(`workers must be a positive integer, got ${workers}`);
    const url = new URL('./worker.js', import.meta.url);
    const handles: Handle[] = [];
    const ready: Promise<void>[] = [];
    for (let i = 0; i < workers; i++) {
      const worker = new Worker(url, { workerData: { spec } });
      const h: Handle = { worker, pending: new Map(), dead: null };
      ready.push(new Promise<void>((resolve, reject) => {
        worker.on('message', (r: Reply) => {
          if (r.type === 'ready') { resolve(); return; }
          const p = h.pending.get(r.id);
          if (!p) return;
          h.pending.delete(r.id);
          if (r.type === 'error') {
            const e = new Error(`l2l worker ${i}: ${r.message}`);
            if (r.stack) e.stack = r.stack;
            p.reject(e);
          } else p.resolve(r);
        });
        const fail = (e: Error): void => {
          h.dead = e;
          reject(e);
          for (const p of h.pending.values()) p.reject(e);
          h.pending.clear();
        };
        worker.on('error', (e) => fail(new Error(`l2l worker ${i} crashed: ${e.message}`)));
        worker.on('exit', (code) => fail(new Error(`l2l worker ${i} exited (code ${code})`)));
      }));
      handles.push(h);
    }
    const ex = new WorkerExecutor(handles);
    try {
      await Promise.all(ready);
    } catch (e) {
      await ex.close();
      throw e;
    }
    return ex;
  }

  private call(h: Handle, msg: Record<string, unknown>): Promise<Reply> {
    if (h.dead) return Promise.reject(h.dead);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      h.pending.set(id, { resolve, reject });
      h.worker.postMessage({ ...msg, id });
    });
  }

  private setPhi(phi: Float32Array): void {
    if (this.phi.length !== phi.length) {
      this.phi = new Float32Array(new SharedArrayBuffer(4 * phi.length));
      for (const h of this.handles) h.worker.postMessage({ type: 'phi', buffer: this.phi });
    }
    this.phi.set(phi);
  }

  async unroll(phi: Float32Array, jobs: UnrollJob[]): Promise<UnrollOut[]> {
    this.setPhi(phi);
    const n = this.handles.length;
    const calls = this.handles.map((h, w) => {
      const [a, b] = memberRange(jobs.length, n, w);
      return b > a ? this.call(h, { type: 'unroll', jobs: jobs.slice(a, b) }) : Promise.resolve(null);
    });
    const replies = await Promise.all(calls);
    const out: UnrollOut[] = [];
    for (const r of replies) if (r && r.type === 'done') out.push(...r.outs!);
    if (out.length !== jobs.length) throw new Error(`l2l workers returned ${out.length} results for ${jobs.length} units`);
    return out;
  }

  async esFitness(job: Omit<EsJob, 'start' | 'end'>, pop: number): Promise<Float64Array> {
    const n = this.handles.length, fit = new Float64Array(pop);
    await Promise.all(this.handles.map(async (h, w) => {
      const [start, end] = memberRange(pop, n, w);
      if (end <= start) return;
      const r = await this.call(h, { type: 'es', job: { ...job, start, end } });
      if (r.type === 'done') fit.set(r.fitness!, start);
    }));
    return fit;
  }

  async close(): Promise<void> {
    await Promise.all(this.handles.map(async (h) => {
      h.worker.removeAllListeners('exit');
      h.worker.removeAllListeners('error');
      for (const p of h.pending.values()) p.reject(new Error('l2l executor closed'));
      h.pending.clear();
      await h.worker.terminate();
    }));
  }
}
