/**
 * The memory study's sweeps, each case in a FRESH process (child_process.fork
 * of the worker script), so its peak RSS and heap are its own; before the
 * cases, one idle process loads the same modules and initializes the same
 * device, so each case's own increment over an idle process is visible. A case
 * whose predicted bytes exceed the budget is not started: it is recorded as
 * "out of memory budget" with the prediction.
 *
 * Studies (all on synthetic episodes: memory does not depend on pixel values):
 *  channels          ProtoNet backprop / forward / es / es-matrix at C = 16, 32, 64 (includes the paper's 40x case)
 *  task-length       MAML adapting every ConvNet-4 parameter: second order / first order / es, l = 1 .. 1000
 *  task-length-head  the head-only learner: second order / first order / es / es-matrix, l = 1 .. 1000
 *  population        ProtoNet es and es-matrix, P = 64 .. 4096
 */
import { fork } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { caseId, caseSizes, paperFormula, predictBytes, type CaseResult, type CaseSpec } from './cases.js';
import type { Measurement } from './measure.js';

export type StudyName = 'channels' | 'task-length' | 'task-length-head' | 'population';
export const STUDIES: readonly StudyName[] = ['channels', 'task-length', 'task-length-head', 'population'];

export interface SweepCase { study: StudyName; id: string; spec: CaseSpec }

export interface SweepOptions {
  quick: boolean;
  /** Cases predicted above this many bytes are skipped ("out of memory budget"). */
  budgetBytes: number;
  studies?: readonly StudyName[];
  device?: string;
  /** Per-case wall-clock limit (ms); a case past it is killed and recorded as an error. */
  timeoutMs?: number;
  onCase?: (c: SweepCase, r: CaseResult, index: number, total: number) => void;
}

/** The paper's 40x configuration: C = 64, population 64, 10-way (its Table III row), 32 x 32 images. */
export const PAPER_40X = { channels: 64, pop: 64, way: 10, imageSize: 32 } as const;

/** The MAML study's episodes: Omniglot's usual MAML shape, 5-way 5-shot (5 queries), 28 x 28. */
export const MAML_EPISODE = { imageSize: 28, way: 5, shot: 5, query: 5 } as const;
/** Task lengths of the MAML study (quick: a subset). */
export const TASK_LENGTHS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] as const;
export const QUICK_TASK_LENGTHS = [1, 10, 100, 1000] as const;

/** What a fresh Node process holds before any case (added to predictions for the budget). */
export const BASELINE_RSS_ESTIMATE = 96 * 2 ** 20;

export function sweepCases(opts: Pick<SweepOptions, 'quick' | 'studies' | 'device'>): SweepCase[] {
  const q = opts.quick;
  const ep = { imageSize: 32, way: 10, shot: 5, query: 5 } as const;
  const base = { ...ep, seed: 1, reps: 2, ...(opts.device ? { device: opts.device } : {}) };
  const want = new Set(opts.studies ?? STUDIES);
  const out: SweepCase[] = [];
  const add = (study: StudyName, spec: CaseSpec): void => {
    const id = caseId(spec);
    if (!out.some((c) => c.id === id && c.study === study)) out.push({ study, id, spec });
  };
  if (want.has('channels')) {
    for (const channels of [16, 32, 64]) {
      add('channels', { ...base, method: 'backprop', channels });
      add('channels', { ...base, method: 'forward', channels, ...(q ? {} : { fmSample: 2 * (channels <= 32 ? 8 : 2) }) });
      add('channels', { ...base, method: 'es', channels, pop: 64, maxMembers: q ? 8 : 16 });
      add('channels', { ...base, method: 'es-matrix', channels, pop: 64, maxMembers: q ? 8 : 16 });
    }
    if (!q) {
      // Snell et al.'s 60-way training episodes: the forward-mode Jacobian grows with the way.
      for (const channels of [16, 32, 64]) add('channels', { ...base, method: 'forward', channels, way: 60 });
    }
  }
  if (want.has('task-length')) {
    // Every member runs l inner steps: sample fewer members as l grows (memory does not depend on how many run).
    const channels = q ? 16 : 32;
    for (const l of q ? QUICK_TASK_LENGTHS : TASK_LENGTHS) {
      const maml = { ...base, ...MAML_EPISODE, channels, innerSteps: l, innerLr: 0.1 };
      add('task-length', { ...maml, method: 'maml-second-order' });
      add('task-length', { ...maml, method: 'maml-first-order' });
      add('task-length', { ...maml, method: 'maml-es', pop: 64, maxMembers: Math.min(64, Math.max(2, Math.floor((q ? 32 : 200) / l))) });
    }
  }
  if (want.has('task-length-head')) {
    const channels = q ? 16 : 32;
    for (const l of q ? [1, 100] : [1, 10, 100, 1000]) {
      const maml = { ...base, channels, innerSteps: l, innerLr: 0.1 };
      const members = l >= 1000 ? 4 : 8;
      add('task-length-head', { ...maml, method: 'head-second-order' });
      add('task-length-head', { ...maml, method: 'head-first-order' });
      add('task-length-head', { ...maml, method: 'head-es', pop: 64, maxMembers: members });
      add('task-length-head', { ...maml, method: 'head-es-matrix', pop: 64, maxMembers: members });
    }
  }
  if (want.has('population')) {
    for (const channels of q ? [16] : [16, 32, 64]) {
      for (const pop of [64, 256, 1024, 4096]) {
        const members = q ? 8 : 16;
        add('population', { ...base, method: 'es', channels, pop, maxMembers: members });
        add('population', { ...base, method: 'es-matrix', channels, pop, maxMembers: members });
      }
    }
  }
  return out;
}

export interface WorkerReply { ok: true; result: CaseResult; measured: Measurement }
export interface WorkerError { ok: false; error: string; measured: Measurement }
export interface IdleReply { ok: true; idle: Measurement; device: string }

function skipped(spec: CaseSpec, status: CaseResult['status'], predicted: number, error?: string): CaseResult {
  let dPhi = 0, dPsi = 0, formula: CaseResult['formula'] = null;
  try { ({ dPhi, dPsi } = caseSizes(spec)); formula = paperFormula(spec); } catch { /* an invalid spec: leave them empty */ }
  return {
    spec, status, ...(error ? { error } : {}), device: spec.device ?? '', dPhi, dPsi, formula,
    dominant: { name: '', bytes: 0 }, accounted: { peak: 0, atPeak: {}, maxima: {} }, predictedBytes: predicted, seconds: NaN, timeNote: '',
  };
}

function forkWorker<T>(workerPath: string, arg: string, timeoutMs: number): Promise<{ reply: T | null; code: number | null; signal: NodeJS.Signals | null; killed: boolean }> {
  return new Promise((resolve) => {
    const child = fork(workerPath, [arg], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let reply: T | null = null, killed = false;
    const timer = setTimeout(() => { killed = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('message', (m) => { reply = m as T; });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ reply, code, signal, killed });
    });
  });
}

/** Measure an idle process that loaded the worker's modules and initialized `device` (the baseline for every case). */
export async function measureIdle(workerPath: string, device: string | undefined, timeoutMs = 60_000): Promise<IdleReply> {
  const r = await forkWorker<IdleReply>(workerPath, JSON.stringify({ idle: true, ...(device ? { device } : {}) }), timeoutMs);
  if (!r.reply) throw new Error(`idle worker exited without a reply (code ${r.code}, signal ${r.signal})`);
  return r.reply;
}

/** Run one case in a fresh Node process (the worker script) and attach its measurement. */
export async function runInFreshProcess(workerPath: string, spec: CaseSpec, timeoutMs: number): Promise<CaseResult> {
  const r = await forkWorker<WorkerReply | WorkerError>(workerPath, JSON.stringify(spec), timeoutMs);
  const reply = r.reply;
  if (reply && reply.ok) return { ...reply.result, measured: reply.measured };
  if (reply) return { ...skipped(spec, 'error', safePredict(spec), reply.error), measured: reply.measured };
  return skipped(spec, 'error', safePredict(spec), r.killed ? `killed after ${timeoutMs / 1000} s` : `worker exited with code ${r.code} signal ${r.signal}`);
}

/** The machine while a sweep ran: CPUs, memory, load averages (1, 5, 15 min) at the start and the end, sampled every case. */
export interface RunInfo {
  studies: string[];
  budgetBytes: number;
  startedAt: string;
  seconds: number;
  cpus: number;
  totalMem: number;
  loadStart: number[];
  loadEnd: number[];
  /** Largest 1-minute load average seen between cases. */
  loadMax: number;
}

export interface SweepResult {
  quick: boolean;
  budgetBytes: number;
  startedAt: string;
  seconds: number;
  /** MEASUREMENT of an idle process with the same modules and device (null when no process was started). */
  idle: Measurement | null;
  /** The machine during each run that made these results (one, or several merged with --merge). */
  runs?: RunInfo[];
  cases: (SweepCase & { result: CaseResult })[];
}

function withIdle(r: CaseResult, idle: Measurement | null): CaseResult {
  if (r.measured && idle) r.measured.idle = { peakRss: idle.peakRss, tracked: idle.trackedAtRest };
  return r;
}

function safePredict(spec: CaseSpec): number {
  try { return predictBytes(spec); } catch { return NaN; }
}

export async function runSweep(workerPath: string, opts: SweepOptions): Promise<SweepResult> {
  const cases = sweepCases(opts);
  const t0 = Date.now();
  const run: RunInfo = {
    studies: [...new Set(cases.map((c) => c.study))], budgetBytes: opts.budgetBytes, startedAt: new Date(t0).toISOString(), seconds: 0,
    cpus: cpus().length, totalMem: totalmem(), loadStart: loadavg(), loadEnd: [], loadMax: loadavg()[0]!,
  };
  const out: SweepResult = { quick: opts.quick, budgetBytes: opts.budgetBytes, startedAt: run.startedAt, seconds: 0, idle: null, runs: [run], cases: [] };
  const done = new Map<string, CaseResult>(); // a case shared by two studies runs once
  const runnable = cases.filter((c) => predictBytes(c.spec) + BASELINE_RSS_ESTIMATE <= opts.budgetBytes);
  if (runnable.length > 0) out.idle = (await measureIdle(workerPath, opts.device)).idle;
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i]!;
    const predicted = predictBytes(c.spec) + BASELINE_RSS_ESTIMATE;
    const tc = Date.now();
    const result = done.get(c.id) ?? (predicted > opts.budgetBytes
      ? skipped(c.spec, 'out of memory budget', predicted)
      : withIdle({ ...await runInFreshProcess(workerPath, c.spec, opts.timeoutMs ?? 10 * 60 * 1000), wallSeconds: (Date.now() - tc) / 1000 }, out.idle));
    done.set(c.id, result);
    out.cases.push({ ...c, result });
    run.loadMax = Math.max(run.loadMax, loadavg()[0]!);
    opts.onCase?.(c, result, i, cases.length);
  }
  out.seconds = (Date.now() - t0) / 1000;
  run.loadEnd = loadavg();
  run.seconds = out.seconds;
  return out;
}

/** Parse sizes like 16GiB, 4G, 512MiB, 1e9 (bytes). */
export function parseBytes(s: string): number {
  const m = /^\s*([0-9.]+(?:e[0-9]+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?\s*$/i.exec(s);
  if (!m) throw new RangeError(`cannot parse a byte size from "${s}" (examples: 16GiB, 512MiB, 4e9)`);
  const v = Number(m[1]);
  const u = (m[2] ?? 'b').toLowerCase();
  const mult: Record<string, number> = { b: 1, k: 1024, kb: 1e3, kib: 1024, m: 2 ** 20, mb: 1e6, mib: 2 ** 20, g: 2 ** 30, gb: 1e9, gib: 2 ** 30, t: 2 ** 40, tb: 1e12, tib: 2 ** 40 };
  const out = v * mult[u]!;
  if (!(out > 0) || !Number.isFinite(out)) throw new RangeError(`byte size must be positive, got "${s}"`);
  return out;
}
