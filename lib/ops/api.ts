/**
 * The op set as a value-level API. Models are written once against
 * TensorOps<V>; DirectOps runs it on a device (V = Tensor), the tape in
 * lib/autodiff records it for reverse mode, and forward mode carries tangents.
 */
import type { Device } from '../device/registry.js';
import { Tensor } from '../tensor/tensor.js';
import type { Conv2dAttrs, PoolAttrs } from './contract.js';

export interface BnTrainResult<V> { y: V; mean: Tensor; variance: Tensor }

export interface TensorOps<V> {
  readonly device: Device;
  /** A constant (no gradient flows into it). */
  constant(t: Tensor): V;
  value(v: V): Tensor;
  conv2d(x: V, w: V, b: V | undefined, attrs: Conv2dAttrs): V;
  batchnorm2dTrain(x: V, gamma: V, beta: V, eps: number): BnTrainResult<V>;
  batchnorm2dEval(x: V, gamma: V, beta: V, runningMean: Tensor, runningVar: Tensor, eps: number): V;
  relu(x: V): V;
  maxpool2d(x: V, attrs: PoolAttrs): V;
  /**
   * Optional: training-mode BN, ReLU and 2x2 / 2 max-pool as one op (OpSpecs.bnReluPool); y is the
   * pooled output. Where present, the model uses it in place of those three ops in 'batch' BN mode.
   * The tape has it (its backward never sees the BN and ReLU outputs, so the tape does not keep them).
   */
  bnReluPool?(x: V, gamma: V, beta: V, eps: number): BnTrainResult<V>;
  reshape(x: V, shape: readonly number[]): V;
  /** Rows [start, end) of the first axis. */
  sliceRows(x: V, start: number, end: number): V;
  prototypes(support: V, labels: Int32Array, way: number): V;
  sqEuclidean(q: V, p: V): V;
  cosine(q: V, p: V, eps: number): V;
  scale(x: V, alpha: number): V;
  logSoftmax(x: V): V;
  crossEntropy(logp: V, labels: Int32Array): V;
  /** Bilinear rotation of images [N, C, H, W] by angle [1] radians, counter-clockwise (see OpSpecs.rotate); differentiable in both. */
  rotate(x: V, angle: V): V;
}

/**
 * The dense ops on values (lib/l2l's LSTM optimizer and small optimizees): DirectOps
 * and the tape implement them beside TensorOps. Broadcasting is one way: b to a's shape.
 */
export interface DenseOps<V> extends TensorOps<V> {
  matmul(a: V, b: V, transA?: boolean, transB?: boolean): V;
  add(a: V, b: V): V;
  mul(a: V, b: V): V;
  /** Sum x down to `shape` (the adjoint of broadcasting `shape` to x's shape); [] gives the total. */
  sumTo(x: V, shape: readonly number[]): V;
  sigmoid(x: V): V;
  tanh(x: V): V;
}

/** ops as DenseOps, or a clear error naming what it is. */
export function asDenseOps<V>(ops: TensorOps<V>): DenseOps<V> {
  const d = ops as Partial<DenseOps<V>>;
  if (typeof d.matmul !== 'function' || typeof d.sigmoid !== 'function') throw new TypeError(`${ops.constructor.name} does not implement the dense ops (matmul, add, mul, sumTo, sigmoid, tanh)`);
  return ops as DenseOps<V>;
}

export function sliceRowsTensor(t: Tensor, start: number, end: number): Tensor {
  const rows = t.shape[0]!;
  if (!(start >= 0 && end <= rows && start <= end)) throw new RangeError(`sliceRows [${start}, ${end}) outside ${rows} rows`);
  const inner = rows === 0 ? 0 : t.size / rows;
  return new Tensor(t.data.subarray(start * inner, end * inner), [end - start, ...t.shape.slice(1)]);
}

/** Plain forward evaluation on a device. */
export class DirectOps implements DenseOps<Tensor> {
  constructor(readonly device: Device) {}
  constant(t: Tensor): Tensor { return t; }
  value(v: Tensor): Tensor { return v; }
  conv2d(x: Tensor, w: Tensor, b: Tensor | undefined, attrs: Conv2dAttrs): Tensor {
    return this.device.run('conv2d', b ? { x, w, b } : { x, w }, attrs);
  }
  batchnorm2dTrain(x: Tensor, gamma: Tensor, beta: Tensor, eps: number): BnTrainResult<Tensor> {
    const r = this.device.run('batchnorm2dTrain', { x, gamma, beta }, { eps });
    return { y: r.y, mean: r.mean, variance: r.variance };
  }
  batchnorm2dEval(x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor, eps: number): Tensor {
    return this.device.run('batchnorm2dEval', { x, gamma, beta, runningMean, runningVar }, { eps });
  }
  relu(x: Tensor): Tensor { return this.device.run('relu', { x }, {}); }
  maxpool2d(x: Tensor, attrs: PoolAttrs): Tensor { return this.device.run('maxpool2d', { x }, attrs).y; }
  reshape(x: Tensor, shape: readonly number[]): Tensor { return x.reshape(shape); }
  sliceRows(x: Tensor, start: number, end: number): Tensor { return sliceRowsTensor(x, start, end); }
  prototypes(support: Tensor, labels: Int32Array, way: number): Tensor { return this.device.run('prototypes', { support, labels }, { way }); }
  sqEuclidean(q: Tensor, p: Tensor): Tensor { return this.device.run('sqEuclidean', { q, p }, {}); }
  cosine(q: Tensor, p: Tensor, eps: number): Tensor { return this.device.run('cosine', { q, p }, { eps }); }
  scale(x: Tensor, alpha: number): Tensor { return this.device.run('scale', { x }, { alpha }); }
  logSoftmax(x: Tensor): Tensor { return this.device.run('logSoftmax', { x }, {}); }
  crossEntropy(logp: Tensor, labels: Int32Array): Tensor { return this.device.run('crossEntropy', { logp, labels }, {}); }
  matmul(a: Tensor, b: Tensor, transA = false, transB = false): Tensor { return this.device.run('matmul', { a, b }, { transA, transB }); }
  add(a: Tensor, b: Tensor): Tensor { return this.device.run('add', { a, b }, {}); }
  mul(a: Tensor, b: Tensor): Tensor { return this.device.run('mul', { a, b }, {}); }
  sumTo(x: Tensor, shape: readonly number[]): Tensor { return this.device.run('sumTo', { x }, { shape }); }
  sigmoid(x: Tensor): Tensor { return this.device.run('sigmoid', { x }, {}); }
  tanh(x: Tensor): Tensor { return this.device.run('tanh', { x }, {}); }
  rotate(x: Tensor, angle: Tensor): Tensor { return this.device.run('rotate', { x, angle }, {}); }
}
