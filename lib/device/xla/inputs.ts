/** Host inputs shared by the whole-program lowerings: the episode and the contraction-barrier zero. */
import type { Episode } from '../../model/protonet.js';
import { hostArray, type HostArray } from './executor.js';

export { hostArray, scalarU32 } from './executor.js';

/** The barrier input of the noise programs: always 0 (see noise.ts). */
export const ZERO_I64: HostArray = hostArray(BigInt64Array.of(0n), [], 'i64');

/** [images f32 [NS+NQ, cin, S, S] (support then query, one batch as episodeLoss embeds them), supportLabels i32, queryLabels i32]. */
export function episodeInputs(ep: Episode): HostArray[] {
  const s = ep.support, q = ep.query;
  if (s.rank !== 4 || q.rank !== 4 || s.shape.slice(1).join() !== q.shape.slice(1).join()) {
    throw new RangeError(`episode: support [${s.shape.join(', ')}] and query [${q.shape.join(', ')}] must be [N, cin, S, S] with equal image shapes`);
  }
  const images = new Float32Array(s.size + q.size);
  images.set(s.data, 0);
  images.set(q.data, s.size);
  return [
    hostArray(images, [s.shape[0]! + q.shape[0]!, ...s.shape.slice(1)], 'f32'),
    hostArray(Int32Array.from(ep.supportLabels), [ep.supportLabels.length], 'i32'),
    hostArray(Int32Array.from(ep.queryLabels), [ep.queryLabels.length], 'i32'),
  ];
}
