/**
 * The population-evaluation contract: the ES hot loop. Every device that can
 * evaluate a population (cpu-ts here, cpu-native, xla) implements
 * PopulationEvaluator with exactly these semantics.
 *
 * Member m's perturbation (kind 'gaussian'):
 *   noise id  k = antithetic ? floor(m / 2) : m,   sign s = antithetic && m odd ? -1 : +1
 *   z = gaussianFill(seed, STREAM.esNoise, step, k)            (lib/rng/philox.ts, float32)
 *   eps_j = f32(sigma * z_j),  theta_j = f32(mu_j + s * eps_j)
 *   sigma must be finite and > 0 (a RangeError naming sigma otherwise).
 * Kind 'diagonal' (per-parameter sigma: SNES, PGPE): the same k, s and z, with
 *   eps_j = f32(sigmas_j * z_j)   (the float32 product, rounded once),  theta_j = f32(mu_j + s * eps_j)
 *   sigmas has length D, every value finite and > 0.
 * Kind 'coordinate' (finite differences cast as ES, paper II-G): member 0 is mu
 * itself; member m >= 1 nudges parameter m - 1 by +delta: theta = mu, theta[m-1] = f32(mu[m-1] + delta).
 *
 * Fitness of a member = minus the mean query cross-entropy of the episode
 * (episodeLoss in lib/model/protonet.ts, BN in batch mode: training statistics
 * of support+query for each member, running statistics untouched). NaN
 * propagates: ReLU(NaN) = NaN and a max-pool window holding NaN gives NaN, so a
 * member whose parameters or inputs hold NaN or inf gets a non-finite fitness.
 */
import type { Distance, Episode } from '../model/protonet.js';
import type { ModelConfig } from '../model/layout.js';

export type Perturbation =
  | { kind: 'gaussian'; sigma: number; antithetic: boolean }
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

/**
 * The weighted noise sum over members [start, start + weights.length), float64,
 * accumulated member by member in increasing order for every element (a fixed
 * order: deterministic and bit-identical across implementations and thread counts).
 *   kind 'linear' (default): out_j = sum_i weights[i] * s_i * eps_ij, with
 *     eps_ij = f32(sigma * z_ij), or f32(sigmas_j * z_ij) when `sigmas` is given;
 *   kind 'square': out_j = sum_i weights[i] * (z_ij^2 - 1), z_ij^2 computed exactly in
 *     float64 from the float32 z (no sign: mirrored members share z); sigma and sigmas
 *     play no part.
 * Each term is one float64 rounding per operation, no fused multiply-add (lib/es/noise.ts).
 */
export interface NoiseSumRequest {
  /** Length D. */
  mu: Float32Array;
  seed: number;
  step: number;
  antithetic: boolean;
  /** The scalar sigma of eps (finite, > 0); ignored when `sigmas` is given or for kind 'square'. */
  sigma: number;
  /** Per-parameter sigmas (length D, finite, > 0) replacing the scalar sigma in eps. */
  sigmas?: Float32Array;
  /** 'linear' (default) or 'square'. */
  kind?: 'linear' | 'square';
  /** Global member indices [start, start + weights.length). */
  start: number;
  weights: Float64Array;
}

/** What an evaluator can take in one request (absent fields: no limit beyond memory). */
export interface EvaluatorLimits {
  /** Classes per episode. */
  way?: number;
  /** Support + query images per episode. */
  images?: number;
  /** Members per evaluate call / weights per noise sum. */
  members?: number;
  /** Parameters D. */
  params?: number;
  /** Channels per conv block. */
  channels?: number;
  /** Image side. */
  imageSize?: number;
}

/**
 * The precision of an evaluator's forward pass, chosen when the evaluator is created:
 *   'fp32' (default): float32 throughout (the semantics above, within float32 rounding);
 *   'bf16': the convolutions' matrix products take their operands rounded to bfloat16 (round to
 *     nearest even, 8 significant bits) and accumulate in float32; the perturbation (theta =
 *     mu + eps), BN, ReLU, max-pool, prototypes, distances and loss stay as in 'fp32'. Fitness
 *     then differs from 'fp32' by bf16 rounding (relative differences of order 2^-8), the same
 *     for a given kernel, member and episode on any thread count. cpu-native only.
 */
export type EvaluatorPrecision = 'fp32' | 'bf16';

export const EVALUATOR_PRECISIONS: readonly EvaluatorPrecision[] = ['fp32', 'bf16'];

/** The unperturbed model on one episode, for the BN running statistics (see PopulationEvaluator.batchStats). */
export interface BatchStatsRequest { model: ModelConfig; mu: Float32Array; episode: Episode; distance: Distance }

/**
 * Per block l and channel c, at [l * channels + c]: the batch mean of the convolution's outputs
 * (bias included) and their biased variance, float64; and the episode loss of mu.
 */
export interface BatchStatsResult { loss: number; mean: Float64Array; variance: Float64Array }

export interface PopulationEvaluator {
  readonly device: string;
  /** The forward pass's precision (absent: 'fp32'). */
  readonly precision?: EvaluatorPrecision;
  /** Fitness per member, length end - start. */
  evaluate(req: PopulationRequest): Promise<Float64Array>;
  /** The noise sum of NoiseSumRequest as float64, length D. */
  noiseSum(req: NoiseSumRequest): Promise<Float64Array>;
  /**
   * mu itself in batch-statistics mode on the episode, synchronously on the calling thread, in
   * fp32 whatever the evaluator's precision: its loss and the batch statistics a PyTorch train()
   * forward feeds its BN running statistics (applyBatchStats in lib/model/protonet.ts).
   */
  batchStats?(req: BatchStatsRequest): BatchStatsResult;
  /**
   * Warms what its calls on an episode at `precision` share (cpu-native: the episode's plan, kept
   * for every thread of the process), so that they start at once. Synchronous; a hint only.
   */
  prepare?(req: { model: ModelConfig; episode: Episode; precision?: EvaluatorPrecision }): void;
  /** Bytes of working memory held (for the memory study). */
  workingBytes?(): number;
  /** The largest request it takes, so that callers can check a configuration up front. */
  limits?(): EvaluatorLimits;
  /** Stops (or lets finish) work in flight; resolves once none is left. */
  close?(): Promise<void>;
}
