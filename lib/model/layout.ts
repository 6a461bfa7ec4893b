/**
 * ProtoNet ConvNet-4 parameter layout: ONE flat parameter vector with named
 * views, names as PyTorch's state_dict of
 *   encoder = nn.Sequential(4 x nn.Sequential(Conv2d(cin, C, 3, padding=1), BatchNorm2d(C), ReLU(), MaxPool2d(2)))
 * BN running statistics are buffers beside it (not perturbed by ES).
 */
import { Tensor, type FloatArray } from '../tensor/tensor.js';
import { convOutSize, poolOutSize } from '../tensor/shape.js';

export interface ModelConfig {
  /** Channels in every block (Snell et al.: 64; the paper also 16 and 32). */
  channels: number;
  /** Input image side (28 or 32); inputs are 1 x size x size. */
  imageSize: number;
  inChannels: number;
  blocks: number;
  /** BN epsilon and momentum (PyTorch defaults). */
  bnEps: number;
  bnMomentum: number;
}

/** Snell et al.'s ConvNet-4 on 28x28 Omniglot: 64 channels, 4 blocks, PyTorch's BatchNorm eps and momentum. */
export const DEFAULT_MODEL: ModelConfig = { channels: 64, imageSize: 28, inChannels: 1, blocks: 4, bnEps: 1e-5, bnMomentum: 0.1 };

export function modelConfig(partial: Partial<ModelConfig> = {}): ModelConfig {
  const c = { ...DEFAULT_MODEL, ...partial };
  for (const k of ['channels', 'imageSize', 'inChannels', 'blocks'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new RangeError(`model config: ${k} must be a positive integer, got ${c[k]}`);
  }
  if (!(c.bnEps > 0)) throw new RangeError(`model config: bnEps must be > 0, got ${c.bnEps}`);
  if (!(c.bnMomentum >= 0 && c.bnMomentum <= 1)) throw new RangeError(`model config: bnMomentum must be in [0, 1], got ${c.bnMomentum}`);
  return c;
}

/** One named tensor in the flat parameter (or buffer) vector: PyTorch state_dict name, shape, offset, size. */
export interface LayoutEntry { name: string; shape: number[]; offset: number; size: number }

/** The ConvNet-4 ProtoNet's parameters as one flat vector with named views (PyTorch state_dict names and order). */
export class ProtoNetLayout {
  readonly config: ModelConfig;
  /** Parameters in the flat vector, in state_dict order. */
  readonly params: LayoutEntry[] = [];
  /** Running statistics in the flat buffer vector (running_mean, running_var per block). */
  readonly buffers: LayoutEntry[] = [];
  readonly numParams: number;
  readonly numBuffers: number;
  /** Spatial side after each block, and the embedding size. */
  readonly featureSides: number[] = [];
  readonly embeddingSize: number;

  constructor(config: Partial<ModelConfig> = {}) {
    this.config = modelConfig(config);
    const { channels: c, inChannels, blocks } = this.config;
    let p = 0, b = 0, side = this.config.imageSize;
    const add = (list: LayoutEntry[], name: string, shape: number[], at: number): number => {
      const size = shape.reduce((x, y) => x * y, 1);
      list.push({ name, shape, offset: at, size });
      return at + size;
    };
    for (let i = 0; i < blocks; i++) {
      const cin = i === 0 ? inChannels : c;
      p = add(this.params, `encoder.${i}.0.weight`, [c, cin, 3, 3], p);
      p = add(this.params, `encoder.${i}.0.bias`, [c], p);
      p = add(this.params, `encoder.${i}.1.weight`, [c], p);
      p = add(this.params, `encoder.${i}.1.bias`, [c], p);
      b = add(this.buffers, `encoder.${i}.1.running_mean`, [c], b);
      b = add(this.buffers, `encoder.${i}.1.running_var`, [c], b);
      side = poolOutSize(convOutSize(side, 3, 1, 1), 2, 2);
      this.featureSides.push(side);
    }
    this.numParams = p;
    this.numBuffers = b;
    this.embeddingSize = c * side * side;
  }

  param(name: string): LayoutEntry {
    const e = this.params.find((x) => x.name === name);
    if (!e) throw new RangeError(`no parameter named ${name}`);
    return e;
  }

  buffer(name: string): LayoutEntry {
    const e = this.buffers.find((x) => x.name === name);
    if (!e) throw new RangeError(`no buffer named ${name}`);
    return e;
  }

  /** A tensor viewing (not copying) the named parameter inside the flat vector. */
  view(flat: FloatArray, name: string): Tensor {
    this.checkParams(flat);
    const e = this.param(name);
    return new Tensor(flat.subarray(e.offset, e.offset + e.size), e.shape);
  }

  bufferView(buffers: FloatArray, name: string): Tensor {
    if (buffers.length !== this.numBuffers) throw new RangeError(`buffer vector has ${buffers.length} elements, layout needs ${this.numBuffers}`);
    const e = this.buffer(name);
    return new Tensor(buffers.subarray(e.offset, e.offset + e.size), e.shape);
  }

  checkParams(flat: FloatArray): void {
    if (flat.length !== this.numParams) throw new RangeError(`parameter vector has ${flat.length} elements, layout needs ${this.numParams}`);
  }
}

/** Model state beside the parameter vector: BN running statistics and PyTorch's num_batches_tracked. */
export interface BnState {
  buffers: Float32Array;
  numBatchesTracked: number;
}

/** BatchNorm running statistics as PyTorch initializes them: means 0, variances 1. */
export function initialBnState(layout: ProtoNetLayout): BnState {
  const buffers = new Float32Array(layout.numBuffers);
  for (const e of layout.buffers) if (e.name.endsWith('running_var')) buffers.fill(1, e.offset, e.offset + e.size);
  return { buffers, numBatchesTracked: 0 };
}
