/**
 * The second-order baseline: the T1-T2 style hypergradient (Luketina et al., 2016) by
 * back-propagating through one inner update,
 *   theta' = theta - alpha grad_theta L_train(theta, lambda),   h = d L_val(theta') / d lambda
 *          = -alpha (d/dlambda grad_theta L_train(theta, lambda))^T grad L_val(theta'),
 * computed as PyTorch would with create_graph: the training loss on the second-order graph,
 * its theta-gradient recorded (graph.ts), L_val's gradient v at theta' (lib/autodiff's tape),
 * then the gradient of <v, grad_theta L_train> with respect to lambda through the recorded
 * backward. Exact (no finite differences); the first backward is also the ordinary step's gradient.
 */
import type { Device } from '../../device/registry.js';
import { Tape } from '../../autodiff/tape.js';
import { Tensor, allocLike, type FloatArray } from '../../tensor/tensor.js';
import type { HyperProgram, ProgramMode } from '../objective.js';
import { Graph, type GVar } from './graph.js';

export interface LookaheadResult {
  /** d L_val(theta') / d lambda. */
  grad: Float64Array;
  /** grad_theta L_train(theta, lambda) (the inner step's gradient). */
  gradTheta: FloatArray;
  trainLoss: number;
  /** L_val(theta'). */
  valLoss: number;
  /** Exact peak bytes of the second-order graph, and of the validation tape. */
  graphPeakBytes: number;
  valTapePeakBytes: number;
  /** Exact peak of both together: the validation tape runs while the graph is held. */
  peakBytes: number;
}

/**
 * The T1-T2 hypergradient of `program` at (theta, lambda) with inner step size `alpha`.
 * `mode` is passed to the program's training loss ('theta': as the ordinary step, e.g. BN
 * running statistics are updated; 'lambda': no side effects).
 */
export function lookaheadHypergradient<TB, VB>(
  device: Device, program: HyperProgram<TB, VB>, theta: FloatArray, lambda: FloatArray, trainBatch: TB, valBatch: VB, alpha: number,
  mode: ProgramMode = 'lambda',
): LookaheadResult {
  if (!(Number.isFinite(alpha) && alpha > 0)) throw new RangeError(`lookahead: alpha must be a finite number > 0, got ${alpha}`);
  const graph = new Graph(device);
  const thetaLeaves: { v: GVar; offset: number }[] = [], lambdaLeaves: { v: GVar; offset: number }[] = [];
  const loss = program.train(graph, {
    mode, theta, lambda,
    thetaLeaf: (t, offset) => { const v = graph.leaf(t); thetaLeaves.push({ v, offset }); return v; },
    lambdaLeaf: (t, offset) => { const v = graph.leaf(t); lambdaLeaves.push({ v, offset }); return v; },
  }, trainBatch);
  const trainLoss = loss.value.data[0]!;
  // First backward, recorded: grad_theta L_train as graph values that depend on lambda.
  const gTheta = graph.backward(loss, thetaLeaves.map((l) => l.v), true);
  const gradTheta = allocLike(theta, theta.length);
  thetaLeaves.forEach((l, i) => gradTheta.set(gTheta[i]!.value.data, l.offset));
  const lookahead = allocLike(theta, theta.length);
  for (let i = 0; i < theta.length; i++) lookahead[i] = theta[i]! - alpha * gradTheta[i]!;
  // v = grad L_val(theta') by the first-order tape.
  const heldAtVal = graph.bytesHeld();
  const tape = new Tape(device);
  const vloss = program.val(tape, { mode: 'val', theta: lookahead, thetaLeaf: (t, off) => tape.leaf(t, off) }, valBatch);
  const valLoss = vloss.value.data[0]!;
  const v = allocLike(theta, theta.length);
  tape.backward(vloss, v);
  // s = <v, grad_theta L_train>; second backward to lambda (plain).
  let s: GVar | undefined;
  thetaLeaves.forEach((l, i) => {
    const d = graph.dot(gTheta[i]!, new Tensor(v.subarray(l.offset, l.offset + l.v.value.size), l.v.shape));
    s = s ? graph.addValues(s, d) : d;
  });
  const grad = new Float64Array(lambda.length);
  if (s && s.requiresGrad) {
    const gl = graph.backward(s, lambdaLeaves.map((l) => l.v), false);
    lambdaLeaves.forEach((l, i) => { const d = gl[i]!.value.data; for (let j = 0; j < d.length; j++) grad[l.offset + j] += -alpha * d[j]!; });
  }
  const graphPeakBytes = graph.peakBytes;
  graph.clear();
  return { grad, gradTheta, trainLoss, valLoss, graphPeakBytes, valTapePeakBytes: tape.peakBytes, peakBytes: Math.max(graphPeakBytes, heldAtVal + tape.peakBytes) };
}
