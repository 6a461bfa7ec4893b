/**
 * The gradient registry: one backward per tape op, registered by op name and
 * shared by every device (each backward runs the device's kernels through
 * device.run). What each op saves for its backward is typed in SavedSpecs.
 */
import type { Device } from '../device/registry.js';
import type { Conv2dAttrs } from '../ops/contract.js';
import type { Tensor } from '../tensor/tensor.js';

/** What the tape keeps for each op's backward (and nothing else). */
export interface SavedSpecs {
  /** x is kept only when w or b needs a gradient, w only when x does. */
  conv2d: { x?: Tensor; w?: Tensor; attrs: Conv2dAttrs; xShape: readonly number[]; wShape: readonly number[] };
  batchnorm2dTrain: { x: Tensor; gamma: Tensor; mean: Tensor; invStd: Tensor };
  batchnorm2dEval: { x: Tensor; gamma: Tensor; runningMean: Tensor; runningVar: Tensor; eps: number };
  relu: { x: Tensor };
  maxpool2d: { argmax: Int32Array; inputShape: readonly number[] };
  /** y is the op's own (pooled) output: its sign is ReLU's mask. */
  bnReluPool: { x: Tensor; gamma: Tensor; mean: Tensor; invStd: Tensor; y: Tensor; argmax: Int32Array };
  reshape: { inputShape: readonly number[] };
  sliceRows: { inputShape: readonly number[]; start: number; end: number };
  prototypes: { labels: Int32Array; way: number };
  sqEuclidean: { q: Tensor; p: Tensor };
  cosine: { q: Tensor; p: Tensor; eps: number };
  scale: { alpha: number };
  logSoftmax: { y: Tensor };
  crossEntropy: { logp: Tensor; labels: Int32Array };
  /** a is kept only when b needs a gradient, b only when a does. */
  matmul: { a?: Tensor; b?: Tensor; transA: boolean; transB: boolean };
  add: { aShape: readonly number[]; bShape: readonly number[] };
  /** a is kept only when b needs a gradient, b only when a does. */
  mul: { a?: Tensor; b?: Tensor; bShape: readonly number[] };
  sumTo: { inputShape: readonly number[] };
  sigmoid: { y: Tensor };
  tanh: { y: Tensor };
  rotate: { x: Tensor; angle: Tensor };
}

export type TapeOp = keyof SavedSpecs;

export const TAPE_OPS: readonly TapeOp[] = [
  'conv2d', 'batchnorm2dTrain', 'batchnorm2dEval', 'relu', 'maxpool2d', 'bnReluPool', 'reshape', 'sliceRows',
  'prototypes', 'sqEuclidean', 'cosine', 'scale', 'logSoftmax', 'crossEntropy',
  'matmul', 'add', 'mul', 'sumTo', 'sigmoid', 'tanh', 'rotate',
];

export interface GradContext<K extends TapeOp> {
  device: Device;
  saved: SavedSpecs[K];
  /** needs[i]: whether input i (in the op's argument order) wants a gradient. */
  needs: readonly boolean[];
}

/**
 * Given dy (the gradient of the output), the gradients of the op's inputs in
 * argument order; undefined where an input needs none. The returned tensors
 * become the tape's (it may add into them in place).
 */
export type GradFn<K extends TapeOp> = (dy: Tensor, ctx: GradContext<K>) => readonly (Tensor | undefined)[];

const registry = new Map<TapeOp, GradFn<TapeOp>>();

export function registerGradient<K extends TapeOp>(op: K, fn: GradFn<K>): void {
  if (registry.has(op)) throw new Error(`a gradient for op ${op} is already registered`);
  registry.set(op, fn as unknown as GradFn<TapeOp>);
}

export function getGradient<K extends TapeOp>(op: K): GradFn<K> {
  const fn = registry.get(op);
  if (!fn) throw new Error(`no gradient registered for op ${op}`);
  return fn as unknown as GradFn<K>;
}

export function hasGradient(op: TapeOp): boolean {
  return registry.has(op);
}

/**
 * Run `body` with op's gradient replaced by `fn`, restoring the registered one
 * afterwards (also on throw). For tests that show a wrong backward is caught.
 * `body` must be synchronous.
 */
export function withGradient<K extends TapeOp, T>(op: K, fn: GradFn<K>, body: () => T): T {
  const old = registry.get(op);
  registry.set(op, fn as unknown as GradFn<TapeOp>);
  try {
    const r = body();
    if (r instanceof Promise) throw new Error('withGradient: body must be synchronous');
    return r;
  } finally {
    if (old) registry.set(op, old);
    else registry.delete(op);
  }
}
