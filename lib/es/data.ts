/** Omniglot episode sources for the ES trainer (lib/data): train episodes by step, fixed validation episodes. */
import { loadOmniglot, type LoadProgress, type OmniglotDataset } from '../data/omniglot.js';
import { getSplit, type SplitPart } from '../data/splits.js';
import { EpisodeSampler } from '../data/sampler.js';
import type { EsConfig } from './config.js';
import type { EsSources } from './trainer.js';

export interface OmniglotSourceOptions {
  dataDir?: string;
  cacheDir?: string | false;
  onProgress?: (p: LoadProgress) => void;
  dataset?: OmniglotDataset;
}

/** Train episode i = EpisodeSampler(train split, seed).episode(i); validation episodes from the val split under valSeed. */
export function omniglotSources(cfg: Pick<EsConfig, 'model' | 'split' | 'train' | 'val' | 'seed' | 'valSeed'>, opts: OmniglotSourceOptions = {}): EsSources & { dataset: OmniglotDataset } {
  const dataset = opts.dataset ?? loadOmniglot({ imageSize: cfg.model.imageSize, dataDir: opts.dataDir, cacheDir: opts.cacheDir, onProgress: opts.onProgress });
  const split = (part: SplitPart) => getSplit(dataset, cfg.split, part);
  return {
    dataset,
    train: new EpisodeSampler(split('train'), { ...cfg.train, seed: cfg.seed }),
    val: new EpisodeSampler(split('val'), { ...cfg.val, seed: cfg.valSeed }),
  };
}

/** Test episodes (for the final evaluation): the test split under `seed`. */
export function omniglotTestSampler(dataset: OmniglotDataset, cfg: Pick<EsConfig, 'split'>, shape: { way: number; shot: number; query: number }, seed: number): EpisodeSampler {
  return new EpisodeSampler(getSplit(dataset, cfg.split, 'test'), { ...shape, seed });
}
