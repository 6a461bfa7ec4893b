/**
 * Which PopulationEvaluator runs the population: a small registry from device
 * name to an evaluator factory. An entry is a module URL plus an export name
 * (not a function), so a worker thread can load the same evaluator itself.
 * A device without an entry of its own is served by the generic DirectOps
 * evaluator running that device's kernels.
 *
 * A device adds its evaluator here with one line (cpu-native, xla), e.g.
 *   registerPopulationEvaluator('cpu-native', { module: new URL('../device/cpu-native/population.js', import.meta.url).href, export: 'createNativePopulationEvaluator' });
 * The factory is called as factory({ device, threads?, options?, precision? }) and may return a
 * promise; `threads` is a hint for evaluators with their own thread pool (how
 * many threads each of the trainer's workers should use; absent: their default).
 */
import { getDevice } from '../device/registry.js';
import { UserError } from '../errors.js';
import { EVALUATOR_PRECISIONS, type PopulationEvaluator, type EvaluatorPrecision } from './population.js';

export interface EvaluatorEntry {
  /** Module URL (file: URL string) of the factory. */
  module: string;
  /** Name of the exported factory: (opts: { device: string }) => PopulationEvaluator | Promise<PopulationEvaluator>. */
  export: string;
  /** The precisions its factory accepts (absent: 'fp32' only). */
  precisions?: readonly EvaluatorPrecision[];
}

/** What a worker needs to build its own evaluator: structured-clonable. */
export interface EvaluatorSpec extends EvaluatorEntry {
  device: string;
  /** Why this evaluator was chosen (shown in logs and metrics). */
  reason: string;
  /** Threads per evaluator hint (set by the runner from the worker count). */
  threads?: number;
  /** Structured-clonable options handed to the factory (e.g. an objective's module and export). */
  options?: Record<string, unknown>;
  /** The forward pass's precision (absent: 'fp32'), handed to the factory. */
  precision?: EvaluatorPrecision;
}

export type EvaluatorFactory = (opts: { device: string; threads?: number; options?: Record<string, unknown>; precision?: EvaluatorPrecision }) => PopulationEvaluator | Promise<PopulationEvaluator>;

const GENERIC: EvaluatorEntry = { module: new URL('./population-ts.js', import.meta.url).href, export: 'createDirectOpsEvaluator' };

const entries = new Map<string, EvaluatorEntry>([
  ['cpu-ts', GENERIC],
]);

export function registerPopulationEvaluator(device: string, entry: EvaluatorEntry): void {
  if (entries.has(device)) throw new Error(`a population evaluator is already registered for device ${device}`);
  entries.set(device, entry);
}

export function populationEvaluatorDevices(): string[] {
  return [...entries.keys()];
}

/**
 * The evaluator for a device: the named one, or the device layer's best
 * available device (getDevice), with its dedicated evaluator if it has one.
 */
export function evaluatorSpecFor(device?: string, opts: { precision?: EvaluatorPrecision } = {}): EvaluatorSpec {
  const dev = getDevice(device);
  const own = entries.get(dev.name);
  const how = device === undefined ? `best available device ${dev.name}` : `device ${dev.name}`;
  const precision = opts.precision ?? 'fp32';
  if (!EVALUATOR_PRECISIONS.includes(precision)) throw new UserError(`precision (--precision) must be one of ${EVALUATOR_PRECISIONS.join(', ')}, got ${JSON.stringify(precision)}`);
  const entry = own ?? GENERIC;
  if (!(entry.precisions ?? ['fp32']).includes(precision)) {
    const able = [...entries].filter(([, e]) => e.precisions?.includes(precision)).map(([d]) => d);
    throw new UserError(`precision ${precision}: the population evaluator of ${how} supports ${(entry.precisions ?? ['fp32']).join(', ')} only${able.length ? `; ${precision} runs on ${able.join(', ')}` : ''}`);
  }
  const p = precision === 'fp32' ? {} : { precision };
  const tag = precision === 'fp32' ? '' : `, precision ${precision}`;
  if (own) return { device: dev.name, ...own, ...p, reason: `${how}, its own population evaluator${tag}` };
  return { device: dev.name, ...GENERIC, ...p, reason: `${how}, no population evaluator of its own: the generic DirectOps evaluator on its kernels` };
}

export async function loadEvaluator(spec: EvaluatorSpec): Promise<PopulationEvaluator> {
  const mod = (await import(spec.module)) as Record<string, unknown>;
  const f = mod[spec.export];
  if (typeof f !== 'function') throw new Error(`population evaluator module ${spec.module} has no export ${spec.export}`);
  return await (f as EvaluatorFactory)({
    device: spec.device, ...(spec.threads !== undefined ? { threads: spec.threads } : {}), ...(spec.options ? { options: spec.options } : {}),
    ...(spec.precision !== undefined ? { precision: spec.precision } : {}),
  });
}
