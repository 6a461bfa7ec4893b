/**
 * EvoGrad training of ProtoNet on the rotation task as a TrainMethod (lib/train/method.ts): the
 * one training loop drives it (validation schedule, checkpoints, Ctrl-C, resume).
 *
 * Step t trains on training episode t (upright) and, in 'evograd' mode, takes the hypergradient
 * of the angle on validation episode t of the hypergradient source (rotated by valAngle). Every
 * source is random access and the copy noise is (seed, t, copy), so the state -- theta, BN
 * running statistics, the angle, both Adam states and t -- determines the rest of the run:
 * saveState() after step k and loadState() into a fresh instance continue bit for bit.
 */
import { getDevice, type Device } from '../device/registry.js';
import type { Episode } from '../model/protonet.js';
import { initialBnState, ProtoNetLayout, type BnState } from '../model/layout.js';
import { initParams } from '../model/init.js';
import { CHECKPOINT_FORMAT } from '../model/checkpoint.js';
import { evaluateEpisodes, type EpisodesEvalResult } from '../eval/episodes.js';
import type { EpisodeSource } from '../data/synthetic.js';
import type { ExportedModel, MethodState, StepMetrics, TrainMethod, ValResult } from '../train/method.js';
import { UserError } from '../errors.js';
import { tapeObjective } from './objective.js';
import { EvoGradLearner } from './learner.js';
import { rotationCopyLosses, rotationProgram } from './rotation.js';
import { populationHypergradient, type CopyLosses } from './population.js';
import { evaluatorSpecFor, loadEvaluator } from '../es/evaluators.js';
import type { PopulationEvaluator } from '../es/population.js';
import type { HyperObjective } from './hypergrad.js';
import { lookaheadHypergradient } from './lookahead/t1t2.js';
import { fdLookaheadHypergradient, FdWorkspace } from './lookahead/fd.js';
import { hyperLrAt, type EvoGradConfig } from './config.js';
import { UnrolledEsLearner } from './unrolled.js';
import { meanValObjective, programLosses } from './objective.js';

export const EVOGRAD_STATE_FORMAT = 'evometa-evograd-state-1';

export interface EvoGradSources {
  /** Training episodes (upright), episode t for step t. */
  train: EpisodeSource;
  /** Validation episodes (rotated) for the hypergradient, episode t for step t. */
  hyperVal: EpisodeSource;
  /** Fixed validation episodes 0..valEpisodes-1 (rotated) for validate(). */
  val?: EpisodeSource;
}

export type RotationEvalResult = EpisodesEvalResult;

/** Mean loss and accuracy over episodes 0..n-1 of `source`, BN running statistics (eval mode). */
export const evaluateModel = evaluateEpisodes;

/**
 * The rotation experiment as a TrainMethod of the one training loop: ProtoNet ConvNet-4 on
 * upright training episodes, a learned rotation angle, validation on rotated episodes.
 */
export class EvoGradMethod implements TrainMethod {
  readonly name = 'evograd';
  readonly workUnit = 'episodes';
  readonly chanceScore: number;
  readonly layout: ProtoNetLayout;
  readonly device: Device;
  readonly bn: BnState;
  /**
   * Every mode but 'unrolled-es': the one-copy learner (the ordinary step and, per mode, the one-step
   * hypergradient on a validation batch of `hyperValEpisodes` episodes).
   */
  readonly learner: EvoGradLearner<Episode, readonly Episode[]> | null;
  /** Mode 'unrolled-es': the two-copy learner (unrolled.ts), in place of `learner`. */
  readonly unrolled: UnrolledEsLearner<Episode> | null;
  private closed = false;
  /** copyEval 'population': the evaluator (created at the first step), the copies' loss oracle and the validation oracle. */
  private population: { evaluator: PopulationEvaluator; losses: CopyLosses<Episode> } | null = null;
  private readonly objective: HyperObjective<Episode, readonly Episode[]>;
  /** EvoGrad with copyEval 'population': the hypergradient is taken after the learner's ordinary step. */
  private readonly populationCopies: boolean;
  /** Mode 'unrolled-es': the validation score of a copy at the end of window w. */
  private windowVal: (theta: Float32Array, window: number) => number = () => { throw new Error('evograd: no unrolled-ES validation oracle'); };

  constructor(readonly config: EvoGradConfig, readonly sources: EvoGradSources, init: { device?: Device | string } = {}) {
    this.layout = new ProtoNetLayout(config.model);
    this.device = typeof init.device === 'object' ? init.device : getDevice(init.device);
    this.bn = initialBnState(this.layout);
    this.chanceScore = 1 / config.val.way;
    const learns = config.mode !== 'plain';
    const program = rotationProgram(this.layout, this.bn, config.distance, learns || config.initAngle !== 0, config.supersample);
    const objective = meanValObjective(tapeObjective(this.device, program));
    this.objective = objective;
    this.populationCopies = config.mode === 'evograd' && config.copyEval === 'population';
    // T1-T2 is linear in L_val: its hypergradient on a validation batch is the mean of each episode's
    const secondOrder = (theta: Float32Array, lambda: Float32Array, tb: Episode, vbs: readonly Episode[]) => {
      const rs = vbs.map((vb) => lookaheadHypergradient(this.device, program, theta, lambda, tb, vb, config.lr));
      if (rs.length === 1) return rs[0]!;
      const grad = new Float64Array(lambda.length);
      for (const r of rs) for (let j = 0; j < grad.length; j++) grad[j] = grad[j]! + r.grad[j]! / rs.length;
      return { grad, valLoss: rs.reduce((a, r) => a + r.valLoss, 0) / rs.length };
    };
    const theta0 = initParams(this.layout, config.seed);
    let fdWs: FdWorkspace | null = null; // two D-vectors, allocated only in the mode that uses them
    const secondOrderFd = (theta: Float32Array, lambda: Float32Array, tb: Episode, vbs: readonly Episode[]) =>
      fdLookaheadHypergradient(objective, theta, lambda, tb, vbs, config.lr, config.fdEps, fdWs ??= new FdWorkspace(theta));
    const hyper = config.mode === 'evograd' ? !this.populationCopies : config.mode === 'second-order' ? secondOrder : config.mode === 'second-order-fd' ? secondOrderFd : false;
    const thetaOptimizer = { name: 'adam', lr: config.lr } as const;
    const lambdaOptimizer = { name: 'adam', lr: config.hyperLr, betas: [config.hyperBeta1, config.hyperBeta2] as [number, number] } as const;
    const lambdaLr = (t: number): number => hyperLrAt(config, t);
    if (config.mode === 'unrolled-es') {
      this.learner = null;
      const losses = programLosses(this.device, program);
      const m = config.hyperEpisodes;
      // window w scores both copies on hypergradient-validation episodes w*M .. w*M+M-1 (BN in batch mode)
      this.windowVal = (theta, w) => {
        let sum = 0;
        for (let i = 0; i < m; i++) sum += losses.val(theta, this.sources.hyperVal.episode(w * m + i));
        return sum / m;
      };
      this.unrolled = new UnrolledEsLearner(objective, theta0, Float32Array.of(config.initAngle), {
        settings: { unroll: config.unroll, delta: config.hyperDelta, seed: config.seed }, thetaOptimizer, lambdaOptimizer, lambdaLr,
      });
    } else {
      this.unrolled = null;
      this.learner = new EvoGradLearner(objective, theta0, Float32Array.of(config.initAngle), {
        settings: { copies: config.copies, sigma: config.sigma, tau: config.tau, noise: config.noise, seed: config.seed },
        thetaOptimizer, lambdaOptimizer, hyper, lambdaLr,
      });
    }
  }

  /** The learner of this mode (exactly one of `learner` and `unrolled` exists). */
  private get core(): EvoGradLearner<Episode, readonly Episode[]> | UnrolledEsLearner<Episode> { return (this.unrolled ?? this.learner)!; }
  get step(): number { return this.core.step; }
  get totalSteps(): number { return this.config.steps; }
  /** The current angle (degrees). */
  get angle(): number { return this.core.lambda[0]!; }
  /** The model's parameters (mode 'unrolled-es': the two copies' average). */
  get params(): Float32Array { return this.core.theta; }

  async trainStep(signal?: AbortSignal): Promise<StepMetrics | null> {
    if (signal?.aborted) return null;
    if (this.closed) throw new Error('evograd: trainStep after close()');
    const t = this.step;
    const t0 = performance.now();
    const c = this.config;
    if (this.unrolled) {
      const r = this.unrolled.trainStep(this.sources.train.episode(t), this.windowVal);
      if (!Number.isFinite(r.trainLoss)) throw new UserError(`training diverged: the loss of step ${t} is ${r.trainLoss} (try a smaller --lr)`);
      const m: StepMetrics = { loss: r.trainLoss, work: 2, angle: r.lambda[0]!, step_s: (performance.now() - t0) / 1000 };
      if (r.hypergrad) Object.assign(m, { hypergrad: r.hypergrad[0]!, val_loss: r.valLoss!, val_plus: r.valPlus!, val_minus: r.valMinus! });
      return m;
    }
    const learner = this.learner!;
    const pop = this.populationCopies ? await this.populationEvaluator() : null;
    const mv = c.hyperValEpisodes;
    const trainEp = this.sources.train.episode(t), valEp = Array.from({ length: mv }, (_, i) => this.sources.hyperVal.episode(t * mv + i));
    let r = learner.trainStep(trainEp, valEp);
    if (!Number.isFinite(r.trainLoss)) throw new UserError(`training diverged: the loss of step ${t} is ${r.trainLoss} (try a smaller --lr)`);
    if (pop) {
      const h = await populationHypergradient(pop.losses, pop.evaluator, this.objective, learner.theta, learner.lambda, trainEp, valEp, {
        copies: c.copies, sigma: c.sigma, tau: c.tau, antithetic: true, delta: c.fdDelta, seed: c.seed,
      }, t);
      learner.applyHypergradient(h.grad);
      r = { ...r, hypergrad: h.grad, valLoss: h.valLoss, weights: h.weights, lambda: Float32Array.from(learner.lambda) };
    }
    const m: StepMetrics = { loss: r.trainLoss, work: 1, angle: r.lambda[0]!, step_s: (performance.now() - t0) / 1000 };
    if (r.hypergrad) {
      m['hypergrad'] = r.hypergrad[0]!;
      m['val_loss'] = r.valLoss!;
      if (r.weights) m['weight0'] = r.weights[0]!;
    }
    return m;
  }

  async validate(): Promise<ValResult> {
    if (!this.sources.val || this.config.valEpisodes <= 0) throw new Error('evograd: validate() needs a validation source and valEpisodes > 0');
    const r = evaluateModel(this.device, this.layout, this.params, this.bn, this.sources.val, this.config.valEpisodes, this.config.distance);
    return { score: r.acc, ci95: r.ci95, loss: r.loss, angle: this.angle };
  }

  /** Accuracy of the current model on episodes 0..n-1 of `source` (BN running statistics). */
  evaluate(source: EpisodeSource, n: number): RotationEvalResult {
    return evaluateModel(this.device, this.layout, this.params, this.bn, source, n, this.config.distance);
  }

  saveState(): MethodState {
    const u = this.unrolled?.state();
    const s = u ? { step: u.step, theta: u.plus.theta, lambda: u.lambda, thetaOpt: u.plus.opt, lambdaOpt: u.lambdaOpt } : this.learner!.state();
    const tensors: Record<string, Float32Array> = { theta: s.theta, lambda: s.lambda, bn: this.bn.buffers.slice() };
    for (const [k, v] of Object.entries(s.thetaOpt.tensors)) tensors[`opt.theta.${k}`] = v;
    for (const [k, v] of Object.entries(s.lambdaOpt.tensors)) tensors[`opt.lambda.${k}`] = v;
    if (u) { // the second copy (mode 'unrolled-es'; `theta` is the first)
      tensors['theta.minus'] = u.minus.theta;
      for (const [k, v] of Object.entries(u.minus.opt.tensors)) tensors[`opt.minus.${k}`] = v;
    }
    return {
      tensors,
      meta: {
        format: EVOGRAD_STATE_FORMAT, config: this.config, step: s.step, numBatchesTracked: this.bn.numBatchesTracked,
        thetaOptStep: s.thetaOpt.step, lambdaOptStep: s.lambdaOpt.step, ...(u ? { minusOptStep: u.minus.opt.step } : {}),
      },
    };
  }

  loadState(state: MethodState): void {
    const m = state.meta as { format?: string; step?: number; numBatchesTracked?: number; thetaOptStep?: number; lambdaOptStep?: number; minusOptStep?: number };
    if (m.format !== EVOGRAD_STATE_FORMAT) throw new UserError(`not an EvoGrad training state (format ${JSON.stringify(m.format)}, expected ${EVOGRAD_STATE_FORMAT})`);
    const f32 = (name: string): Float32Array => {
      const t = state.tensors[name];
      if (!t) throw new UserError(`EvoGrad training state: missing tensor ${name}`);
      return Float32Array.from(t);
    };
    const opt = (prefix: string): Record<string, Float32Array> => Object.fromEntries(
      Object.keys(state.tensors).filter((k) => k.startsWith(prefix)).map((k) => [k.slice(prefix.length), f32(k)]));
    const bn = f32('bn');
    if (bn.length !== this.bn.buffers.length) throw new UserError(`EvoGrad training state: BN buffers have ${bn.length} values, the model ${this.bn.buffers.length}`);
    const base = {
      step: m.step ?? 0, theta: f32('theta'), lambda: f32('lambda'),
      thetaOpt: { step: m.thetaOptStep ?? 0, tensors: opt('opt.theta.') }, lambdaOpt: { step: m.lambdaOptStep ?? 0, tensors: opt('opt.lambda.') },
    };
    try {
      if (this.unrolled) {
        this.unrolled.load({
          step: base.step, lambda: base.lambda, lambdaOpt: base.lambdaOpt, plus: { theta: base.theta, opt: base.thetaOpt },
          minus: { theta: f32('theta.minus'), opt: { step: m.minusOptStep ?? 0, tensors: opt('opt.minus.') } },
        });
      } else {
        this.learner!.load(base);
      }
    } catch (e) {
      throw e instanceof RangeError ? new UserError(`EvoGrad training state: ${e.message}`) : e;
    }
    this.bn.buffers.set(bn);
    this.bn.numBatchesTracked = m.numBatchesTracked ?? 0;
  }

  exportModel(): ExportedModel {
    const { layout, bn } = this;
    const params = this.params;
    const tensors: ExportedModel['tensors'] = {};
    for (let i = 0; i < layout.config.blocks; i++) {
      for (const s of ['0.weight', '0.bias', '1.weight', '1.bias']) {
        const e = layout.param(`encoder.${i}.${s}`);
        tensors[e.name] = { shape: e.shape, data: params.slice(e.offset, e.offset + e.size) };
      }
      for (const s of ['running_mean', 'running_var']) {
        const e = layout.buffer(`encoder.${i}.1.${s}`);
        tensors[e.name] = { shape: e.shape, data: bn.buffers.slice(e.offset, e.offset + e.size) };
      }
      tensors[`encoder.${i}.1.num_batches_tracked`] = { shape: [], data: BigInt64Array.of(BigInt(bn.numBatchesTracked)) };
    }
    return {
      tensors,
      metadata: {
        format: CHECKPOINT_FORMAT, model: JSON.stringify(layout.config), method: 'evograd', step: String(this.step),
        angle_degrees: String(this.angle), config: JSON.stringify(this.config),
      },
    };
  }

  private async populationEvaluator(): Promise<{ evaluator: PopulationEvaluator; losses: CopyLosses<Episode> }> {
    if (!this.population) {
      const c = this.config;
      const evaluator = await loadEvaluator({ ...evaluatorSpecFor(this.device.name, { precision: c.precision }) });
      this.population = { evaluator, losses: rotationCopyLosses(evaluator, this.device, this.layout.config, c.distance, c.supersample) };
    }
    return this.population;
  }

  async close(): Promise<void> {
    this.closed = true;
    const p = this.population;
    this.population = null;
    await p?.evaluator.close?.();
  }
}
