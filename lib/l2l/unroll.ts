/**
 * Running the learned optimizer on optimizee tasks. A slot is one task's
 * trajectory in progress: its parameters theta, the LSTM state of its
 * coordinates, and the loss and gradient at theta. A group of slots runs as ONE
 * program: their coordinates are stacked as columns (the LSTM is shared by
 * every coordinate), each slot's loss and gradient coming from its own task.
 *
 * Meta-training by truncated backprop (Andrychowicz et al.): over a chunk of K
 * optimizee steps the meta-loss is sum_k w_k f(theta_k), where theta_{k+1} =
 * theta_k + LSTM(grad f(theta_k)), and, as in the paper, the gradient fed to
 * the LSTM is a constant (no second derivatives: d grad_k / d phi = 0). Then
 * d f(theta_k) / d phi = grad_k^T d theta_k / d phi exactly, so the tape records
 * the LSTM and the theta updates only, and the meta-loss enters as the surrogate
 *   S = sum_k w_k <grad_k, theta_k>   (grad_k a constant)
 * whose tape gradient equals the meta-gradient. The optimizee's loss and
 * gradient come from its task (closed form, or its own tape). Theta and the
 * LSTM state carry to the next chunk as constants (the truncation).
 */
import type { Device } from '../device/registry.js';
import { DirectOps, type DenseOps } from '../ops/api.js';
import { Tape } from '../autodiff/tape.js';
import { Tensor, allocLike, type FloatArray } from '../tensor/tensor.js';
import type { LstmOptimizerLayout } from './layout.js';
import { lstmStep, lstmWeights, preprocessGradient, type LstmState, type LstmWeights } from './lstm.js';
import type { OptimizeeTask } from './tasks/task.js';

export interface Slot {
  task: OptimizeeTask;
  /** Optimizee steps done on this trajectory. */
  t: number;
  theta: FloatArray;
  /** Per LSTM layer, [H, n] feature-major. */
  h: FloatArray[];
  c: FloatArray[];
  /** The gradient and loss at theta (optimizee step t's minibatch). */
  grad: FloatArray;
  loss: number;
}

/** A fresh trajectory of `task`: theta_0, zero LSTM state, loss and gradient at theta_0. Arrays in like's dtype. */
export function newSlot(task: OptimizeeTask, layout: LstmOptimizerLayout, like: FloatArray): Slot {
  const n = task.n, hn = layout.config.hidden * n;
  const theta = task.initialParams(like), grad = allocLike(like, n);
  const h: FloatArray[] = [], c: FloatArray[] = [];
  for (let k = 0; k < layout.config.layers; k++) { h.push(allocLike(like, hn)); c.push(allocLike(like, hn)); }
  const loss = task.lossGrad(theta, 0, grad);
  return { task, t: 0, theta, h, c, grad, loss };
}

export type MetaLossKind = 'sum' | 'log';
export const META_LOSSES: readonly MetaLossKind[] = ['sum', 'log'];

/** Smallest loss the 'log' meta-loss divides by. */
const LOG_FLOOR = 1e-30;

interface Stack { n: number; offsets: number[] }

function stackOf(slots: readonly Slot[]): Stack {
  const offsets: number[] = [];
  let n = 0;
  for (const s of slots) { offsets.push(n); n += s.task.n; }
  return { n, offsets };
}

/** Rows [rows, n_s] of every slot side by side as [rows, N]. */
function stackRows(parts: readonly FloatArray[], slots: readonly Slot[], st: Stack, rows: number, like: FloatArray): FloatArray {
  const out = allocLike(like, rows * st.n);
  slots.forEach((s, i) => {
    const ns = s.task.n, p = parts[i]!, off = st.offsets[i]!;
    for (let r = 0; r < rows; r++) out.set(p.subarray(r * ns, (r + 1) * ns), r * st.n + off);
  });
  return out;
}

function unstackRows(src: FloatArray, slots: readonly Slot[], st: Stack, rows: number, into: (i: number) => FloatArray): void {
  slots.forEach((s, i) => {
    const ns = s.task.n, dst = into(i), off = st.offsets[i]!;
    for (let r = 0; r < rows; r++) dst.set(src.subarray(r * st.n + off, r * st.n + off + ns), r * ns);
  });
}

/**
 * K steps of the LSTM on the stacked slots with ops (tape or plain). After each
 * update, every slot's loss and gradient at its new theta are taken from its task
 * and passed to onStep with the stacked theta value (to build the surrogate).
 * Returns the final stacked theta and LSTM state; the slots are NOT yet updated.
 */
function runSteps<V>(ops: DenseOps<V>, w: LstmWeights<V>, layout: LstmOptimizerLayout, slots: readonly Slot[], st: Stack, like: FloatArray, steps: number,
  onStep: (k: number, theta: V, grad: FloatArray, losses: Float64Array) => void): { theta: V; state: LstmState<V>; grad: FloatArray; losses: Float64Array } {
  const H = layout.config.hidden, L = layout.config.layers, N = st.n;
  let theta = ops.constant(new Tensor(stackRows(slots.map((s) => s.theta), slots, st, 1, like), [N]));
  let state: LstmState<V> = { h: [], c: [] };
  for (let k = 0; k < L; k++) {
    state.h.push(ops.constant(new Tensor(stackRows(slots.map((s) => s.h[k]!), slots, st, H, like), [H, N])));
    state.c.push(ops.constant(new Tensor(stackRows(slots.map((s) => s.c[k]!), slots, st, H, like), [H, N])));
  }
  let grad = stackRows(slots.map((s) => s.grad), slots, st, 1, like);
  let losses = Float64Array.from(slots, (s) => s.loss);
  for (let k = 0; k < steps; k++) {
    const x = allocLike(like, 2 * N);
    preprocessGradient(grad, layout.config.preprocessP, x);
    const r = lstmStep(ops, w, ops.constant(new Tensor(x, [2, N])), state, layout);
    theta = ops.add(theta, r.update);
    state = r.state;
    const tv = ops.value(theta).data;
    grad = allocLike(like, N);
    losses = new Float64Array(slots.length);
    slots.forEach((s, i) => {
      const off = st.offsets[i]!, ns = s.task.n;
      losses[i] = s.task.lossGrad(tv.subarray(off, off + ns), s.t + k + 1, grad.subarray(off, off + ns));
    });
    onStep(k, theta, grad, losses);
  }
  return { theta, state, grad, losses };
}

function commit<V>(ops: DenseOps<V>, layout: LstmOptimizerLayout, slots: Slot[], st: Stack, steps: number, end: { theta: V; state: LstmState<V>; grad: FloatArray; losses: Float64Array }): void {
  const H = layout.config.hidden;
  unstackRows(ops.value(end.theta).data, slots, st, 1, (i) => slots[i]!.theta);
  unstackRows(end.grad, slots, st, 1, (i) => slots[i]!.grad);
  for (let k = 0; k < layout.config.layers; k++) {
    unstackRows(ops.value(end.state.h[k]!).data, slots, st, H, (i) => slots[i]!.h[k]!);
    unstackRows(ops.value(end.state.c[k]!).data, slots, st, H, (i) => slots[i]!.c[k]!);
  }
  slots.forEach((s, i) => { s.loss = end.losses[i]!; s.t += steps; });
}

export interface UnrollOptions {
  device: Device;
  layout: LstmOptimizerLayout;
  phi: FloatArray;
  /** Optimizee steps in this chunk (the truncation length K, or what is left of the trajectory). */
  steps: number;
  metaLoss: MetaLossKind;
  /** Weight of each slot's meta-loss (1 / meta-batch size: the group gradients then sum to the batch mean). */
  slotWeight: number;
}

export interface UnrollResult {
  /** sum over slots of slotWeight * (mean over the chunk's steps of f, or of log f). */
  metaLoss: number;
  /** Per slot: its final loss in this chunk. */
  finalLosses: Float64Array;
  /** Peak bytes held by the tape (exact accounting). */
  tapePeakBytes: number;
}

/**
 * Truncated backprop through `steps` optimizee steps of a group of slots (one
 * program): ADDS d meta-loss / d phi into grad (length phi) and advances the slots.
 */
export function unrollGroup(o: UnrollOptions, slots: Slot[], grad: FloatArray): UnrollResult {
  if (!(Number.isInteger(o.steps) && o.steps >= 1)) throw new RangeError(`unroll: steps must be a positive integer, got ${o.steps}`);
  o.layout.check(grad);
  const st = stackOf(slots), like = o.phi;
  const tape = new Tape(o.device);
  const w = lstmWeights(tape, o.layout, o.phi, (t, off) => tape.leaf(t, off));
  let surrogate: ReturnType<Tape['add']> | null = null;
  let meta = 0;
  const per = 1 / o.steps;
  const end = runSteps(tape, w, o.layout, slots, st, like, o.steps, (_k, theta, g, losses) => {
    const coef = allocLike(like, st.n);
    slots.forEach((s, i) => {
      const f = losses[i]!;
      const a = o.metaLoss === 'log' ? (o.slotWeight * per) / Math.max(f, LOG_FLOOR) : o.slotWeight * per;
      meta += o.slotWeight * per * (o.metaLoss === 'log' ? Math.log(Math.max(f, LOG_FLOOR)) : f);
      const off = st.offsets[i]!;
      for (let j = off; j < off + s.task.n; j++) coef[j] = a * g[j]!;
    });
    const term = tape.matmul(tape.reshape(theta, [1, st.n]), tape.constant(new Tensor(coef, [st.n, 1])));
    surrogate = surrogate ? tape.add(surrogate, term) : term;
  });
  tape.backward(surrogate!, grad);
  commit(tape, o.layout, slots, st, o.steps, end);
  return { metaLoss: meta, finalLosses: end.losses, tapePeakBytes: tape.peakBytes };
}

export interface RolloutResult {
  /** losses[i * (T + 1) + t]: slot i's loss after t steps (t = 0: at its current theta). */
  losses: Float64Array;
  steps: number;
}

/**
 * Forward only (no tape, memory flat in the number of steps): advance the slots
 * `steps` optimizee steps with the learned optimizer, recording every loss.
 */
export function rollout(device: Device, layout: LstmOptimizerLayout, phi: FloatArray, slots: Slot[], steps: number): RolloutResult {
  const ops = new DirectOps(device), st = stackOf(slots), T = steps;
  const losses = new Float64Array(slots.length * (T + 1));
  slots.forEach((s, i) => { losses[i * (T + 1)] = s.loss; });
  const w = lstmWeights(ops, layout, phi);
  const end = runSteps(ops, w, layout, slots, st, phi, steps, (k, _theta, _g, ls) => {
    ls.forEach((f, i) => { losses[i * (T + 1) + k + 1] = f; });
  });
  if (steps > 0) commit(ops, layout, slots, st, steps, end);
  return { losses, steps: T };
}

/** The meta-loss of a rollout's curves (what ES maximizes the negative of): mean over slots and steps 1..T of f or log f. */
export function rolloutMetaLoss(r: RolloutResult, kind: MetaLossKind): number {
  const T = r.steps, slots = r.losses.length / (T + 1);
  let s = 0;
  for (let i = 0; i < slots; i++) {
    for (let t = 1; t <= T; t++) {
      const f = r.losses[i * (T + 1) + t]!;
      s += kind === 'log' ? Math.log(Math.max(f, LOG_FLOOR)) : f;
    }
  }
  return s / (slots * T);
}
