/**
 * MAML-style meta-training with meta-batches of episodes (additive beside
 * train.ts): each meta-step averages the meta-gradients of `metaBatch`
 * episodes, drawn either with random classes or all from ONE class cluster
 * (lib/data/clustered-sampler.ts: by alphabet or by embedding) -- the seed's
 * clustered tasks against random ones, same batch size, same everything else.
 */
import type { Device } from '../device/registry.js';
import { initialBnState } from '../model/layout.js';
import type { Episode } from '../model/protonet.js';
import { createOptimizer, type OptimizerConfig } from '../optim/optimizers.js';
import type { ClusteredEpisodeSampler } from '../data/clustered-sampler.js';
import { initMaml, MamlLayout, type MamlConfig } from './layout.js';
import { mamlBackprop, type MetaContext } from './metagrad.js';
import { evaluateMaml } from './train.js';

export type EpisodeBatchMode = 'random' | 'cluster';

export interface MamlBatchOptions {
  device: Device;
  cfg: MamlConfig;
  order: 'second-order' | 'first-order';
  metaBatch: number;
  mode: EpisodeBatchMode;
  /** Random-class episodes by index (mode 'random'). */
  random?: { episode(index: number): Episode };
  /** Clustered episodes (mode 'cluster'): meta-step s uses cluster clusterOf(s), episodes s * metaBatch + j. */
  clustered?: ClusteredEpisodeSampler;
  seed: number;
  optimizer?: OptimizerConfig;
  /** Stop after this many meta-steps or this much training wall-clock (validation excluded), whichever first. */
  steps: number;
  maxSeconds?: number;
  val?: Episode[];
  /** Validate every this many training seconds (and at the end). */
  valEverySeconds?: number;
  onVal?: (r: MamlBatchVal) => void;
}

export interface MamlBatchVal { step: number; trainSeconds: number; loss: number; accuracy: number }

export interface MamlBatchResult { phi: Float32Array; steps: number; trainSeconds: number; vals: MamlBatchVal[] }

export function trainMamlBatched(o: MamlBatchOptions): MamlBatchResult {
  if (!Number.isInteger(o.metaBatch) || o.metaBatch < 1) throw new RangeError(`maml batched: metaBatch must be a positive integer, got ${o.metaBatch}`);
  if (o.mode === 'cluster' && !o.clustered) throw new RangeError('maml batched: mode cluster needs a ClusteredEpisodeSampler');
  if (o.mode === 'random' && !o.random) throw new RangeError('maml batched: mode random needs an episode source');
  const layout = new MamlLayout(o.cfg.model, o.cfg.way);
  const phi = initMaml(layout, o.seed);
  const ctx: MetaContext = { device: o.device, layout, cfg: o.cfg, bn: initialBnState(layout.encoder) };
  const opt = createOptimizer(o.optimizer ?? { name: 'adam', lr: 1e-3 });
  const grad = new Float32Array(phi.length), sum = new Float64Array(phi.length);
  const vals: MamlBatchVal[] = [];
  let train = 0, lastVal = -Infinity, step = 0;
  const validate = (): void => {
    if (!o.val?.length) return;
    const v = evaluateMaml(ctx, phi, o.val);
    const r = { step, trainSeconds: train, loss: v.loss, accuracy: v.accuracy };
    vals.push(r);
    o.onVal?.(r);
    lastVal = train;
  };
  validate();
  for (; step < o.steps && train < (o.maxSeconds ?? Infinity);) {
    const t0 = performance.now();
    sum.fill(0);
    const cluster = o.mode === 'cluster' ? o.clustered!.clusterOf(step) : -1;
    for (let j = 0; j < o.metaBatch; j++) {
      const i = step * o.metaBatch + j;
      const ep = o.mode === 'cluster' ? o.clustered!.episodeInCluster(cluster, i) : o.random!.episode(i);
      mamlBackprop(ctx, phi, ep, o.order, grad);
      for (let k = 0; k < sum.length; k++) sum[k] = sum[k]! + grad[k]! / o.metaBatch;
    }
    opt.step(phi, sum);
    step++;
    train += (performance.now() - t0) / 1000;
    if (o.valEverySeconds !== undefined && train - lastVal >= o.valEverySeconds) validate();
  }
  if (lastVal < train) validate();
  return { phi, steps: step, trainSeconds: train, vals };
}
