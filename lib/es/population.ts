/**
 * The population-evaluation contract: the ES hot loop. Every device that can
 * evaluate a population (cpu-ts here, cpu-native, xla) implements
 * PopulationEvaluator with exactly these semantics.
 *
 * Member m's perturbation (kind 'gaussian'):
 *   noise id  k = antithetic ? floor(m / 2) : m,   sign s = antithetic && m odd ? -1 : +1
 *   z = gaussianFill(seed, STREAM.esNoise, step, k)            (lib/rng/philox.ts, float32)
 *   eps_j = f32(sigma * z_j),  theta_j = f32(mu_j + s * eps_j)
 * Kind 'coordinate' (finite differences cast as ES, paper II-G): member 0 is mu
 * itself; member m >= 1 nudges parameter m - 1 by +delta: theta = mu, theta[m-1] = f32(mu[m-1] + delta).
 *
 * Fitness of a member = minus the mean query cross-entropy of the episode
 * (episodeLoss in lib/model/protonet.ts, BN in batch mode: training statistics
 * of support+query for each member, running statistics untouched).
 */
import type { Distance, Episode } from '../model/protonet.js';
import type { ModelConfig } from '../model/layout.js';

export type Perturbation =
  | { kind: 'gaussian'; sigma: number; antithetic: boolean }
  /** Per-parameter sigma (SNES, PGPE): eps_j = f32(sigmas_j * z_j), a float32 product rounded once. */
  | { kind: 'diagonal'; sigmas: Float32Array; antithetic: boolean }
  | { kind: 'coordinate'; delta: number };

export interface PopulationRequest {
  mu: Float32Array;
  perturbation: Perturbation;
  /** Noise key: seed (uint32) and ES step. */
  seed: number;
  step: number;
  /** Global member indices [start, end). */
  start: number;
  end: number;
  /** ProtoNet evaluators: the model, the episode and the distance (see protoNetTask). */
  model?: ModelConfig;
  episode?: Episode;
  distance?: Distance;
  /** Objective evaluators (lib/es/objective.ts): structured-clonable data handed to the objective. */
  context?: unknown;
}

/** The ProtoNet fields of a request, or a clear error when an evaluator of ProtoNets gets a request without them. */
export function protoNetTask(req: Pick<PopulationRequest, 'model' | 'episode' | 'distance'>): { model: ModelConfig; episode: Episode; distance: Distance } {
  if (!req.model || !req.episode || !req.distance) throw new TypeError('ProtoNet population evaluator: the request has no model, episode or distance');
  return { model: req.model, episode: req.episode, distance: req.distance };
}

export interface NoiseSumRequest {
  /** Length D. */
  mu: Float32Array;
  seed: number;
  step: number;
  antithetic: boolean;
  sigma: number;
  /** Per-parameter sigma (length D) replacing the scalar in eps: eps_ij = f32(sigmas_j * z_ij). */
  sigmas?: Float32Array;
  /**
   * 'linear' (default): out_j = sum_i weights[i] * s_i * eps_ij;
   * 'square': out_j = sum_i weights[i] * (z_ij^2 - 1), z_ij^2 exact in float64 from the float32 z.
   */
  kind?: 'linear' | 'square';
  /** Global member indices [start, start + weights.length). */
  start: number;
  /**
   * Member weights; the sum runs over members i in order (eps = f32(sigma * z), s_i the antithetic sign),
   * accumulated in float64 in member order (fixed order => deterministic).
   */
  weights: Float64Array;
}

export interface PopulationEvaluator {
  readonly device: string;
  /** Fitness per member, length end - start. */
  evaluate(req: PopulationRequest): Promise<Float64Array>;
  /** sum_i w_i s_i eps_i as float64, length D. */
  noiseSum(req: NoiseSumRequest): Promise<Float64Array>;
  /** Bytes of working memory held (for the memory study). */
  workingBytes?(): number;
  close?(): Promise<void>;
}
