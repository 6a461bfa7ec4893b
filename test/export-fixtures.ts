/** Shared by the export tests: a model state with non-trivial BN, random images, and our eval-mode embeddings. */
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { DirectOps } from '../lib/ops/api.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { embed } from '../lib/model/protonet.js';
import type { ProtoNetState } from '../lib/model/checkpoint.js';
import { Rng } from '../lib/rng/philox.js';
import type { Tensor } from '../lib/tensor/tensor.js';
import { randTensor } from './helpers/random.js';

/** PyTorch-initialized convs; BN affine parameters in [0.5, 1.5), running means in [-0.5, 0.5), variances in [0.5, 1.5): every tensor matters. */
export function exportState(channels: number, imageSize: number, seed = 42): ProtoNetState {
  const layout = new ProtoNetLayout({ channels, imageSize });
  const params = initParams(layout, seed);
  const rng = new Rng(seed + 1000);
  for (const e of layout.params) if (e.name.includes('.1.')) for (let i = 0; i < e.size; i++) params[e.offset + i] = 0.5 + rng.uniform();
  const bn = initialBnState(layout);
  for (const e of layout.buffers) for (let i = 0; i < e.size; i++) bn.buffers[e.offset + i] = e.name.endsWith('var') ? 0.5 + rng.uniform() : rng.uniform() - 0.5;
  bn.numBatchesTracked = 7;
  return { layout, params, bn };
}

/** Images in [0, 1), float32 [n, 1, size, size], seeded. */
export function randomImages(n: number, size: number, seed = 99): Tensor {
  return randTensor(new Rng(seed), [n, 1, size, size], 'float32', 0, 1);
}

/** Our embeddings in eval mode (BN running statistics) on the reference device. */
export function ourEmbeddings(state: ProtoNetState, images: Tensor): Float32Array {
  const ops = new DirectOps(getDevice('cpu-ts'));
  const z = embed(ops, state.layout, state.params, state.bn, images, { bn: 'running' });
  return z.data as Float32Array;
}
