/**
 * A worker's view of one step of a run: the step blob checked against what
 * the worker derives itself from the validated config (population, sigma,
 * weight rule, episode indices), the episodes rebuilt locally and checked
 * against the coordinator's digest, and the mean: received (sync 'mean') or
 * made by the worker's replica of the strategy from the previous step's
 * fitness (sync 'fitness', OpenAI's design: every worker applies the update).
 * Either way the generation's state hash must equal the coordinator's, so a
 * worker never computes from a wrong mean.
 */
import { UserError } from '../errors.js';
import { ruleNeedsSquare } from '../es/estimators.js';
import type { Perturbation } from '../es/population.js';
import type { NoiseJob } from '../es/runner.js';
import type { EvolutionStrategy } from '../es/strategy.js';
import { episodeToWire } from '../es/validate.js';
import { strategyFor } from '../methods/protonet-es/method.js';
import type { ThreadJob } from './shard-thread.js';
import { parseStepHeader, PROTOCOL, SNAP_MAGIC, STEP_MAGIC, type StepHeader } from './protocol.js';
import type { RunContext } from './protonet.js';
import { canonicalJson, jsonInt, jsonStr, HEX64, section, stateHash, unpackBlob, WireError, type Blob } from './wire.js';

/** A replica's mean does not hash to the coordinator's: the machines compute different bits. */
export class DivergedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DivergedError';
  }
}

export interface StepState {
  step: number;
  header: StepHeader;
  /** What the compute threads need, without the unit's shard or range. */
  job: ThreadJob;
}

/** The blob of step t, parsed and checked against the run (throws WireError / UserError). */
export function readStepBlob(ctx: RunContext, buf: Buffer, t: number): { header: StepHeader; blob: Blob } {
  const what = `run ${ctx.meta.run} step ${t}`;
  const blob = unpackBlob(buf, STEP_MAGIC, what);
  const h = parseStepHeader(blob.header, what);
  const cfg = ctx.config;
  if (h.run !== ctx.meta.run || h.step !== t || h.hash !== ctx.meta.hash) throw new WireError(`${what}: the blob is for run ${h.run} step ${h.step} (hash ${h.hash.slice(0, 12)})`);
  const tpl = ctx.template;
  const pop = tpl.popAt(t);
  if (h.population !== pop) throw new WireError(`${what}: population ${h.population}, but the config gives ${pop} at this step`);
  if (h.kind === 'estimate' && h.units !== cfg.shards) throw new WireError(`${what}: ${h.units} shards, the config has ${cfg.shards}`);
  if (h.units > pop) throw new WireError(`${what}: ${h.units} units for a population of ${pop}`);
  // the generation as the worker's own copy of the strategy describes it
  tpl.step = t;
  const gen = tpl.ask();
  tpl.abandon();
  const p = gen.perturbation, hp = h.perturbation;
  const same = p.kind === hp.kind && (p.kind === 'gaussian' ? hp.kind === 'gaussian' && p.sigma === hp.sigma && p.antithetic === hp.antithetic
    : p.kind === 'diagonal' ? hp.kind === 'diagonal' && p.antithetic === hp.antithetic : hp.kind === 'coordinate' && p.delta === hp.delta);
  if (!same) throw new WireError(`${what}: perturbation ${JSON.stringify(hp)} differs from the config's at this step`);
  if (h.rule !== null) {
    if (canonicalJson(h.rule) !== canonicalJson(tpl.ruleAt(t))) throw new WireError(`${what}: weight rule ${JSON.stringify(h.rule)} differs from the config's`);
    if (h.square !== ruleNeedsSquare(h.rule)) throw new WireError(`${what}: square sums ${h.square} do not fit rule ${h.rule.kind}`);
  } else if (h.kind === 'estimate' || h.square) {
    throw new WireError(`${what}: an estimate step without a weight rule`);
  }
  return { header: h, blob };
}

/** The generation's perturbation with its sigmas (diagonal strategies). */
function perturbationOf(h: StepHeader, sigmas: Float32Array | undefined): Perturbation {
  const p = h.perturbation;
  if (p.kind === 'diagonal') return { kind: 'diagonal', sigmas: sigmas!, antithetic: p.antithetic };
  return p;
}

export function threadJob(ctx: RunContext, h: StepHeader, mu: Float32Array, sigmas: Float32Array | undefined): ThreadJob {
  const cfg = ctx.config;
  const episodes = ctx.episodes(h.step, h.episodes.first, h.episodes.count, h.episodes.digest);
  return {
    mu, perturbation: perturbationOf(h, sigmas), seed: cfg.seed, step: h.step, population: h.population,
    shards: h.units, rule: h.rule ?? { kind: 'wsr', nonFinite: cfg.nonFinite }, antithetic: ctx.template.antithetic, square: h.square,
    model: cfg.model, distance: cfg.distance, episodes: episodes.map(episodeToWire),
  };
}

/** Sync 'mean': the mean (and sigmas) from the blob, checked against the header's state hash. */
export function meanFromBlob(ctx: RunContext, h: StepHeader, blob: Blob): { mu: Float32Array; sigmas?: Float32Array } {
  const what = `run ${ctx.meta.run} step ${h.step}`;
  const mu = section(blob, 'mu', 'f32', ctx.dim, what) as Float32Array;
  let sigmas: Float32Array | undefined;
  if (h.perturbation.kind === 'diagonal') {
    sigmas = section(blob, 'sigmas', 'f32', ctx.dim, what) as Float32Array;
    for (let j = 0; j < sigmas.length; j++) if (!(sigmas[j]! > 0 && Number.isFinite(sigmas[j]!))) throw new WireError(`${what}: sigmas[${j}] = ${sigmas[j]} is not a positive finite number`);
  }
  if (stateHash(mu, sigmas) !== h.state) throw new WireError(`${what}: the mean does not hash to the step's state (corrupted in transit?)`);
  return { mu, ...(sigmas ? { sigmas } : {}) };
}

/** The strategy's sigmas, when it has them (PGPE, SNES). */
function sigmasOf(s: EvolutionStrategy): Float32Array | undefined {
  return (s as unknown as { sigmas?: Float32Array }).sigmas;
}

/** A replica of the coordinator's strategy (sync 'fitness'), made from its snapshot. */
export function replicaFromSnapshot(ctx: RunContext, buf: Buffer): EvolutionStrategy {
  const what = `run ${ctx.meta.run} snapshot`;
  const b = unpackBlob(buf, SNAP_MAGIC, what);
  if (jsonInt(b.header, 'v', what, 0, 1e6) !== PROTOCOL) throw new WireError(`${what}: protocol ${String(b.header['v'])}`);
  if (jsonStr(b.header, 'run', what) !== ctx.meta.run || jsonStr(b.header, 'hash', what, HEX64) !== ctx.meta.hash) throw new WireError(`${what}: for another run`);
  const step = jsonInt(b.header, 'step', what, 0, 2 ** 31), state = jsonStr(b.header, 'state', what, HEX64);
  const meta = b.header['meta'];
  if (!meta || typeof meta !== 'object' || Array.isArray(meta)) throw new WireError(`${what}: no strategy metadata`);
  const s = strategyFor(ctx.config, new Float32Array(ctx.dim));
  try {
    s.load({ tensors: Object.fromEntries(b.sections), meta: meta as Record<string, unknown> });
  } catch (e) {
    throw new WireError(`${what}: ${(e as Error).message}`);
  }
  if (s.step !== step || stateHash(s.mean, sigmasOf(s)) !== state) throw new WireError(`${what}: its state does not hash to its header's`);
  return s;
}

/**
 * Advance a replica by one step with the fitness the blob of step t carries
 * (of step t - 1), then check it against the blob's state hash.
 */
export async function advanceReplica(ctx: RunContext, s: EvolutionStrategy, h: StepHeader, blob: Blob, noiseSum: (job: NoiseJob) => Promise<Float64Array>): Promise<void> {
  const what = `run ${ctx.meta.run} step ${h.step}`;
  if (!h.prev || h.prev.step !== s.step || h.step !== s.step + 1) throw new WireError(`${what}: no fitness of step ${s.step} to advance the replica with`);
  const pop = s.popAt(s.step);
  if (h.prev.population !== pop) throw new WireError(`${what}: previous population ${h.prev.population}, the config gives ${pop}`);
  const f = section(blob, 'fitness', 'f64', pop, what) as Float64Array;
  await s.tell(f, { noiseSum });
  if (stateHash(s.mean, sigmasOf(s)) !== h.state) {
    throw new DivergedError(`${what}: this worker's replica of the strategy does not reach the coordinator's mean (the machines compute different bits: another ISA or build?); run with --redis-sync mean, or use workers like the coordinator`);
  }
}

export function replicaState(s: EvolutionStrategy): { mu: Float32Array; sigmas?: Float32Array } {
  const sg = sigmasOf(s);
  return { mu: s.mean.slice(), ...(sg ? { sigmas: sg.slice() } : {}) };
}

export function refuse(run: string, why: string): UserError {
  return new UserError(`this worker refuses run ${run}: ${why}`);
}
