/**
 * One ES gradient estimate: evaluate the population on one episode, turn
 * fitness into member weights (per shard or globally), and reduce the noise
 * sums in fixed shard order. Returns the ascent direction g on fitness.
 */
import type { Episode } from '../model/protonet.js';
import type { EsConfig } from './config.js';
import { sigmaAt } from './config.js';
import { fdGradient, groupWeights, type WeightEstimator } from './estimators.js';
import type { PopulationRunner, ShardSum } from './pool.js';

export interface GradientEstimate {
  /** Ascent direction on fitness (float64, length D). */
  g: Float64Array;
  fitness: Float64Array;
  sigma: number;
  /** Members with NaN/inf fitness. */
  nonFinite: number;
  /** Groups (shards, or the population) whose weights were all zero for lack of spread. */
  degenerate: number;
  /** Seconds spent evaluating and in noise sums. */
  evalSeconds: number;
  sumSeconds: number;
}

export type EstimateConfig = Pick<EsConfig, 'model' | 'estimator' | 'scheme' | 'pop' | 'shards' | 'sigma' | 'sigmaSchedule' | 'sigmaFinal' | 'steps' | 'antithetic' | 'baseline' | 'nonFinite' | 'fdDelta' | 'seed' | 'distance'>;

/** Shard weights for the noise sum: paper = per-shard weights / S, openai = global weights cut into shards. */
export function shardWeights(fitness: Float64Array, cfg: EstimateConfig, sigma: number): { shards: ShardSum[]; nonFinite: number; degenerate: number } {
  const opts = { estimator: cfg.estimator as WeightEstimator, sigma, baseline: cfg.baseline, nonFinite: cfg.nonFinite };
  const per = cfg.pop / cfg.shards;
  const shards: ShardSum[] = [];
  let nonFinite = 0, degenerate = 0;
  if (cfg.scheme === 'paper') {
    for (let s = 0; s < cfg.shards; s++) {
      const gw = groupWeights(fitness.subarray(s * per, (s + 1) * per), opts, 1 / cfg.shards);
      shards.push({ start: s * per, weights: gw.weights });
      nonFinite += gw.nonFinite;
      if (gw.degenerate) degenerate++;
    }
  } else {
    const gw = groupWeights(fitness, opts);
    for (let s = 0; s < cfg.shards; s++) shards.push({ start: s * per, weights: gw.weights.slice(s * per, (s + 1) * per) });
    nonFinite = gw.nonFinite;
    if (gw.degenerate) degenerate = 1;
  }
  return { shards, nonFinite, degenerate };
}

export async function estimateGradient(runner: PopulationRunner, cfg: EstimateConfig, mu: Float32Array, step: number, episode: Episode): Promise<GradientEstimate> {
  const sigma = sigmaAt(cfg, step);
  const t0 = performance.now();
  if (cfg.estimator === 'fd') {
    const fitness = await runner.evaluate({
      model: cfg.model, mu, perturbation: { kind: 'coordinate', delta: cfg.fdDelta }, seed: cfg.seed, step, episode, distance: cfg.distance, population: cfg.pop,
    });
    const t1 = performance.now();
    const { g, nonFinite } = fdGradient(fitness, cfg.fdDelta);
    return { g, fitness, sigma, nonFinite, degenerate: Number.isFinite(fitness[0]!) ? 0 : 1, evalSeconds: (t1 - t0) / 1000, sumSeconds: 0 };
  }
  const fitness = await runner.evaluate({
    model: cfg.model, mu, perturbation: { kind: 'gaussian', sigma, antithetic: cfg.antithetic }, seed: cfg.seed, step, episode, distance: cfg.distance, population: cfg.pop,
  });
  const t1 = performance.now();
  const { shards, nonFinite, degenerate } = shardWeights(fitness, cfg, sigma);
  const g = await runner.noiseSum({ mu, seed: cfg.seed, step, antithetic: cfg.antithetic, sigma, shards });
  const t2 = performance.now();
  return { g, fitness, sigma, nonFinite, degenerate, evalSeconds: (t1 - t0) / 1000, sumSeconds: (t2 - t1) / 1000 };
}
