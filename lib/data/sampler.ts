/**
 * N-way K-shot Q-query episodes from a split. Random access: episode i depends
 * only on (seed, i) -- drawn from Rng(seed, STREAM.sampler, lane = i) -- so a
 * trainer resumes by storing the next episode index (sampler.position).
 *
 * Episode i: `way` distinct classes of the split (Rng.choose), then for each
 * class, in that order, shot + query distinct drawings of its 20 (Rng.choose);
 * the first `shot` are support, the rest query. Support and query are
 * class-major ([c * shot + s], [c * query + q]) with labels 0..way-1 in the
 * order the classes were drawn. Images are float32 [N, 1, S, S], ink = 1.
 */
import type { Episode } from '../model/protonet.js';
import { Rng, STREAM } from '../rng/philox.js';
import { Tensor } from '../tensor/tensor.js';
import { OmniglotDataError } from './errors.js';
import { DRAWINGS } from './raw.js';
import type { OmniglotClass, OmniglotSplit } from './splits.js';

export interface EpisodeSpec {
  way: number;
  shot: number;
  query: number;
  seed: number;
}

/** Which images an episode uses (for inspection and tests). */
export interface EpisodeDraw {
  classes: OmniglotClass[];
  /** [way][shot] and [way][query] drawing indices (0..19). */
  support: number[][];
  query: number[][];
}

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new OmniglotDataError(`${name} must be an integer >= ${min}, got ${v}`);
}

/**
 * Most bytes of pixels one episode may hold, way x (shot + query) x S^2 x 4: 1 GiB. Every class of
 * a split fits at 28x28 and 32x32 (6492 x 20 images at 32x32: 532 MB); it bites only for huge sizes.
 */
export const MAX_EPISODE_BYTES = 2 ** 30;

/** Check episode sizes that need no split: shot and query positive integers, shot + query <= 20 drawings. */
export function checkEpisodeSize(spec: { shot: number; query: number }): void {
  checkInt('shot', spec.shot, 1);
  checkInt('query', spec.query, 1);
  if (spec.shot + spec.query > DRAWINGS) {
    throw new OmniglotDataError(`shot ${spec.shot} + query ${spec.query} = ${spec.shot + spec.query} exceeds the ${DRAWINGS} drawings of each Omniglot character`);
  }
}

export class EpisodeSampler {
  readonly way: number;
  readonly shot: number;
  readonly query: number;
  readonly seed: number;
  /** Index of the episode next() returns; save it to resume. */
  position = 0;

  constructor(readonly split: OmniglotSplit, spec: EpisodeSpec) {
    checkInt('way', spec.way, 1);
    const n = split.classes.length;
    if (spec.way > n) throw new OmniglotDataError(`way ${spec.way} exceeds the ${n} classes of split ${split.name}`);
    checkEpisodeSize(spec);
    const s = split.dataset.imageSize, bytes = spec.way * (spec.shot + spec.query) * s * s * 4;
    if (bytes > MAX_EPISODE_BYTES) {
      throw new OmniglotDataError(`way ${spec.way} x (shot ${spec.shot} + query ${spec.query}) images of ${s}x${s} are ${bytes} bytes per episode, more than the ${MAX_EPISODE_BYTES} allowed`);
    }
    if (!Number.isInteger(spec.seed) || spec.seed < 0 || spec.seed > 0xffffffff) throw new OmniglotDataError(`seed must be an integer in [0, 2^32), got ${spec.seed}`);
    this.way = spec.way;
    this.shot = spec.shot;
    this.query = spec.query;
    this.seed = spec.seed;
  }

  /** The classes and drawings of episode `index` (no pixels). */
  draw(index: number): EpisodeDraw {
    if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) throw new RangeError(`episode index must be an integer in [0, 2^32), got ${index}`);
    const rng = new Rng(this.seed, STREAM.sampler, index);
    const picked = rng.choose(this.split.classes.length, this.way);
    const classes: OmniglotClass[] = [], support: number[][] = [], query: number[][] = [];
    for (let c = 0; c < this.way; c++) {
      classes.push(this.split.classes[picked[c]!]!);
      const d = rng.choose(DRAWINGS, this.shot + this.query);
      support.push(Array.from(d.subarray(0, this.shot)));
      query.push(Array.from(d.subarray(this.shot)));
    }
    return { classes, support, query };
  }

  /** Episode `index` (random access; the same for the same seed and index). */
  episode(index: number): Episode {
    const { classes, support, query } = this.draw(index);
    const ds = this.split.dataset, s = ds.imageSize, plane = s * s;
    const sup = new Float32Array(this.way * this.shot * plane), qry = new Float32Array(this.way * this.query * plane);
    const supportLabels = new Int32Array(this.way * this.shot), queryLabels = new Int32Array(this.way * this.query);
    for (let c = 0; c < this.way; c++) {
      const cls = classes[c]!;
      for (let k = 0; k < this.shot; k++) {
        const i = c * this.shot + k;
        ds.imageInto(cls.character, support[c]![k]!, cls.rotation, sup, i * plane);
        supportLabels[i] = c;
      }
      for (let k = 0; k < this.query; k++) {
        const i = c * this.query + k;
        ds.imageInto(cls.character, query[c]![k]!, cls.rotation, qry, i * plane);
        queryLabels[i] = c;
      }
    }
    return {
      way: this.way,
      support: new Tensor(sup, [this.way * this.shot, 1, s, s]),
      supportLabels,
      query: new Tensor(qry, [this.way * this.query, 1, s, s]),
      queryLabels,
    };
  }

  /** Episode `position`, then advance position. */
  next(): Episode {
    return this.episode(this.position++);
  }
}
