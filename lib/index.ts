/** evometa public API (re-exports only). */
export * from './tensor/tensor.js';
export * from './tensor/shape.js';
export * from './ops/contract.js';
export * from './ops/api.js';
export * from './device/registry.js';
export * from './device/cpu-ts/index.js';
export * from './rng/philox.js';
export * from './model/layout.js';
export * from './model/init.js';
export * from './model/protonet.js';
export * from './model/checkpoint.js';
export * from './io/safetensors.js';
export * from './io/atomic.js';
export * from './optim/optimizers.js';
export * from './train/progress.js';
export * from './train/metrics.js';
