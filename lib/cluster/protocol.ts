/**
 * The messages of distributed ES over Redis (docs/distributed.md has the
 * picture). Keys, under a prefix (default 'evometa'):
 *
 *   P:tasks:VERSION:DEVICE   stream of units, consumer group 'workers': one
 *                            entry per shard (or member range) of one step.
 *                            Keyed by package version and device, so a worker
 *                            only ever receives units it can compute.
 *   P:workers                sorted set: worker name -> last heartbeat (ms)
 *   P:worker:NAME            JSON about a worker (host, threads, devices), expires
 *   P:run:RUN                hash: meta (RunMeta JSON), step (the step in flight);
 *                            expires unless the coordinator keeps it alive, so
 *                            units of a dead coordinator are dropped
 *   P:run:RUN:step:T         step blob (header + mu, or + the previous fitness)
 *   P:run:RUN:snapshot       the strategy's state (fitness sync: replicas start here)
 *   P:run:RUN:results        stream of results, read by the coordinator
 *
 * A unit is {v, run, step, unit, units, kind, hash}; a result is {v, run,
 * step, unit, kind, worker, ...payload} or {..., error}. Every field is parsed
 * by the functions below, which throw WireError on anything malformed.
 */
import type { WeightRule } from '../es/estimators.js';
import type { Perturbation } from '../es/population.js';
import { bin, f64From, fieldMap, HEX64, int, jsonInt, jsonStr, num, RUN_ID, str, WireError } from './wire.js';

export const PROTOCOL = 1;
export const GROUP = 'workers';
export const DEFAULT_PREFIX = 'evometa';
export const STEP_MAGIC = 'EVOSTEP1';
export const SNAP_MAGIC = 'EVOSNAP1';

import { type SyncMode } from './options.js';
export { DEFAULT_SYNC, type SyncMode } from './options.js';

export const NAME = /^[A-Za-z0-9_.:-]{1,100}$/;
const PREFIX = /^[A-Za-z0-9_.-]{1,64}$/;

export function checkPrefix(p: string): string {
  if (!PREFIX.test(p)) throw new WireError(`Redis key prefix ${JSON.stringify(p)}: letters, digits, '_', '.', '-' only (1-64)`);
  return p;
}

export const keys = {
  tasks: (p: string, version: string, device: string) => `${p}:tasks:${version}:${device}`,
  workers: (p: string) => `${p}:workers`,
  worker: (p: string, name: string) => `${p}:worker:${name}`,
  run: (p: string, run: string) => `${p}:run:${run}`,
  step: (p: string, run: string, t: number) => `${p}:run:${run}:step:${t}`,
  snapshot: (p: string, run: string) => `${p}:run:${run}:snapshot`,
  results: (p: string, run: string) => `${p}:run:${run}:results`,
};

// ---- units -------------------------------------------------------------------------------------

export type UnitKind = 'estimate' | 'evaluate';

export interface Unit {
  run: string;
  step: number;
  /** Shard index (estimate) or member-range index (evaluate). */
  unit: number;
  units: number;
  kind: UnitKind;
  /** The run's config hash. */
  hash: string;
}

export const MAX_UNITS = 1 << 20;
export const MAX_STEP = 2 ** 31;

export function unitFields(u: Unit): string[] {
  return ['v', String(PROTOCOL), 'run', u.run, 'step', String(u.step), 'unit', String(u.unit), 'units', String(u.units), 'kind', u.kind, 'hash', u.hash];
}

export function parseUnit(raw: unknown): Unit {
  const m = fieldMap(raw, 'unit');
  const what = 'unit';
  if (int(m, 'v', what, 0, 1e6) !== PROTOCOL) throw new WireError(`unit: protocol ${str(m, 'v', what)}, this worker speaks ${PROTOCOL}`);
  const units = int(m, 'units', what, 1, MAX_UNITS);
  const kind = str(m, 'kind', what, /^(estimate|evaluate)$/) as UnitKind;
  return { run: str(m, 'run', what, RUN_ID), step: int(m, 'step', what, 0, MAX_STEP), unit: int(m, 'unit', what, 0, units - 1), units, kind, hash: str(m, 'hash', what, HEX64) };
}

// ---- results -----------------------------------------------------------------------------------

export interface ResultHead { run: string; step: number; unit: number; kind: UnitKind; worker: string }

export interface UnitResult extends ResultHead {
  fitness: Float64Array;
  linear?: Float64Array;
  square?: Float64Array;
  nonFinite: number;
  degenerate: number;
  evalSeconds: number;
  sumSeconds: number;
}

/** A worker's report that it could not compute a unit (bad config, data that differ, a diverged replica). */
export interface UnitFailure extends ResultHead { error: string }

export function resultFields(r: UnitResult): Array<string | Buffer> {
  const f: Array<string | Buffer> = [
    'v', String(PROTOCOL), 'run', r.run, 'step', String(r.step), 'unit', String(r.unit), 'kind', r.kind, 'worker', r.worker,
    'fitness', Buffer.from(r.fitness.buffer, r.fitness.byteOffset, r.fitness.byteLength),
    'nonfinite', String(r.nonFinite), 'degenerate', String(r.degenerate), 'evals', r.evalSeconds.toFixed(6), 'sums', r.sumSeconds.toFixed(6),
  ];
  if (r.linear) f.push('linear', Buffer.from(r.linear.buffer, r.linear.byteOffset, r.linear.byteLength));
  if (r.square) f.push('square', Buffer.from(r.square.buffer, r.square.byteOffset, r.square.byteLength));
  return f;
}

export function failureFields(r: UnitFailure): string[] {
  return ['v', String(PROTOCOL), 'run', r.run, 'step', String(r.step), 'unit', String(r.unit), 'kind', r.kind, 'worker', r.worker, 'error', r.error.slice(0, 2000)];
}

/** What a result must look like to be used: the coordinator's expectations for the step in flight. */
export interface Expect {
  run: string;
  step: number;
  kind: UnitKind;
  units: number;
  /** Fitness values of unit u. */
  members: (u: number) => number;
  /** Noise-sum length (estimate units). */
  dim: number;
  square: boolean;
}

export type Parsed =
  | { type: 'ok'; result: UnitResult }
  | { type: 'failure'; failure: UnitFailure }
  | { type: 'stale'; why: string };

/**
 * Parse a result against the step in flight: results of another run or
 * another step are 'stale' (dropped); anything malformed throws WireError.
 */
export function parseResult(raw: unknown, e: Expect): Parsed {
  const m = fieldMap(raw, 'result');
  const what = 'result';
  if (int(m, 'v', what, 0, 1e6) !== PROTOCOL) throw new WireError(`result: protocol ${str(m, 'v', what)}, expected ${PROTOCOL}`);
  const run = str(m, 'run', what, RUN_ID), step = int(m, 'step', what, 0, MAX_STEP);
  if (run !== e.run) return { type: 'stale', why: `run ${run}` };
  if (step !== e.step) return { type: 'stale', why: `step ${step}` };
  const kind = str(m, 'kind', what, /^(estimate|evaluate)$/) as UnitKind;
  if (kind !== e.kind) return { type: 'stale', why: `kind ${kind}` };
  const head: ResultHead = { run, step, unit: int(m, 'unit', what, 0, e.units - 1), kind, worker: str(m, 'worker', what, NAME) };
  if (m.has('error')) return { type: 'failure', failure: { ...head, error: str(m, 'error', what, /^[^\0]{0,4000}$/) } };
  const fitness = f64From(bin(m, 'fitness', what), `result fitness of unit ${head.unit}`, e.members(head.unit));
  const r: UnitResult = {
    ...head, fitness, nonFinite: int(m, 'nonfinite', what, 0, fitness.length), degenerate: int(m, 'degenerate', what, 0, 1),
    evalSeconds: num(m, 'evals', what), sumSeconds: num(m, 'sums', what),
  };
  if (kind === 'estimate') {
    r.linear = f64From(bin(m, 'linear', what), `result noise sum of unit ${head.unit}`, e.dim);
    if (e.square) r.square = f64From(bin(m, 'square', what), `result square noise sum of unit ${head.unit}`, e.dim);
    else if (m.has('square')) throw new WireError('result: a square noise sum this step does not use');
  } else if (m.has('linear') || m.has('square')) {
    throw new WireError('result: noise sums in a fitness-only result');
  }
  return { type: 'ok', result: r };
}

// ---- the step header ---------------------------------------------------------------------------

/** The JSON header of a step blob (its sections: mu, sigmas (mean sync), fitness (fitness sync)). */
export interface StepHeader {
  v: number;
  run: string;
  step: number;
  hash: string;
  population: number;
  /** Estimate units: the shards; evaluate units: member ranges. */
  units: number;
  kind: UnitKind;
  perturbation: { kind: 'gaussian'; sigma: number; antithetic: boolean } | { kind: 'diagonal'; antithetic: boolean } | { kind: 'coordinate'; delta: number };
  rule: WeightRule | null;
  square: boolean;
  /** Train episodes first..first+count-1 and the SHA-256 of their data. */
  episodes: { first: number; count: number; digest: string };
  /** stateHash of the generation (mu, and sigmas for diagonal strategies). */
  state: string;
  /** Fitness sync: the population of step - 1, whose fitness is the blob's 'fitness' section (null at a session's first step). */
  prev: { step: number; population: number } | null;
}

export function perturbationHeader(p: Perturbation): StepHeader['perturbation'] {
  if (p.kind === 'gaussian') return { kind: 'gaussian', sigma: p.sigma, antithetic: p.antithetic };
  if (p.kind === 'diagonal') return { kind: 'diagonal', antithetic: p.antithetic };
  return { kind: 'coordinate', delta: p.delta };
}

function bool(h: Record<string, unknown>, k: string, what: string): boolean {
  const v = h[k];
  if (typeof v !== 'boolean') throw new WireError(`${what}: ${k} is not a boolean`);
  return v;
}

function finitePos(v: unknown, what: string): number {
  if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new WireError(`${what} = ${JSON.stringify(v)} is not a finite number > 0`);
  return v;
}

function parseRule(v: unknown, what: string): WeightRule | null {
  if (v === null) return null;
  if (!v || typeof v !== 'object') throw new WireError(`${what}: rule is not an object`);
  const r = v as Record<string, unknown>;
  const nonFinite = r['nonFinite'];
  if (nonFinite !== 'worst' && nonFinite !== 'drop') throw new WireError(`${what}: rule.nonFinite ${JSON.stringify(nonFinite)}`);
  const keysOk = (ks: string[]): void => {
    for (const k of Object.keys(r)) if (!ks.includes(k)) throw new WireError(`${what}: rule has an unknown field ${k}`);
  };
  switch (r['kind']) {
    case 'wsr': keysOk(['kind', 'nonFinite']); return { kind: 'wsr', nonFinite };
    case 'snes': keysOk(['kind', 'nonFinite']); return { kind: 'snes', nonFinite };
    case 'openai': keysOk(['kind', 'nonFinite', 'sigma']); return { kind: 'openai', sigma: finitePos(r['sigma'], `${what}: rule.sigma`), nonFinite };
    case 'nes': keysOk(['kind', 'nonFinite', 'sigma', 'baseline']); return { kind: 'nes', sigma: finitePos(r['sigma'], `${what}: rule.sigma`), baseline: bool(r, 'baseline', `${what}: rule`), nonFinite };
    case 'pgpe': {
      keysOk(['kind', 'nonFinite', 'shaping']);
      const s = r['shaping'];
      if (s !== 'ranks' && s !== 'raw') throw new WireError(`${what}: rule.shaping ${JSON.stringify(s)}`);
      return { kind: 'pgpe', shaping: s, nonFinite };
    }
    default: throw new WireError(`${what}: rule kind ${JSON.stringify(r['kind'])}`);
  }
}

export function parseStepHeader(h: Record<string, unknown>, what = 'step blob'): StepHeader {
  if (jsonInt(h, 'v', what, 0, 1e6) !== PROTOCOL) throw new WireError(`${what}: protocol ${String(h['v'])}, expected ${PROTOCOL}`);
  const p = h['perturbation'] as Record<string, unknown> | null;
  if (!p || typeof p !== 'object') throw new WireError(`${what}: no perturbation`);
  let perturbation: StepHeader['perturbation'];
  if (p['kind'] === 'gaussian') perturbation = { kind: 'gaussian', sigma: finitePos(p['sigma'], `${what}: sigma`), antithetic: bool(p, 'antithetic', what) };
  else if (p['kind'] === 'diagonal') perturbation = { kind: 'diagonal', antithetic: bool(p, 'antithetic', what) };
  else if (p['kind'] === 'coordinate') perturbation = { kind: 'coordinate', delta: finitePos(p['delta'], `${what}: delta`) };
  else throw new WireError(`${what}: perturbation kind ${JSON.stringify(p['kind'])}`);
  const e = h['episodes'] as Record<string, unknown> | null;
  if (!e || typeof e !== 'object') throw new WireError(`${what}: no episodes`);
  const prevRaw = h['prev'] as Record<string, unknown> | null | undefined;
  let prev: StepHeader['prev'] = null;
  if (prevRaw !== null && prevRaw !== undefined) {
    if (typeof prevRaw !== 'object') throw new WireError(`${what}: prev is not an object`);
    prev = { step: jsonInt(prevRaw, 'step', `${what} prev`, 0, MAX_STEP), population: jsonInt(prevRaw, 'population', `${what} prev`, 1, MAX_UNITS * 64) };
  }
  const kind = jsonStr(h, 'kind', what, /^(estimate|evaluate)$/) as UnitKind;
  return {
    v: PROTOCOL, run: jsonStr(h, 'run', what, RUN_ID), step: jsonInt(h, 'step', what, 0, MAX_STEP), hash: jsonStr(h, 'hash', what, HEX64),
    population: jsonInt(h, 'population', what, 1, MAX_UNITS * 64), units: jsonInt(h, 'units', what, 1, MAX_UNITS), kind,
    perturbation, rule: parseRule(h['rule'], what), square: bool(h, 'square', what),
    episodes: { first: jsonInt(e, 'first', `${what} episodes`, 0, 2 ** 32), count: jsonInt(e, 'count', `${what} episodes`, 1, 1 << 16), digest: jsonStr(e, 'digest', `${what} episodes`, HEX64) },
    state: jsonStr(h, 'state', what, HEX64), prev,
  };
}

/** [id, fields] pairs of an XREAD / XREADGROUP / XAUTOCLAIM reply (RESP2, Buffers); anything else is skipped. */
export function streamEntries(reply: unknown): Array<[string, unknown[]]> {
  const out: Array<[string, unknown[]]> = [];
  if (!Array.isArray(reply)) return out;
  for (const s of reply) {
    if (!Array.isArray(s) || s.length < 2 || !Array.isArray(s[1])) continue;
    for (const e of s[1] as unknown[]) {
      if (Array.isArray(e) && e.length === 2 && Buffer.isBuffer(e[0]) && Array.isArray(e[1])) out.push([e[0].toString('latin1'), e[1] as unknown[]]);
    }
  }
  return out;
}
