/**
 * Where the backprop trainer gets its episodes: anything with random access
 * episode(i), deterministic in (seed, i), so a resumed run sees the very
 * episodes an uninterrupted one would. TemplateEpisodes is a learnable toy
 * source (class templates plus noise) for tests that must not need the data.
 */
import type { Episode } from '../model/protonet.js';
import { Rng, STREAM } from '../rng/philox.js';
import { Tensor, alloc, type DType } from '../tensor/tensor.js';

export interface RandomAccessEpisodes {
  /** The i-th episode (i >= 0); the same i always gives the same episode. */
  episode(i: number): Episode;
}

export interface TemplateEpisodesOptions {
  classes: number;
  way: number;
  shot: number;
  query: number;
  imageSize: number;
  seed: number;
  /** Pixel noise standard deviation around each class template (default 0.3). */
  noise?: number;
  dtype?: DType;
}

/** Episodes over `classes` synthetic classes: each class a fixed random template, each example template + noise. */
export class TemplateEpisodes implements RandomAccessEpisodes {
  readonly way: number;
  readonly shot: number;
  readonly query: number;
  readonly imageSize: number;
  private readonly templates: Float64Array[] = [];

  constructor(readonly opts: TemplateEpisodesOptions) {
    const { classes, way, shot, query, imageSize } = opts;
    for (const [k, v] of Object.entries({ classes, way, shot, query, imageSize })) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`synthetic episodes: ${k} must be a positive integer, got ${v}`);
    }
    if (way > classes) throw new RangeError(`synthetic episodes: way ${way} exceeds the ${classes} classes`);
    this.way = way; this.shot = shot; this.query = query; this.imageSize = imageSize;
    const px = imageSize * imageSize;
    const rng = new Rng(opts.seed, STREAM.split);
    for (let c = 0; c < classes; c++) {
      const t = new Float64Array(px);
      for (let i = 0; i < px; i++) t[i] = rng.uniform() < 0.3 ? 1 : 0;
      this.templates.push(t);
    }
  }

  episode(i: number): Episode {
    if (!Number.isInteger(i) || i < 0 || i > 0xffffffff) throw new RangeError(`episode index must be an integer in [0, 2^32), got ${i}`);
    const { way, shot, query, imageSize } = this;
    const rng = new Rng(this.opts.seed, STREAM.sampler, i);
    const classes = rng.choose(this.templates.length, way);
    const px = imageSize * imageSize, noise = this.opts.noise ?? 0.3, dtype = this.opts.dtype ?? 'float32';
    const make = (per: number): { images: Tensor; labels: Int32Array } => {
      const data = alloc(dtype, way * per * px), labels = new Int32Array(way * per);
      for (let k = 0; k < way; k++) {
        const t = this.templates[classes[k]!]!;
        for (let j = 0; j < per; j++) {
          const row = k * per + j;
          labels[row] = k;
          for (let p = 0; p < px; p++) data[row * px + p] = t[p]! + noise * rng.normal();
        }
      }
      return { images: new Tensor(data, [way * per, 1, imageSize, imageSize]), labels };
    };
    const s = make(shot), q = make(query);
    return { way, support: s.images, supportLabels: s.labels, query: q.images, queryLabels: q.labels };
  }
}
