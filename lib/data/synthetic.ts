/**
 * Synthetic few-shot episodes (for tests, benchmarks and the memory study):
 * `classes` fixed random templates; an image is its class template plus
 * Gaussian pixel noise. Random access and seeded: episode(i) depends only on
 * (seed, i), like the Omniglot sampler.
 */
import { Rng, STREAM } from '../rng/philox.js';
import { Tensor, alloc, type DType } from '../tensor/tensor.js';
import type { Episode } from '../model/protonet.js';

/**
 * Random-access episodes: episode(i) is a pure function of i (and the source's seed), so a
 * resumed run sees the very episodes an uninterrupted one would. What every trainer reads.
 */
export interface EpisodeSource { episode(index: number): Episode }

export interface SyntheticOptions {
  way: number; shot: number; query: number; imageSize: number;
  /** Number of class templates (default 20). */
  classes?: number;
  /** Pixel noise standard deviation around each class template (default 0.3). */
  noise?: number;
  seed?: number;
  /** Element type of the images (default float32; float64 for gradient checks). */
  dtype?: DType;
}

/** Synthetic few-shot episodes (class templates plus pixel noise), seeded and random access: for tests, benchmarks and quick experiments without Omniglot. */
export class SyntheticEpisodes implements EpisodeSource {
  private readonly templates: Float32Array[] = [];
  readonly classes: number;
  constructor(readonly opts: SyntheticOptions) {
    this.classes = opts.classes ?? 20;
    const { way, shot, query, imageSize } = opts;
    for (const [k, v] of Object.entries({ classes: this.classes, way, shot, query, imageSize })) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`synthetic episodes: ${k} must be a positive integer, got ${v}`);
    }
    if (this.classes < way) throw new RangeError(`synthetic episodes: ${this.classes} classes cannot make ${way}-way episodes`);
    const rng = new Rng(opts.seed ?? 0, STREAM.split);
    const px = opts.imageSize * opts.imageSize;
    for (let c = 0; c < this.classes; c++) {
      const t = new Float32Array(px);
      for (let i = 0; i < px; i++) t[i] = rng.uniform() < 0.3 ? 1 : 0;
      this.templates.push(t);
    }
  }

  episode(index: number): Episode {
    if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) throw new RangeError(`episode index must be an integer in [0, 2^32), got ${index}`);
    const { way, shot, query, imageSize } = this.opts;
    const rng = new Rng(this.opts.seed ?? 0, STREAM.sampler, index);
    const cls = rng.choose(this.classes, way);
    const px = imageSize * imageSize, noise = this.opts.noise ?? 0.3, dtype = this.opts.dtype ?? 'float32';
    const make = (k: number): { t: Tensor; labels: Int32Array } => {
      const d = alloc(dtype, way * k * px), labels = new Int32Array(way * k);
      for (let c = 0; c < way; c++) {
        for (let s = 0; s < k; s++) {
          const row = c * k + s, tpl = this.templates[cls[c]!]!;
          labels[row] = c;
          for (let i = 0; i < px; i++) d[row * px + i] = tpl[i]! + noise * rng.normal();
        }
      }
      return { t: new Tensor(d, [way * k, 1, imageSize, imageSize]), labels };
    };
    const s = make(shot), q = make(query);
    return { way, support: s.t, supportLabels: s.labels, query: q.t, queryLabels: q.labels };
  }
}
