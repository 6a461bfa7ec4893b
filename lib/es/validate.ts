/** Few-shot evaluation of the mean model in eval mode (BN running statistics): loss and accuracy per episode. */
import type { DirectOps } from '../ops/api.js';
import { episodeLoss, type BnMode, type Distance, type Episode } from '../model/protonet.js';
import type { BnState, ProtoNetLayout } from '../model/layout.js';
import { Tensor } from '../tensor/tensor.js';
import { summarize } from '../eval/stats.js';

export interface EpisodeScore { loss: number; acc: number }

/** Loss and query accuracy of one episode; BN running statistics (eval mode) unless mode is 'batch' (running statistics untouched). */
export function scoreEpisode(ops: DirectOps, layout: ProtoNetLayout, params: Float32Array, bn: BnState, ep: Episode, distance: Distance, mode: BnMode = 'running'): EpisodeScore {
  const { loss, logits } = episodeLoss(ops, layout, params, bn, ep, { bn: mode, distance });
  const acc = ops.device.run('accuracy', { scores: logits, labels: ep.queryLabels }, {});
  return { loss: loss.data[0]!, acc };
}

/** Mean and 95% confidence half-width (1.96 standard errors) of per-episode values, summed in episode order. */
export function meanCi(xs: ArrayLike<number>): { mean: number; ci95: number } {
  const { mean, ci95 } = summarize(xs);
  return { mean, ci95 };
}

/** An Episode as plain data for postMessage (Tensor instances do not survive structured cloning). */
export interface WireEpisode {
  way: number;
  support: { data: Float32Array | Float64Array; shape: number[] };
  supportLabels: Int32Array;
  query: { data: Float32Array | Float64Array; shape: number[] };
  queryLabels: Int32Array;
}

export function episodeToWire(ep: Episode): WireEpisode {
  return {
    way: ep.way,
    support: { data: ep.support.data, shape: [...ep.support.shape] },
    supportLabels: ep.supportLabels,
    query: { data: ep.query.data, shape: [...ep.query.shape] },
    queryLabels: ep.queryLabels,
  };
}

export function episodeFromWire(w: WireEpisode): Episode {
  return {
    way: w.way,
    support: new Tensor(w.support.data, w.support.shape),
    supportLabels: w.supportLabels,
    query: new Tensor(w.query.data, w.query.shape),
    queryLabels: w.queryLabels,
  };
}
