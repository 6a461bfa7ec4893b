/** PyTorch's default initialization for Conv2d and BatchNorm2d, seeded. */
import { Rng, STREAM } from '../rng/philox.js';
import type { ProtoNetLayout } from './layout.js';

/**
 * Conv2d: kaiming_uniform_(a=sqrt(5)) for weights, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
 * and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for biases; BatchNorm2d: weight 1, bias 0.
 */
export function initParams(layout: ProtoNetLayout, seed: number): Float32Array {
  const rng = new Rng(seed, STREAM.init);
  const flat = new Float32Array(layout.numParams);
  for (const e of layout.params) {
    const isConv = /\.0\.(weight|bias)$/.test(e.name);
    if (isConv) {
      const w = layout.param(e.name.replace(/bias$/, 'weight'));
      const fanIn = w.shape[1]! * w.shape[2]! * w.shape[3]!;
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < e.size; i++) flat[e.offset + i] = (2 * rng.uniform() - 1) * bound;
    } else if (e.name.endsWith('.1.weight')) {
      flat.fill(1, e.offset, e.offset + e.size);
    }
  }
  return flat;
}
