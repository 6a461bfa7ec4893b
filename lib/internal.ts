/**
 * evometa/internal: every module of the library, re-exported whole, for the repository's own
 * tools and for advanced users (new devices, kernels, lowerings, evaluators, the memory study).
 * UNSTABLE: anything here may change or disappear in any release. The supported API is the
 * curated one in lib/index.ts (`import … from 'evometa'`).
 *
 * Add every new module here (`export * from './path.js';`), in layer order; a name exported by
 * two modules is a compile error here, so keep names unique across the library.
 */
export * from './errors.js';
export * from './version.js';
export * from './tensor/tensor.js';
export * from './tensor/shape.js';
export * from './ops/contract.js';
export * from './ops/api.js';
export * from './device/registry.js';
export * from './device/cpu-ts/index.js';
export * from './device/cpu-native/index.js';
export * from './device/xla/index.js';
export * from './rng/philox.js';
export * from './model/layout.js';
export * from './model/init.js';
export * from './model/protonet.js';
export * from './model/score.js';
export * from './model/checkpoint.js';
export * from './io/safetensors.js';
export * from './io/atomic.js';
export * from './optim/optimizers.js';
export * from './train/progress.js';
export * from './train/metrics.js';
export * from './train/metrics-sinks.js';
export * from './report/index.js';
export * from './data/raw.js';
export * from './data/errors.js';
export * from './data/lake-zip.js';
export * from './data/embedded.js';
export * from './data/preprocess.js';
export * from './data/cache.js';
export * from './data/omniglot.js';
export * from './data/splits.js';
export * from './data/sampler.js';
export * from './eval/evaluate.js';
export * from './autodiff/memory.js';
export * from './autodiff/gradients.js';
export * from './autodiff/tape.js';
export * from './autodiff/gradcheck.js';
export * from './autodiff/protonet.js';
export * from './methods/backprop/config.js';
export * from './train/backprop-source.js';
export * from './methods/backprop/method.js';
export * from './forward/dual.js';
export * from './forward/jacobian.js';
export * from './forward/protonet.js';
export * from './maml/layout.js';
export * from './maml/head.js';
export * from './maml/metagrad.js';
export * from './maml/train.js';
export * from './ops/accounting.js';
export * from './memory/episodes.js';
export * from './memory/cases.js';
export * from './memory/sweep.js';
export * from './memory/report.js';
export * from './es/population.js';
export * from './es/noise.js';
export * from './es/estimators.js';
export * from './es/evaluators.js';
export * from './es/population-ts.js';
export * from './es/function-evaluator.js';
export * from './es/runner.js';
export * from './es/schedule.js';
export * from './es/strategy.js';
export * from './es/strategies.js';
export * from './es/objective.js';
export * from './methods/protonet-es/config.js';
export * from './train/collapse.js';
export * from './train/loop.js';
export * from './train/method.js';
export * from './train/run-files.js';
export * from './es/validate.js';
export * from './methods/protonet-es/method.js';
export * from './methods/protonet-es/presets.js';
export * from './methods/protonet/data.js';
export * from './data/synthetic.js';
export * from './eval/stats.js';
export * from './export/source.js';
export * from './export/onnx.js';
export * from './export/pytorch.js';
