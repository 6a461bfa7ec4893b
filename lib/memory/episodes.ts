/** Episodes for the memory study: the synthetic source of lib/es (memory does not depend on pixel values), cast to a dtype. */
import type { Episode } from '../model/protonet.js';
import type { DType } from '../tensor/tensor.js';
import { SyntheticEpisodes } from '../data/synthetic.js';

export interface EpisodeShape { way: number; shot: number; query: number; imageSize: number }

/** Episode `index` of a seeded synthetic source with this shape, in `dtype` (float64 for gradient checks). */
export function syntheticEpisode(shape: EpisodeShape, seed: number, index = 0, dtype: DType = 'float32'): Episode {
  const src = new SyntheticEpisodes({ ...shape, classes: Math.max(20, shape.way), seed });
  return castEpisode(src.episode(index), dtype);
}

export function castEpisode(ep: Episode, dtype: DType): Episode {
  if (ep.support.dtype === dtype) return ep;
  return { ...ep, support: ep.support.cast(dtype), query: ep.query.cast(dtype) };
}
