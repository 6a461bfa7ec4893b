/**
 * Hand-designed optimizers on the same tasks, for comparison with the learned
 * one: SGD (optionally with momentum) and Adam, each step on the task's loss
 * and gradient at the same minibatch schedule (step t uses minibatch t), and a
 * learning-rate tuning on a grid (the best mean log final loss on tuning tasks).
 */
import type { OptimizeeTask } from './tasks/task.js';

export type BaselineName = 'sgd' | 'adam';
export const BASELINES: readonly BaselineName[] = ['sgd', 'adam'];

export interface BaselineConfig { name: BaselineName; lr: number; momentum?: number }

/** Losses at steps 0..T (loss t is the training loss at theta_t on minibatch t), and the final parameters. */
export function runBaseline(task: OptimizeeTask, cfg: BaselineConfig, steps: number): { losses: Float64Array; theta: Float64Array } {
  const n = task.n, theta = task.initialParams(new Float64Array(0)) as Float64Array, g = new Float64Array(n);
  const m = new Float64Array(n), v = new Float64Array(n), losses = new Float64Array(steps + 1);
  const mom = cfg.momentum ?? 0, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  for (let t = 0; t <= steps; t++) {
    losses[t] = task.lossGrad(theta, t, g);
    if (t === steps) break;
    if (!Number.isFinite(losses[t]!)) { losses.fill(Infinity, t); break; }
    if (cfg.name === 'sgd') {
      for (let i = 0; i < n; i++) {
        m[i] = mom * m[i]! + g[i]!;
        theta[i] = theta[i]! - cfg.lr * m[i]!;
      }
    } else {
      const bc1 = 1 - b1 ** (t + 1), bc2 = 1 - b2 ** (t + 1);
      for (let i = 0; i < n; i++) {
        m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
        v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
        theta[i] = theta[i]! - (cfg.lr * (m[i]! / bc1)) / (Math.sqrt(v[i]! / bc2) + eps);
      }
    }
  }
  return { losses, theta };
}

/** Mean over tasks of log(final loss) (a non-finite loss counts as +Infinity). */
export function meanLogFinal(curves: readonly Float64Array[]): number {
  let s = 0;
  for (const c of curves) {
    const f = c[c.length - 1]!;
    s += Number.isFinite(f) && f > 0 ? Math.log(f) : f === 0 ? -700 : Infinity;
  }
  return s / curves.length;
}

/** Learning rates 10^(lo + i * step): the default grid spans 1e-4 .. 1 in quarter decades. */
export function lrGrid(lo = -4, hi = 0, perDecade = 4): number[] {
  const out: number[] = [];
  for (let i = 0; lo + i / perDecade <= hi + 1e-9; i++) out.push(10 ** (lo + i / perDecade));
  return out;
}

export interface Tuned { config: BaselineConfig; score: number; grid: { lr: number; score: number }[] }

/** The grid learning rate with the lowest mean log final loss on `tasks` after `steps` steps. */
export function tuneBaseline(name: BaselineName, tasks: readonly OptimizeeTask[], steps: number, grid = lrGrid(), momentum?: number): Tuned {
  const rows = grid.map((lr) => {
    const cfg: BaselineConfig = { name, lr, ...(momentum !== undefined ? { momentum } : {}) };
    return { lr, score: meanLogFinal(tasks.map((t) => runBaseline(t, cfg, steps).losses)) };
  });
  const best = rows.reduce((a, b) => (b.score < a.score ? b : a));
  return { config: { name, lr: best.lr, ...(momentum !== undefined ? { momentum } : {}) }, score: best.score, grid: rows };
}
