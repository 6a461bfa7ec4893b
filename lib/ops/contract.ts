/**
 * The op contract: every op's name, typed inputs, attributes and outputs.
 * Devices implement kernels for these names; gradients (lib/autodiff) are
 * registered by op name and are shared by every device.
 *
 * Layout conventions: images are NCHW; embeddings are [rows, features];
 * labels are Int32Array class indices in [0, way).
 */
import type { Tensor } from '../tensor/tensor.js';

export interface Conv2dAttrs { stride: number; padding: number }
export interface PoolAttrs { kernel: number; stride: number }
export interface BatchNormAttrs { eps: number }
export interface MatmulAttrs { transA: boolean; transB: boolean }

export interface OpSpecs {
  /** y[n,co,oh,ow] = b[co] + sum_{ci,i,j} x[n,ci,oh*s-p+i,ow*s-p+j] * w[co,ci,i,j] (zero padding). */
  conv2d: { inputs: { x: Tensor; w: Tensor; b?: Tensor }; attrs: Conv2dAttrs; output: Tensor };
  /** dx for conv2d, given dy and w; attrs.inputShape is x's shape. */
  conv2dBackwardInput: { inputs: { dy: Tensor; w: Tensor }; attrs: Conv2dAttrs & { inputShape: readonly number[] }; output: Tensor };
  /** dw (and db = sum of dy over n, h, w) for conv2d, given dy and x. */
  conv2dBackwardWeight: { inputs: { dy: Tensor; x: Tensor }; attrs: Conv2dAttrs & { weightShape: readonly number[] }; output: { dw: Tensor; db: Tensor } };

  /** Training-mode BN with batch statistics over (N, H, W); var is the biased batch variance, invStd = 1/sqrt(var + eps). */
  batchnorm2dTrain: { inputs: { x: Tensor; gamma: Tensor; beta: Tensor }; attrs: BatchNormAttrs; output: { y: Tensor; mean: Tensor; variance: Tensor; invStd: Tensor } };
  /** Eval-mode BN with running statistics. */
  batchnorm2dEval: { inputs: { x: Tensor; gamma: Tensor; beta: Tensor; runningMean: Tensor; runningVar: Tensor }; attrs: BatchNormAttrs; output: Tensor };
  /** Gradient of training-mode BN (through the batch statistics). */
  batchnorm2dBackward: { inputs: { dy: Tensor; x: Tensor; gamma: Tensor; mean: Tensor; invStd: Tensor }; attrs: Record<string, never>; output: { dx: Tensor; dgamma: Tensor; dbeta: Tensor } };

  relu: { inputs: { x: Tensor }; attrs: Record<string, never>; output: Tensor };
  /** dx = dy where x > 0 else 0. */
  reluBackward: { inputs: { dy: Tensor; x: Tensor }; attrs: Record<string, never>; output: Tensor };

  /** Max-pool, floor mode; argmax holds the flat input index of each output's maximum (first one on ties). */
  maxpool2d: { inputs: { x: Tensor }; attrs: PoolAttrs; output: { y: Tensor; argmax: Int32Array } };
  maxpool2dBackward: { inputs: { dy: Tensor; argmax: Int32Array }; attrs: { inputShape: readonly number[] }; output: Tensor };

  /**
   * One ConvNet-4 block tail, fused: training-mode BN, ReLU, then max-pool with kernel 2 and stride 2
   * (floor mode). Exactly maxpool2d(relu(batchnorm2dTrain(x).y), { kernel: 2, stride: 2 }): y is
   * the pooled output [N, C, floor(H/2), floor(W/2)] and argmax the flat index into x of each
   * window's maximum (maxpool2d's rule), with batchnorm2dTrain's mean, variance and invStd. The
   * BN and ReLU outputs are never materialized.
   */
  bnReluPool: { inputs: { x: Tensor; gamma: Tensor; beta: Tensor }; attrs: BatchNormAttrs; output: { y: Tensor; argmax: Int32Array; mean: Tensor; variance: Tensor; invStd: Tensor } };
  /**
   * The gradient of bnReluPool given dy (shaped like its y): the gradient passes to x[argmax]
   * where ReLU passed its input (the pooled y is > 0 or NaN), and then through the batch
   * statistics as batchnorm2dBackward does. Equal to batchnorm2dBackward(reluBackward(
   * maxpool2dBackward(dy, argmax), bn output), x, gamma, mean, invStd).
   */
  bnReluPoolBackward: { inputs: { dy: Tensor; y: Tensor; argmax: Int32Array; x: Tensor; gamma: Tensor; mean: Tensor; invStd: Tensor }; attrs: Record<string, never>; output: { dx: Tensor; dgamma: Tensor; dbeta: Tensor } };

  /** Class prototypes: mean of each class's rows of `support` [S, E]; output [way, E]. Every class must have a row. */
  prototypes: { inputs: { support: Tensor; labels: Int32Array }; attrs: { way: number }; output: Tensor };
  prototypesBackward: { inputs: { dproto: Tensor; labels: Int32Array }; attrs: { way: number }; output: Tensor };

  /** d[m,k] = sum_e (q[m,e] - p[k,e])^2 ; q [M,E], p [K,E] -> [M,K]. */
  sqEuclidean: { inputs: { q: Tensor; p: Tensor }; attrs: Record<string, never>; output: Tensor };
  sqEuclideanBackward: { inputs: { dd: Tensor; q: Tensor; p: Tensor }; attrs: Record<string, never>; output: { dq: Tensor; dp: Tensor } };
  /** c[m,k] = <q_m, p_k> / (max(|q_m|, eps) * max(|p_k|, eps)). */
  cosine: { inputs: { q: Tensor; p: Tensor }; attrs: { eps: number }; output: Tensor };
  cosineBackward: { inputs: { dc: Tensor; q: Tensor; p: Tensor }; attrs: { eps: number }; output: { dq: Tensor; dp: Tensor } };

  /** y = alpha * x (e.g. logits = -distance); its gradient is itself with the same alpha. */
  scale: { inputs: { x: Tensor }; attrs: { alpha: number }; output: Tensor };

  /** Row-wise log-softmax of [M, K]. */
  logSoftmax: { inputs: { x: Tensor }; attrs: Record<string, never>; output: Tensor };
  /** dx = dy - softmax(x) * sum_k dy, given y = logSoftmax(x). */
  logSoftmaxBackward: { inputs: { dy: Tensor; y: Tensor }; attrs: Record<string, never>; output: Tensor };

  /** Mean negative log-likelihood: -(1/M) sum_m logp[m, labels[m]]; a scalar tensor of shape []. */
  crossEntropy: { inputs: { logp: Tensor; labels: Int32Array }; attrs: Record<string, never>; output: Tensor };
  crossEntropyBackward: { inputs: { dloss: number; logp: Tensor; labels: Int32Array }; attrs: Record<string, never>; output: Tensor };

  /**
   * Bilinear rotation of an image batch x [N, C, H, W] by angle[0] radians (angle has shape [1]),
   * counter-clockwise as displayed (row 0 at the top), about the centre (cx, cy) = ((W-1)/2, (H-1)/2)
   * in pixel-centre coordinates; samples outside the image read 0. Output pixel (row i, column j)
   * reads the input at column u = cx + (j-cx) cos a - (i-cy) sin a, row v = cy + (j-cx) sin a + (i-cy) cos a,
   * bilinearly: j0 = floor(u), fu = u - j0 (i0, fv likewise), y = (1-fu)(1-fv) x[i0][j0] + fu(1-fv) x[i0][j0+1]
   * + (1-fu)fv x[i0+1][j0] + fu fv x[i0+1][j0+1]. a = pi/2 is lib/data/preprocess.ts's 90 degrees
   * (out[i][j] = in[j][W-1-i]); a = 0 is the identity.
   */
  rotate: { inputs: { x: Tensor; angle: Tensor }; attrs: Record<string, never>; output: Tensor };
  /**
   * Gradients of rotate given dy: dx (dy resampled back with the same weights) and dangle [1] =
   * sum dy * dy_out/da, where the derivative of the bilinear weights is taken on the cell [j0, j0+1] x
   * [i0, i0+1] of the floor convention: at an integer sample coordinate it is the one-sided derivative
   * from above (PyTorch grid_sample's convention); elsewhere it is the exact derivative.
   */
  rotateBackward: { inputs: { dy: Tensor; x: Tensor; angle: Tensor }; attrs: Record<string, never>; output: { dx: Tensor; dangle: Tensor } };

  /** Fraction of rows whose argmax (first on ties) equals the label. Not differentiable. */
  accuracy: { inputs: { scores: Tensor; labels: Int32Array }; attrs: Record<string, never>; output: number };

  // Dense ops (the learned optimizer's LSTM, small optimizees). Broadcasting: b's shape, aligned to a's
  // trailing dimensions, has each dimension equal to a's or 1 (numpy rules, one way); the output has a's shape.
  /** y = op(a) op(b) for rank-2 a, b; op(a) = a^T when transA (a is [K, M]), else a ([M, K]); likewise b ([K, N] or [N, K]). Output [M, N]. */
  matmul: { inputs: { a: Tensor; b: Tensor }; attrs: MatmulAttrs; output: Tensor };
  /** y = a + b, b broadcast to a's shape. */
  add: { inputs: { a: Tensor; b: Tensor }; attrs: Record<string, never>; output: Tensor };
  /** y = a * b (elementwise), b broadcast to a's shape. */
  mul: { inputs: { a: Tensor; b: Tensor }; attrs: Record<string, never>; output: Tensor };
  /** The adjoint of broadcasting: x summed over the dimensions that broadcasting `shape` to x's shape repeats; output has `shape`. */
  sumTo: { inputs: { x: Tensor }; attrs: { shape: readonly number[] }; output: Tensor };
  /** y = 1 / (1 + exp(-x)). */
  sigmoid: { inputs: { x: Tensor }; attrs: Record<string, never>; output: Tensor };
  /** dx = dy * y * (1 - y), given y = sigmoid(x). */
  sigmoidBackward: { inputs: { dy: Tensor; y: Tensor }; attrs: Record<string, never>; output: Tensor };
  tanh: { inputs: { x: Tensor }; attrs: Record<string, never>; output: Tensor };
  /** dx = dy * (1 - y^2), given y = tanh(x). */
  tanhBackward: { inputs: { dy: Tensor; y: Tensor }; attrs: Record<string, never>; output: Tensor };
}

export type OpName = keyof OpSpecs;
export type OpInputs<K extends OpName> = OpSpecs[K]['inputs'];
export type OpAttrs<K extends OpName> = OpSpecs[K]['attrs'];
export type OpOutput<K extends OpName> = OpSpecs[K]['output'];

export type Kernel<K extends OpName> = (inputs: OpInputs<K>, attrs: OpAttrs<K>) => OpOutput<K>;

export const OP_NAMES: readonly OpName[] = [
  'conv2d', 'conv2dBackwardInput', 'conv2dBackwardWeight',
  'batchnorm2dTrain', 'batchnorm2dEval', 'batchnorm2dBackward',
  'relu', 'reluBackward', 'maxpool2d', 'maxpool2dBackward', 'bnReluPool', 'bnReluPoolBackward',
  'prototypes', 'prototypesBackward', 'sqEuclidean', 'sqEuclideanBackward', 'cosine', 'cosineBackward',
  'scale', 'logSoftmax', 'logSoftmaxBackward', 'crossEntropy', 'crossEntropyBackward', 'accuracy',
  'matmul', 'add', 'mul', 'sumTo', 'sigmoid', 'sigmoidBackward', 'tanh', 'tanhBackward',
  'rotate', 'rotateBackward',
];
