/**
 * The one place lib/l2l uses the ES engine (lib/es): member perturbations
 * (perturbMember, inside GroupEngine.esFitness), WSR weights (groupWeights,
 * the paper's eq. 9) and the weighted noise sum through
 * FunctionPopulationEvaluator.noiseSum, as they are. When lib/es exposes its
 * ask/tell API, only this file changes.
 */
import { groupWeights } from '../es/estimators.js';
import { FunctionPopulationEvaluator } from '../es/function-evaluator.js';

export interface EsGradientOptions {
  mu: Float32Array;
  pop: number;
  sigma: number;
  antithetic: boolean;
  seed: number;
  step: number;
  /** Fitness of members [0, pop) (higher is better), evaluated by the caller (inline or on workers). */
  fitness: (pop: number) => Promise<Float64Array>;
}

export interface EsGradient {
  /** A DESCENT direction for the meta-loss (minus the ES ascent estimate on fitness), for Adam. */
  grad: Float64Array;
  fitness: Float64Array;
  nonFinite: number;
}

export async function esMetaGradient(o: EsGradientOptions): Promise<EsGradient> {
  const fitness = await o.fitness(o.pop);
  const w = groupWeights(fitness, { estimator: 'wsr', sigma: o.sigma, baseline: false, nonFinite: 'worst' });
  const ev = new FunctionPopulationEvaluator(() => { throw new Error('l2l ES: members are evaluated by the executor, not here'); });
  const sum = await ev.noiseSum({ mu: o.mu, seed: o.seed, step: o.step, antithetic: o.antithetic, sigma: o.sigma, start: 0, weights: w.weights });
  for (let j = 0; j < sum.length; j++) sum[j] = -sum[j]!;
  return { grad: sum, fitness, nonFinite: w.nonFinite };
}
