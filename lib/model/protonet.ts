/** ProtoNet ConvNet-4 forward and the episode loss, written once against TensorOps. */
import type { BnTrainResult, TensorOps } from '../ops/api.js';
import { Tensor, type FloatArray } from '../tensor/tensor.js';
import type { BnState, ProtoNetLayout } from './layout.js';

export type BnMode = 'batch' | 'running';
export type Distance = 'euclidean' | 'cosine';

export interface Episode {
  way: number;
  /** [way*shot, 1, H, W], labels in [0, way). */
  support: Tensor;
  supportLabels: Int32Array;
  /** [way*query, 1, H, W]. */
  query: Tensor;
  queryLabels: Int32Array;
}

export interface ForwardOptions {
  /** 'batch': BN uses the batch's statistics (training mode); 'running': the running statistics (eval mode). */
  bn: BnMode;
  /** In 'batch' mode, update running statistics as PyTorch's train() forward does. */
  trackStats?: BnState;
  /** In 'batch' mode, called with each block's batch mean and biased variance (per channel) and the count they are over. */
  onBatchStats?: (block: number, mean: Tensor, variance: Tensor, count: number) => void;
  /**
   * In 'batch' mode, run each block's BN, ReLU and max-pool as the one op bnReluPool where the ops
   * object has it (the tape does: it then keeps neither the BN nor the ReLU output). Default true;
   * false records the three ops separately (the same values; for comparisons).
   */
  fuse?: boolean;
}

/**
 * Embeddings [N, E] for images [N, cin, S, S]. `params` is the flat vector;
 * `leaf` turns each parameter view into an op value (a constant, or a tape leaf);
 * `transform`, if given, is applied to the image batch first (e.g. a differentiable rotation).
 */
export function embed<V>(
  ops: TensorOps<V>, layout: ProtoNetLayout, params: FloatArray, bn: BnState, images: Tensor,
  opts: ForwardOptions, leaf: (name: string, t: Tensor) => V = (_n, t) => ops.constant(t), transform?: (images: V) => V,
): V {
  const cfg = layout.config;
  const check = (shape: readonly number[], what: string): void => {
    if (shape.length !== 4 || shape[1] !== cfg.inChannels || shape[2] !== cfg.imageSize || shape[3] !== cfg.imageSize) {
      throw new RangeError(`${what} must be [N, ${cfg.inChannels}, ${cfg.imageSize}, ${cfg.imageSize}] for this model, got [${shape.join(', ')}]`);
    }
  };
  // a transform may change the image size (e.g. rotate at a higher resolution, then pool): its output is checked
  if (!transform) check(images.shape, 'images');
  let h = ops.constant(images.data instanceof Float64Array || params instanceof Float32Array ? images : images.cast('float64'));
  if (transform) {
    h = transform(h);
    check(ops.value(h).shape, 'transformed images');
  }
  for (let i = 0; i < cfg.blocks; i++) {
    const p = (s: string): V => leaf(`encoder.${i}.${s}`, layout.view(params, `encoder.${i}.${s}`));
    h = ops.conv2d(h, p('0.weight'), p('0.bias'), { stride: 1, padding: 1 });
    if (opts.bn === 'batch') {
      // BN statistics are over N * H * W of the conv output
      const count = ops.value(h).size / cfg.channels;
      const gamma = p('1.weight'), beta = p('1.bias');
      let r: BnTrainResult<V>;
      if (ops.bnReluPool && opts.fuse !== false) {
        r = ops.bnReluPool(h, gamma, beta, cfg.bnEps);
        h = r.y;
      } else {
        r = ops.batchnorm2dTrain(h, gamma, beta, cfg.bnEps);
        h = ops.maxpool2d(ops.relu(r.y), { kernel: 2, stride: 2 });
      }
      if (opts.trackStats) updateRunningStats(layout, opts.trackStats, i, r.mean.data, r.variance.data, count);
      opts.onBatchStats?.(i, r.mean, r.variance, count);
    } else {
      const rm = layout.bufferView(bn.buffers, `encoder.${i}.1.running_mean`);
      const rv = layout.bufferView(bn.buffers, `encoder.${i}.1.running_var`);
      h = ops.batchnorm2dEval(h, p('1.weight'), p('1.bias'), castLike(rm, params), castLike(rv, params), cfg.bnEps);
      h = ops.maxpool2d(ops.relu(h), { kernel: 2, stride: 2 });
    }
  }
  const n = images.shape[0]!;
  if (opts.trackStats) opts.trackStats.numBatchesTracked++;
  return ops.reshape(h, [n, layout.embeddingSize]);
}

function castLike(t: Tensor, like: FloatArray): Tensor {
  return like instanceof Float64Array ? t.cast('float64') : t;
}

/** PyTorch's update: running = (1 - m) running + m batch, with the unbiased batch variance. */
function updateRunningStats(layout: ProtoNetLayout, st: BnState, block: number, mean: ArrayLike<number>, variance: ArrayLike<number>, count: number): void {
  const m = layout.config.bnMomentum;
  const rm = layout.bufferView(st.buffers, `encoder.${block}.1.running_mean`).data;
  const rv = layout.bufferView(st.buffers, `encoder.${block}.1.running_var`).data;
  const unbias = count > 1 ? count / (count - 1) : 1;
  for (let c = 0; c < rm.length; c++) {
    rm[c] = (1 - m) * rm[c]! + m * mean[c]!;
    rv[c] = (1 - m) * rv[c]! + m * variance[c]! * unbias;
  }
}

/**
 * The running-statistics update of one train() forward over `images` images, from batch
 * statistics laid out as PopulationEvaluator.batchStats returns them ([block * channels + c]):
 * the same update as trackStats.
 */
export function applyBatchStats(layout: ProtoNetLayout, st: BnState, stats: { mean: ArrayLike<number>; variance: ArrayLike<number> }, images: number): void {
  const { channels: c, blocks, imageSize } = layout.config;
  if (stats.mean.length !== blocks * c || stats.variance.length !== blocks * c) {
    throw new RangeError(`batch statistics must have blocks * channels = ${blocks * c} means and variances, got ${stats.mean.length} and ${stats.variance.length}`);
  }
  for (let l = 0; l < blocks; l++) {
    const side = l === 0 ? imageSize : layout.featureSides[l - 1]!;
    const at = (a: ArrayLike<number>): number[] => Array.from({ length: c }, (_, k) => a[l * c + k]!);
    updateRunningStats(layout, st, l, at(stats.mean), at(stats.variance), images * side * side);
  }
  st.numBatchesTracked++;
}

export function concatImages(a: Tensor, b: Tensor): Tensor {
  if (a.shape.slice(1).join() !== b.shape.slice(1).join()) throw new RangeError(`cannot concatenate images [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  const d = a.data instanceof Float64Array ? new Float64Array(a.size + b.size) : new Float32Array(a.size + b.size);
  d.set(a.data, 0);
  d.set(b.data, a.size);
  return new Tensor(d, [a.shape[0]! + b.shape[0]!, ...a.shape.slice(1)]);
}

export interface LossOptions extends ForwardOptions {
  distance?: Distance;
  /** Logit scale for cosine similarity (default 1). */
  cosineScale?: number;
}

export interface EpisodeOutput<V> {
  loss: V;
  /** Query logits [way*query, way] (minus squared distance, or scaled cosine). */
  logits: V;
}

/**
 * The ProtoNet episode loss (Snell et al.): support and query are embedded in
 * one batch (so batch-mode BN sees both, as in the reference implementation),
 * prototypes are class means of the support embeddings, logits are minus the
 * squared Euclidean distance (or cosine similarity), and the loss is the mean
 * query cross-entropy.
 */
export function episodeLoss<V>(
  ops: TensorOps<V>, layout: ProtoNetLayout, params: FloatArray, bn: BnState, ep: Episode, opts: LossOptions,
  leaf?: (name: string, t: Tensor) => V, transform?: (images: V) => V,
): EpisodeOutput<V> {
  const ns = ep.support.shape[0]!, nq = ep.query.shape[0]!;
  if (ep.supportLabels.length !== ns) throw new RangeError(`episode: ${ep.supportLabels.length} support labels for ${ns} support images`);
  if (ep.queryLabels.length !== nq) throw new RangeError(`episode: ${ep.queryLabels.length} query labels for ${nq} query images`);
  const z = embed(ops, layout, params, bn, concatImages(ep.support, ep.query), opts, leaf, transform);
  const zs = ops.sliceRows(z, 0, ns), zq = ops.sliceRows(z, ns, ns + nq);
  const protos = ops.prototypes(zs, ep.supportLabels, ep.way);
  const logits = (opts.distance ?? 'euclidean') === 'euclidean'
    ? ops.scale(ops.sqEuclidean(zq, protos), -1)
    : ops.scale(ops.cosine(zq, protos, 1e-8), opts.cosineScale ?? 1);
  const loss = ops.crossEntropy(ops.logSoftmax(logits), ep.queryLabels);
  return { loss, logits };
}
