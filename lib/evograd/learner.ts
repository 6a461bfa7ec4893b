/**
 * The EvoGrad training step over any HyperObjective, with an optimizer for the model parameters
 * and one for the hyperparameters (the authors' loop):
 *   1. theta <- opt_theta(theta, d L_train(theta, lambda) / d theta)      the ordinary step
 *   2-4. h = the EvoGrad hypergradient at the updated (detached) theta    (hypergrad.ts)
 *        lambda <- opt_lambda(lambda, h)
 * The copy noise of step t is (seed, t, copy), regenerated, so the learner's whole state is
 * theta, lambda, both optimizers' moments and t: saved and loaded exactly.
 */
import { createOptimizer, type Optimizer, type OptimizerConfig } from '../optim/optimizers.js';
import { checkSettings, evoGradHypergradient, EvoGradWorkspace, type EvoGradSettings, type HyperObjective } from './hypergrad.js';

/** A hypergradient other than EvoGrad's, e.g. the second-order T1-T2 baseline (lookahead/t1t2.ts). */
export type HypergradientFn<TB, VB> = (theta: Float32Array, lambda: Float32Array, trainBatch: TB, valBatch: VB) => { grad: Float64Array; valLoss: number };

export interface LearnerConfig<TB = unknown, VB = TB> {
  settings: EvoGradSettings;
  thetaOptimizer: OptimizerConfig;
  lambdaOptimizer: OptimizerConfig;
  /** true: EvoGrad; false: the ordinary step only (plain training with lambda fixed), the baseline; a function: that hypergradient. */
  hyper: boolean | HypergradientFn<TB, VB>;
  /** lambda's learning rate at step t (a pure function of t, so a resumed run steps exactly as an uninterrupted one); default lambdaOptimizer.lr. */
  lambdaLr?: (step: number) => number;
}

export interface LearnerStep {
  /** The step's index (0-based). */
  step: number;
  /** L_train(theta, lambda) before the ordinary step. */
  trainLoss: number;
  /** The hypergradient, L_val(theta*) and the copies' losses and weights (absent in plain training). */
  hypergrad?: Float64Array;
  valLoss?: number;
  copyLosses?: Float64Array;
  weights?: Float64Array;
  /** lambda after the step. */
  lambda: Float32Array;
}

export interface LearnerState {
  step: number;
  theta: Float32Array;
  lambda: Float32Array;
  thetaOpt: { step: number; tensors: Record<string, Float32Array> };
  lambdaOpt: { step: number; tensors: Record<string, Float32Array> };
}

/**
 * EvoGrad training of a model and its hyperparameters: each step updates theta on the training
 * batch (lambda applied), then lambda by the EvoGrad hypergradient on the validation batch.
 */
export class EvoGradLearner<TB, VB = TB> {
  /** Steps done (= the index of the next step, and its noise counter). */
  step = 0;
  readonly theta: Float32Array;
  readonly lambda: Float32Array;
  private readonly thetaOpt: Optimizer;
  private readonly lambdaOpt: Optimizer;
  private readonly grad: Float32Array;
  /** EvoGrad's D-vectors: allocated only when `hyper` is true (the mode that uses them). */
  readonly workspace: EvoGradWorkspace | null;

  constructor(readonly objective: HyperObjective<TB, VB>, theta: Float32Array, lambda: Float32Array, readonly cfg: LearnerConfig<TB, VB>) {
    checkSettings(cfg.settings);
    this.theta = Float32Array.from(theta);
    this.lambda = Float32Array.from(lambda);
    this.thetaOpt = createOptimizer(cfg.thetaOptimizer);
    this.lambdaOpt = createOptimizer(cfg.lambdaOptimizer);
    this.grad = new Float32Array(theta.length);
    this.workspace = cfg.hyper === true ? new EvoGradWorkspace(this.theta) : null;
  }

  /** One training step on `trainBatch`; the hypergradient uses `valBatch` (ignored in plain training). */
  trainStep(trainBatch: TB, valBatch: VB): LearnerStep {
    const t = this.step;
    const trainLoss = this.objective.trainTheta(this.theta, this.lambda, trainBatch, this.grad);
    if (!Number.isFinite(trainLoss)) throw new RangeError(`evograd: the training loss at step ${t} is ${trainLoss}`);
    this.thetaOpt.step(this.theta, this.grad);
    let out: LearnerStep = { step: t, trainLoss, lambda: this.lambda };
    if (typeof this.cfg.hyper === 'function') {
      const h = this.cfg.hyper(this.theta, this.lambda, trainBatch, valBatch);
      this.stepLambda(h.grad, t);
      out = { ...out, hypergrad: h.grad, valLoss: h.valLoss };
    } else if (this.workspace) {
      const h = evoGradHypergradient(this.objective, this.theta, this.lambda, trainBatch, valBatch, this.cfg.settings, t, this.workspace);
      this.stepLambda(h.grad, t);
      out = { ...out, hypergrad: h.grad, valLoss: h.valLoss, copyLosses: h.copyLosses, weights: h.weights };
    }
    this.step = t + 1;
    return { ...out, lambda: Float32Array.from(this.lambda) };
  }

  /**
   * lambda <- opt_lambda(lambda, grad) for a hypergradient computed outside trainStep (e.g. by
   * populationHypergradient, which is asynchronous), after a trainStep with `hyper: false`.
   */
  applyHypergradient(grad: Float64Array): void {
    if (grad.length !== this.lambda.length) throw new RangeError(`evograd: the hypergradient has ${grad.length} elements, lambda ${this.lambda.length}`);
    this.stepLambda(grad, this.step - 1);
  }

  /** The one lambda update of every hypergradient: refused unless finite. */
  private stepLambda(grad: Float64Array, step: number): void {
    if (!grad.every(Number.isFinite)) throw new RangeError(`evograd: the hypergradient at step ${step} is not finite (${Array.from(grad).join(', ')})`);
    this.lambdaOpt.step(this.lambda, grad, this.cfg.lambdaLr?.(step));
  }

  /** Bytes of optimizer state and EvoGrad's D-vectors (exact). */
  get stateBytes(): number {
    return this.thetaOpt.bytes() + this.lambdaOpt.bytes() + this.grad.byteLength + (this.workspace?.bytes ?? 0);
  }

  state(): LearnerState {
    return { step: this.step, theta: this.theta.slice(), lambda: this.lambda.slice(), thetaOpt: this.thetaOpt.state(), lambdaOpt: this.lambdaOpt.state() };
  }

  load(s: LearnerState): void {
    if (s.theta.length !== this.theta.length) throw new RangeError(`evograd state: theta has ${s.theta.length} elements, the model ${this.theta.length}`);
    if (s.lambda.length !== this.lambda.length) throw new RangeError(`evograd state: lambda has ${s.lambda.length} elements, expected ${this.lambda.length}`);
    this.theta.set(s.theta);
    this.lambda.set(s.lambda);
    this.thetaOpt.load(s.thetaOpt);
    this.lambdaOpt.load(s.lambdaOpt);
    this.step = s.step;
  }
}
