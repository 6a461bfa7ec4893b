/**
 * The one place lib/l2l uses the ES core (lib/es): a WSR generation (the
 * paper's eq. 9) around the learned optimizer's parameters, through the
 * ask/tell API. The members are evaluated by the caller (inline or on worker
 * threads, with the same counter-based perturbations: perturbMember at
 * (seed, step, member)); tell() turns their fitness into the ascent estimate.
 */
import { WSR } from '../es/strategies.js';

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
  const es = new WSR({ init: o.mu, pop: o.pop, sigma: o.sigma, antithetic: o.antithetic, seed: o.seed });
  es.step = o.step;
  const gen = es.ask();
  const fitness = await o.fitness(gen.size);
  const r = await es.tell(fitness);
  const grad = r.grad.map((v) => -v);
  return { grad, fitness: r.fitness, nonFinite: r.nonFinite };
}
