/**
 * A PopulationEvaluator for any objective f(theta) -> fitness, with the same
 * member perturbations and noise sums as the model evaluators. For checking
 * estimators on functions with a known gradient, and for using the ES engine
 * on other problems (inline only: a function cannot be sent to a worker).
 */
import type { NoiseSumRequest, PopulationEvaluator, PopulationRequest } from './population.js';
import { checkPerturbation, noiseSumInto, perturbMember } from './noise.js';
import { InlineRunner } from './runner.js';

export class FunctionPopulationEvaluator implements PopulationEvaluator {
  readonly device = 'function';
  private theta = new Float32Array(0);
  private z = new Float32Array(0);
  constructor(readonly f: (theta: Float32Array, member: number) => number) {}

  async evaluate(req: PopulationRequest): Promise<Float64Array> {
    const d = req.mu.length;
    checkPerturbation(req.perturbation, d);
    if (!(Number.isInteger(req.start) && Number.isInteger(req.end) && 0 <= req.start && req.start <= req.end)) {
      throw new RangeError(`evaluate: invalid member range [${req.start}, ${req.end})`);
    }
    if (this.theta.length !== d) { this.theta = new Float32Array(d); this.z = new Float32Array(d); }
    const out = new Float64Array(req.end - req.start);
    for (let m = req.start; m < req.end; m++) {
      perturbMember(this.theta, req.mu, req.perturbation, req.seed, req.step, m, this.z);
      out[m - req.start] = this.f(this.theta, m);
    }
    return out;
  }

  async noiseSum(req: NoiseSumRequest): Promise<Float64Array> {
    const d = req.mu.length;
    if (this.z.length !== d) { this.theta = new Float32Array(d); this.z = new Float32Array(d); }
    const out = new Float64Array(d);
    noiseSumInto(out, req, this.z);
    return out;
  }

  workingBytes(): number { return this.theta.byteLength + this.z.byteLength + 8 * this.z.length; }
}

export function functionRunner(f: (theta: Float32Array, member: number) => number): InlineRunner {
  return new InlineRunner(new FunctionPopulationEvaluator(f), { device: 'function', module: '', export: '', reason: 'an objective function (inline)' });
}
