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
 *  - unrolled: the longer-horizon ES over lambda (unrolled.ts): per step, two copies' ordinary steps (two
 *    tapes to theta, one at lambda + delta, one at lambda - delta), plus each window's two validation
 *    scores (2 x hyperEpisodes forward passes, no tape) divided by the window's `unroll` steps -- the
 *    time per step amortized (an accounting of two measured parts); accounted = the largest tape + the
 *    second training state (theta and Adam's two moments) + the gradient + the copies' mean.
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
  const copies = spec.method === 'unrolled' ? [theta.slice(), theta.slice()] : [];
  const unroll = spec.unroll ?? 40, hyperEpisodes = spec.hyperEpisodes ?? 20, delta = 5;
  const losses = programLosses(device, program);
  const seconds: number[] = [];
  let accounted = 0, parts: Record<string, number> = {}, hypergrad = NaN;
  for (let r = 0; r <= spec.reps; r++) {
    const train = src.episode(2 * r), val = rotateEpisode(device, src.episode(2 * r + 1), 30);
    const t0 = performance.now();
    let notCharged = 0; // ms of this iteration that belong to other steps (the window's scores, but 1/unroll)
    if (spec.method === 'unrolled') {
      objective.resetPeak();
      copies.forEach((c, i) => {
        objective.trainTheta(c, Float32Array.of(lambda[0]! + (i === 0 ? delta : -delta)), train, grad);
        for (let j = 0; j < c.length; j++) c[j] = c[j]! - 1e-3 * grad[j]!;
      });
      const tv = performance.now();
      const score = (c: Float32Array): number => {
        let sum = 0;
        for (let e = 0; e < hyperEpisodes; e++) sum += losses.val(c, rotateEpisode(device, src.episode(1000 + e), 30));
        return sum / hyperEpisodes;
      };
      hypergrad = (score(copies[0]!) - score(copies[1]!)) / (2 * delta);
      notCharged = (performance.now() - tv) * (1 - 1 / unroll);
      parts = { 'largest tape': objective.peakTapeBytes, 'second training state (theta, Adam moments)': 3 * theta.byteLength, gradient: grad.byteLength, 'mean of the copies': theta.byteLength };
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
    const dt = (performance.now() - t0 - notCharged) / 1000;
    if (r > 0) seconds.push(dt);
    accounted = Object.values(parts).reduce((a, b) => a + b, 0);
  }
  const sorted = [...seconds].sort((a, b) => a - b);
  return {
    spec, device: device.name, params: layout.numParams, seconds, medianSeconds: sorted[Math.floor(sorted.length / 2)]!,
    accountedBytes: accounted, parts, hypergrad,
  };
}
