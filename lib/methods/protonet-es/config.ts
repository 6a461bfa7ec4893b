/**
 * ES-ProtoNet training configuration: defaults, validation with clear errors
 * naming the field (and its CLI option) and the value, and the schedules.
 * Every invalid hyperparameter is refused here, before any worker starts.
 */
import { UserError } from '../../errors.js';
import { modelConfig, ProtoNetLayout, type ModelConfig } from '../../model/layout.js';
import type { Distance } from '../../model/protonet.js';
import type { NonFinitePolicy } from '../../es/estimators.js';
import { checkSchedule, type Schedule, type ScheduleKind } from '../../es/schedule.js';
import { ES_PRECISIONS, type EsPrecision } from './precision.js';

import type { Scheme } from '../../es/strategy.js';
export type { Scheme };
export type EsEstimator = 'wsr' | 'nes' | 'openai' | 'fd' | 'pgpe' | 'snes';
export type EsOptimizer = 'plain' | 'sgd' | 'adam' | 'clipup';
export type SigmaSchedule = 'constant' | 'linear' | 'exp' | 'cosine';
export type LrSchedule = ScheduleKind;
export type PopSchedule = 'constant' | 'linear' | 'exp';

export interface EsEpisodeShape { way: number; shot: number; query: number }

export interface EsConfig {
  model: ModelConfig;
  estimator: EsEstimator;
  /** paper: each shard standardizes its own rewards, shard estimates averaged; openai: global shaping. */
  scheme: Scheme;
  /** Total population (fd: parameters + 1, filled in by resolveEsConfig). */
  pop: number;
  /** Population shards (the paper's cores): they fix the math; workers only execute them. */
  shards: number;
  workers: number;
  sigma: number;
  sigmaSchedule: SigmaSchedule;
  /** Final sigma of a linear/exp schedule (reached at `steps`). */
  sigmaFinal: number;
  /** Mirrored sampling: members 2k, 2k+1 use +eps_k, -eps_k (always on for openai). */
  antithetic: boolean;
  /** nes: subtract the mean fitness before weighting. */
  baseline: boolean;
  nonFinite: NonFinitePolicy;
  /** fd: the nudge (paper: 0.001). */
  fdDelta: number;
  /** fd: allow more than fdMaxParams parameters. */
  fdForce: boolean;
  lr: number;
  optimizer: EsOptimizer;
  momentum: number;
  weightDecay: number;
  /** clipup: the largest step (velocity norm); 0 = 2 x lr. */
  maxSpeed: number;
  /** Learning-rate schedule over `steps` (lrFinal: its last value; lrWarmup: cosine warm-up steps; lrEvery/lrGamma: step decay). */
  lrSchedule: LrSchedule;
  lrFinal: number;
  lrWarmup: number;
  lrEvery: number;
  lrGamma: number;
  /** Population schedule: from pop to popFinal over `steps` (rounded to whole shards and pairs). */
  popSchedule: PopSchedule;
  popFinal: number;
  /** Training episodes per step: a member's fitness is its mean over them (less fitness noise). */
  episodesPerStep: number;
  /** pgpe/snes: the step size of sigma (0 = the strategy's default); pgpe: its largest relative change per step. */
  sigmaLr: number;
  maxSigmaChange: number;
  /** pgpe: fitness shaping (centered ranks, or raw). */
  shaping: 'ranks' | 'raw';
  train: EsEpisodeShape;
  val: EsEpisodeShape;
  distance: Distance;
  /** Omniglot class split the episodes come from (vinyals: Snell et al.'s; paper: the ES paper's random split). */
  split: 'vinyals' | 'paper';
  seed: number;
  /** Seed of the fixed validation episodes (the same for every step and, by default, every run). */
  valSeed: number;
  steps: number;
  valEvery: number;
  valEpisodes: number;
  checkpointEvery: number;
  /** The population's forward precision: fp32, bf16 conv products (cpu-native on CPUs with AVX512_BF16 / AMX-BF16; docs/native.md), or auto (bf16 where the CPU has AMX, else fp32). */
  precision: EsPrecision;
  /** Collapse: stop when the mean model's training loss over `collapseWindow` steps exceeds collapseLossFactor x its best window mean, or validation is at chance for `collapseValChecks` validations in a row (0 disables). */
  collapseWindow: number;
  collapseLossFactor: number;
  collapseValChecks: number;
}

/** FD population above this many parameters is refused unless forced (one forward per parameter per step). */
export const FD_MAX_PARAMS = 10000;

export const ES_DEFAULTS: Omit<EsConfig, 'model'> = {
  estimator: 'wsr', scheme: 'paper', pop: 64, shards: 1, workers: 1,
  sigma: 0.01, sigmaSchedule: 'constant', sigmaFinal: 0.01, antithetic: false, baseline: false, nonFinite: 'worst',
  fdDelta: 0.001, fdForce: false,
  lr: 1, optimizer: 'plain', momentum: 0, weightDecay: 0, maxSpeed: 0,
  lrSchedule: 'constant', lrFinal: 0, lrWarmup: 0, lrEvery: 1000, lrGamma: 0.5, popSchedule: 'constant', popFinal: 0, episodesPerStep: 1,
  sigmaLr: 0, maxSigmaChange: 0.2, shaping: 'ranks',
  train: { way: 5, shot: 5, query: 5 }, val: { way: 5, shot: 5, query: 15 }, distance: 'euclidean',
  split: 'vinyals', seed: 0, valSeed: 1, steps: 1000, valEvery: 100, valEpisodes: 100, checkpointEvery: 100,
  collapseWindow: 50, collapseLossFactor: 10, collapseValChecks: 3, precision: 'fp32',
};

export type EsConfigInput = Partial<Omit<EsConfig, 'model' | 'train' | 'val'>> & {
  model?: Partial<ModelConfig>;
  train?: Partial<EsEpisodeShape>;
  val?: Partial<EsEpisodeShape>;
};

/** Config field -> CLI option, for error messages. */
const FLAG: Record<string, string> = {
  pop: '--pop', valSeed: '--val-seed', shards: '--shards', workers: '--workers', sigma: '--sigma', sigmaFinal: '--sigma-final', lr: '--lr',
  momentum: '--momentum', weightDecay: '--weight-decay', steps: '--steps', seed: '--seed', fdDelta: '--fd-delta',
  valEvery: '--val-every', valEpisodes: '--val-episodes', checkpointEvery: '--checkpoint-every',
  collapseWindow: '--collapse-window', collapseLossFactor: '--collapse-loss-factor', collapseValChecks: '--collapse-val-checks',
  maxSpeed: '--max-speed', lrFinal: '--lr-final', lrWarmup: '--lr-warmup', lrEvery: '--lr-every', lrGamma: '--lr-gamma', popFinal: '--pop-final',
  episodesPerStep: '--episodes-per-step', sigmaLr: '--sigma-lr', maxSigmaChange: '--max-sigma-change', estimator: '--estimator', optimizer: '--optimizer',
  lrSchedule: '--lr-schedule', sigmaSchedule: '--sigma-schedule', popSchedule: '--pop-schedule', shaping: '--shaping', precision: '--precision',
  'train.way': '--way', 'train.shot': '--shot', 'train.query': '--query', 'val.way': '--val-way', 'val.shot': '--val-shot', 'val.query': '--val-query',
};

/** Largest population (fitness buffers are 8 bytes per member and per worker; the paper's largest is 65536). */
export const MAX_POP = 1 << 20;
/** Largest number of bytes of training or validation episodes held in memory at once. */
export const MAX_HELD_EPISODE_BYTES = 1 << 30;

function bad(field: string, msg: string): never {
  throw new UserError(`ES config: ${field}${FLAG[field] ? ` (${FLAG[field]})` : ''} ${msg}`);
}

function int(field: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) bad(field, `must be an integer >= ${min}, got ${v}`);
}

function pos(field: string, v: number): void {
  if (!(Number.isFinite(v) && v > 0)) bad(field, `must be a finite number > 0, got ${v}`);
}

function oneOf<T extends string>(field: string, v: T, choices: readonly T[]): void {
  if (!choices.includes(v)) bad(field, `must be one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
}

/** Fill defaults and validate. */
export function resolveEsConfig(input: EsConfigInput): EsConfig {
  let model: ModelConfig;
  try {
    model = modelConfig({ channels: 16, imageSize: 28, ...(input.model ?? {}) });
  } catch (e) {
    throw new UserError(`ES config: ${(e as Error).message}`);
  }
  const c: EsConfig = {
    ...ES_DEFAULTS, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)),
    model,
    train: { ...ES_DEFAULTS.train, ...(input.train ?? {}) },
    val: { ...ES_DEFAULTS.val, ...(input.val ?? {}) },
  } as EsConfig;
  oneOf('estimator', c.estimator, ['wsr', 'nes', 'openai', 'fd', 'pgpe', 'snes'] as const);
  oneOf('scheme', c.scheme, ['paper', 'openai'] as const);
  oneOf('optimizer', c.optimizer, ['plain', 'sgd', 'adam', 'clipup'] as const);
  oneOf('sigmaSchedule', c.sigmaSchedule, ['constant', 'linear', 'exp', 'cosine'] as const);
  oneOf('lrSchedule', c.lrSchedule, ['constant', 'linear', 'exp', 'cosine', 'step'] as const);
  oneOf('popSchedule', c.popSchedule, ['constant', 'linear', 'exp'] as const);
  oneOf('shaping', c.shaping, ['ranks', 'raw'] as const);
  oneOf('nonFinite', c.nonFinite, ['worst', 'drop'] as const);
  oneOf('distance', c.distance, ['euclidean', 'cosine'] as const);
  oneOf('split', c.split, ['vinyals', 'paper'] as const);
  oneOf('precision', c.precision, ES_PRECISIONS);
  pos('sigma', c.sigma);
  if (input.sigmaFinal === undefined) c.sigmaFinal = c.sigma;
  pos('sigmaFinal', c.sigmaFinal);
  pos('lr', c.lr);
  pos('fdDelta', c.fdDelta);
  if (!(c.momentum >= 0 && c.momentum < 1)) bad('momentum', `must be in [0, 1), got ${c.momentum}`);
  if (c.momentum > 0 && c.optimizer !== 'sgd' && c.optimizer !== 'clipup') bad('momentum', `applies to --optimizer sgd or clipup only (optimizer is ${c.optimizer})`);
  if (!(Number.isFinite(c.maxSpeed) && c.maxSpeed >= 0)) bad('maxSpeed', `must be a finite number >= 0, got ${c.maxSpeed}`);
  if (c.maxSpeed > 0 && c.optimizer !== 'clipup') bad('maxSpeed', `applies to --optimizer clipup only (optimizer is ${c.optimizer})`);
  if (input.lrFinal === undefined) c.lrFinal = c.lrSchedule === 'constant' || c.lrSchedule === 'step' ? c.lr : 0;
  int('lrWarmup', c.lrWarmup, 0);
  int('lrEvery', c.lrEvery, 1);
  try {
    checkSchedule('lr', c.lr, lrScheduleOf(c));
    checkSchedule('sigma', c.sigma, sigmaScheduleOf(c));
  } catch (e) { throw new UserError(`ES config: ${(e as Error).message}`); }
  int('episodesPerStep', c.episodesPerStep, 1);
  if (!(Number.isFinite(c.sigmaLr) && c.sigmaLr >= 0)) bad('sigmaLr', `must be a finite number >= 0, got ${c.sigmaLr}`);
  if (!(c.maxSigmaChange > 0 && c.maxSigmaChange < 1)) bad('maxSigmaChange', `must be in (0, 1), got ${c.maxSigmaChange}`);
  if ((c.estimator === 'pgpe' || c.estimator === 'snes') && c.sigmaSchedule !== 'constant') bad('sigmaSchedule', `does not apply to estimator ${c.estimator} (it adapts sigma itself)`);
  if (!(Number.isFinite(c.weightDecay) && c.weightDecay >= 0)) bad('weightDecay', `must be a finite number >= 0, got ${c.weightDecay}`);
  int('seed', c.seed, 0);
  if (c.seed > 0xffffffff) bad('seed', `must be below 2^32, got ${c.seed}`);
  int('valSeed', c.valSeed, 0);
  if (c.valSeed > 0xffffffff) bad('valSeed', `must be below 2^32, got ${c.valSeed}`);
  int('steps', c.steps, 1);
  int('workers', c.workers, 1);
  int('shards', c.shards, 1);
  int('valEvery', c.valEvery, 0);
  int('valEpisodes', c.valEpisodes, 0);
  int('checkpointEvery', c.checkpointEvery, 0);
  int('collapseWindow', c.collapseWindow, 0);
  int('collapseValChecks', c.collapseValChecks, 0);
  if (!(c.collapseLossFactor > 1)) bad('collapseLossFactor', `must be > 1, got ${c.collapseLossFactor}`);
  for (const [k, e] of [['train', c.train], ['val', c.val]] as const) {
    int(`${k}.way`, e.way, 2);
    int(`${k}.shot`, e.shot, 1);
    int(`${k}.query`, e.query, 1);
  }
  if (c.estimator === 'fd') {
    const d = new ProtoNetLayout(model).numParams;
    if (d > FD_MAX_PARAMS && !c.fdForce) {
      throw new UserError(`ES config: estimator fd needs a population of parameters + 1 = ${d + 1} forwards per step (channels ${model.channels}); refused above ${FD_MAX_PARAMS} parameters: use fewer --channels, or --force-fd`);
    }
    if (input.pop !== undefined && input.pop !== d + 1) bad('pop', `is fixed to parameters + 1 = ${d + 1} for estimator fd, got ${input.pop} (omit it)`);
    if (input.antithetic) bad('antithetic', 'does not apply to estimator fd');
    c.pop = d + 1;
    c.shards = 1;
    c.antithetic = false;
  } else {
    int('pop', c.pop, 2);
    if (c.estimator === 'openai' || c.estimator === 'pgpe') {
      if (input.antithetic === false) bad('antithetic', `cannot be off for estimator ${c.estimator} (it samples +eps/-eps pairs)`);
      c.antithetic = true;
    }
    if (c.pop % c.shards !== 0) bad('shards', `must divide the population: ${c.shards} shards do not divide pop ${c.pop}`);
    const per = c.pop / c.shards;
    if (c.antithetic && per % 2 !== 0) {
      bad('pop', `must give every shard an even number of members with antithetic sampling (pairs +eps/-eps): pop ${c.pop} / ${c.shards} shards = ${per}`);
    }
    if (c.scheme === 'paper' && per < 2) bad('shards', `leave at least 2 members per shard for the paper scheme (each shard standardizes its own rewards): pop ${c.pop} / ${c.shards} shards = ${per}`);
  }
  if (c.pop > MAX_POP) bad('pop', `must be at most ${MAX_POP}, got ${c.pop}`);
  if (input.popFinal === undefined) c.popFinal = c.pop;
  int('popFinal', c.popFinal, 2);
  if (c.popFinal > MAX_POP) bad('popFinal', `must be at most ${MAX_POP}, got ${c.popFinal}`);
  if (c.popSchedule !== 'constant' && c.estimator === 'fd') bad('popSchedule', 'does not apply to estimator fd (its population is parameters + 1)');
  if (c.workers > c.pop) bad('workers', `must not exceed the population: ${c.workers} workers for pop ${c.pop}`);
  const px = c.model.imageSize * c.model.imageSize * 4;
  const valBytes = c.valEpisodes * c.val.way * (c.val.shot + c.val.query) * px;
  if (valBytes > MAX_HELD_EPISODE_BYTES) bad('valEpisodes', `would hold ${(valBytes / 2 ** 30).toFixed(1)} GiB of validation episodes in memory (at most ${MAX_HELD_EPISODE_BYTES / 2 ** 30} GiB): ${c.valEpisodes} episodes of ${c.val.way}-way ${c.val.shot}+${c.val.query} images`);
  const trainBytes = c.episodesPerStep * c.train.way * (c.train.shot + c.train.query) * px;
  if (trainBytes > MAX_HELD_EPISODE_BYTES) bad('episodesPerStep', `would hold ${(trainBytes / 2 ** 30).toFixed(1)} GiB of training episodes per step (at most ${MAX_HELD_EPISODE_BYTES / 2 ** 30} GiB)`);
  return c;
}

/** The learning-rate schedule of a config. */
export function lrScheduleOf(c: Pick<EsConfig, 'lrSchedule' | 'lrFinal' | 'lrWarmup' | 'lrEvery' | 'lrGamma'>): Schedule {
  return { kind: c.lrSchedule, final: c.lrFinal, warmup: c.lrWarmup, every: c.lrEvery, gamma: c.lrGamma };
}

/** The sigma schedule of a config. */
export function sigmaScheduleOf(c: Pick<EsConfig, 'sigmaSchedule' | 'sigmaFinal'>): Schedule {
  return { kind: c.sigmaSchedule, final: c.sigmaFinal };
}

/** The population schedule of a config. */
export function popScheduleOf(c: Pick<EsConfig, 'popSchedule' | 'popFinal'>): Schedule {
  return { kind: c.popSchedule, final: c.popFinal };
}
