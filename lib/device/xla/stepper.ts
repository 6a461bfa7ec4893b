/**
 * xlaEsStep: the whole ES step (noise, fitness, WSR, the estimate, the
 * update) as one program per replica, run on an XLA executor. The host only
 * feeds episodes and the step counter.
 */
import type { Episode } from '../../model/protonet.js';
import type { XlaExecutor } from './executor.js';
import { esStepProgram, checkEsSpec, type EsStepSpec } from './esstep.js';
import type { Program } from './hlo.js';
import { episodeInputs, hostArray, scalarU32, ZERO_I64 } from './inputs.js';

export interface EsStepResult {
  /** mu after the update, float32. */
  mu: Float32Array;
  /** The gradient estimate (ascent direction on fitness), float64. */
  g: Float64Array;
  /** Fitness of every member, in member order. */
  fitness: Float64Array;
}

export class XlaEsStepper {
  readonly program: Program;
  constructor(private readonly executor: XlaExecutor, readonly spec: EsStepSpec) {
    checkEsSpec(spec);
    if (spec.replicas > executor.deviceCount) throw new RangeError(`xla ES step: ${spec.replicas} replicas, the executor (${executor.platform}) has ${executor.deviceCount} devices`);
    this.program = esStepProgram(spec);
  }

  async step(mu: Float32Array, seed: number, step: number, episode: Episode): Promise<EsStepResult> {
    const args = [hostArray(mu, [mu.length]), scalarU32(seed), scalarU32(step), ...episodeInputs(episode), ZERO_I64];
    const outs = await this.executor.run(this.program, Array.from({ length: this.spec.replicas }, () => args));
    const first = outs[0]!;
    const fitness = this.spec.scheme === 'paper'
      ? Float64Array.from(outs.flatMap((o) => Array.from(o[2]!.data as Float32Array | Float64Array)))
      : Float64Array.from(first[2]!.data as Float32Array | Float64Array);
    return { mu: Float32Array.from(first[0]!.data as Float32Array), g: Float64Array.from(first[1]!.data as Float64Array), fitness };
  }
}

/** One ES step on `executor` (compiles on first use of a spec; keep an XlaEsStepper to reuse it). */
export async function xlaEsStep(executor: XlaExecutor, spec: EsStepSpec, mu: Float32Array, seed: number, step: number, episode: Episode): Promise<EsStepResult> {
  return new XlaEsStepper(executor, spec).step(mu, seed, step, episode);
}
