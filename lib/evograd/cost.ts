/**
 * Cost of one training iteration with a hypergradient, EvoGrad against the second-order
 * baseline (T1-T2: back-propagation through one inner update), measured as the memory study
 * measures (each case in a fresh process, bench/evograd-cost.ts): wall time per iteration
 * (median after a warm-up) and the exact bytes held.
 *
 * An iteration is what both methods must compute per training step: the training loss's
 * gradient with respect to theta (the ordinary step) and the hypergradient.
 *  - evograd: the tape's gradient, then K copies (each a tape back-propagated to lambda only) and
 *    one validation tape; accounted = the largest tape (Tape.peakBytes; tapes run one at a time)
 *    + EvoGrad's D-vectors (workspace) + the gradient vector.
 *  - t1t2: the second-order graph (forward, recorded backward, second backward) with the
 *    validation tape run while the graph is held; accounted = their exact joint peak + the
 *    gradient, lookahead parameters and validation gradient (3 D-vectors).
 *  - fd: T1-T2 by a central difference along the validation gradient (lookahead/fd.ts): the tape's
 *    gradient, one validation tape and two tapes back-propagated to lambda; accounted = the largest
 *    tape + its 2 D-vectors (validation gradient, displaced parameters) + the gradient.
 *  - unrolled: the longer-horizon ES over lambda, UnrolledEsLearner itself (unrolled.ts) with the
 *    rotation-unrolled preset's optimizers. Each timed iteration is two of its steps in a window of 2:
 *    an ordinary step (both copies' Adam steps, two tapes to theta at lambda +- delta) and a window's
 *    last step (the same, then both copies' validation scores, hyperEpisodes forward passes each, no
 *    tape; lambda's step; the merge). The time per step of a T = `unroll` window is
 *    t_ordinary + (t_last - t_ordinary) / T -- an accounting of two measured parts; accounted = the
 *    largest tape + the learner's bytes beyond one ordinary training state (the second copy's theta
 *    and Adam moments, lambda's optimizer, the gradient, the copies' mean).
 * Episodes are synthetic (memory and time do not depend on pixel values); ProtoNet ConvNet-4,
 * rotation of the training images as the hyperparameter.
 */
import { getDevice } from '../device/registry.js';
import { ProtoNetLayout, initialBnState } from '../model/layout.js';
import { initParams } from '../model/init.js';
import { SyntheticEpisodes } from '../data/synthetic.js';
import { tapeObjective } from './objective.js';
import { evoGradHypergradient, EvoGradWorkspace, EVOGRAD_DEFAULTS } from './hypergrad.js';
import { rotationProgram, rotateEpisode } from './rotation.js';
import { lookaheadHypergradient } from './lookahead/t1t2.js';
import { fdLookaheadHypergradient, FdWorkspace } from './lookahead/fd.js';
import { programLosses } from './objective.js';
import { UnrolledEsLearner } from './unrolled.js';
import type { Episode } from '../model/protonet.js';
import { resolveEvoGradConfig } from './config.js';

export type CostMethod = 'evograd' | 't1t2' | 'fd' | 'unrolled';
/** Every method the cost bench measures. */
export const COST_METHODS: readonly CostMethod[] = ['evograd', 't1t2', 'fd', 'unrolled'];

export interface CostSpec {
  method: CostMethod;
  channels: number;
  imageSize: number;
  way: number;
  shot: number;
  query: number;
  /** Timed iterations after one warm-up. */
  reps: number;
  device?: string;
  copies?: number;
  seed?: number;
  /** Method 'unrolled': steps per window and validation episodes per copy score (the rotation-unrolled preset's 40 and 20). */
  unroll?: number;
  hyperEpisodes?: number;
}

export interface CostResult {
  spec: CostSpec;
  device: string;
  params: number;
  /** Wall seconds of each timed iteration, and their median. */
  seconds: number[];
  medianSeconds: number;
  /** Exact accounted peak bytes, and its parts. */
  accountedBytes: number;
  parts: Record<string, number>;
  /** The hypergradient of the last iteration (a sanity value). */
  hypergrad: number;
}

export function runCostCase(spec: CostSpec): CostResult {
  if (!COST_METHODS.includes(spec.method)) throw new RangeError(`evograd cost: unknown cost method ${JSON.stringify(spec.method)}; methods: ${COST_METHODS.join(', ')}`);
  const device = getDevice(spec.device);
  const layout = new ProtoNetLayout({ channels: spec.channels, imageSize: spec.imageSize });
  const bn = initialBnState(layout);
  const program = rotationProgram(layout, bn, 'euclidean');
  const seed = spec.seed ?? 1;
  const theta = initParams(layout, seed);
  const lambda = Float32Array.of(10);
  const src = new SyntheticEpisodes({ classes: Math.max(2 * spec.way, 20), way: spec.way, shot: spec.shot, query: spec.query, imageSize: spec.imageSize, seed });
  const grad = new Float32Array(theta.length);
  const settings = { ...EVOGRAD_DEFAULTS, copies: spec.copies ?? EVOGRAD_DEFAULTS.copies, seed };
  const objective = tapeObjective(device, program);
  const ws = spec.method === 'evograd' ? new EvoGradWorkspace(theta) : null;
  const fdWs = spec.method === 'fd' ? new FdWorkspace(theta) : null;
  const unroll = spec.unroll ?? 40, hyperEpisodes = spec.hyperEpisodes ?? 20;
  const losses = programLosses(device, program);
  let unrolled: UnrolledEsLearner<Episode> | null = null;
  if (spec.method === 'unrolled') {
    const p = resolveEvoGradConfig({ seed }, 'rotation-unrolled');
    unrolled = new UnrolledEsLearner(objective, theta, lambda, {
      settings: { unroll: 2, delta: p.hyperDelta, seed }, thetaOptimizer: { name: 'adam', lr: p.lr },
      lambdaOptimizer: { name: 'adam', lr: p.hyperLr, betas: [p.hyperBeta1, 0.999] },
    });
  }
  // the validation oracle of the window ending at step 2r + 1: hyperEpisodes rotated episodes
  const score = (c: Float32Array): number => {
    let sum = 0;
    for (let e = 0; e < hyperEpisodes; e++) sum += losses.val(c, rotateEpisode(device, src.episode(1000 + e), 30));
    return sum / hyperEpisodes;
  };
  const seconds: number[] = [];
  let accounted = 0, parts: Record<string, number> = {}, hypergrad = NaN;
  for (let r = 0; r <= spec.reps; r++) {
    const train = src.episode(2 * r), val = rotateEpisode(device, src.episode(2 * r + 1), 30);
    const t0 = performance.now();
    let perStepMs = NaN; // method 'unrolled': the amortized time per step (the file comment)
    if (unrolled) {
      objective.resetPeak();
      if (unrolled.step % 2 !== 0) throw new Error('evograd cost: the unrolled learner is not at a window boundary');
      unrolled.trainStep(train, score);
      const tm = performance.now();
      const end = unrolled.trainStep(src.episode(2 * r + 1), score);
      const tLast = performance.now() - tm, tOrdinary = tm - t0;
      perStepMs = tOrdinary + (tLast - tOrdinary) / unroll;
      hypergrad = end.hypergrad![0]!;
      parts = { 'largest tape': objective.peakTapeBytes, 'the learner beyond one training state (second copy, lambda optimizer, gradient, mean)': unrolled.stateBytes - unrolled.copyBytes };
    } else if (spec.method === 'evograd') {
      objective.resetPeak();
      objective.trainTheta(theta, lambda, train, grad);
      const h = evoGradHypergradient(objective, theta, lambda, train, val, settings, r, ws!);
      hypergrad = h.grad[0]!;
      parts = { 'largest tape': objective.peakTapeBytes, 'EvoGrad D-vectors': ws!.bytes, gradient: grad.byteLength };
    } else if (spec.method === 'fd') {
      objective.resetPeak();
      objective.trainTheta(theta, lambda, train, grad);
      const h = fdLookaheadHypergradient(objective, theta, lambda, train, val, 1e-3, 0.01, fdWs!);
      hypergrad = h.grad[0]!;
      parts = { 'largest tape': objective.peakTapeBytes, 'FD D-vectors (validation gradient, displaced parameters)': 2 * theta.byteLength, gradient: grad.byteLength };
    } else {
      const h = lookaheadHypergradient(device, program, theta, lambda, train, val, 1e-3);
      hypergrad = h.grad[0]!;
      parts = { 'second-order graph + validation tape': h.peakBytes, 'D-vectors (gradient, lookahead, validation gradient)': 3 * theta.byteLength };
    }
    const dt = (unrolled ? perStepMs : performance.now() - t0) / 1000;
    if (r > 0) seconds.push(dt);
    accounted = Object.values(parts).reduce((a, b) => a + b, 0);
  }
  const sorted = [...seconds].sort((a, b) => a - b);
  return {
    spec, device: device.name, params: layout.numParams, seconds, medianSeconds: sorted[Math.floor(sorted.length / 2)]!,
    accountedBytes: accounted, parts, hypergrad,
  };
}
