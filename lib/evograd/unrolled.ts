/**
 * A longer-horizon hypergradient by evolution over lambda: antithetic ES on T-step unrolls
 * (truncated ES over the hyperparameters; Vicol et al. 2021 analyse its bias and its persistent variant).
 *
 * Two copies of the model's training state (theta and its optimizer's moments) train side by side on
 * the same batches for `unroll` = T steps, one with lambda + delta eps, the other with
 * lambda - delta eps (eps: random signs per window, regenerated from (seed, window) like EvoGrad's
 * copy noise). At the end of the window each is scored by the same validation oracle, and
 *   h = (L_val(theta_T^+) - L_val(theta_T^-)) / (2 delta) * eps
 * is the central difference of "validation loss after T steps" along eps (for one hyperparameter,
 * exactly that derivative's finite difference); lambda steps by its optimizer on h, and both copies
 * restart from their average (theta and the optimizer's moments elementwise): to first order in
 * delta, the state of training at lambda. Cost: two ordinary steps per step and two validation
 * scores per window; memory: two training states. EvoGrad and T1-T2 see the validation loss one
 * update ahead; this sees it T updates ahead, which is what the rotation task needs
 * (docs/evograd.md: the one-step hypergradient carries almost no signal there, 50-step branches do).
 *
 * The state (step, lambda, its optimizer, both copies) determines the rest of the run: saved and
 * loaded exactly.
 */
import { createOptimizer, type Optimizer, type OptimizerConfig, type OptimizerState } from '../optim/optimizers.js';
import type { HyperObjective } from './hypergrad.js';
import { fillCopyNoise } from './noise.js';

export interface UnrolledEsSettings {
  /** T: ordinary steps per window (per hypergradient). */
  unroll: number;
  /** Half the distance between the two copies' hyperparameters, in lambda's units. */
  delta: number;
  /** Seed of eps (STREAM.evograd, copy index 2^32 - 1, which EvoGrad's copies never reach). */
  seed: number;
}

export interface UnrolledEsConfig {
  settings: UnrolledEsSettings;
  thetaOptimizer: OptimizerConfig;
  lambdaOptimizer: OptimizerConfig;
  /** lambda's learning rate for the step that ends a window at training step t (a pure function of t); default lambdaOptimizer.lr. */
  lambdaLr?: (step: number) => number;
}

export interface UnrolledEsStep {
  step: number;
  /** Mean of the two copies' training losses, each before its update. */
  trainLoss: number;
  /** Present at the end of a window: h, the two validation losses, their mean. */
  hypergrad?: Float64Array;
  valPlus?: number;
  valMinus?: number;
  valLoss?: number;
  /** lambda after the step. */
  lambda: Float32Array;
}

interface Copy { theta: Float32Array; opt: Optimizer }

export interface UnrolledEsState {
  step: number;
  lambda: Float32Array;
  lambdaOpt: OptimizerState;
  plus: { theta: Float32Array; opt: OptimizerState };
  minus: { theta: Float32Array; opt: OptimizerState };
}

const EPS_COPY = 0xffffffff;

export function checkUnrolledSettings(s: UnrolledEsSettings): void {
  if (!Number.isInteger(s.unroll) || s.unroll < 1) throw new RangeError(`unrolled ES: unroll must be an integer >= 1, got ${s.unroll}`);
  if (!(Number.isFinite(s.delta) && s.delta > 0)) throw new RangeError(`unrolled ES: delta must be a finite number > 0, got ${s.delta}`);
}

/**
 * Training of a model and its hyperparameters with the hypergradient of T-step unrolls: two copies of
 * the training state side by side (lambda +- delta eps), lambda's step at each window's end, then the
 * copies merged (the file comment).
 */
export class UnrolledEsLearner<TB> {
  /** Steps done (the index of the next step). */
  step = 0;
  readonly lambda: Float32Array;
  private readonly lambdaOpt: Optimizer;
  private readonly plus: Copy;
  private readonly minus: Copy;
  private readonly grad: Float32Array;
  private readonly eps: Float32Array;
  private readonly lamPlus: Float32Array;
  private readonly lamMinus: Float32Array;
  private readonly mean: Float32Array;

  constructor(readonly objective: Pick<HyperObjective<TB, unknown>, 'trainTheta'>, theta: Float32Array, lambda: Float32Array, readonly cfg: UnrolledEsConfig) {
    checkUnrolledSettings(cfg.settings);
    this.lambda = Float32Array.from(lambda);
    this.lambdaOpt = createOptimizer(cfg.lambdaOptimizer);
    this.plus = { theta: Float32Array.from(theta), opt: createOptimizer(cfg.thetaOptimizer) };
    this.minus = { theta: Float32Array.from(theta), opt: createOptimizer(cfg.thetaOptimizer) };
    this.grad = new Float32Array(theta.length);
    this.mean = new Float32Array(theta.length);
    this.eps = new Float32Array(lambda.length);
    this.lamPlus = new Float32Array(lambda.length);
    this.lamMinus = new Float32Array(lambda.length);
  }

  get window(): number { return Math.floor(this.step / this.cfg.settings.unroll); }

  /** eps of window w (random signs). */
  epsOf(w: number): Float32Array {
    fillCopyNoise(this.eps, 'sign', this.cfg.settings.seed, w, EPS_COPY);
    return this.eps;
  }

  /**
   * One ordinary step of both copies on `trainBatch`; at the end of a window, `valLoss` scores each
   * copy (it receives the copy's theta and the window's index, so both copies see the same batches)
   * and lambda takes its step.
   */
  trainStep(trainBatch: TB, valLoss: (theta: Float32Array, window: number) => number): UnrolledEsStep {
    const t = this.step, w = this.window, d = this.cfg.settings.delta;
    const eps = this.epsOf(w);
    for (let i = 0; i < eps.length; i++) {
      this.lamPlus[i] = this.lambda[i]! + d * eps[i]!;
      this.lamMinus[i] = this.lambda[i]! - d * eps[i]!;
    }
    let loss = 0;
    for (const [c, lam] of [[this.plus, this.lamPlus], [this.minus, this.lamMinus]] as const) {
      const l = this.objective.trainTheta(c.theta, lam, trainBatch, this.grad);
      if (!Number.isFinite(l)) throw new RangeError(`unrolled ES: the training loss at step ${t} is ${l}`);
      c.opt.step(c.theta, this.grad);
      loss += l / 2;
    }
    this.step = t + 1;
    if (this.step % this.cfg.settings.unroll !== 0) return { step: t, trainLoss: loss, lambda: Float32Array.from(this.lambda) };
    const valPlus = valLoss(this.plus.theta, w), valMinus = valLoss(this.minus.theta, w);
    if (!Number.isFinite(valPlus) || !Number.isFinite(valMinus)) throw new RangeError(`unrolled ES: the validation losses of window ${w} are ${valPlus} and ${valMinus}`);
    const h = new Float64Array(this.lambda.length);
    for (let i = 0; i < h.length; i++) h[i] = ((valPlus - valMinus) / (2 * d)) * eps[i]!;
    this.lambdaOpt.step(this.lambda, h, this.cfg.lambdaLr?.(t));
    this.merge();
    return { step: t, trainLoss: loss, hypergrad: h, valPlus, valMinus, valLoss: (valPlus + valMinus) / 2, lambda: Float32Array.from(this.lambda) };
  }

  /** Both copies <- their average (theta and every optimizer tensor; the optimizers' step counts are equal). */
  private merge(): void {
    const avg = (a: Float32Array, b: Float32Array): void => { for (let i = 0; i < a.length; i++) a[i] = b[i] = (a[i]! + b[i]!) / 2; };
    avg(this.plus.theta, this.minus.theta);
    const p = this.plus.opt.state(), m = this.minus.opt.state();
    for (const k of Object.keys(p.tensors)) avg(p.tensors[k]!, m.tensors[k]!);
    this.plus.opt.load(p);
    this.minus.opt.load(m);
  }

  /** The model: the copies' average (equal to each at a window's boundary). */
  get theta(): Float32Array {
    const a = this.plus.theta, b = this.minus.theta;
    for (let i = 0; i < a.length; i++) this.mean[i] = (a[i]! + b[i]!) / 2;
    return this.mean;
  }

  /** Bytes of one copy's training state (its theta and its optimizer's tensors; exact). */
  get copyBytes(): number { return this.plus.theta.byteLength + this.plus.opt.bytes(); }

  /** Bytes of the two training states, lambda's optimizer and the gradient buffer (exact). */
  get stateBytes(): number {
    return 2 * this.plus.theta.byteLength + this.plus.opt.bytes() + this.minus.opt.bytes() + this.lambdaOpt.bytes() + this.grad.byteLength + this.mean.byteLength;
  }

  state(): UnrolledEsState {
    return {
      step: this.step, lambda: this.lambda.slice(), lambdaOpt: this.lambdaOpt.state(),
      plus: { theta: this.plus.theta.slice(), opt: this.plus.opt.state() },
      minus: { theta: this.minus.theta.slice(), opt: this.minus.opt.state() },
    };
  }

  load(s: UnrolledEsState): void {
    const n = this.plus.theta.length;
    for (const [name, v] of [['plus', s.plus.theta], ['minus', s.minus.theta]] as const) {
      if (v.length !== n) throw new RangeError(`unrolled ES state: theta of the ${name} copy has ${v.length} elements, the model ${n}`);
    }
    if (s.lambda.length !== this.lambda.length) throw new RangeError(`unrolled ES state: lambda has ${s.lambda.length} elements, expected ${this.lambda.length}`);
    if (!Number.isInteger(s.step) || s.step < 0) throw new RangeError(`unrolled ES state: step must be an integer >= 0, got ${s.step}`);
    this.plus.theta.set(s.plus.theta);
    this.minus.theta.set(s.minus.theta);
    this.plus.opt.load(s.plus.opt);
    this.minus.opt.load(s.minus.opt);
    this.lambda.set(s.lambda);
    this.lambdaOpt.load(s.lambdaOpt);
    this.step = s.step;
  }
}
