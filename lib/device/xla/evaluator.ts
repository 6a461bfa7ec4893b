/**
 * The xla PopulationEvaluator (lib/es/population.ts): the whole population
 * as one XLA program, split over the executor's devices as replicas when the
 * member count divides evenly; the noise sum as a second program. Programs
 * are specialized to shapes and cached by their text in the executor.
 */
import { getDevice } from '../registry.js';
import { protoNetTask, type NoiseSumRequest, type PopulationEvaluator, type PopulationRequest } from '../../es/population.js';
import { ProtoNetLayout } from '../../model/layout.js';
import { checkPerturbation } from '../../es/noise.js';
import type { Program } from './hlo.js';
import { XlaDevice } from './device.js';
import { evaluateProgram, noiseSumProgram } from './population.js';
import { episodeInputs, hostArray, scalarU32, ZERO_I64 } from './inputs.js';

export class XlaPopulationEvaluator implements PopulationEvaluator {
  readonly device = 'xla';
  private readonly programs = new Map<string, Program>();

  constructor(private readonly dev: XlaDevice, private readonly memberConv: 'grouped' | 'batched' = 'grouped') {}

  private program(key: string, make: () => Program): Program {
    let p = this.programs.get(key);
    if (!p) { p = make(); this.programs.set(key, p); }
    return p;
  }

  async evaluate(req: PopulationRequest): Promise<Float64Array> {
    if (req.perturbation.kind === 'diagonal') {
      throw new Error("xla population: per-parameter sigma (perturbation kind 'diagonal') is not implemented on the xla device; use cpu-native or cpu-ts");
    }
    checkPerturbation(req.perturbation, req.mu.length, 'xla population');
    const task = protoNetTask(req);
    const layout = new ProtoNetLayout(task.model);
    layout.checkParams(req.mu);
    const n = req.end - req.start;
    if (!(Number.isInteger(req.start) && Number.isInteger(req.end) && 0 <= req.start && n >= 0)) throw new RangeError(`evaluate: invalid member range [${req.start}, ${req.end})`);
    if (n === 0) return new Float64Array(0);
    const ex = this.dev.executor;
    const replicas = ex.deviceCount > 1 && n % ex.deviceCount === 0 ? ex.deviceCount : 1;
    const ep = task.episode;
    const shape = { model: layout.config, episode: { way: ep.way, support: ep.support.shape[0]!, query: ep.query.shape[0]! }, distance: task.distance, memberConv: this.memberConv, precision: this.dev.precision };
    const prog = this.program(JSON.stringify(['eval', shape, req.perturbation, n, replicas, this.memberConv]), () => evaluateProgram(shape, n / replicas, req.perturbation, replicas));
    const args = [hostArray(req.mu, [req.mu.length]), scalarU32(req.seed), scalarU32(req.step), scalarU32(req.start), ...episodeInputs(ep), ZERO_I64];
    const outs = await ex.run(prog, Array.from({ length: replicas }, () => args));
    const f = new Float64Array(n);
    outs.forEach((o, r) => f.set(o[0]!.data as Float32Array, r * (n / replicas)));
    return f;
  }

  async noiseSum(req: NoiseSumRequest): Promise<Float64Array> {
    const p = req.weights.length, d = req.mu.length;
    if (req.kind !== undefined && req.kind !== 'linear') {
      throw new Error(`xla noiseSum: kind '${req.kind}' is not implemented on the xla device (only 'linear'); use cpu-native or cpu-ts`);
    }
    if (req.sigmas !== undefined) {
      throw new Error('xla noiseSum: per-parameter sigmas are not implemented on the xla device; use cpu-native or cpu-ts');
    }
    if (!(Number.isFinite(req.sigma) && req.sigma > 0)) throw new RangeError(`noiseSum: sigma must be finite and > 0, got ${req.sigma}`);
    if (p === 0) return new Float64Array(d);
    const fast = this.dev.precision === 'fast';
    const prog = this.program(JSON.stringify(['sum', d, p, req.sigma, req.antithetic, this.dev.precision]), () => noiseSumProgram(d, p, req.sigma, req.antithetic, this.dev.precision));
    const w = fast ? hostArray(Float32Array.from(req.weights), [p]) : hostArray(req.weights, [p]);
    const outs = await this.dev.executor.run(prog, [[w, scalarU32(req.seed), scalarU32(req.step), scalarU32(req.start), ZERO_I64]]);
    return Float64Array.from(outs[0]![0]!.data as Float64Array | Float32Array);
  }
}

/** Evaluator factory (the form lib/es/evaluators.ts loads, also inside worker threads). */
export function createXlaPopulationEvaluator(opts: { device?: string } = {}): PopulationEvaluator {
  const dev = getDevice(opts.device ?? 'xla');
  if (!(dev instanceof XlaDevice)) throw new Error(`createXlaPopulationEvaluator: device ${dev.name} is not an xla device`);
  return new XlaPopulationEvaluator(dev);
}
