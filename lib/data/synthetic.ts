/**
 * Synthetic few-shot episodes (for tests, benchmarks and the memory study):
 * `classes` fixed random templates; an image is its class template plus
 * Gaussian pixel noise. Random access and seeded: episode(i) depends only on
 * (seed, i), like the Omniglot sampler.
 */
import { Rng, STREAM } from '../rng/philox.js';
import { Tensor } from '../tensor/tensor.js';
import type { Episode } from '../model/protonet.js';

/** Random-access episodes: episode(i) is a pure function of i (and the source's seed). */
export interface EpisodeSource { episode(index: number): Episode }

export interface SyntheticOptions { way: number; shot: number; query: number; imageSize: number; classes?: number; noise?: number; seed?: number }

export class SyntheticEpisodes implements EpisodeSource {
  private readonly templates: Float32Array[] = [];
  readonly classes: number;
  constructor(readonly opts: SyntheticOptions) {
    this.classes = opts.classes ?? 20;
    if (this.classes < opts.way) throw new RangeError(`synthetic episodes: ${this.classes} classes cannot make ${opts.way}-way episodes`);
    const rng = new Rng(opts.seed ?? 0, STREAM.general, 1);
    const px = opts.imageSize * opts.imageSize;
    for (let c = 0; c < this.classes; c++) {
      const t = new Float32Array(px);
      for (let i = 0; i < px; i++) t[i] = rng.uniform() < 0.3 ? 1 : 0;
      this.templates.push(t);
    }
  }

  episode(index: number): Episode {
    const { way, shot, query, imageSize } = this.opts;
    const rng = new Rng(this.opts.seed ?? 0, STREAM.sampler, index);
    const cls = rng.choose(this.classes, way);
    const px = imageSize * imageSize, noise = this.opts.noise ?? 0.3;
    const make = (k: number): { t: Tensor; labels: Int32Array } => {
      const d = new Float32Array(way * k * px), labels = new Int32Array(way * k);
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
