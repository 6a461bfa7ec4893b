/**
 * Named ES configurations for `evometa train --preset`. Explicit options
 * override a preset's fields. The paper's rows (Sheng & He, Tables I and III)
 * keep its channels, population per core x cores (-> shards), train way,
 * shot, alpha and sigma, WSR with the paper's all-reduce scheme, 32 x 32
 * images on its random split, and 200 epochs x 100 episodes = 20000 steps.
 */
import { availableParallelism } from 'node:os';
import { UserError } from '../../errors.js';
import type { SplitScheme } from '../../data/splits.js';
import { resolveEsConfig, type EsConfig, type EsConfigInput } from './config.js';

export type DataSplit = SplitScheme;

export interface EsPreset {
  description: string;
  config: EsConfigInput;
}

function paperRow(tpu: 'v3-8' | 'v3-256', channels: number, perCore: number, way: number, shot: number, source: string): EsPreset {
  const cores = tpu === 'v3-8' ? 8 : 256;
  const [lr, sigma] = tpu === 'v3-8' ? [1, 0.01] : [10, 0.1];
  return {
    description: `paper ${source}: TPU ${tpu}, alpha ${lr}, sigma ${sigma}, C ${channels}, ${perCore} per core x ${cores} = ${perCore * cores}, ${way}-way ${shot}-shot`,
    config: {
      estimator: 'wsr', scheme: 'paper', optimizer: 'plain', lr, sigma, model: { channels, imageSize: 32 },
      pop: perCore * cores, shards: cores, train: { way, shot, query: 5 }, val: { way: 5, shot, query: 15 },
      split: 'paper', distance: 'euclidean', steps: 20000, valEvery: 100, valEpisodes: 100, checkpointEvery: 500,
    },
  };
}

/** The long runs on this machine class: the quick recipe with a cosine lr decay 0.1 -> 0.01 over `steps`, 200 validation episodes every 500 steps. */
function accurate(steps: number, description: string, shot = 5): EsPreset {
  return {
    description,
    config: {
      estimator: 'wsr', scheme: 'paper', optimizer: 'sgd', momentum: 0.9, lr: 0.1, lrSchedule: 'cosine', lrFinal: 0.01, sigma: 0.01,
      model: { channels: 16, imageSize: 28 }, pop: 64, shards: 2, train: { way: 20, shot, query: 5 }, val: { way: 5, shot, query: 15 },
      split: 'vinyals', steps, valEvery: 500, valEpisodes: 200, checkpointEvery: 500, precision: 'auto',
    },
  };
}

/** Named ES configurations for `evometa train --preset` and esConfig(): 'quick' (the default) and the paper's Table I and III rows. */
export const ES_PRESETS: Record<string, EsPreset> = {
  quick: {
    description: 'the default: WSR (paper eq. 9, paper scheme), C 16, pop 64 in 2 shards, sigma 0.01, SGD momentum 0.9 at lr 0.1 (the paper\'s alpha 1 step averaged over ~10 steps), 20-way 5-shot training episodes (the paper\'s finding: more ways train better), 5-way validation, 600 steps, precision auto (bf16 on CPUs with AMX, else fp32); about 2 minutes on 2 cores (measurements in docs/es.md)',
    config: {
      estimator: 'wsr', scheme: 'paper', optimizer: 'sgd', momentum: 0.9, lr: 0.1, sigma: 0.01, model: { channels: 16, imageSize: 28 },
      pop: 64, shards: 2, train: { way: 20, shot: 5, query: 5 }, val: { way: 5, shot: 5, query: 15 },
      split: 'vinyals', steps: 600, valEvery: 50, valEpisodes: 50, checkpointEvery: 100, precision: 'auto',
    },
  },
  // Table I
  'paper-t1-1shot-v3-8': paperRow('v3-8', 16, 64, 20, 1, 'Table I'),
  'paper-t1-1shot-v3-256': paperRow('v3-256', 16, 64, 20, 1, 'Table I'),
  'paper-t1-5shot-v3-8': paperRow('v3-8', 32, 32, 10, 5, 'Table I'),
  'paper-t1-5shot-v3-256': paperRow('v3-256', 16, 64, 20, 5, 'Table I'),
  // Table III (5-shot)
  'paper-t3-c64-w5': paperRow('v3-8', 64, 16, 5, 5, 'Table III'),
  'paper-t3-c64-w10': paperRow('v3-8', 64, 8, 10, 5, 'Table III'),
  'paper-t3-c32-w5': paperRow('v3-8', 32, 64, 5, 5, 'Table III'),
  'paper-t3-c32-w10': paperRow('v3-8', 32, 32, 10, 5, 'Table III'),
  'paper-t3-c32-w20': paperRow('v3-8', 32, 16, 20, 5, 'Table III'),
  'paper-t3-c16-w10': paperRow('v3-8', 16, 128, 10, 5, 'Table III'),
  'paper-t3-c32-w10-v3-256': paperRow('v3-256', 32, 32, 10, 5, 'Table III'),
  'paper-t3-c32-w20-v3-256': paperRow('v3-256', 32, 16, 20, 5, 'Table III'),
  'paper-t3-c16-w20-v3-256': paperRow('v3-256', 16, 64, 20, 5, 'Table III'),
  'paper-t3-c16-w10-v3-256': paperRow('v3-256', 16, 128, 10, 5, 'Table III'),
  // long runs on this machine class
  'accurate-1h': accurate(20000, '20000 steps, 1.3 M member-evaluations: 37 minutes on 2 cores (an AMX Xeon, where precision auto is bf16; longer in fp32; 53 minutes before the trainer speed-up of 2026-12-01): the quick recipe with a cosine learning-rate decay from 0.1 to 0.01 over 20000 steps, 200 validation episodes every 500 steps (results in docs/es.md)'),
  'accurate-2h': accurate(44000, '44000 steps, 2.8 M member-evaluations: 76 minutes on 2 cores (an AMX Xeon, where precision auto is bf16; longer in fp32; two hours before the trainer speed-up of 2026-12-01): the accurate-1h recipe stretched, cosine lr 0.1 -> 0.01 over the whole run, 200 validation episodes every 500 steps (results in docs/es.md)'),
  'accurate-2h-1shot': accurate(90000, 'the 1-shot twin of accurate-2h: the same recipe on 20-way 1-shot 5-query training episodes, validation 5-way 1-shot (Snell et al. match the training shot to the test shot; the paper trains its 1-shot rows on 1-shot episodes), stretched to 90000 steps (5.76 M member-evaluations), which fill the two hours at the trainer\'s current speed: 115 minutes on 2 cores (an AMX Xeon, bf16); test 94.4% 1-shot, 98.6% 5-shot, one seed (44000 steps: 93.5% / 98.1%; results in docs/es.md)', 1),
};

export function presetNames(): string[] { return Object.keys(ES_PRESETS); }

/** The preset `evometa train` uses when none is named, and esConfig()'s default. */
export const ES_DEFAULT_PRESET = 'quick';

function defined<T extends object>(o: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * A preset's fields overlaid with `overrides` (fields left undefined are ignored), before
 * validation: what `evometa train --preset NAME <options>` hands to resolveEsConfig.
 * - the validation shot follows `train.shot` unless `val.shot` is given;
 * - the preset's momentum is dropped when `optimizer` is overridden by one without momentum
 *   (plain, adam), so `{ optimizer: 'adam' }` on the quick preset (SGD, momentum 0.9) is valid;
 * - fd fixes its own population (parameters + 1): the preset's `pop` is dropped;
 * - `workers` defaults to min(CPU cores, pop): threads only execute shards, the results do not
 *   depend on it.
 */
export function esPresetInput(overrides: EsConfigInput = {}, preset: string = ES_DEFAULT_PRESET): EsConfigInput {
  const p = ES_PRESETS[preset];
  if (!p) throw new UserError(`--preset: unknown preset ${JSON.stringify(preset)}; presets: ${presetNames().join(', ')}`);
  const x = defined(overrides);
  const train = defined(x.train), val = defined(x.val);
  const c: EsConfigInput = {
    ...p.config, ...x,
    model: { ...p.config.model, ...defined(x.model) },
    train: { ...p.config.train, ...train },
    val: { ...p.config.val, ...(train.shot !== undefined && val.shot === undefined ? { shot: train.shot } : {}), ...val },
  };
  if (c.estimator === 'fd' && x.pop === undefined) delete c.pop;
  if (x.optimizer !== undefined && x.momentum === undefined && x.optimizer !== 'sgd' && x.optimizer !== 'clipup') delete c.momentum;
  if (c.workers === undefined) c.workers = Math.max(1, Math.min(availableParallelism(), c.pop ?? availableParallelism()));
  return c;
}

/**
 * A complete, validated ES-ProtoNet configuration: the preset (default 'quick', the same as
 * `evometa train`) overlaid with `overrides`. `esConfig()` equals what `evometa train --show-config`
 * prints, and `esConfig({ lr: 0.05 }, 'paper-t3-c32-w5')` what `--preset paper-t3-c32-w5 --lr 0.05`
 * prints. (resolveEsConfig, underneath, fills missing fields from ES_DEFAULTS instead: the bare
 * base that presets overlay, plain WSR at alpha 1.)
 */
export function esConfig(overrides: EsConfigInput = {}, preset: string = ES_DEFAULT_PRESET): EsConfig {
  return resolveEsConfig(esPresetInput(overrides, preset));
}
