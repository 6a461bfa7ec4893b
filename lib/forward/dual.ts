/**
 * Forward-mode differentiation: TensorOps<Dual>. A Dual carries a value and
 * K tangents at once (vector forward mode): `t` has shape [K, ...value shape],
 * or is null for a symbolic zero (a constant, or a parameter none of the K
 * directions touches). Values run on the device; the tangent rules (JVPs) are
 * in rules-*.ts beside this file, one function per op family.
 */
import type { Device } from '../device/registry.js';
import type { BnTrainResult, TensorOps } from '../ops/api.js';
import { sliceRowsTensor } from '../ops/api.js';
import type { Conv2dAttrs, PoolAttrs } from '../ops/contract.js';
import { Tensor } from '../tensor/tensor.js';
import { conv2dJvp } from './rules-conv.js';
import { bnEvalJvp, bnTrainJvp } from './rules-bn.js';
import {
  cosineJvp, crossEntropyJvp, logSoftmaxJvp, maxpoolJvp, prototypesJvp, reluJvp, scaleJvp, sliceRowsJvp, sqEuclideanJvp,
} from './rules-misc.js';
import { rotateJvp } from './rules-rotate.js';

export interface Dual {
  readonly v: Tensor;
  /** [K, ...v.shape] or null (zero). */
  readonly t: Tensor | null;
}

export class DualOps implements TensorOps<Dual> {
  /**
   * @param device runs the value kernels (and conv2d for tangents)
   * @param k number of tangents carried at once
   */
  constructor(readonly device: Device, readonly k: number) {
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`DualOps: number of tangents k must be a positive integer, got ${k}`);
  }

  protected out(v: Tensor, t: Tensor | null): Dual {
    return { v, t };
  }

  /** A dual with the given tangent ([K, ...v.shape]) or none. */
  dual(v: Tensor, t: Tensor | null = null): Dual {
    if (t && (t.shape[0] !== this.k || t.size !== this.k * v.size)) {
      throw new RangeError(`tangent shape [${t.shape.join(', ')}] does not match ${this.k} tangents of a value of shape [${v.shape.join(', ')}]`);
    }
    return { v, t };
  }

  constant(t: Tensor): Dual { return { v: t, t: null }; }
  value(d: Dual): Tensor { return d.v; }

  conv2d(x: Dual, w: Dual, b: Dual | undefined, attrs: Conv2dAttrs): Dual {
    const y = this.device.run('conv2d', b ? { x: x.v, w: w.v, b: b.v } : { x: x.v, w: w.v }, attrs);
    return this.out(y, conv2dJvp(this.device, this.k, x, w, b, attrs, y));
  }

  batchnorm2dTrain(x: Dual, gamma: Dual, beta: Dual, eps: number): BnTrainResult<Dual> {
    const r = this.device.run('batchnorm2dTrain', { x: x.v, gamma: gamma.v, beta: beta.v }, { eps });
    const t = bnTrainJvp(this.k, x, gamma, beta, r.mean, r.invStd);
    return { y: this.out(r.y, t), mean: r.mean, variance: r.variance };
  }

  batchnorm2dEval(x: Dual, gamma: Dual, beta: Dual, runningMean: Tensor, runningVar: Tensor, eps: number): Dual {
    const y = this.device.run('batchnorm2dEval', { x: x.v, gamma: gamma.v, beta: beta.v, runningMean, runningVar }, { eps });
    return this.out(y, bnEvalJvp(this.k, x, gamma, beta, runningMean, runningVar, eps));
  }

  relu(x: Dual): Dual {
    return this.out(this.device.run('relu', { x: x.v }, {}), reluJvp(this.k, x));
  }

  maxpool2d(x: Dual, attrs: PoolAttrs): Dual {
    const r = this.device.run('maxpool2d', { x: x.v }, attrs);
    return this.out(r.y, maxpoolJvp(this.k, x, r.argmax, r.y.shape));
  }

  reshape(x: Dual, shape: readonly number[]): Dual {
    return { v: x.v.reshape(shape), t: x.t ? x.t.reshape([this.k, ...shape]) : null };
  }

  sliceRows(x: Dual, start: number, end: number): Dual {
    const v = sliceRowsTensor(x.v, start, end);
    return this.out(v, sliceRowsJvp(this.k, x, start, end));
  }

  prototypes(support: Dual, labels: Int32Array, way: number): Dual {
    const p = this.device.run('prototypes', { support: support.v, labels }, { way });
    return this.out(p, prototypesJvp(this.k, support, labels, way));
  }

  sqEuclidean(q: Dual, p: Dual): Dual {
    return this.out(this.device.run('sqEuclidean', { q: q.v, p: p.v }, {}), sqEuclideanJvp(this.k, q, p));
  }

  cosine(q: Dual, p: Dual, eps: number): Dual {
    return this.out(this.device.run('cosine', { q: q.v, p: p.v }, { eps }), cosineJvp(this.k, q, p, eps));
  }

  scale(x: Dual, alpha: number): Dual {
    return this.out(this.device.run('scale', { x: x.v }, { alpha }), scaleJvp(x, alpha));
  }

  logSoftmax(x: Dual): Dual {
    const y = this.device.run('logSoftmax', { x: x.v }, {});
    return this.out(y, logSoftmaxJvp(this.k, x, y));
  }

  crossEntropy(logp: Dual, labels: Int32Array): Dual {
    const l = this.device.run('crossEntropy', { logp: logp.v, labels }, {});
    return this.out(l, crossEntropyJvp(this.k, logp, labels));
  }

  rotate(x: Dual, angle: Dual): Dual {
    const y = this.device.run('rotate', { x: x.v, angle: angle.v }, {});
    return this.out(y, rotateJvp(this.device, this.k, x, angle, y));
  }
}

/**
 * Leaf tangents for the basis directions [start, start + k) of a flat parameter
 * vector: direction j is e_j. A parameter tensor at [offset, offset + size) gets
 * a one-hot tangent slice per direction inside it, and a symbolic zero when no
 * direction falls inside it (so the JVP skips everything upstream of it).
 */
export function basisLeaf(
  entries: readonly { name: string; offset: number; size: number; shape: readonly number[] }[],
  start: number, k: number,
): (name: string, value: Tensor) => Dual {
  const byName = new Map(entries.map((e) => [e.name, e]));
  return (name, value) => {
    const e = byName.get(name);
    if (!e) throw new RangeError(`basisLeaf: no parameter named ${name}`);
    const lo = Math.max(start, e.offset), hi = Math.min(start + k, e.offset + e.size);
    if (lo >= hi) return { v: value, t: null };
    const t = Tensor.zeros([k, ...e.shape], value.dtype);
    for (let j = lo; j < hi; j++) t.data[(j - start) * e.size + (j - e.offset)] = 1;
    return { v: value, t };
  };
}
