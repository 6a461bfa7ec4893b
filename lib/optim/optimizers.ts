/**
 * Optimizers on a flat parameter vector. Convention: `grad` is the gradient of
 * a loss to MINIMIZE. (ES estimates an ascent direction g on fitness; pass -g.)
 * State is float32 vectors plus a step count, saved/restored for resume.
 */
export type OptimizerName = 'sgd' | 'adam' | 'clipup';

export interface OptimizerConfig {
  name: OptimizerName;
  lr: number;
  /** SGD momentum (0 = the plain step p -= lr * grad). */
  momentum?: number;
  nesterov?: boolean;
  betas?: [number, number];
  adamEps?: number;
  /** L2 weight decay added to the gradient (PyTorch's weight_decay); decoupled (AdamW/SGDW-style) if `decoupled`. */
  weightDecay?: number;
  decoupled?: boolean;
  /** ClipUp: the largest step (velocity norm); default 2 x lr (Toklu et al.: lr = max speed / 2). */
  maxSpeed?: number;
}

export interface OptimizerState {
  step: number;
  tensors: Record<string, Float32Array>;
}

export interface Optimizer {
  readonly config: Readonly<OptimizerConfig>;
  /** One update of params in place with the given learning rate (default config.lr). */
  step(params: Float32Array, grad: ArrayLike<number>, lr?: number): void;
  state(): OptimizerState;
  load(state: OptimizerState): void;
  /** Bytes of optimizer state held (for the memory study). */
  bytes(): number;
}

function check(cfg: OptimizerConfig): void {
  if (!(cfg.lr > 0) || !Number.isFinite(cfg.lr)) throw new RangeError(`optimizer: lr must be a positive number, got ${cfg.lr}`);
  const m = cfg.momentum ?? 0;
  if (!(m >= 0 && m < 1)) throw new RangeError(`optimizer: momentum must be in [0, 1), got ${m}`);
  const wd = cfg.weightDecay ?? 0;
  if (!(wd >= 0)) throw new RangeError(`optimizer: weightDecay must be >= 0, got ${wd}`);
  const [b1, b2] = cfg.betas ?? [0.9, 0.999];
  if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new RangeError(`optimizer: betas must be in [0, 1), got [${b1}, ${b2}]`);
}

function checkSizes(params: Float32Array, grad: ArrayLike<number>): void {
  if (grad.length !== params.length) throw new RangeError(`optimizer: gradient has ${grad.length} elements, parameters ${params.length}`);
}

class Sgd implements Optimizer {
  private buf: Float32Array | null = null;
  private t = 0;
  constructor(readonly config: OptimizerConfig) { check(config); }

  step(params: Float32Array, grad: ArrayLike<number>, lr = this.config.lr): void {
    checkSizes(params, grad);
    const mom = this.config.momentum ?? 0, wd = this.config.weightDecay ?? 0, dec = this.config.decoupled ?? false;
    if (mom > 0 && !this.buf) this.buf = new Float32Array(params.length);
    const b = this.buf;
    for (let i = 0; i < params.length; i++) {
      let g = grad[i]!;
      if (wd > 0 && !dec) g += wd * params[i]!;
      if (b) {
        b[i] = this.t === 0 ? g : mom * b[i]! + g;
        g = this.config.nesterov ? g + mom * b[i]! : b[i]!;
      }
      params[i] = params[i]! * (dec && wd > 0 ? 1 - lr * wd : 1) - lr * g;
    }
    this.t++;
  }

  state(): OptimizerState {
    return { step: this.t, tensors: this.buf ? { momentum_buffer: this.buf.slice() } : {} };
  }

  load(s: OptimizerState): void {
    this.t = s.step;
    this.buf = s.tensors['momentum_buffer']?.slice() ?? null;
  }

  bytes(): number { return this.buf ? this.buf.byteLength : 0; }
}

class Adam implements Optimizer {
  private m: Float32Array | null = null;
  private v: Float32Array | null = null;
  private t = 0;
  constructor(readonly config: OptimizerConfig) { check(config); }

  step(params: Float32Array, grad: ArrayLike<number>, lr = this.config.lr): void {
    checkSizes(params, grad);
    if (!this.m || !this.v) {
      this.m = new Float32Array(params.length);
      this.v = new Float32Array(params.length);
    }
    const [b1, b2] = this.config.betas ?? [0.9, 0.999];
    const eps = this.config.adamEps ?? 1e-8, wd = this.config.weightDecay ?? 0, dec = this.config.decoupled ?? false;
    this.t++;
    const bc1 = 1 - b1 ** this.t, bc2 = 1 - b2 ** this.t;
    const m = this.m, v = this.v;
    for (let i = 0; i < params.length; i++) {
      let g = grad[i]!;
      if (wd > 0 && !dec) g += wd * params[i]!;
      m[i] = b1 * m[i]! + (1 - b1) * g;
      v[i] = b2 * v[i]! + (1 - b2) * g * g;
      const p = dec && wd > 0 ? params[i]! * (1 - lr * wd) : params[i]!;
      params[i] = p - (lr * (m[i]! / bc1)) / (Math.sqrt(v[i]! / bc2) + eps);
    }
  }

  state(): OptimizerState {
    return { step: this.t, tensors: this.m && this.v ? { exp_avg: this.m.slice(), exp_avg_sq: this.v.slice() } : {} };
  }

  load(s: OptimizerState): void {
    this.t = s.step;
    this.m = s.tensors['exp_avg']?.slice() ?? null;
    this.v = s.tensors['exp_avg_sq']?.slice() ?? null;
  }

  bytes(): number { return (this.m?.byteLength ?? 0) + (this.v?.byteLength ?? 0); }
}

/**
 * ClipUp (Toklu et al. 2020, "ClipUp: a simple and powerful optimizer for
 * distribution-based policy evolution"): momentum on the normalized gradient
 * with the velocity's norm clipped, so the step size is set in parameter-space
 * units and does not depend on the gradient's scale:
 *   v <- momentum * v + lr * grad / ||grad||;   if ||v|| > maxSpeed: v <- maxSpeed * v / ||v||;   p <- p - v
 * (grad to minimize; a zero gradient leaves v to decay by momentum). Defaults: momentum 0.9, maxSpeed 2 lr.
 */
class ClipUp implements Optimizer {
  private v: Float32Array | null = null;
  private t = 0;
  constructor(readonly config: OptimizerConfig) {
    check(config);
    const s = config.maxSpeed ?? 2 * config.lr;
    if (!(s > 0 && Number.isFinite(s))) throw new RangeError(`optimizer: maxSpeed must be a positive number, got ${s}`);
  }

  step(params: Float32Array, grad: ArrayLike<number>, lr = this.config.lr): void {
    checkSizes(params, grad);
    const mom = this.config.momentum ?? 0.9, maxSpeed = this.config.maxSpeed ?? 2 * this.config.lr;
    if (!this.v) this.v = new Float32Array(params.length);
    const v = this.v;
    let gn = 0;
    for (let i = 0; i < params.length; i++) gn += grad[i]! * grad[i]!;
    gn = Math.sqrt(gn);
    const k = gn > 0 ? lr / gn : 0;
    let vn = 0;
    for (let i = 0; i < params.length; i++) { v[i] = mom * v[i]! + k * grad[i]!; vn += v[i]! * v[i]!; }
    vn = Math.sqrt(vn);
    const clip = vn > maxSpeed ? maxSpeed / vn : 1;
    for (let i = 0; i < params.length; i++) {
      if (clip !== 1) v[i] = v[i]! * clip;
      params[i] = params[i]! - v[i]!;
    }
    this.t++;
  }

  state(): OptimizerState { return { step: this.t, tensors: this.v ? { velocity: this.v.slice() } : {} }; }

  load(s: OptimizerState): void {
    this.t = s.step;
    this.v = s.tensors['velocity']?.slice() ?? null;
  }

  bytes(): number { return this.v ? this.v.byteLength : 0; }
}

export function createOptimizer(cfg: OptimizerConfig): Optimizer {
  if (cfg.name === 'sgd') return new Sgd(cfg);
  if (cfg.name === 'adam') return new Adam(cfg);
  if (cfg.name === 'clipup') return new ClipUp(cfg);
  throw new RangeError(`unknown optimizer ${String((cfg as { name: unknown }).name)} (expected sgd, adam or clipup)`);
}

/** Step-LR: lr = base * gamma^floor(step / every) (Snell et al.: halve every 2000 episodes). */
export function stepLr(base: number, step: number, every: number, gamma = 0.5): number {
  if (!(every > 0)) return base;
  return base * gamma ** Math.floor(step / every);
}
