/**
 * Backprop training configuration: presets, defaults, validation with clear
 * errors naming the field and its CLI option.
 *
 * The 'snell' preset is Snell et al.'s recipe for Omniglot (Prototypical
 * Networks, 2017): ConvNet-4 with 64 channels on 28x28 images, training
 * episodes of 60-way 5-shot 15-query, Adam at lr 1e-3 halved every 2000
 * episodes, epochs of 100 episodes with a validation pass each (5-way 5-shot
 * 15-query, BN running statistics), the best-validation model kept.
 * 200 epochs (20,000 episodes) as in the ES-ProtoNet paper's trials.
 */
import { UserError } from '../../errors.js';
import { modelConfig, type ModelConfig } from '../../model/layout.js';
import type { Distance } from '../../model/protonet.js';

export interface BackpropEpisodeShape { way: number; shot: number; query: number }
export type BackpropOptimizer = 'adam' | 'sgd';
export type SplitName = 'vinyals' | 'paper';

export interface BackpropConfig {
  model: ModelConfig;
  distance: Distance;
  optimizer: BackpropOptimizer;
  lr: number;
  /** SGD momentum (sgd only). */
  momentum: number;
  weightDecay: number;
  /** Step-LR: lr * lrGamma^floor(episode / lrDecayEvery); 0 = constant. */
  lrDecayEvery: number;
  lrGamma: number;
  train: BackpropEpisodeShape;
  val: BackpropEpisodeShape;
  split: SplitName;
  seed: number;
  /** Seed of the fixed validation (and test) episodes; default: seed. */
  valSeed: number;
  /** Total training episodes. */
  episodes: number;
  /** Episodes per epoch: a validation pass and a last checkpoint after each. */
  episodesPerEpoch: number;
  /** Validation episodes per pass (0: no validation). */
  valEpisodes: number;
}

export type BackpropConfigInput = Partial<Omit<BackpropConfig, 'model' | 'train' | 'val' | 'valSeed'>> & {
  valSeed?: number;
  model?: Partial<ModelConfig>;
  train?: Partial<BackpropEpisodeShape>;
  val?: Partial<BackpropEpisodeShape>;
};

export const PRESETS: Readonly<Record<string, BackpropConfigInput>> = {
  snell: {
    model: { channels: 64, imageSize: 28 }, distance: 'euclidean', optimizer: 'adam', lr: 1e-3, momentum: 0, weightDecay: 0,
    lrDecayEvery: 2000, lrGamma: 0.5, train: { way: 60, shot: 5, query: 15 }, val: { way: 5, shot: 5, query: 15 },
    split: 'vinyals', seed: 0, episodes: 20000, episodesPerEpoch: 100, valEpisodes: 100,
  },
  /** Snell's recipe scaled down for a CPU: 16 channels, 20-way training episodes, 20 epochs. */
  quick: {
    model: { channels: 16, imageSize: 28 }, distance: 'euclidean', optimizer: 'adam', lr: 1e-3, momentum: 0, weightDecay: 0,
    lrDecayEvery: 2000, lrGamma: 0.5, train: { way: 20, shot: 5, query: 5 }, val: { way: 5, shot: 5, query: 15 },
    split: 'vinyals', seed: 0, episodes: 2000, episodesPerEpoch: 100, valEpisodes: 50,
  },
};

export const DEFAULT_PRESET = 'snell';

/** Config field -> CLI option, for error messages. */
const FLAG: Record<string, string> = {
  lr: '--lr', momentum: '--momentum', weightDecay: '--weight-decay', lrDecayEvery: '--lr-decay-every', lrGamma: '--lr-gamma',
  seed: '--seed', valSeed: '--val-seed', episodes: '--steps', episodesPerEpoch: '--val-every', valEpisodes: '--val-episodes', optimizer: '--optimizer',
  distance: '--distance', split: '--split', 'train.way': '--way', 'train.shot': '--shot', 'train.query': '--query',
  'val.way': '--val-way', 'val.shot': '--val-shot', 'val.query': '--val-query', preset: '--preset',
};

function bad(field: string, msg: string): never {
  throw new UserError(`backprop config: ${field}${FLAG[field] ? ` (${FLAG[field]})` : ''} ${msg}`);
}

function int(field: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(v) || v < min || v > max) bad(field, `must be an integer in [${min}, ${max}], got ${v}`);
}

function oneOf<T extends string>(field: string, v: T, choices: readonly T[]): void {
  if (!choices.includes(v)) bad(field, `must be one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
}

/** The preset's values overlaid with `input` (undefined fields ignored), validated. */
export function resolveBackpropConfig(input: BackpropConfigInput, preset: string = DEFAULT_PRESET): BackpropConfig {
  const base = PRESETS[preset];
  if (!base) bad('preset', `must be one of ${Object.keys(PRESETS).join(', ')}, got ${JSON.stringify(preset)}`);
  const defined = <T extends object>(o: T | undefined): Partial<T> => Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
  let model: ModelConfig;
  try {
    model = modelConfig({ ...base.model, ...defined(input.model) });
  } catch (e) {
    throw new UserError(`backprop config: ${(e as Error).message}`);
  }
  const c = {
    ...base, ...defined(input), model,
    train: { ...base.train, ...defined(input.train) },
    val: { ...base.val, ...defined(input.val) },
  } as BackpropConfig;
  oneOf('optimizer', c.optimizer, ['adam', 'sgd'] as const);
  oneOf('distance', c.distance, ['euclidean', 'cosine'] as const);
  oneOf('split', c.split, ['vinyals', 'paper'] as const);
  if (!(Number.isFinite(c.lr) && c.lr > 0)) bad('lr', `must be a finite number > 0, got ${c.lr}`);
  if (!(c.momentum >= 0 && c.momentum < 1)) bad('momentum', `must be in [0, 1), got ${c.momentum}`);
  if (c.momentum > 0 && c.optimizer !== 'sgd') bad('momentum', `applies to --optimizer sgd only (optimizer is ${c.optimizer})`);
  if (!(Number.isFinite(c.weightDecay) && c.weightDecay >= 0)) bad('weightDecay', `must be a finite number >= 0, got ${c.weightDecay}`);
  int('lrDecayEvery', c.lrDecayEvery, 0);
  if (!(c.lrGamma > 0 && c.lrGamma <= 1)) bad('lrGamma', `must be in (0, 1], got ${c.lrGamma}`);
  int('seed', c.seed, 0, 0xffffffff);
  if (input.valSeed === undefined) c.valSeed = c.seed;
  int('valSeed', c.valSeed, 0, 0xffffffff);
  int('episodes', c.episodes, 1);
  int('episodesPerEpoch', c.episodesPerEpoch, 1);
  int('valEpisodes', c.valEpisodes, 0);
  for (const part of ['train', 'val'] as const) {
    const e = c[part];
    int(`${part}.way`, e.way, 2);
    int(`${part}.shot`, e.shot, 1);
    int(`${part}.query`, e.query, 1);
    if (e.shot + e.query > 20) bad(`${part}.query`, `plus shot must be at most 20 (the drawings of an Omniglot character), got ${e.shot} + ${e.query}`);
  }
  return c;
}

/** Fields a resumed run may change: they do not alter the training math of the episodes already done or to come. */
export const RESUME_CHANGEABLE: readonly string[] = ['episodes'];
