/**
 * The episode loss as numbers: what a user evaluating a model wants, where
 * episodeLoss (model/protonet.ts) returns op values (Tensors, tape Vars, duals)
 * for model code that differentiates through them.
 */
import { getDevice, type Device } from '../device/registry.js';
import { DirectOps } from '../ops/api.js';
import type { FloatArray } from '../tensor/tensor.js';
import type { BnState, ProtoNetLayout } from './layout.js';
import { episodeLoss, type BnMode, type Distance, type Episode } from './protonet.js';

export interface EpisodeResult {
  /** Mean query cross-entropy. */
  loss: number;
  /** Fraction of query images classified correctly, in [0, 1]. */
  accuracy: number;
}

export interface EvaluateEpisodeOptions {
  /** 'running' (default): BN running statistics, eval mode, as `evometa eval`; 'batch': the episode's statistics (running statistics untouched). */
  bn?: BnMode;
  /** Default 'euclidean' (squared Euclidean distance to the prototypes). */
  distance?: Distance;
  /** Logit scale for cosine similarity (default 1). */
  cosineScale?: number;
  /** A device or its name (default: the best available, getDevice()). */
  device?: Device | string;
}

/**
 * Loss and query accuracy of one episode under the given parameters, as plain numbers.
 *
 *   const { loss, accuracy } = evaluateEpisode(layout, params, bn, sampler.episode(0));
 */
export function evaluateEpisode(layout: ProtoNetLayout, params: FloatArray, bn: BnState, episode: Episode, opts: EvaluateEpisodeOptions = {}): EpisodeResult {
  const device = typeof opts.device === 'object' ? opts.device : getDevice(opts.device);
  const ops = new DirectOps(device);
  const { loss, logits } = episodeLoss(ops, layout, params, bn, episode, {
    bn: opts.bn ?? 'running', distance: opts.distance ?? 'euclidean', ...(opts.cosineScale !== undefined ? { cosineScale: opts.cosineScale } : {}),
  });
  const accuracy = device.run('accuracy', { scores: logits, labels: episode.queryLabels }, {});
  return { loss: loss.data[0]!, accuracy };
}
