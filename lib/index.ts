/**
 * evometa's public API: `import { … } from 'evometa'`. Re-exports only, by name, in groups.
 * Everything here is documented (npm run docs) and kept stable within a minor version; the
 * repository's own tests, benches and CLI import what else they need from lib/ paths, and
 * `evometa/internal` (lib/internal.ts) re-exports every module for advanced use, without any
 * stability promise.
 *
 * Adding a module (a new method, device, data source, ...):
 *  1. add `export * from './your/module.js';` to lib/internal.ts (its place in the layer order);
 *  2. if users need it, add the names they need here, BY NAME, in the group it belongs to (or a
 *     new group with a `// ---` heading and a one-line comment), each with a doc comment at
 *     its definition;
 *  3. add the same names to the allow-list in test/api.test.ts (the test fails on any export it
 *     does not list, so every public name is a decision), and run `npm run docs` to check the
 *     generated page.
 * Importing this module registers the devices (cpu-ts, cpu-native, xla) and nothing else runs:
 * devices initialize lazily, on first use.
 */

// --- Errors: what the library throws for the caller's mistakes, each naming the field, option or file.
export { UserError } from './errors.js';
export { OmniglotDataError } from './data/errors.js';
export { SafetensorsError } from './io/safetensors.js';

// --- Version of this package (recorded in checkpoints and exports).
export { VERSION } from './version.js';

// --- Devices: the best available by default (cpu-native, else cpu-ts); xla only when named.
import './device/cpu-ts/index.js';
export {
  getDevice, defaultDevice, deviceReport, registeredDevices, DeviceUnavailableError,
  type Device, type DeviceInfo, type DeviceStatus, type DeviceChoice,
} from './device/registry.js';
export { nativeInfo, nativeLimits, setNativeThreads, setNativeIsa, type NativeInfo, type NativeLimits } from './device/cpu-native/index.js';
export { configureXla, type XlaOptions, type XlaExecutorKind } from './device/xla/index.js';
export type { Precision } from './device/xla/population.js';

// --- Tensors and ops: models are written once against TensorOps and run on any device.
export { Tensor, type DType, type FloatArray } from './tensor/tensor.js';
export { DirectOps, type TensorOps, type BnTrainResult } from './ops/api.js';
export type { Conv2dAttrs, PoolAttrs } from './ops/contract.js';
export { Rng } from './rng/philox.js';

// --- Model: the ProtoNet ConvNet-4 as one flat parameter vector (PyTorch state_dict names).
export { ProtoNetLayout, initialBnState, DEFAULT_MODEL, type ModelConfig, type BnState, type LayoutEntry } from './model/layout.js';
export { initParams } from './model/init.js';
export {
  embed, episodeLoss,
  type Episode, type EpisodeOutput, type LossOptions, type ForwardOptions, type BnMode, type Distance,
} from './model/protonet.js';
export { evaluateEpisode, type EpisodeResult, type EvaluateEpisodeOptions } from './model/score.js';
export { episodeGradient, type EpisodeGradient } from './autodiff/protonet.js';

// --- Checkpoints: safetensors files PyTorch loads unchanged; a run's resumable state.
export { saveCheckpoint, loadCheckpoint, type ProtoNetState, type LoadedCheckpoint } from './model/checkpoint.js';
export {
  readSafetensors, writeSafetensors,
  type StData, type StDType, type StTensor, type SafetensorsFile, type SafetensorsHeader, type StEntry, type ReadSafetensorsOptions,
} from './io/safetensors.js';
export { readRunState, resolveResumePath, type RunState, type LoopState } from './train/run-files.js';

// --- Data: the embedded Omniglot (or Lake's zips), class splits, seeded episode samplers.
export { loadOmniglot, OmniglotDataset, type LoadOmniglotOptions, type LoadProgress, type CacheInfo, type CacheStatus, type DataSource } from './data/omniglot.js';
export { getSplit, type SplitScheme, type SplitPart, type OmniglotSplit, type OmniglotClass, type GetSplitOptions } from './data/splits.js';
export type { Rotation } from './data/preprocess.js';
export { EpisodeSampler, type EpisodeSpec, type EpisodeDraw } from './data/sampler.js';
export { SyntheticEpisodes, type EpisodeSource, type SyntheticOptions } from './data/synthetic.js';
export {
  omniglotSources, omniglotTestSampler, TEST_SEED,
  type ProtoNetSources, type OmniglotSourceOptions, type SourceConfig, type EpisodeCounts,
} from './methods/protonet/data.js';

// --- ES core: ask/tell strategies on any objective (a function, or a module run on worker threads).
export {
  EvolutionStrategy, Generation, AbandonedError,
  type StrategyOptions, type TellResult, type StrategyState, type Scheme, type EsOptimizerName,
} from './es/strategy.js';
export { WSR, NES, OpenAIES, PGPE, SNES, FD, type NesOptions, type PgpeOptions, type SnesOptions, type FdOptions } from './es/strategies.js';
export { objectiveRunner, type Objective, type ObjectiveContext } from './es/objective.js';
export type { PopulationRunner } from './es/runner.js';
export type { NonFinitePolicy } from './es/estimators.js';
export type { Schedule, ScheduleKind } from './es/schedule.js';

// --- Distributed ES over Redis: coordinator runner and worker loop (ioredis loads on first use).
export {
  createRedisRunner, runClusterWorker, ClusterError, RedisUnavailableError, DEFAULT_SYNC,
  type SyncMode, type RedisRunnerOptions, type ClusterStats, type WorkerOptions, type WorkerSummary,
  type RedisConnectOptions, type DataDescriptor, type RunMeta,
} from './cluster/index.js';

// --- Training: the one loop every method plugs into, its metrics sinks, the methods and their presets.
export { runLoop, CollapseError, type LoopOptions, type LoopResult, type LoopEnd } from './train/loop.js';
export type { CollapseConfig } from './train/collapse.js';
export type { TrainMethod, StepMetrics, ValResult, MethodState, ExportedModel } from './train/method.js';
export { MetricsLog } from './train/metrics.js';
export { CsvMetricsSink, type MetricsSink } from './train/metrics-sinks.js';
export {
  esConfig, ES_PRESETS, ES_DEFAULT_PRESET, type EsPreset,
} from './methods/protonet-es/presets.js';
export type {
  EsConfig, EsConfigInput, EsEstimator, EsOptimizer, EsEpisodeShape, SigmaSchedule, LrSchedule, PopSchedule,
} from './methods/protonet-es/config.js';
export type { EsPrecision } from './methods/protonet-es/precision.js';
export { ProtoNetEsMethod, type EsMethodInit } from './methods/protonet-es/method.js';
export {
  backpropConfig, BACKPROP_PRESETS, BACKPROP_DEFAULT_PRESET,
  type BackpropPreset, type BackpropConfig, type BackpropConfigInput, type BackpropEpisodeShape, type BackpropOptimizer,
} from './methods/backprop/config.js';
export { BackpropMethod, type BackpropInit } from './methods/backprop/method.js';
export {
  resolveL2lConfig, L2L_PRESETS, DEFAULT_L2L_PRESET, type L2lConfig, type L2lConfigInput,
} from './l2l/config.js';
export { L2lMethod } from './l2l/method.js';

// --- EvoGrad (seed 003): first-order hypergradients from evolved copies, on the reverse-mode tape.
export {
  evoGradHypergradient, copyWeights, EVOGRAD_DEFAULTS, EvoGradWorkspace,
  type EvoGradSettings, type HyperObjective, type Hypergradient,
} from './evograd/hypergrad.js';
export { tapeObjective, type HyperProgram, type ProgramArgs, type ProgramMode, type TapeObjective } from './evograd/objective.js';
export { EvoGradLearner, type LearnerConfig, type LearnerStep, type LearnerState, type HypergradientFn } from './evograd/learner.js';
export { populationHypergradient, type CopyLosses, type PopulationCopies } from './evograd/population.js';
export { fdLookaheadHypergradient, FdWorkspace, type FdLookaheadResult } from './evograd/lookahead/fd.js';
export { UnrolledEsLearner, type UnrolledEsConfig, type UnrolledEsSettings, type UnrolledEsStep, type UnrolledEsState } from './evograd/unrolled.js';
export type { CopyNoise } from './evograd/noise.js';
export {
  resolveEvoGradConfig, EVOGRAD_PRESETS, DEFAULT_EVOGRAD_PRESET, EVOGRAD_MODES, type EvoGradConfig, type EvoGradConfigInput, type EvoGradMode, type CopyEval,
} from './evograd/config.js';
export { EvoGradMethod } from './evograd/method.js';

// --- Evaluation: few-shot accuracy of a checkpoint with a 95% interval.
export { evaluateCheckpoint, type EvalOptions, type EvalResult } from './eval/evaluate.js';
export { summarize, type Summary } from './eval/stats.js';

// --- Export: a checkpoint's encoder as ONNX or as a PyTorch module.
export { exportOnnx, ONNX_INPUT, ONNX_OUTPUT, type OnnxExportOptions, type OnnxBnMode } from './export/onnx.js';
export { exportPytorch } from './export/pytorch.js';
export type { ExportState } from './export/source.js';

// --- Reports: charts of one or more runs as self-contained HTML and SVG.
export {
  writeRunReport, readRun,
  type ReportOptions, type ReportResult, type RunData, type Chart, type MetricsPoint, type MetricsRecord,
  type MetricsStartRecord, type MetricsStepRecord, type MetricsValRecord, type MetricsTestRecord, type MetricsEndRecord, type MetricsResumeRecord,
} from './report/index.js';
