/**
 * Meta-training configuration of the learned optimizer: presets, defaults and
 * validation with errors naming the field and its CLI option.
 *
 * 'quadratic' is Andrychowicz et al.'s first experiment: 10-dimensional random
 * quadratics, T = 100 optimizee steps unrolled in chunks of K = 20, Adam on phi
 * at 1e-3 (here 3e-3 with the log meta-loss, see docs/l2l.md), one task at a time
 * (the seed's sequential baseline). 'quadratic-mix' is the task distribution of
 * the acceleration study: dimensions 5/10/20 and curvature scales 0.5/1/2 mixed,
 * so that clusters exist to be found; meta-batches of 8 tasks.
 */
import { UserError } from '../errors.js';
import { checkLstmConfig, DEFAULT_LSTM, type LstmOptimizerConfig } from './layout.js';
import { META_LOSSES, type MetaLossKind } from './unroll.js';
import { BATCH_MODES, type BatchMode } from './cluster.js';
import { checkFamilyConfig, FAMILY_DEFAULTS, FAMILY_NAMES, type FamilyConfig, type FamilyName } from './tasks/families.js';

export type L2lTrainer = 'bptt' | 'es';
export const L2L_TRAINERS: readonly L2lTrainer[] = ['bptt', 'es'];

export interface L2lEsConfig { pop: number; sigma: number; antithetic: boolean }

export interface L2lConfig {
  family: FamilyConfig;
  lstm: LstmOptimizerConfig;
  /** Meta-training by truncated backprop through the unroll ('bptt') or by evolution strategies ('es'). */
  trainer: L2lTrainer;
  /** Optimizee steps T of a trajectory (training and validation). */
  horizon: number;
  /** Truncation length K (bptt): one meta-step per K optimizee steps. */
  unroll: number;
  metaLoss: MetaLossKind;
  /** Tasks per meta-step (1: the sequential baseline). */
  metaBatch: number;
  /** Tasks stacked into one program (1: one program per task); divides metaBatch. */
  groupSize: number;
  batchMode: BatchMode;
  /** k of the task clustering (batchMode 'cluster'). */
  clusters: number;
  /** Training tasks: the pool meta-batches are drawn from (and clustered). */
  poolSize: number;
  /** Adam on phi. */
  metaLr: number;
  es: L2lEsConfig;
  /** Total meta-steps. */
  steps: number;
  /** Held-out validation tasks (part 'val', indices 0..valTasks-1). */
  valTasks: number;
  seed: number;
}

export type L2lConfigInput = Partial<Omit<L2lConfig, 'family' | 'lstm' | 'es'>> & {
  family?: Partial<FamilyConfig> & { family?: FamilyName };
  lstm?: Partial<LstmOptimizerConfig>;
  es?: Partial<L2lEsConfig>;
};

const BASE: Omit<L2lConfig, 'family'> = {
  lstm: DEFAULT_LSTM, trainer: 'bptt', horizon: 100, unroll: 20, metaLoss: 'log', metaBatch: 1, groupSize: 1,
  batchMode: 'random', clusters: 1, poolSize: 1024, metaLr: 3e-3, es: { pop: 32, sigma: 0.02, antithetic: true },
  steps: 2000, valTasks: 64, seed: 0,
};

/** Named learned-optimizer configurations for `evometa l2l --preset` (docs/l2l.md): the optimizee family, meta-batching and the meta-trainer. */
export const L2L_PRESETS: Readonly<Record<string, L2lConfigInput>> = {
  quadratic: { family: { family: 'quadratic' } },
  'quadratic-mix': {
    family: { family: 'quadratic', dims: [5, 10, 20], scales: [0.5, 1, 2] },
    metaBatch: 8, groupSize: 8, batchMode: 'cluster', clusters: 9, poolSize: 1024,
  },
  mlp: { family: { family: 'mlp' }, horizon: 100, unroll: 20, metaBatch: 2, groupSize: 2, poolSize: 256, valTasks: 8, steps: 500 },
  protonet: { family: { family: 'protonet' }, horizon: 40, unroll: 10, metaBatch: 2, groupSize: 2, poolSize: 64, valTasks: 4, steps: 200 },
  'quadratic-es': { family: { family: 'quadratic' }, trainer: 'es', metaBatch: 8, groupSize: 8, metaLr: 1e-2 },
};

/** The preset `evometa l2l` uses when none is given. */
export const DEFAULT_L2L_PRESET = 'quadratic';

const FLAG: Record<string, string> = {
  trainer: '--trainer', horizon: '--horizon', unroll: '--unroll', metaLoss: '--meta-loss', metaBatch: '--meta-batch', groupSize: '--group-size',
  batchMode: '--batch-mode', clusters: '--cluster', poolSize: '--pool', metaLr: '--meta-lr', steps: '--steps', valTasks: '--val-tasks', seed: '--seed',
  'es.pop': '--pop', 'es.sigma': '--sigma', preset: '--preset', family: '--family',
};

function bad(field: string, msg: string): never {
  throw new UserError(`l2l config: ${field}${FLAG[field] ? ` (${FLAG[field]})` : ''} ${msg}`);
}

function int(field: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(v) || v < min || v > max) bad(field, `must be an integer in [${min}, ${max}], got ${v}`);
}

function oneOf<T extends string>(field: string, v: T, choices: readonly T[]): void {
  if (!choices.includes(v)) bad(field, `must be one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
}

const defined = <T extends object>(o: T | undefined): Partial<T> => Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;

/** The preset overlaid with `input` (undefined fields ignored), validated. A family other than the preset's starts from that family's defaults. */
export function resolveL2lConfig(input: L2lConfigInput = {}, preset: string = DEFAULT_L2L_PRESET): L2lConfig {
  const p = L2L_PRESETS[preset];
  if (!p) bad('preset', `must be one of ${Object.keys(L2L_PRESETS).join(', ')}, got ${JSON.stringify(preset)}`);
  const famName = (input.family?.family ?? p.family?.family ?? 'quadratic') as FamilyName;
  oneOf('family', famName, FAMILY_NAMES);
  const famBase = p.family?.family === famName ? { ...FAMILY_DEFAULTS[famName], ...defined(p.family) } : FAMILY_DEFAULTS[famName];
  const family = { ...famBase, ...defined(input.family), family: famName } as FamilyConfig;
  const c: L2lConfig = {
    ...BASE, ...defined(p as Partial<L2lConfig>), ...defined(input as Partial<L2lConfig>), family,
    lstm: { ...BASE.lstm, ...defined(p.lstm), ...defined(input.lstm) },
    es: { ...BASE.es, ...defined(p.es), ...defined(input.es) },
  };
  if (input.seed !== undefined && input.family?.seed === undefined) c.family = { ...c.family, seed: input.seed };
  try {
    checkFamilyConfig(c.family);
    checkLstmConfig(c.lstm);
  } catch (e) {
    throw new UserError(`l2l config: ${(e as Error).message}`);
  }
  oneOf('trainer', c.trainer, L2L_TRAINERS);
  oneOf('metaLoss', c.metaLoss, META_LOSSES);
  oneOf('batchMode', c.batchMode, BATCH_MODES);
  int('horizon', c.horizon, 1, 100000);
  int('unroll', c.unroll, 1, 100000);
  int('poolSize', c.poolSize, 1, 1 << 24);
  int('metaBatch', c.metaBatch, 1, c.poolSize);
  int('groupSize', c.groupSize, 1, c.metaBatch);
  if (c.metaBatch % c.groupSize !== 0) bad('groupSize', `must divide the meta-batch ${c.metaBatch}, got ${c.groupSize}`);
  int('clusters', c.clusters, 1, c.poolSize);
  if (c.batchMode === 'cluster' && c.clusters < 2) bad('clusters', 'must be >= 2 for --batch-mode cluster (1 cluster is a random batch)');
  if (!(Number.isFinite(c.metaLr) && c.metaLr > 0)) bad('metaLr', `must be a finite number > 0, got ${c.metaLr}`);
  int('steps', c.steps, 1);
  int('valTasks', c.valTasks, 0, 1 << 20);
  int('seed', c.seed, 0, 0xffffffff);
  int('es.pop', c.es.pop, 2, 1 << 20);
  if (c.es.antithetic && c.es.pop % 2 !== 0) bad('es.pop', `must be even with antithetic pairs, got ${c.es.pop}`);
  if (!(Number.isFinite(c.es.sigma) && c.es.sigma > 0)) bad('es.sigma', `must be a finite number > 0, got ${c.es.sigma}`);
  return c;
}

/** Fields a resumed run may change (they do not alter the maths of the steps done or to come). */
export const L2L_RESUME_CHANGEABLE: readonly string[] = ['steps'];
