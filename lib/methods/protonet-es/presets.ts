/**
 * Named ES configurations for `evometa train --preset`. Explicit options
 * override a preset's fields. The paper's rows (Sheng & He, Tables I and III)
 * keep its channels, population per core x cores (-> shards), train way,
 * shot, alpha and sigma, WSR with the paper's all-reduce scheme, 32 x 32
 * images on its random split, and 200 epochs x 100 episodes = 20000 steps.
 */
import type { EsConfigInput } from './config.js';

export type DataSplit = 'vinyals' | 'paper';

export interface EsPreset {
  description: string;
  config: EsConfigInput & { split?: DataSplit };
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

export const ES_PRESETS: Record<string, EsPreset> = {
  quick: {
    description: 'the default: WSR (paper eq. 9, paper scheme), C 16, pop 32 in 2 shards, sigma 0.01, SGD momentum 0.9 at lr 0.1 (the paper\'s alpha 1 step averaged over ~10 steps), 5-way 5-shot episodes; learns visibly within minutes on 2 cores (measurements in docs/es.md)',
    config: {
      estimator: 'wsr', scheme: 'paper', optimizer: 'sgd', momentum: 0.9, lr: 0.1, sigma: 0.01, model: { channels: 16, imageSize: 28 },
      pop: 32, shards: 2, train: { way: 5, shot: 5, query: 5 }, val: { way: 5, shot: 5, query: 15 },
      split: 'vinyals', steps: 3000, valEvery: 50, valEpisodes: 50, checkpointEvery: 100,
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
};

export function presetNames(): string[] { return Object.keys(ES_PRESETS); }
