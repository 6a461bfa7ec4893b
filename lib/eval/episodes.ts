/**
 * Mean loss and accuracy of a ProtoNet on episodes 0..n-1 of a random-access source, eval mode
 * (BN running statistics): what the backprop and EvoGrad methods validate and test with.
 */
import type { Device } from '../device/registry.js';
import { DirectOps } from '../ops/api.js';
import { episodeLoss, type Distance, type Episode } from '../model/protonet.js';
import type { BnState, ProtoNetLayout } from '../model/layout.js';
import { summarize } from './stats.js';

export interface EpisodesEvalResult { acc: number; ci95: number; loss: number; episodes: number }

/** Mean loss and accuracy (with its ci95) over episodes 0..n-1 of `source`, eval mode (BN running statistics). */
export function evaluateEpisodes(
  device: Device, layout: ProtoNetLayout, params: Float32Array, bn: BnState, source: { episode(i: number): Episode }, n: number, distance: Distance,
): EpisodesEvalResult {
  const ops = new DirectOps(device);
  const accs: number[] = [], losses: number[] = [];
  for (let i = 0; i < n; i++) {
    const ep = source.episode(i);
    const { loss, logits } = episodeLoss(ops, layout, params, bn, ep, { bn: 'running', distance });
    losses.push(loss.data[0]!);
    accs.push(device.run('accuracy', { scores: logits, labels: ep.queryLabels }, {}));
  }
  const a = summarize(accs);
  return { acc: a.mean, ci95: a.ci95, loss: summarize(losses).mean, episodes: n };
}
