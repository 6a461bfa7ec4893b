/**
 * MAML-style meta-learner parameters: ONE flat vector phi =
 *   [ConvNet-4 encoder (ProtoNetLayout, PyTorch names) | head.weight (way x E) | head.bias (way)].
 * The encoder embeds support and query; the linear head is adapted by l inner
 * SGD steps on the support set; the meta-loss is the query cross-entropy.
 */
import { ProtoNetLayout, type ModelConfig } from '../model/layout.js';
import { initParams } from '../model/init.js';
import { Rng, STREAM } from '../rng/philox.js';
import { Tensor, type FloatArray } from '../tensor/tensor.js';

export interface MamlConfig {
  model: Partial<ModelConfig>;
  /** Classes per episode: the head has `way` outputs. */
  way: number;
  /** Inner SGD steps l on the support set (1 .. 1000 in the study; any positive integer works). */
  innerSteps: number;
  /** Inner learning rate alpha. */
  innerLr: number;
}

export const MAX_INNER_STEPS = 100000;

export function checkMamlConfig(c: MamlConfig): void {
  if (!Number.isInteger(c.way) || c.way < 2) throw new RangeError(`maml: way must be an integer >= 2, got ${c.way}`);
  if (!Number.isInteger(c.innerSteps) || c.innerSteps < 0 || c.innerSteps > MAX_INNER_STEPS) {
    throw new RangeError(`maml: innerSteps must be an integer in [0, ${MAX_INNER_STEPS}], got ${c.innerSteps}`);
  }
  if (!(c.innerLr > 0) || !Number.isFinite(c.innerLr)) throw new RangeError(`maml: innerLr must be a positive number, got ${c.innerLr}`);
}

export class MamlLayout {
  readonly encoder: ProtoNetLayout;
  readonly way: number;
  readonly embeddingSize: number;
  readonly headWeightOffset: number;
  readonly headBiasOffset: number;
  readonly numParams: number;

  constructor(model: Partial<ModelConfig>, way: number) {
    this.encoder = new ProtoNetLayout(model);
    this.way = way;
    this.embeddingSize = this.encoder.embeddingSize;
    this.headWeightOffset = this.encoder.numParams;
    this.headBiasOffset = this.headWeightOffset + way * this.embeddingSize;
    this.numParams = this.headBiasOffset + way;
  }

  check(phi: FloatArray): void {
    if (phi.length !== this.numParams) throw new RangeError(`maml parameter vector has ${phi.length} elements, layout needs ${this.numParams}`);
  }

  /** The encoder's part of phi (a view). */
  encoderParams(phi: FloatArray): FloatArray { this.check(phi); return phi.subarray(0, this.encoder.numParams); }
  headWeight(phi: FloatArray): Tensor { this.check(phi); return new Tensor(phi.subarray(this.headWeightOffset, this.headBiasOffset), [this.way, this.embeddingSize]); }
  headBias(phi: FloatArray): Tensor { this.check(phi); return new Tensor(phi.subarray(this.headBiasOffset, this.numParams), [this.way]); }
}

/** Encoder: PyTorch default init (seeded); head: U(-1/sqrt(E), 1/sqrt(E)) weights (nn.Linear's bound), zero bias. */
export function initMaml(layout: MamlLayout, seed: number): Float32Array {
  const phi = new Float32Array(layout.numParams);
  phi.set(initParams(layout.encoder, seed), 0);
  const rng = new Rng(seed, STREAM.init, 1);
  const bound = 1 / Math.sqrt(layout.embeddingSize);
  for (let i = layout.headWeightOffset; i < layout.headBiasOffset; i++) phi[i] = (2 * rng.uniform() - 1) * bound;
  return phi;
}
