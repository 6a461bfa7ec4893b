/**
 * A hyperparameter problem written once against TensorOps (HyperProgram), turned into the loss
 * oracles EvoGrad needs (HyperObjective) by lib/autodiff's reverse-mode tape: each oracle call
 * records one forward pass on a fresh tape, with theta's or lambda's views as leaves and the
 * other as constants, and back-propagates it.
 */
import type { Device } from '../device/registry.js';
import { DirectOps, type TensorOps } from '../ops/api.js';
import { Tape } from '../autodiff/tape.js';
import type { Tensor, FloatArray } from '../tensor/tensor.js';
import type { HyperObjective } from './hypergrad.js';

/** Which oracle a program is being run for (e.g. to update BN running statistics only in the ordinary step). */
export type ProgramMode = 'theta' | 'lambda' | 'val' | 'eval';

export interface ProgramArgs<V> {
  mode: ProgramMode;
  /** The flat parameter vector; pass views of it (subarrays) to thetaLeaf. */
  theta: FloatArray;
  /** A view of theta at `offset` as an op value (a tape leaf when theta is differentiated, else a constant). */
  thetaLeaf: (t: Tensor, offset: number) => V;
  /** The flat hyperparameter vector (same dtype as theta) and its views as op values. */
  lambda: FloatArray;
  lambdaLeaf: (t: Tensor, offset: number) => V;
}

export interface HyperProgram<TB, VB = TB> {
  /** The training loss L_train(theta, lambda) on `batch`: a scalar op value. */
  train<V>(ops: TensorOps<V>, args: ProgramArgs<V>, batch: TB): V;
  /** The validation loss L_val(theta) on `batch` (lambda is not used). */
  val<V>(ops: TensorOps<V>, args: Omit<ProgramArgs<V>, 'lambda' | 'lambdaLeaf'>, batch: VB): V;
}

export interface TapeObjective<TB, VB> extends HyperObjective<TB, VB> {
  /** Exact peak bytes of the largest tape recorded so far (Tape.peakBytes), and of the last one. */
  readonly peakTapeBytes: number;
  readonly lastTapeBytes: number;
  /** Reset peakTapeBytes (e.g. per hyper-step). */
  resetPeak(): void;
}

function scalar(t: Tensor, what: string): number {
  if (t.size !== 1) throw new RangeError(`evograd: the ${what} loss must be a scalar, got shape [${t.shape.join(', ')}]`);
  return t.data[0]!;
}

/** The loss oracles of `program` on `device`, by the tape. */
export function tapeObjective<TB, VB>(device: Device, program: HyperProgram<TB, VB>): TapeObjective<TB, VB> {
  let peak = 0, last = 0;
  const run = <T>(body: (tape: Tape) => T): T => {
    const tape = new Tape(device);
    const r = body(tape);
    last = tape.peakBytes;
    peak = Math.max(peak, last);
    return r;
  };
  return {
    get peakTapeBytes() { return peak; },
    get lastTapeBytes() { return last; },
    resetPeak() { peak = 0; },
    trainTheta(theta, lambda, batch, gradTheta) {
      return run((tape) => {
        const loss = program.train(tape, {
          mode: 'theta', theta, lambda, thetaLeaf: (t, off) => tape.leaf(t, off), lambdaLeaf: (t) => tape.constant(t),
        }, batch);
        const value = scalar(loss.value, 'training');
        gradTheta.fill(0);
        tape.backward(loss, gradTheta);
        return value;
      });
    },
    trainLambda(theta, lambda, batch, gradLambda) {
      return run((tape) => {
        const loss = program.train(tape, {
          mode: 'lambda', theta, lambda, thetaLeaf: (t) => tape.constant(t), lambdaLeaf: (t, off) => tape.leaf(t, off),
        }, batch);
        const value = scalar(loss.value, 'training');
        gradLambda.fill(0);
        tape.backward(loss, gradLambda);
        return value;
      });
    },
    val(theta, batch, gradTheta) {
      return run((tape) => {
        const loss = program.val(tape, { mode: 'val', theta, thetaLeaf: (t, off) => tape.leaf(t, off) }, batch);
        const value = scalar(loss.value, 'validation');
        gradTheta.fill(0);
        tape.backward(loss, gradTheta);
        return value;
      });
    },
  };
}

/** Plain forward evaluations of a program (no tape): the training and validation losses. */
export function programLosses<TB, VB>(device: Device, program: HyperProgram<TB, VB>): {
  train(theta: FloatArray, lambda: FloatArray, batch: TB): number;
  val(theta: FloatArray, batch: VB): number;
} {
  const ops = new DirectOps(device);
  return {
    train: (theta, lambda, batch) => scalar(program.train(ops, { mode: 'eval', theta, lambda, thetaLeaf: (t) => t, lambdaLeaf: (t) => t }, batch), 'training'),
    val: (theta, batch) => scalar(program.val(ops, { mode: 'eval', theta, thetaLeaf: (t) => t }, batch), 'validation'),
  };
}

/**
 * `obj` with a validation batch of several batches: L_val is the mean of their losses and its
 * gradient the mean of their gradients (each batch on a tape of its own, so the peak memory is one
 * batch's). A larger validation batch for the one-step hypergradient (docs/evograd.md).
 */
export function meanValObjective<TB, VB>(obj: HyperObjective<TB, VB>): HyperObjective<TB, readonly VB[]> {
  let tmp: FloatArray | null = null;
  return {
    trainTheta: (theta, lambda, batch, g) => obj.trainTheta(theta, lambda, batch, g),
    trainLambda: (theta, lambda, batch, g) => obj.trainLambda(theta, lambda, batch, g),
    val(theta, batches, g) {
      const n = batches.length;
      if (n === 0) throw new RangeError('evograd: the validation batch list is empty');
      if (n === 1) return obj.val(theta, batches[0]!, g);
      if (!tmp || tmp.length !== g.length || tmp.constructor !== g.constructor) tmp = g instanceof Float64Array ? new Float64Array(g.length) : new Float32Array(g.length);
      g.fill(0);
      let loss = 0;
      for (const b of batches) {
        loss += obj.val(theta, b, tmp);
        for (let i = 0; i < g.length; i++) g[i] = g[i]! + tmp[i]! / n;
      }
      return loss / n;
    },
  };
}
