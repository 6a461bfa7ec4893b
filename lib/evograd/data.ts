/**
 * Omniglot sources of the rotation task: the Vinyals split's upright classes (rotation 0 only),
 * training episodes upright, validation and test episodes rotated by the task's angle.
 *  - train:    upright train split, EpisodeSampler(seed), episode t for step t;
 *  - hyperVal: upright val split rotated by valAngle, EpisodeSampler(hyperValSeed(seed)), episode t for step t;
 *  - val:      the same classes and angle, EpisodeSampler(valSeed), the fixed episodes 0..valEpisodes-1;
 *  - test:     upright test split, rotated by any angle (the task's, or 0 for upright test episodes).
 */
import type { Device } from '../device/registry.js';
import { loadOmniglot, type LoadProgress, type OmniglotDataset } from '../data/omniglot.js';
import { getSplit, type SplitPart } from '../data/splits.js';
import { EpisodeSampler } from '../data/sampler.js';
import type { RandomAccessEpisodes } from '../train/backprop-source.js';
import type { EvoGradConfig, RotationEpisodeShape } from './config.js';
import type { EvoGradSources } from './method.js';
import { RotatedEpisodes, rotateEpisode, uprightSplit } from './rotation.js';
import type { OmniglotSplit } from '../data/splits.js';
import type { Episode } from '../model/protonet.js';
import { OmniglotDataError } from '../data/errors.js';
import { DRAWINGS } from '../data/raw.js';
import { Rng, STREAM } from '../rng/philox.js';
import { Tensor } from '../tensor/tensor.js';

/** The hypergradient's validation episodes use a seed of their own, so they differ from the fixed validation episodes. */
export function hyperValSeed(seed: number): number {
  return (seed + 0x9e3779b9) >>> 0;
}

export interface RotationData { dataset: OmniglotDataset; sources: EvoGradSources }

export function uprightSampler(dataset: OmniglotDataset, part: SplitPart, shape: RotationEpisodeShape, seed: number): EpisodeSampler {
  return new EpisodeSampler(uprightSplit(getSplit(dataset, 'vinyals', part)), { ...shape, seed });
}

export function rotationSources(cfg: EvoGradConfig, device: Device, opts: { dataset?: OmniglotDataset; dataDir?: string; cacheDir?: string | false; onProgress?: (p: LoadProgress) => void } = {}): RotationData {
  const dataset = opts.dataset ?? loadOmniglot({ imageSize: cfg.model.imageSize, dataDir: opts.dataDir, cacheDir: opts.cacheDir, onProgress: opts.onProgress });
  return {
    dataset,
    sources: {
      train: uprightSampler(dataset, 'train', cfg.train, cfg.seed),
      hyperVal: new RotatedEpisodes(uprightSampler(dataset, 'val', cfg.val, hyperValSeed(cfg.seed)), cfg.valAngle, device),
      val: new RotatedEpisodes(uprightSampler(dataset, 'val', cfg.val, cfg.valSeed), cfg.valAngle, device),
    },
  };
}

/** Test episodes of the upright test split rotated by `degrees` (0: upright). */
export function rotationTestEpisodes(dataset: OmniglotDataset, shape: RotationEpisodeShape, seed: number, degrees: number, device: Device): RandomAccessEpisodes {
  return new RotatedEpisodes(uprightSampler(dataset, 'test', shape, seed), degrees, device);
}

/**
 * Episode pairs over the same classes: for step t, `way` classes of the split and, per class, 2 x
 * (shot + query) distinct drawings (Rng(seed, STREAM.sampler, lane = t)); the first shot + query
 * drawings form the training episode (upright), the rest the validation episode, rotated by
 * `degrees`. The analogue of a validation set of held-out images of the training classes (the
 * authors' rotated MNIST validation set shares its ten digit classes with the training set).
 */
export class PairedEpisodes {
  readonly train: RandomAccessEpisodes;
  readonly val: RandomAccessEpisodes;

  constructor(readonly split: OmniglotSplit, readonly shape: RotationEpisodeShape, readonly seed: number, readonly degrees: number, readonly device: Device) {
    if (2 * (shape.shot + shape.query) > DRAWINGS) {
      throw new OmniglotDataError(`paired episodes need 2 x (shot + query) <= ${DRAWINGS} drawings per character, got 2 x (${shape.shot} + ${shape.query})`);
    }
    if (shape.way > split.classes.length) throw new OmniglotDataError(`way ${shape.way} exceeds the ${split.classes.length} classes of split ${split.name}`);
    this.train = { episode: (i) => this.make(i, 0) };
    this.val = { episode: (i) => rotateEpisode(this.device, this.make(i, 1), this.degrees) };
  }

  private make(index: number, half: 0 | 1): Episode {
    if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) throw new RangeError(`episode index must be an integer in [0, 2^32), got ${index}`);
    const { way, shot, query } = this.shape, per = shot + query;
    const rng = new Rng(this.seed, STREAM.sampler, index);
    const picked = rng.choose(this.split.classes.length, way);
    const ds = this.split.dataset, s = ds.imageSize, plane = s * s;
    const sup = new Float32Array(way * shot * plane), qry = new Float32Array(way * query * plane);
    const supportLabels = new Int32Array(way * shot), queryLabels = new Int32Array(way * query);
    for (let c = 0; c < way; c++) {
      const cls = this.split.classes[picked[c]!]!;
      const d = rng.choose(DRAWINGS, 2 * per).subarray(half * per, (half + 1) * per);
      for (let k = 0; k < shot; k++) { ds.imageInto(cls.character, d[k]!, cls.rotation, sup, (c * shot + k) * plane); supportLabels[c * shot + k] = c; }
      for (let k = 0; k < query; k++) { ds.imageInto(cls.character, d[shot + k]!, cls.rotation, qry, (c * query + k) * plane); queryLabels[c * query + k] = c; }
    }
    return { way, support: new Tensor(sup, [way * shot, 1, s, s]), supportLabels, query: new Tensor(qry, [way * query, 1, s, s]), queryLabels };
  }
}
