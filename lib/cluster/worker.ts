/**
 * The worker loop of distributed ES over Redis (`evometa worker`): join the
 * consumer group of the task streams this worker can serve (its package
 * version, its devices), take units (XREADGROUP), compute each whole on one
 * compute thread, push the result to the run's result stream, acknowledge
 * (XACK). While a unit computes, its claim is refreshed (XCLAIM to itself) so
 * nobody takes it over; units that stayed unacknowledged longer than the
 * claim timeout (their worker was killed) are taken over (XAUTOCLAIM).
 *
 * A unit is dropped (acknowledged, not computed) when its run has ended or
 * moved past its step. A run this worker cannot serve (its metadata does not
 * validate, its data differ) gets a failure result that stops the
 * coordinator with the reason. A lost Redis connection leaves the units in
 * flight unacknowledged: another worker (or this one, reconnected) takes them.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { VERSION } from '../version.js';
import { getDevice } from '../device/registry.js';
import { evaluatorSpecFor } from '../es/evaluators.js';
import { memberRange } from '../es/runner.js';
import type { EvolutionStrategy } from '../es/strategy.js';
import type { OmniglotDataset } from '../data/omniglot.js';
import { RedisLink } from './connect.js';
import type { RedisConnectOptions } from './options.js';
import { ComputePool } from './pool.js';
import { checkPrefix, DEFAULT_PREFIX, failureFields, GROUP, keys, NAME, parseUnit, resultFields, streamEntries, type Unit, type UnitResult } from './protocol.js';
import { parseRunMeta, RunContext } from './protonet.js';
import { heartbeat, unregister } from './registry.js';
import { advanceReplica, meanFromBlob, readStepBlob, refuse, replicaFromSnapshot, replicaState, threadJob, type StepState } from './step-state.js';
import { assertLittleEndian } from './wire.js';

export interface WorkerOptions extends Omit<RedisConnectOptions, 'name'> {
  /** Compute threads (units computed at once). Default 1. */
  threads?: number;
  /** Devices served (default: the best available one). */
  devices?: string[];
  /** Name in Redis (default host-pid). */
  name?: string;
  prefix?: string;
  /** Take over units left unacknowledged this long (ms). Default 30000. */
  claimTimeoutMs?: number;
  /** Omniglot for runs that use it. */
  dataDir?: string;
  cacheDir?: string | false;
  /** Testing aid: wait this long before computing each unit (a slow machine). */
  unitDelayMs?: number;
  /** Stop (after the units in flight) when this aborts. */
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface WorkerSummary { units: number; claimed: number; dropped: number; failed: number; runs: number }

interface RunEntry {
  ctx: RunContext | null;
  refused: string | null;
  step: { t: number; state: Promise<StepState | null> } | null;
  replica: EvolutionStrategy | null;
  replicaLock: Promise<unknown>;
}

/** How long a stopping worker waits for its units in flight. */
export const STOP_GRACE_MS = 10000;

/** A Redis command failed: the unit stays pending for someone else. */
class RedisOpError extends Error {}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> => new Promise((r) => {
  const t = setTimeout(r, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true });
});

/** p, or nothing after ms (the timer does not keep the process alive). */
function within(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<void>((r) => { timer = setTimeout(r, ms); timer.unref(); })]).finally(() => clearTimeout(timer));
}

export class ClusterWorker {
  readonly name: string;
  readonly summary: WorkerSummary = { units: 0, claimed: 0, dropped: 0, failed: 0, runs: 0 };
  private readonly prefix: string;
  private readonly claimMs: number;
  private readonly pools = new Map<string, ComputePool>();
  private readonly runs = new Map<string, Promise<RunEntry>>();
  private readonly datasets = new Map<number, OmniglotDataset>();
  private readonly streams: Array<{ key: string; device: string }>;
  private readonly inflight = new Set<Promise<void>>();
  private readonly threads: number;
  private stopped = false;
  private link: RedisLink | null = null;

  constructor(private readonly o: WorkerOptions) {
    assertLittleEndian();
    this.prefix = checkPrefix(o.prefix ?? DEFAULT_PREFIX);
    this.name = o.name ?? `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 100);
    if (!NAME.test(this.name)) throw new Error(`worker name ${JSON.stringify(this.name)}: letters, digits, '_', '.', ':', '-' only`);
    this.threads = o.threads ?? 1;
    this.claimMs = o.claimTimeoutMs ?? 30000;
    const devices = o.devices ?? [getDevice().name];
    this.streams = devices.map((d) => ({ key: keys.tasks(this.prefix, VERSION, d), device: d }));
  }

  private log(s: string): void { this.o.log?.(`worker ${this.name}: ${s}`); }

  private get r(): Redis { return this.link!.cmd; }

  private async op<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      throw new RedisOpError(this.link?.explain(e).message ?? String(e));
    }
  }

  /** Serve until the signal aborts; then finish the units in flight and leave. */
  async run(): Promise<WorkerSummary> {
    for (const s of this.streams) {
      const spec = evaluatorSpecFor(s.device);
      this.pools.set(s.device, await ComputePool.create(this.threads, { ...spec, threads: 1 }));
    }
    this.link = new RedisLink({ ...this.o, name: `evometa-worker-${this.name}`, onDown: (r) => this.log(`Redis at ${this.link!.where} went away (${r}); reconnecting`) });
    let beat: NodeJS.Timeout | null = null;
    try {
      await this.link.open();
      this.link.onReconnect(() => this.log(`reconnected to Redis at ${this.link!.where}`));
      const info = { name: this.name, host: hostname(), pid: process.pid, version: VERSION, devices: this.streams.map((s) => s.device), threads: this.threads };
      await this.ensureGroups();
      await heartbeat(this.r, this.prefix, info);
      beat = setInterval(() => { heartbeat(this.r, this.prefix, info).catch(() => undefined); }, 5000);
      this.log(`serving ${this.streams.map((s) => s.device).join(', ')} with ${this.threads} thread(s) at ${this.link.where} (evometa ${VERSION}, claim timeout ${this.claimMs / 1000} s)`);
      await this.loop();
      // finish the units in flight (bounded: with Redis away they cannot deliver; they stay pending for others)
      await within(Promise.allSettled([...this.inflight]), STOP_GRACE_MS);
      await within(unregister(this.r, this.prefix, this.name).catch(() => undefined), 1000);
      return this.summary;
    } finally {
      if (beat) clearInterval(beat);
      this.link.close();
      for (const p of this.pools.values()) await p.close();
    }
  }

  private async ensureGroups(): Promise<void> {
    for (const s of this.streams) {
      try {
        await this.r.call('XGROUP', 'CREATE', s.key, GROUP, '0', 'MKSTREAM');
      } catch (e) {
        if (!/BUSYGROUP/.test((e as Error).message)) throw e;
      }
    }
  }

  private async loop(): Promise<void> {
    const signal = this.o.signal;
    let nextClaim = Date.now() + this.claimMs / 2;
    const block = Math.max(50, Math.min(1000, Math.floor(this.claimMs / 2)));
    while (!this.stopped && !signal?.aborted) {
      const fail = this.link!.failure();
      if (fail) throw fail;
      const free = this.threads - this.inflight.size;
      if (free <= 0) {
        await Promise.race(this.inflight);
        continue;
      }
      try {
        if (Date.now() >= nextClaim) {
          nextClaim = Date.now() + Math.max(100, this.claimMs / 2);
          let claimed = 0;
          for (const s of this.streams) {
            const rep = await this.r.callBuffer('XAUTOCLAIM', s.key, GROUP, this.name, String(this.claimMs), '0-0', 'COUNT', String(free)) as unknown[];
            for (const [id, fields] of streamEntries([[null, Array.isArray(rep) ? rep[1] : []]])) {
              claimed++;
              this.summary.claimed++;
              this.dispatch(s, id, fields, true);
            }
          }
          if (claimed > 0) continue;
        }
        const reply = await this.untilStopped(this.link!.blk.callBuffer('XREADGROUP', 'GROUP', GROUP, this.name, 'COUNT', String(free), 'BLOCK', String(block), 'STREAMS', ...this.streams.map((s) => s.key), ...this.streams.map(() => '>')));
        if (!Array.isArray(reply)) continue;
        for (const sr of reply as unknown[]) {
          if (!Array.isArray(sr) || !Buffer.isBuffer(sr[0])) continue;
          const s = this.streams.find((x) => x.key === (sr[0] as Buffer).toString('latin1'));
          if (!s) continue;
          for (const [id, fields] of streamEntries([sr])) this.dispatch(s, id, fields, false);
        }
      } catch (e) {
        const msg = (e as Error).message;
        if (/NOGROUP/.test(msg)) {
          this.log('the task group is gone (Redis restarted?): creating it again');
          await this.ensureGroups().catch(() => undefined);
          continue;
        }
        const fail2 = this.link!.failure();
        if (fail2) throw fail2;
        this.log(`Redis command failed: ${msg}; retrying`);
        await sleep(500, signal);
      }
    }
  }

  /** The read's reply, or null as soon as the worker is told to stop (a read can wait forever while Redis is away). */
  private untilStopped<T>(p: Promise<T>): Promise<T | null> {
    const signal = this.o.signal;
    if (!signal) return p;
    if (signal.aborted) return Promise.resolve(null);
    return new Promise<T | null>((resolve, reject) => {
      const onAbort = (): void => resolve(null);
      signal.addEventListener('abort', onAbort, { once: true });
      p.then((v) => { signal.removeEventListener('abort', onAbort); resolve(v); }, (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); });
    });
  }

  private dispatch(s: { key: string; device: string }, id: string, fields: unknown[], claimed: boolean): void {
    const p = this.unit(s, id, fields, claimed).catch((e: Error) => this.log(`unit ${id}: ${e.message}`));
    const q = p.finally(() => this.inflight.delete(q));
    this.inflight.add(q);
  }

  private async ack(s: { key: string }, id: string): Promise<void> {
    await this.op(this.r.xack(s.key, GROUP, id));
  }

  private async drop(s: { key: string }, id: string): Promise<void> {
    this.summary.dropped++;
    await this.ack(s, id);
  }

  private async unit(s: { key: string; device: string }, id: string, fields: unknown[], claimed: boolean): Promise<void> {
    const hb = setInterval(() => { this.r.call('XCLAIM', s.key, GROUP, this.name, '0', id, 'JUSTID').catch(() => undefined); }, Math.max(50, this.claimMs / 3));
    let u: Unit | null = null;
    try {
      try {
        u = parseUnit(fields);
      } catch (e) {
        this.log(`dropped a malformed unit ${id}: ${(e as Error).message}`);
        await this.drop(s, id);
        return;
      }
      const cur = await this.op(this.r.hget(keys.run(this.prefix, u.run), 'step'));
      if (cur === null || Number(cur) !== u.step) {
        if (cur === null) this.runs.delete(u.run);
        await this.drop(s, id);
        return;
      }
      if (claimed) this.log(`took over unit ${u.unit} of run ${u.run} step ${u.step} (left unacknowledged for ${this.claimMs / 1000} s)`);
      let result: UnitResult;
      try {
        const entry = await this.entry(u.run, s.device);
        if (!entry) { await this.drop(s, id); return; }
        if (entry.refused) throw refuse(u.run, entry.refused);
        if (u.hash !== entry.ctx!.meta.hash) throw refuse(u.run, `a unit carries config hash ${u.hash.slice(0, 12)}, the run's is ${entry.ctx!.meta.hash.slice(0, 12)}`);
        const st = await this.stepState(u.run, entry, u.step, s.device);
        if (!st) { await this.drop(s, id); return; }
        if (st.header.kind !== u.kind || st.header.units !== u.units) throw refuse(u.run, `unit ${u.kind} ${u.unit}/${u.units} does not match step ${u.step}'s ${st.header.kind} x ${st.header.units}`);
        if (this.o.unitDelayMs) await sleep(this.o.unitDelayMs);
        result = await this.compute(s.device, st, u);
      } catch (e) {
        if (e instanceof RedisOpError) throw e;
        this.summary.failed++;
        const err = e as Error;
        this.log(`could not compute unit ${u.unit} of run ${u.run} step ${u.step}: ${err.message}`);
        await this.op(this.r.multi().xadd(keys.results(this.prefix, u.run), '*', ...failureFields({ run: u.run, step: u.step, unit: u.unit, kind: u.kind, worker: this.name, error: err.message }))
          .pexpire(keys.results(this.prefix, u.run), 3600_000).xack(s.key, GROUP, id).exec());
        return;
      }
      await this.op(this.r.multi().xadd(keys.results(this.prefix, u.run), '*', ...resultFields(result)).pexpire(keys.results(this.prefix, u.run), 3600_000).xack(s.key, GROUP, id).exec());
      this.summary.units++;
    } finally {
      clearInterval(hb);
    }
  }

  private async compute(device: string, st: StepState, u: Unit): Promise<UnitResult> {
    const pool = this.pools.get(device)!;
    const head = { run: u.run, step: u.step, unit: u.unit, kind: u.kind, worker: this.name };
    if (u.kind === 'estimate') {
      const p = await pool.estimate(st.job, u.unit);
      return { ...head, fitness: p.fitness, linear: p.linear, ...(p.square ? { square: p.square } : {}), nonFinite: p.nonFinite, degenerate: p.degenerate ? 1 : 0, evalSeconds: p.evalSeconds, sumSeconds: p.sumSeconds };
    }
    const [a, b] = memberRange(st.header.population, u.units, u.unit);
    const r = await pool.evaluate(st.job, a, b);
    let nonFinite = 0;
    for (const f of r.fitness) if (!Number.isFinite(f)) nonFinite++;
    return { ...head, fitness: r.fitness, nonFinite, degenerate: 0, evalSeconds: r.evalSeconds, sumSeconds: 0 };
  }

  /** The run's entry: metadata fetched and validated once (null: the run has ended). */
  private entry(run: string, device: string): Promise<RunEntry | null> {
    let e = this.runs.get(run);
    if (!e) {
      e = (async (): Promise<RunEntry> => {
        const json = await this.op(this.r.hget(keys.run(this.prefix, run), 'meta'));
        const entry: RunEntry = { ctx: null, refused: null, step: null, replica: null, replicaLock: Promise.resolve() };
        if (json === null) { entry.refused = 'its metadata is gone'; return entry; }
        try {
          const meta = parseRunMeta(json, run);
          if (meta.version !== VERSION) throw new Error(`it was written by evometa ${meta.version}, this worker is ${VERSION}`);
          if (meta.device !== device) throw new Error(`its device is ${meta.device}, its units came on the ${device} stream`);
          entry.ctx = new RunContext(meta, { ...(this.o.dataDir !== undefined ? { dataDir: this.o.dataDir } : {}), ...(this.o.cacheDir !== undefined ? { cacheDir: this.o.cacheDir } : {}), datasets: this.datasets, onWarning: (m) => this.log(`warning: ${m}`) });
          this.summary.runs++;
          const c = meta.config;
          this.log(`joined run ${run} of ${meta.coordinator}: ${c.estimator} (${c.scheme} scheme), pop ${c.pop} in ${c.shards} shard(s), ${entry.ctx.dim} parameters, device ${meta.device}, sync ${meta.sync}`);
        } catch (err) {
          entry.refused = (err as Error).message;
          this.log(`refuses run ${run}: ${entry.refused}`);
        }
        for (const k of [...this.runs.keys()].slice(0, Math.max(0, this.runs.size - 8))) this.runs.delete(k);
        return entry;
      })();
      this.runs.set(run, e);
      e.catch(() => this.runs.delete(run));
    }
    return e.then((x) => (x.refused === 'its metadata is gone' ? (this.runs.delete(run), null) : x));
  }

  /** Step t of a run: blob read and checked, mean received or replicated (null: the step is over). */
  private stepState(run: string, entry: RunEntry, t: number, device: string): Promise<StepState | null> {
    if (entry.step?.t === t) return entry.step.state;
    const state = (async (): Promise<StepState | null> => {
      const ctx = entry.ctx!;
      const buf = await this.op(this.r.getBuffer(keys.step(this.prefix, run, t)));
      if (!buf) return null;
      const { header, blob } = readStepBlob(ctx, buf, t);
      if (ctx.meta.sync === 'mean') {
        const m = meanFromBlob(ctx, header, blob);
        return { step: t, header, job: threadJob(ctx, header, m.mu, m.sigmas) };
      }
      const rep = await this.replicaAt(run, entry, t, header, blob, device);
      if (!rep) return null;
      return { step: t, header, job: threadJob(ctx, header, rep.mu, rep.sigmas) };
    })();
    entry.step = { t, state };
    state.catch(() => { if (entry.step?.state === state) entry.step = null; });
    return state;
  }

  /** Sync 'fitness': bring this worker's replica of the strategy to step t (from the snapshot, then step by step). */
  private replicaAt(run: string, entry: RunEntry, t: number, header: ReturnType<typeof readStepBlob>['header'], blob: ReturnType<typeof readStepBlob>['blob'], device: string): Promise<{ mu: Float32Array; sigmas?: Float32Array } | null> {
    const ctx = entry.ctx!;
    const pool = this.pools.get(device)!;
    const go = async (): Promise<{ mu: Float32Array; sigmas?: Float32Array } | null> => {
      for (let attempt = 0; attempt < 2; attempt++) {
        let s = entry.replica;
        if (!s || s.step > t || attempt > 0) {
          const snap = await this.op(this.r.getBuffer(keys.snapshot(this.prefix, run)));
          if (!snap) return null;
          s = replicaFromSnapshot(ctx, snap);
          if (s.step > t) return null;
          this.log(`run ${run}: replica from the snapshot at step ${s.step}${s.step < t ? `, replaying ${t - s.step} step(s)` : ''}`);
        }
        entry.replica = s;
        let gap = false;
        while (s.step < t) {
          const next = s.step + 1;
          let h = header, b = blob;
          if (next !== t) {
            const buf = await this.op(this.r.getBuffer(keys.step(this.prefix, run, next)));
            if (!buf) { gap = true; break; }
            ({ header: h, blob: b } = readStepBlob(ctx, buf, next));
          }
          if (!h.prev) { gap = true; break; }
          await advanceReplica(ctx, s, h, b, (job) => pool.noiseSum(job));
        }
        if (!gap) return replicaState(s);
        entry.replica = null;
      }
      throw refuse(run, `cannot bring the replica to step ${t}: the fitness of some step before it is no longer in Redis`);
    };
    const p = entry.replicaLock.then(go, go);
    entry.replicaLock = p.catch(() => undefined);
    return p;
  }

  stop(): void { this.stopped = true; }
}

/** Run a worker until opts.signal aborts. */
export async function runWorker(o: WorkerOptions): Promise<WorkerSummary> {
  return new ClusterWorker(o).run();
}
