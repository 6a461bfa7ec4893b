/**
 * Optimizee tasks: what the learned optimizer trains. A task is a loss over a
 * flat parameter vector theta of n coordinates with its gradient (the LSTM's
 * input), a seeded initial theta, and a held-out evaluation. Tasks are random
 * access: task (part, index) of a family is a pure function of the family's
 * configuration, so worker threads and resumed runs rebuild the same tasks.
 */
import type { FloatArray } from '../../tensor/tensor.js';

export type TaskPart = 'train' | 'val' | 'test';
export const TASK_PARTS: readonly TaskPart[] = ['train', 'val', 'test'];

/** Rng lane of task `index` of `part`: parts never share a lane. */
export function taskLane(part: TaskPart, index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= 2 ** 28) throw new RangeError(`task index must be an integer in [0, 2^28), got ${index}`);
  return TASK_PARTS.indexOf(part) * 2 ** 28 + index;
}

export interface TaskEval { loss: number; accuracy?: number }

export interface OptimizeeTask {
  readonly family: string;
  readonly part: TaskPart;
  readonly index: number;
  /** Coordinates of theta. */
  readonly n: number;
  /** Tasks with the same key have the same parameter shapes (one program fits them all). */
  readonly shapeKey: string;
  /** The initial parameters, in the dtype of `like`. */
  initialParams(like: FloatArray): FloatArray;
  /**
   * The training loss at optimizee step `step` (which minibatch, for stochastic
   * tasks) and its gradient, written to grad (overwritten).
   */
  lossGrad(theta: FloatArray, step: number, grad: FloatArray): number;
  /** Held-out quality of theta (e.g. the full-data loss and accuracy). */
  evaluate(theta: FloatArray): TaskEval;
}

/** A family of tasks by (part, index); serializable configuration in `config`. */
export interface TaskFamily {
  readonly name: string;
  readonly config: object;
  task(part: TaskPart, index: number): OptimizeeTask;
}
