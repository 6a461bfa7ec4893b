/**
 * The xla device: registration (priority -10: never the default on a CPU-only
 * machine, and lazily created, so nothing is loaded at import), the
 * population evaluator entry, and the public API of the XLA layer.
 */
import { registerDevice } from '../registry.js';
import { registerPopulationEvaluator } from '../../es/evaluators.js';
import { createXlaDevice } from './device.js';

registerDevice('xla', { priority: -10, create: createXlaDevice });
registerPopulationEvaluator('xla', { module: new URL('./evaluator.js', import.meta.url).href, export: 'createXlaPopulationEvaluator' });

export { XlaDevice, configureXla, createXlaDevice, type XlaOptions, type XlaExecutorKind } from './device.js';
export { XlaPopulationEvaluator, createXlaPopulationEvaluator } from './evaluator.js';
export { XlaEsStepper, xlaEsStep, type EsStepResult } from './stepper.js';
export { esStepProgram, type EsStepSpec, type EsScheme } from './esstep.js';
export { evaluateProgram, noiseSumProgram, type PopulationShape, type Precision } from './population.js';
export { lowerOp, registerLowering, loweredOps } from './lowering.js';
export { PjrtExecutor, tpuChips, loadPjrtAddon } from './pjrt.js';
export { JaxRunner, jaxAvailability } from './jax-runner.js';
export { compileOptionsProto } from './compile-options.js';
export type { XlaExecutor, HostArray } from './executor.js';
export type { Program } from './hlo.js';
