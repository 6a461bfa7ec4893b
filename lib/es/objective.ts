/**
 * ES on any objective: a PopulationEvaluator over a user's fitness function,
 * inline (a function) or on worker threads (a module path: each worker
 * imports the module itself, since functions cannot cross threads).
 *
 * The objective is maximized:
 *   // my-objective.mjs
 *   export function fitness(x, ctx) { return -rastrigin(x); }   // x: Float32Array, ctx: { member, step, context }
 *
 *   const runner = await objectiveRunner({ module: './my-objective.mjs', workers: 2 });
 *   const es = new OpenAIES({ dim: 100, pop: 64, sigma: 0.1, lr: 0.02, optimizer: 'adam', shards: 2 });
 *   for (let g = 0; g < 300; g++) await es.run(runner);
 *   await runner.close();
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { UserError } from '../errors.js';
import { noiseSumInto, perturbMember } from './noise.js';
import type { NoiseSumRequest, PopulationEvaluator, PopulationRequest } from './population.js';
import { createRunner, InlineRunner, type PopulationRunner } from './runner.js';
import type { EvaluatorSpec } from './evaluators.js';

export interface ObjectiveContext {
  /** Global member index in the generation. */
  member: number;
  /** The generation (ES step). */
  step: number;
  /** The task's context data (structured-clonable), if any. */
  context: unknown;
}

export type Objective = (x: Float32Array, ctx: ObjectiveContext) => number | Promise<number>;

/** Fitness of members by calling the objective on each regenerated member, O(D) memory. */
export class ObjectiveEvaluator implements PopulationEvaluator {
  readonly device = 'objective';
  private theta = new Float32Array(0);
  private z = new Float32Array(0);
  private sum = new Float64Array(0);
  constructor(readonly objective: Objective) {}

  private scratch(d: number): void {
    if (this.theta.length !== d) { this.theta = new Float32Array(d); this.z = new Float32Array(d); this.sum = new Float64Array(d); }
  }

  async evaluate(req: PopulationRequest): Promise<Float64Array> {
    this.scratch(req.mu.length);
    const out = new Float64Array(req.end - req.start);
    for (let m = req.start; m < req.end; m++) {
      perturbMember(this.theta, req.mu, req.perturbation, req.seed, req.step, m, this.z);
      const v = await this.objective(this.theta, { member: m, step: req.step, context: req.context });
      out[m - req.start] = typeof v === 'number' ? v : NaN;
    }
    return out;
  }

  async noiseSum(req: NoiseSumRequest): Promise<Float64Array> {
    this.scratch(req.mu.length);
    const out = new Float64Array(req.mu.length);
    noiseSumInto(out, req, this.z);
    return out;
  }

  workingBytes(): number { return this.theta.byteLength + this.z.byteLength + this.sum.byteLength; }
}

/** The module URL of a user's objective (a path relative to the working directory, or a file: URL). */
export function objectiveModuleUrl(module: string): string {
  if (module.startsWith('file:')) return module;
  return pathToFileURL(isAbsolute(module) ? module : resolve(process.cwd(), module)).href;
}

/** The evaluator factory a worker thread calls (via the spec's module and export). */
export async function createObjectiveEvaluator(opts: { options?: Record<string, unknown> }): Promise<PopulationEvaluator> {
  const module = opts.options?.['module'], name = opts.options?.['export'] ?? 'fitness';
  if (typeof module !== 'string' || typeof name !== 'string') throw new UserError('objective evaluator: options need a module (string) and an export name');
  let mod: Record<string, unknown>;
  try {
    mod = (await import(module)) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`objective module ${module} could not be loaded: ${(e as Error).message}`);
  }
  const f = mod[name];
  if (typeof f !== 'function') throw new UserError(`objective module ${module} has no function export ${JSON.stringify(name)} (exports: ${Object.keys(mod).join(', ') || 'none'})`);
  return new ObjectiveEvaluator(f as Objective);
}

/** The evaluator spec of an objective module (what worker threads load). */
export function objectiveSpec(module: string, exportName = 'fitness'): EvaluatorSpec {
  const url = objectiveModuleUrl(module);
  return {
    device: 'objective', module: new URL('./objective.js', import.meta.url).href, export: 'createObjectiveEvaluator',
    options: { module: url, export: exportName }, reason: `objective ${exportName} of ${url}`,
  };
}

/** A population runner for an objective: an inline function, or a module path run on `workers` threads. */
export async function objectiveRunner(o: { objective: Objective } | { module: string; export?: string; workers?: number }): Promise<PopulationRunner> {
  if ('objective' in o) {
    return new InlineRunner(new ObjectiveEvaluator(o.objective), { device: 'objective', module: '', export: '', reason: 'an objective function (inline)' });
  }
  return createRunner({ workers: o.workers ?? 1, spec: { ...objectiveSpec(o.module, o.export), threads: 1 } });
}
