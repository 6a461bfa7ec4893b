/**
 * Seeded synthetic episodes with class structure (a random template per class
 * plus per-image noise), so a meta-learner can learn on them. Memory does not
 * depend on pixel values, so the accounting tests and the memory sweeps can
 * use these; training checks use real Omniglot when lib/data provides it.
 */
import { Rng, STREAM } from '../rng/philox.js';
import { Tensor, type DType } from '../tensor/tensor.js';
import type { Episode } from '../model/protonet.js';

export interface SyntheticEpisodeOptions {
  way: number;
  shot: number;
  query: number;
  imageSize: number;
  seed: number;
  /** Episode index (different episodes from the same seed). */
  index?: number;
  dtype?: DType;
  /** Per-image noise level relative to the template (default 0.5). */
  noise?: number;
}

export function syntheticEpisode(o: SyntheticEpisodeOptions): Episode {
  for (const k of ['way', 'shot', 'query', 'imageSize'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new RangeError(`syntheticEpisode: ${k} must be a positive integer, got ${o[k]}`);
  }
  const rng = new Rng((o.seed ^ Math.imul(o.index ?? 0, 0x9e3779b1)) >>> 0, STREAM.general);
  const px = o.imageSize * o.imageSize, noise = o.noise ?? 0.5, dtype = o.dtype ?? 'float32';
  // Templates from a fixed pool keyed by the seed alone, so classes recur across episodes.
  const pool = new Rng(o.seed >>> 0, STREAM.general);
  const templates = Array.from({ length: o.way * 4 }, () => Float64Array.from({ length: px }, () => (pool.uniform() < 0.3 ? 1 : 0)));
  const classes = Array.from({ length: templates.length }, (_, i) => i);
  rng.shuffle(classes);
  const make = (per: number): { x: Tensor; y: Int32Array } => {
    const x = Tensor.zeros([o.way * per, 1, o.imageSize, o.imageSize], dtype), y = new Int32Array(o.way * per);
    for (let c = 0; c < o.way; c++) {
      const tpl = templates[classes[c]!]!;
      for (let s = 0; s < per; s++) {
        const r = c * per + s;
        y[r] = c;
        for (let i = 0; i < px; i++) x.data[r * px + i] = tpl[i]! + noise * (rng.uniform() - 0.5);
      }
    }
    return { x, y };
  };
  const s = make(o.shot), q = make(o.query);
  return { way: o.way, support: s.x, supportLabels: s.y, query: q.x, queryLabels: q.y };
}
