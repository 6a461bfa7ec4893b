/** Few-shot evaluation of a checkpoint: N-way K-shot episodes from a split, accuracy with a 95% interval. */
import { loadCheckpoint } from '../model/checkpoint.js';
import type { BnMode, Distance } from '../model/protonet.js';
import { loadOmniglot, type LoadProgress, type OmniglotDataset } from '../data/omniglot.js';
import { getSplit, type SplitPart, type SplitScheme, DEFAULT_IMAGE_SIZE } from '../data/splits.js';
import { checkEpisodeSize, EpisodeSampler } from '../data/sampler.js';
import { getDevice } from '../device/registry.js';
import { DirectOps } from '../ops/api.js';
import { scoreEpisode } from '../es/validate.js';
import { UserError } from '../errors.js';
import { summarize } from './stats.js';

/**
 * Bounds checked before anything is allocated. `episodes`: 1,000,000 (per-episode accuracies are
 * kept, 8 MB; a million 5-way episodes take hours). `activationBytes`: one episode's largest
 * activation (the first block's convolution output, images x channels x S^2 float32) at most 1 GiB.
 */
export const EVAL_LIMITS = { episodes: 1_000_000, activationBytes: 2 ** 30 } as const;

export interface EvalOptions {
  checkpoint: string;
  split?: SplitPart;
  /** Which class split: vinyals (default for 28x28 models) or paper (default for 32x32). */
  splitScheme?: SplitScheme;
  way?: number;
  shot?: number;
  query?: number;
  episodes?: number;
  seed?: number;
  bn?: BnMode;
  distance?: Distance;
  dataDir?: string;
  cacheDir?: string | false;
  device?: string;
  dataset?: OmniglotDataset;
  onLoadProgress?: (p: LoadProgress) => void;
  onEpisode?: (done: number, total: number, meanAcc: number) => void;
  /** Warnings while loading the data (e.g. an unwritable cache directory), once per process each. */
  onWarning?: (message: string) => void;
}

export interface EvalResult {
  accuracy: number;
  /** Sample standard deviation of per-episode accuracy. */
  std: number;
  /** 1.96 * std / sqrt(episodes), as Snell et al. report. */
  ci95: number;
  loss: number;
  episodes: number;
  way: number;
  shot: number;
  query: number;
  bn: 'running' | 'batch';
  split: SplitPart;
  splitScheme: SplitScheme;
  distance: Distance;
  imageSize: number;
  channels: number;
  seed: number;
  device: string;
  checkpoint: string;
}

export function evaluateCheckpoint(o: EvalOptions): EvalResult {
  const way = o.way ?? 5, shot = o.shot ?? 5, query = o.query ?? 15, episodes = o.episodes ?? 1000, seed = o.seed ?? 0;
  if (!Number.isInteger(episodes) || episodes < 1 || episodes > EVAL_LIMITS.episodes) {
    throw new UserError(`episodes must be an integer in [1, ${EVAL_LIMITS.episodes}], got ${episodes}`);
  }
  if (!Number.isInteger(way) || way < 2) throw new UserError(`way must be an integer >= 2, got ${way}`);
  checkEpisodeSize({ shot, query }); // way x (shot + query) is checked with the split, by the sampler
  const ck = loadCheckpoint(o.checkpoint);
  const size = ck.layout.config.imageSize;
  const metaCfg = (ck.meta['config'] ?? {}) as { split?: unknown; distance?: unknown };
  const scheme: SplitScheme = o.splitScheme ?? (metaCfg.split === 'vinyals' || metaCfg.split === 'paper' ? metaCfg.split : size === DEFAULT_IMAGE_SIZE.paper ? 'paper' : 'vinyals');
  const distance: Distance = o.distance ?? (metaCfg.distance === 'cosine' ? 'cosine' : 'euclidean');
  const split = o.split ?? 'test';
  const bn = o.bn ?? 'running';
  if (o.dataset && o.dataset.imageSize !== size) throw new UserError(`dataset is ${o.dataset.imageSize}x${o.dataset.imageSize} but the checkpoint's model takes ${size}x${size}`);
  const dataset = o.dataset ?? loadOmniglot({ imageSize: size, dataDir: o.dataDir, cacheDir: o.cacheDir, onProgress: o.onLoadProgress, onWarning: o.onWarning });
  const sampler = new EpisodeSampler(getSplit(dataset, scheme, split), { way, shot, query, seed });
  const images = way * (shot + query), channels = ck.layout.config.channels;
  const bytes = images * channels * size * size * 4;
  if (bytes > EVAL_LIMITS.activationBytes) {
    const mb = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
    throw new UserError(`an episode of way ${way} x (shot ${shot} + query ${query}) = ${images} images through ${channels} channels at ${size}x${size} needs ${mb(bytes)} per activation, more than the ${mb(EVAL_LIMITS.activationBytes)} allowed: lower way, shot or query`);
  }
  const device = getDevice(o.device);
  const ops = new DirectOps(device);
  const accs = new Float64Array(episodes);
  let lossSum = 0, accSum = 0;
  for (let i = 0; i < episodes; i++) {
    const ep = sampler.episode(i);
    const s = scoreEpisode(ops, ck.layout, ck.params, ck.bn, ep, distance, bn);
    accs[i] = s.acc;
    lossSum += s.loss;
    accSum += s.acc;
    o.onEpisode?.(i + 1, episodes, accSum / (i + 1));
  }
  const { mean, std, ci95 } = summarize(accs);
  return {
    accuracy: mean, std, ci95, loss: lossSum / episodes,
    episodes, way, shot, query, bn, split, splitScheme: scheme, distance, imageSize: size, channels: ck.layout.config.channels,
    seed, device: device.name, checkpoint: o.checkpoint,
  };
}
