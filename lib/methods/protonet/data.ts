/** Omniglot episode sources for the ProtoNet methods: train episodes by index, fixed validation and test episodes. */
import { loadOmniglot, type LoadProgress, type OmniglotDataset } from '../../data/omniglot.js';
import { getSplit, type SplitPart } from '../../data/splits.js';
import { EpisodeSampler } from '../../data/sampler.js';
import type { ModelConfig } from '../../model/layout.js';

import type { EpisodeSource } from '../../data/synthetic.js';
export type { EpisodeSource };

export interface EpisodeCounts { way: number; shot: number; query: number }

export interface ProtoNetSources { train: EpisodeSource; val?: EpisodeSource }

export interface OmniglotSourceOptions {
  dataDir?: string | undefined;
  cacheDir?: string | false | undefined;
  onProgress?: (p: LoadProgress) => void;
  onWarning?: (message: string) => void;
  dataset?: OmniglotDataset;
}

export interface SourceConfig {
  model: Pick<ModelConfig, 'imageSize'>;
  split: 'vinyals' | 'paper';
  train: EpisodeCounts;
  val: EpisodeCounts;
  seed: number;
  valSeed: number;
}

/** Train episode i = EpisodeSampler(train split, seed).episode(i); validation episodes from the val split under valSeed. */
export function omniglotSources(cfg: SourceConfig, opts: OmniglotSourceOptions = {}): ProtoNetSources & { dataset: OmniglotDataset; train: EpisodeSampler; val: EpisodeSampler } {
  const dataset = opts.dataset ?? loadOmniglot({
    imageSize: cfg.model.imageSize, ...(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {}),
    ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}), ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
  });
  const split = (part: SplitPart) => getSplit(dataset, cfg.split, part);
  return {
    dataset,
    train: new EpisodeSampler(split('train'), { ...cfg.train, seed: cfg.seed }),
    val: new EpisodeSampler(split('val'), { ...cfg.val, seed: cfg.valSeed }),
  };
}

/** Test episodes (for final evaluations): the test split under `seed`. */
export function omniglotTestSampler(dataset: OmniglotDataset, split: 'vinyals' | 'paper', shape: EpisodeCounts, seed: number): EpisodeSampler {
  return new EpisodeSampler(getSplit(dataset, split, 'test'), { ...shape, seed });
}

/** Seed of the test episodes drawn by `train --test-episodes` (the same for every run, so runs compare). */
export const TEST_SEED = 2024;
