/**
 * The coordinator's side of distributed ES over Redis: RedisRunner, a
 * PopulationRunner that the unchanged strategies and ES-ProtoNet use like the
 * in-process runners. Per step it publishes the step (a blob: run, step,
 * config hash, and the mean, or the previous step's fitness from which every
 * worker replica makes the mean itself), adds one unit per shard to the task
 * stream, waits for the results, and assembles them exactly as the in-process
 * runners do: fitness by member, noise sums added in shard order from zero in
 * float64 (paper scheme, sync 'mean'). Everything else is local: noise sums
 * of global schemes (and of sync 'fitness'), validation.
 *
 * Results are parsed and length-checked; results of another run or step are
 * dropped and counted; a duplicate unit (two workers computed it, e.g. after
 * a claim) is dropped, and compared bit for bit with the first.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { VERSION } from '../version.js';
import type { EsConfig } from '../methods/protonet-es/config.js';
import { ruleWeights } from '../es/estimators.js';
import type { EvaluatorSpec } from '../es/evaluators.js';
import type { Episode } from '../model/protonet.js';
import { createRunner, memberRange, type EstimateJob, type EstimateResult, type EvaluateJob, type NoiseJob, type PopulationRunner, type ValidateJob } from '../es/runner.js';
import type { EvolutionStrategy } from '../es/strategy.js';
import type { EpisodeScore } from '../es/validate.js';
import { RedisLink } from './connect.js';
import type { RedisConnectOptions, SyncMode } from './options.js';
import { ClusterError } from './errors.js';

export { ClusterError };
import { checkPrefix, DEFAULT_PREFIX, DEFAULT_SYNC, GROUP, keys, parseResult, streamEntries, perturbationHeader, PROTOCOL, SNAP_MAGIC, STEP_MAGIC, unitFields, type Expect, type StepHeader, type UnitKind, type UnitResult } from './protocol.js';
import { configHash, type DataDescriptor, type RunMeta } from './protonet.js';
import { assertLittleEndian, episodeDigest, packBlob, stateHash, WireError, type FloatArray } from './wire.js';
import { listWorkers, type WorkerInfo } from './registry.js';

export interface RedisRunnerOptions extends Omit<RedisConnectOptions, 'name'> {
  /** The run's resolved ES-ProtoNet config (workers validate and hash it). */
  config: EsConfig;
  /** Where workers get the train episodes. */
  data: DataDescriptor;
  /** The device's evaluator (the coordinator's own noise sums and validation; workers use the same device). */
  spec: EvaluatorSpec;
  /** 'mean': the coordinator publishes mu every step; 'fitness': it publishes the previous fitness and every worker applies the update itself. */
  sync?: SyncMode;
  /** Threads of the coordinator's own runner (noise sums, validation). Default 1. */
  localWorkers?: number;
  prefix?: string;
  /** Fitness sync: publish the strategy's state every n steps (replicas of late workers start there). Default 20. */
  snapshotEvery?: number;
  /** Run keys expire this long after the coordinator stops refreshing them (ms). Default 60000. */
  runTtlMs?: number;
  /** A line for the user (waiting for workers, a worker's warning, Redis down). */
  onNotice?: (message: string) => void;
  /** Say so after this long without a result (ms). Default 15000. */
  noticeAfterMs?: number;
}


export interface ClusterStats {
  steps: number;
  units: number;
  /** Results of another run or another step, dropped. */
  stale: number;
  /** Malformed results, dropped. */
  invalid: number;
  /** A second result for a unit already in, dropped. */
  duplicates: number;
  /** Duplicates whose bits differed from the first (workers that compute differently). */
  mismatches: number;
  /** Units computed per worker. */
  perWorker: Map<string, number>;
  /** Payload bytes this coordinator wrote to Redis / read from it (values only, not the protocol's framing). */
  bytesOut: number;
  bytesIn: number;
  /** Of the last step. */
  last: { bytesOut: number; bytesIn: number; waitSeconds: number; publishSeconds: number };
}

function newRunId(): string {
  return `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}

/** Resolves after ms without keeping the process alive. */
const sleep = (ms: number): Promise<void> => new Promise((r) => { setTimeout(r, ms).unref(); });

export class RedisRunner implements PopulationRunner {
  readonly run: string;
  readonly meta: RunMeta;
  readonly sync: SyncMode;
  readonly stats: ClusterStats = { steps: 0, units: 0, stale: 0, invalid: 0, duplicates: 0, mismatches: 0, perWorker: new Map(), bytesOut: 0, bytesIn: 0, last: { bytesOut: 0, bytesIn: 0, waitSeconds: 0, publishSeconds: 0 } };
  private readonly prefix: string;
  private readonly tasksKey: string;
  private strategy: EvolutionStrategy | null = null;
  private lastStep: number | null = null;
  private lastFitness: Float64Array | null = null;
  private snapStep: number | null = null;
  private kept: number[] = [];
  private resultsId = '0-0';
  private reconnected = false;
  private closed = false;
  private keepalive: NodeJS.Timeout | null = null;
  private seen: WorkerInfo[] = [];
  private notices = new Set<string>();

  private constructor(private readonly link: RedisLink, private readonly local: PopulationRunner, private readonly o: RedisRunnerOptions) {
    this.prefix = checkPrefix(o.prefix ?? DEFAULT_PREFIX);
    this.sync = o.sync ?? DEFAULT_SYNC;
    this.run = newRunId();
    this.meta = {
      v: PROTOCOL, run: this.run, version: VERSION, method: 'protonet-es', config: o.config, data: o.data, device: o.spec.device, sync: this.sync,
      hash: configHash(o.config, o.data, o.spec.device), coordinator: `${hostname()}.${process.pid}`.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 100),
    };
    this.tasksKey = keys.tasks(this.prefix, VERSION, o.spec.device);
  }

  /** Connect, publish the run, start the coordinator's own runner. */
  static async create(o: RedisRunnerOptions): Promise<RedisRunner> {
    assertLittleEndian();
    if (o.sync !== undefined && o.sync !== 'mean' && o.sync !== 'fitness') throw new WireError(`sync must be mean or fitness, got ${JSON.stringify(o.sync)}`);
    const link = new RedisLink({ ...o, name: 'evometa-coordinator', onDown: (r) => o.onNotice?.(`Redis at ${link.where} went away (${r}); reconnecting${o.timeoutMs ? ` for up to ${o.timeoutMs / 1000} s` : ''}`) });
    await link.open();
    let local: PopulationRunner | null = null;
    try {
      local = await createRunner({ workers: o.localWorkers ?? 1, spec: o.spec });
      const r = new RedisRunner(link, local, o);
      await r.publishRun();
      link.onReconnect(() => { r.reconnected = true; });
      const ttl = o.runTtlMs ?? 60000;
      r.keepalive = setInterval(() => { r.refresh().catch(() => undefined); }, Math.max(200, ttl / 4));
      r.keepalive.unref();
      await r.refresh();
      return r;
    } catch (e) {
      link.close();
      await local?.close();
      throw e;
    }
  }

  get spec(): EvaluatorSpec { return this.o.spec; }
  /** Worker processes that served this version and device at the last look (refreshed every run TTL / 4). */
  get workers(): number { return Math.max(1, this.serving().length); }
  /** Worker processes serving this run's version and device at the last look. */
  get connected(): number { return this.serving().length; }
  /** One line: units, steps, who computed them, what was dropped. */
  summary(): string {
    const st = this.stats;
    return `${st.units} shard(s) over ${st.steps} step(s) by ${st.perWorker.size} worker(s) (${[...st.perWorker].map(([w, n]) => `${w} ${n}`).join(', ') || '-'}); dropped ${st.stale} stale, ${st.invalid} malformed, ${st.duplicates} duplicate result(s)${st.mismatches ? `, ${st.mismatches} duplicate(s) with different bits` : ''}`;
  }
  /** Where Redis is (password redacted). */
  get where(): string { return this.link.where; }

  /** The strategy the runner serves (sync 'fitness': its state is what late workers' replicas start from). */
  attachStrategy(s: EvolutionStrategy): void { this.strategy = s; }

  private serving(): WorkerInfo[] { return this.seen.filter((w) => w.version === VERSION && w.devices.includes(this.meta.device)); }

  private notice(msg: string, once = false): void {
    if (once) {
      if (this.notices.has(msg)) return;
      this.notices.add(msg);
    }
    this.o.onNotice?.(msg);
  }

  private async publishRun(): Promise<void> {
    const k = keys.run(this.prefix, this.run);
    const ttl = this.o.runTtlMs ?? 60000;
    await this.link.cmd.multi().hset(k, 'meta', JSON.stringify(this.meta), 'step', String(this.lastStep ?? -1)).pexpire(k, ttl).exec();
    try {
      await this.link.cmd.call('XGROUP', 'CREATE', this.tasksKey, GROUP, '0', 'MKSTREAM');
    } catch (e) {
      if (!/BUSYGROUP/.test((e as Error).message)) throw e;
    }
  }

  /** Keep the run's keys alive and look at the workers. */
  private async refresh(): Promise<void> {
    if (this.closed) return;
    const ttl = this.o.runTtlMs ?? 60000;
    const p = this.link.cmd.pipeline().pexpire(keys.run(this.prefix, this.run), ttl).pexpire(keys.results(this.prefix, this.run), ttl * 60);
    await p.exec();
    this.seen = await listWorkers(this.link.cmd, this.prefix);
  }

  // ---- PopulationRunner -------------------------------------------------------------------------

  async evaluate(job: EvaluateJob): Promise<Float64Array> {
    const units = this.o.config.shards > 1 ? Math.min(this.o.config.shards, job.population) : Math.min(16, job.population);
    const parts = await this.step('evaluate', job, units, { rule: null, square: false });
    const f = new Float64Array(job.population);
    parts.forEach((r, u) => f.set(r.fitness, memberRange(job.population, units, u)[0]));
    return f;
  }

  noiseSum(job: NoiseJob): Promise<Float64Array> { return this.local.noiseSum(job); }

  async estimate(job: EstimateJob): Promise<EstimateResult> {
    if (this.sync === 'fitness') return this.estimateFromFitness(job);
    const parts = await this.step('estimate', job, job.shards, { rule: job.rule, square: job.square });
    const d = job.mu.length, per = job.population / job.shards;
    const r: EstimateResult = { fitness: new Float64Array(job.population), linear: new Float64Array(d), ...(job.square ? { square: new Float64Array(d) } : {}), nonFinite: 0, degenerate: 0, evalSeconds: 0, sumSeconds: 0 };
    // in shard order, from zero: the same float64 additions as InlineRunner and WorkerRunner
    parts.forEach((p, s) => {
      r.fitness.set(p.fitness, s * per);
      for (let j = 0; j < d; j++) r.linear[j] = r.linear[j]! + p.linear![j]!;
      if (r.square) for (let j = 0; j < d; j++) r.square[j] = r.square[j]! + p.square![j]!;
      r.nonFinite += p.nonFinite;
      r.degenerate += p.degenerate;
      r.evalSeconds = Math.max(r.evalSeconds, p.evalSeconds);
      r.sumSeconds = Math.max(r.sumSeconds, p.sumSeconds);
    });
    return r;
  }

  /** Sync 'fitness', paper scheme: shard fitness from the workers, then each shard's weights and the noise sums here (WorkerRunner's two-phase estimate). */
  private async estimateFromFitness(job: EstimateJob): Promise<EstimateResult> {
    const t0 = performance.now();
    const parts = await this.step('evaluate', job, job.shards, { rule: job.rule, square: job.square });
    const t1 = performance.now();
    const per = job.population / job.shards;
    const fitness = new Float64Array(job.population);
    const lin: NoiseJob['shards'] = [], sq: NoiseJob['shards'] = [];
    let nonFinite = 0, degenerate = 0;
    parts.forEach((p, s) => {
      fitness.set(p.fitness, s * per);
      const w = ruleWeights(p.fitness, job.rule, 1 / job.shards);
      lin.push({ start: s * per, weights: w.linear });
      if (job.square) sq.push({ start: s * per, weights: w.square! });
      nonFinite += w.nonFinite;
      if (w.degenerate) degenerate++;
    });
    const p = job.perturbation;
    if (p.kind === 'coordinate') throw new RangeError('estimate: coordinate perturbations have no noise sums');
    const base = { mu: job.mu, seed: job.seed, step: job.step, antithetic: p.antithetic, sigma: p.kind === 'gaussian' ? p.sigma : 1, ...(p.kind === 'diagonal' ? { sigmas: p.sigmas } : {}) };
    const linear = await this.local.noiseSum({ ...base, kind: 'linear', shards: lin });
    const square = job.square ? await this.local.noiseSum({ ...base, kind: 'square', shards: sq }) : undefined;
    return { fitness, linear, ...(square ? { square } : {}), nonFinite, degenerate, evalSeconds: (t1 - t0) / 1000, sumSeconds: (performance.now() - t1) / 1000 };
  }

  setValidationEpisodes(episodes: Episode[]): Promise<void> { return this.local.setValidationEpisodes(episodes); }
  validate(job: ValidateJob): Promise<EpisodeScore[]> { return this.local.validate(job); }
  workingBytes(): number { return this.local.workingBytes(); }

  // ---- one step over the cluster ----------------------------------------------------------------

  private blob(job: EvaluateJob, kind: UnitKind, units: number, x: { rule: StepHeader['rule']; square: boolean }): { blob: Buffer; header: StepHeader } {
    const t = job.step, p = job.perturbation;
    if (!job.episodes || job.episodes.length === 0 || job.context !== undefined) throw new Error('RedisRunner runs ES-ProtoNet jobs (a model and its episodes); objectives run on objectiveRunner');
    const sigmas = p.kind === 'diagonal' ? p.sigmas : undefined;
    const prev = this.sync === 'fitness' && this.lastFitness && this.lastStep === t - 1 ? { step: t - 1, population: this.lastFitness.length } : null;
    const header: StepHeader = {
      v: PROTOCOL, run: this.run, step: t, hash: this.meta.hash, population: job.population, units, kind,
      perturbation: perturbationHeader(p), rule: x.rule, square: x.square,
      episodes: { first: t * this.o.config.episodesPerStep, count: job.episodes.length, digest: episodeDigest(job.episodes) },
      state: stateHash(job.mu, sigmas), prev,
    };
    const sections: Record<string, FloatArray> = {};
    if (this.sync === 'mean') {
      sections['mu'] = job.mu;
      if (sigmas) sections['sigmas'] = sigmas;
    } else if (prev) {
      sections['fitness'] = this.lastFitness!;
    }
    return { blob: packBlob(STEP_MAGIC, header as unknown as Record<string, unknown>, sections), header };
  }

  private snapshot(t: number, expectState: string): Buffer {
    const s = this.strategy;
    if (!s) throw new Error('RedisRunner with sync "fitness" needs the strategy it serves: call attachStrategy(strategy) before the first step');
    const st = s.state();
    const mean = st.tensors['mean'] as Float32Array, sig = st.tensors['sigmas'] as Float32Array | undefined;
    if (s.step !== t || stateHash(mean, sig) !== expectState) throw new Error(`RedisRunner: the attached strategy (step ${s.step}) is not the one running step ${t}`);
    return packBlob(SNAP_MAGIC, { v: PROTOCOL, run: this.run, step: t, hash: this.meta.hash, state: expectState, meta: st.meta }, st.tensors);
  }

  /** Publish step t (blob, snapshot when due, units), for the units in `which`. */
  private async publish(t: number, blob: Buffer, header: StepHeader, which: number[], fresh: boolean): Promise<string[]> {
    const ttl = this.o.runTtlMs ?? 60000;
    const m = this.link.cmd.multi();
    const stepKey = keys.step(this.prefix, this.run, t);
    m.set(stepKey, blob, 'PX', ttl * 60);
    let out = blob.length;
    if (this.sync === 'fitness') {
      const every = this.o.snapshotEvery ?? 20;
      if (fresh || this.snapStep === null || t - this.snapStep >= every || this.lastStep !== t - 1) {
        const snap = this.snapshot(t, header.state);
        m.set(keys.snapshot(this.prefix, this.run), snap, 'PX', ttl * 60);
        out += snap.length;
        for (const k of this.kept) if (k < t) m.unlink(keys.step(this.prefix, this.run, k));
        this.kept = [];
        this.snapStep = t;
      }
      if (!this.kept.includes(t)) this.kept.push(t);
    } else {
      for (const k of this.kept) if (k !== t) m.unlink(keys.step(this.prefix, this.run, k));
      this.kept = [t];
    }
    m.hset(keys.run(this.prefix, this.run), 'step', String(t));
    for (const u of which) {
      const f = unitFields({ run: this.run, step: t, unit: u, units: header.units, kind: header.kind, hash: this.meta.hash });
      out += f.reduce((s, x) => s + x.length, 0);
      m.xadd(this.tasksKey, '*', ...f);
    }
    const res = await m.exec();
    if (!res) throw new Error('Redis transaction was discarded');
    for (const [e] of res) if (e) throw e;
    this.stats.bytesOut += out;
    this.stats.last.bytesOut += out;
    return res.slice(res.length - which.length).map(([, id]) => String(id));
  }

  /**
   * After a reconnection: if the server lost the run (a restart without
   * persistence), publish the run again (metadata, consumer group) and forget
   * what it held (the next snapshot and step blobs are published afresh).
   * Returns whether it had been lost.
   */
  private async restoreRun(): Promise<boolean> {
    this.reconnected = false;
    if (await this.link.cmd.hexists(keys.run(this.prefix, this.run), 'meta')) return false;
    this.notice(`Redis at ${this.link.where} came back without this run's data (restarted without persistence?): publishing it again`);
    await this.publishRun();
    this.kept = [];
    this.snapStep = null;
    this.resultsId = '0-0';
    return true;
  }

  private async step(kind: UnitKind, job: EvaluateJob, units: number, x: { rule: StepHeader['rule']; square: boolean }): Promise<UnitResult[]> {
    if (this.closed) throw new Error('RedisRunner is closed');
    const fail = this.link.failure();
    if (fail) throw fail;
    const t = job.step;
    const t0 = performance.now();
    this.stats.last = { bytesOut: 0, bytesIn: 0, waitSeconds: 0, publishSeconds: 0 };
    const { blob, header } = this.blob(job, kind, units, x);
    const fresh = this.lastStep === null;
    let ids: string[];
    try {
      if (this.reconnected) await this.restoreRun();
      ids = await this.publish(t, blob, header, Array.from({ length: units }, (_, u) => u), fresh);
    } catch (e) {
      throw this.link.explain(e);
    }
    const t1 = performance.now();
    const per = (u: number): number => { const [a, b] = memberRange(job.population, units, u); return kind === 'estimate' ? job.population / units : b - a; };
    const expect: Expect = { run: this.run, step: t, kind, units, members: per, dim: job.mu.length, square: x.square };
    const got: Array<UnitResult | null> = new Array(units).fill(null);
    let n = 0, lastNews = Date.now();
    const resultsKey = keys.results(this.prefix, this.run);
    while (n < units) {
      if (this.closed) throw new Error('RedisRunner is closed');
      let reply: unknown;
      try {
        if (this.reconnected && await this.restoreRun()) {
          this.notice(`step ${t}: publishing the step and its ${units - n} missing unit(s) again`);
          ids.push(...await this.publish(t, blob, header, got.flatMap((g, u) => (g ? [] : [u])), true));
        }
        reply = await this.link.blk.callBuffer('XREAD', 'COUNT', '256', 'BLOCK', '1000', 'STREAMS', resultsKey, this.resultsId);
      } catch (e) {
        if (this.closed) throw new Error('RedisRunner is closed');
        throw this.link.explain(e);
      }
      if (!reply) {
        const quiet = Date.now() - lastNews;
        if (quiet > (this.o.noticeAfterMs ?? 15000)) {
          lastNews = Date.now();
          const serving = this.serving();
          const others = this.seen.filter((w) => !serving.includes(w));
          this.notice(`step ${t}: ${n}/${units} units done; ${serving.length} worker(s) serve version ${VERSION} device ${this.meta.device} at ${this.link.where}` +
            (serving.length === 0 ? ` (start one: evometa worker --redis URL${this.meta.device !== 'cpu-ts' ? ` --device ${this.meta.device}` : ''})` : '') +
            (others.length > 0 ? `; ${others.length} other worker(s) do not: ${others.slice(0, 3).map((w) => `${w.name} (version ${w.version}, ${w.devices.join('+')})`).join(', ')}` : ''));
        }
        continue;
      }
      for (const [id, fields] of streamEntries(reply)) {
        this.resultsId = id;
        const size = fields.reduce((s: number, f: unknown) => s + (Buffer.isBuffer(f) ? f.length : 0), 0);
        this.stats.bytesIn += size;
        this.stats.last.bytesIn += size;
        let parsed;
        try {
          parsed = parseResult(fields, expect);
        } catch (e) {
          this.stats.invalid++;
          this.notice(`dropped a malformed result: ${(e as Error).message}`, true);
          continue;
        }
        if (parsed.type === 'stale') { this.stats.stale++; continue; }
        if (parsed.type === 'failure') {
          const f = parsed.failure;
          throw new ClusterError(`worker ${f.worker} could not compute unit ${f.unit} of step ${t}: ${f.error}`);
        }
        const r = parsed.result;
        lastNews = Date.now();
        const have = got[r.unit];
        if (have) {
          this.stats.duplicates++;
          if (!sameBits(have, r)) {
            this.stats.mismatches++;
            this.notice(`workers ${have.worker} and ${r.worker} computed unit ${r.unit} of step ${t} with different bits: they do not compute alike (same device and ISA?); the first result was used`);
          }
          continue;
        }
        got[r.unit] = r;
        n++;
        this.stats.perWorker.set(r.worker, (this.stats.perWorker.get(r.worker) ?? 0) + 1);
      }
    }
    const t2 = performance.now();
    // units of a finished step: acknowledge and delete (a worker still on one finds it gone; its late result is stale)
    try {
      await this.link.cmd.multi().xack(this.tasksKey, GROUP, ...ids).xdel(this.tasksKey, ...ids).xtrim(resultsKey, 'MINID', this.resultsId).exec();
    } catch (e) {
      throw this.link.explain(e);
    }
    this.stats.steps++;
    this.stats.units += units;
    this.stats.last.publishSeconds = (t1 - t0) / 1000;
    this.stats.last.waitSeconds = (t2 - t1) / 1000;
    const results = got as UnitResult[];
    if (this.sync === 'fitness') {
      const f = new Float64Array(job.population);
      results.forEach((r, u) => f.set(r.fitness, kind === 'estimate' ? u * (job.population / units) : memberRange(job.population, units, u)[0]));
      this.lastFitness = f;
    }
    this.lastStep = t;
    return results;
  }

  /**
   * Stop: the run's keys are deleted (workers drop its remaining units),
   * the connections closed, the local runner closed. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.keepalive) clearInterval(this.keepalive);
    if (!this.link.failure()) {
      const ks = [keys.run(this.prefix, this.run), keys.results(this.prefix, this.run), keys.snapshot(this.prefix, this.run), ...this.kept.map((t) => keys.step(this.prefix, this.run, t))];
      await Promise.race([this.link.cmd.unlink(...ks).catch(() => undefined), sleep(2000)]);
    }
    this.link.close();
    await this.local.close();
  }
}

function sameBits(a: UnitResult, b: UnitResult): boolean {
  const eq = (x?: Float64Array, y?: Float64Array): boolean => {
    if (!x || !y) return x === y;
    return Buffer.compare(Buffer.from(x.buffer, x.byteOffset, x.byteLength), Buffer.from(y.buffer, y.byteOffset, y.byteLength)) === 0;
  };
  return eq(a.fitness, b.fitness) && eq(a.linear, b.linear) && eq(a.square, b.square);
}
