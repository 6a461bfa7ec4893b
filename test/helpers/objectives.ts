/** Objectives for the ES core's tests, loaded by path on worker threads (lib/es/objective.ts). */
import type { ObjectiveContext } from '../../lib/es/objective.js';

/** A shifted sphere, maximized at x_j = 1 + j/10 (fitness = minus the squared distance). */
export function sphere(x: Float32Array): number {
  let s = 0;
  for (let j = 0; j < x.length; j++) s += (x[j]! - (1 + j / 10)) ** 2;
  return -s;
}

/** The sphere scaled by a per-task factor carried in the context. */
export function scaledSphere(x: Float32Array, ctx: ObjectiveContext): number {
  return (ctx.context as { scale: number }).scale * sphere(x);
}

export const notAFunction = 3;
