/**
 * Random quadratics, the first task of Andrychowicz et al. (2016):
 *   f(theta) = || W theta - y ||^2,   W [n, n] and y [n] with IID N(0, 1) entries,
 * theta_0 ~ N(0, 0.01^2) (their released code's initializer). A task here may also
 * draw n from `dims` and scale W by a factor from `scales`, so that a task
 * distribution can mix shapes and curvatures (what task clustering separates).
 */
import { Rng, STREAM } from '../../rng/philox.js';
import { allocLike, type FloatArray } from '../../tensor/tensor.js';
import { taskLane, type OptimizeeTask, type TaskEval, type TaskFamily, type TaskPart } from './task.js';

export interface QuadraticConfig {
  family: 'quadratic';
  /** n of each task, drawn uniformly from this list (Andrychowicz et al.: [10]). */
  dims: number[];
  /** W's entries are N(0, s^2) with s drawn uniformly from this list ([1]). */
  scales: number[];
  /** Standard deviation of theta_0's entries (0.01). */
  initStd: number;
  seed: number;
}

export const DEFAULT_QUADRATIC: QuadraticConfig = { family: 'quadratic', dims: [10], scales: [1], initStd: 0.01, seed: 0 };

export function checkQuadraticConfig(c: QuadraticConfig): void {
  if (!Array.isArray(c.dims) || c.dims.length === 0 || !c.dims.every((d) => Number.isInteger(d) && d >= 1 && d <= 4096)) throw new RangeError(`quadratic: dims must be a non-empty list of integers in [1, 4096], got ${JSON.stringify(c.dims)}`);
  if (!Array.isArray(c.scales) || c.scales.length === 0 || !c.scales.every((s) => Number.isFinite(s) && s > 0)) throw new RangeError(`quadratic: scales must be a non-empty list of numbers > 0, got ${JSON.stringify(c.scales)}`);
  if (!(c.initStd >= 0 && Number.isFinite(c.initStd))) throw new RangeError(`quadratic: initStd must be a finite number >= 0, got ${c.initStd}`);
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff) throw new RangeError(`quadratic: seed must be an integer in [0, 2^32), got ${c.seed}`);
}

export class QuadraticTask implements OptimizeeTask {
  readonly family = 'quadratic';
  readonly shapeKey: string;
  private r: Float64Array;
  constructor(readonly part: TaskPart, readonly index: number, readonly n: number, readonly scale: number,
    readonly w: Float64Array, readonly y: Float64Array, readonly theta0: Float64Array) {
    this.shapeKey = `quadratic:${n}`;
    this.r = new Float64Array(n);
  }

  initialParams(like: FloatArray): FloatArray {
    const t = allocLike(like, this.n);
    t.set(this.theta0);
    return t;
  }

  private residual(theta: FloatArray): number {
    const n = this.n, w = this.w, r = this.r;
    if (theta.length !== n) throw new RangeError(`quadratic task ${this.index}: theta has ${theta.length} elements, expected ${n}`);
    let f = 0;
    for (let i = 0; i < n; i++) {
      let s = -this.y[i]!;
      for (let j = 0; j < n; j++) s += w[i * n + j]! * theta[j]!;
      r[i] = s;
      f += s * s;
    }
    return f;
  }

  lossGrad(theta: FloatArray, _step: number, grad: FloatArray): number {
    const f = this.residual(theta), n = this.n, w = this.w, r = this.r;
    if (grad.length !== n) throw new RangeError(`quadratic task ${this.index}: gradient has ${grad.length} elements, expected ${n}`);
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += w[i * n + j]! * r[i]!;
      grad[j] = 2 * s;
    }
    return f;
  }

  evaluate(theta: FloatArray): TaskEval { return { loss: this.residual(theta) }; }
}

export class QuadraticFamily implements TaskFamily {
  readonly name = 'quadratic';
  constructor(readonly config: QuadraticConfig) { checkQuadraticConfig(config); }

  task(part: TaskPart, index: number): QuadraticTask {
    const c = this.config, rng = new Rng(c.seed, STREAM.general, taskLane(part, index));
    const n = c.dims[rng.int(c.dims.length)]!, s = c.scales[rng.int(c.scales.length)]!;
    const w = new Float64Array(n * n), y = new Float64Array(n), t0 = new Float64Array(n);
    for (let i = 0; i < w.length; i++) w[i] = s * rng.normal();
    for (let i = 0; i < n; i++) y[i] = rng.normal();
    for (let i = 0; i < n; i++) t0[i] = c.initStd * rng.normal();
    return new QuadraticTask(part, index, n, s, w, y, t0);
  }
}
