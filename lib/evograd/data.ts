/**
 * Omniglot sources of the rotation task: the Vinyals split's upright classes (rotation 0 only),
 * training episodes upright, validation and test episodes rotated by the task's angle.
 * With cfg.supersample s > 1 the dataset is loaded at s x the model's side: training episodes stay at
 * that side (the program rotates and pools them), the others are rotated and pooled here.
 *  - train:    upright train split, EpisodeSampler(seed), episode t for step t;
 *  - hyperVal: upright val split rotated by valAngle, EpisodeSampler(hyperValSeed(seed)), episode t for step t;
 *  - val:      the same classes and angle, EpisodeSampler(valSeed), the fixed episodes 0..valEpisodes-1;
 *  - test:     upright test split, rotated by any angle (the task's, or 0 for upright test episodes).
 */
import type { Device } from '../device/registry.js';
import { loadOmniglot, type LoadProgress, type OmniglotDataset } from '../data/omniglot.js';
import { getSplit, type SplitPart } from '../data/splits.js';
import { EpisodeSampler } from '../data/sampler.js';
import type { EpisodeSource } from '../data/synthetic.js';
import type { EvoGradConfig, RotationEpisodeShape } from './config.js';
import type { EvoGradSources } from './method.js';
import { RotatedEpisodes, uprightSplit } from './rotation.js';
import { evaluateEpisodes, type EpisodesEvalResult } from '../eval/episodes.js';
import type { BnState, ProtoNetLayout } from '../model/layout.js';
import type { Distance } from '../model/protonet.js';

/** The hypergradient's validation episodes use a seed of their own, so they differ from the fixed validation episodes. */
export function hyperValSeed(seed: number): number {
  return (seed + 0x9e3779b9) >>> 0;
}

export interface RotationData { dataset: OmniglotDataset; sources: EvoGradSources }

export function uprightSampler(dataset: OmniglotDataset, part: SplitPart, shape: RotationEpisodeShape, seed: number): EpisodeSampler {
  return new EpisodeSampler(uprightSplit(getSplit(dataset, 'vinyals', part)), { ...shape, seed });
}

export function rotationSources(cfg: EvoGradConfig, device: Device, opts: { dataset?: OmniglotDataset; dataDir?: string; cacheDir?: string | false; onProgress?: (p: LoadProgress) => void } = {}): RotationData {
  const side = cfg.model.imageSize * cfg.supersample;
  if (opts.dataset && opts.dataset.imageSize !== side) throw new RangeError(`rotation sources: the dataset's images are ${opts.dataset.imageSize} px, the task needs ${side} (${cfg.model.imageSize} x supersample ${cfg.supersample})`);
  const dataset = opts.dataset ?? loadOmniglot({ imageSize: side, dataDir: opts.dataDir, cacheDir: opts.cacheDir, onProgress: opts.onProgress });
  return {
    dataset,
    sources: {
      train: uprightSampler(dataset, 'train', cfg.train, cfg.seed),
      hyperVal: new RotatedEpisodes(uprightSampler(dataset, 'val', cfg.val, hyperValSeed(cfg.seed)), cfg.valAngle, device, cfg.supersample),
      val: new RotatedEpisodes(uprightSampler(dataset, 'val', cfg.val, cfg.valSeed), cfg.valAngle, device, cfg.supersample),
    },
  };
}

/** The rotation task's test episodes: 5-way 5-shot 15-query (the CLI's --test-episodes and the benches). */
export const ROTATION_TEST_SHAPE: Readonly<RotationEpisodeShape> = { way: 5, shot: 5, query: 15 };

/** Test episodes of the upright test split rotated by `degrees` (0: upright); `supersample` as the task's (the dataset at supersample x the model's side). */
export function rotationTestEpisodes(dataset: OmniglotDataset, shape: RotationEpisodeShape, seed: number, degrees: number, device: Device, supersample = 1): EpisodeSource {
  return new RotatedEpisodes(uprightSampler(dataset, 'test', shape, seed), degrees, device, supersample);
}


/** A model to test: its layout, parameters and BN running statistics (a method's, or a loaded checkpoint's). */
export interface RotationTestModel { layout: ProtoNetLayout; params: Float32Array; bn: BnState }

export interface RotationTestOptions {
  /** Episodes per pass (the first n of the test seed's sequence). */
  episodes: number;
  /** The test episodes' sampler seed (the CLI uses 0, the benches 12345). */
  seed: number;
  /** The rotated pass's angle in degrees (the task's validation angle). */
  angle: number;
  supersample?: number;
  distance?: Distance;
}

export interface RotationTestResult { rotated: EpisodesEvalResult; upright: EpisodesEvalResult }

/**
 * The rotation task's test: the same ROTATION_TEST_SHAPE episodes of the upright test split, once rotated
 * by `angle` and once upright, eval mode (BN running statistics). `dataset` is loaded at the model's side
 * times `supersample`.
 */
export function rotationTest(device: Device, model: RotationTestModel, dataset: OmniglotDataset, o: RotationTestOptions): RotationTestResult {
  const pass = (degrees: number): EpisodesEvalResult => evaluateEpisodes(
    device, model.layout, model.params, model.bn,
    rotationTestEpisodes(dataset, ROTATION_TEST_SHAPE, o.seed, degrees, device, o.supersample ?? 1), o.episodes, o.distance ?? 'euclidean');
  return { rotated: pass(o.angle), upright: pass(0) };
}
