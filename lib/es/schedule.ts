/**
 * Schedules of a hyperparameter over the steps of a run (learning rate,
 * sigma, population size), as pure functions of the step: a resumed run sees
 * exactly the values an uninterrupted one would.
 *
 *   constant                 v(t) = base
 *   linear  (final)          v(t) = base + (final - base) * t/(T-1)
 *   exp     (final)          v(t) = base * (final/base)^(t/(T-1))        geometric decay
 *   cosine  (final, warmup)  linear warm-up from final to base over `warmup` steps, then
 *                            v(t) = final + (base - final) * (1 + cos(pi * u)) / 2,  u = (t - warmup)/(T - 1 - warmup)
 *   step    (every, gamma)   v(t) = base * gamma^floor(t / every)
 * T is the run's total steps; t past T-1 keeps the last value.
 */
import { UserError } from '../errors.js';

export type ScheduleKind = 'constant' | 'linear' | 'exp' | 'cosine' | 'step';

export interface Schedule {
  kind: ScheduleKind;
  /** Value at the last step (linear, exp, cosine). */
  final?: number;
  /** cosine: warm-up steps. */
  warmup?: number;
  /** step: period and factor. */
  every?: number;
  gamma?: number;
}

export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['constant', 'linear', 'exp', 'cosine', 'step'];

/** Refuse an invalid schedule for `what` (e.g. 'sigma'), naming it. */
export function checkSchedule(what: string, base: number, s: Schedule): void {
  const bad = (m: string): never => { throw new UserError(`${what} schedule: ${m}`); };
  if (!SCHEDULE_KINDS.includes(s.kind)) bad(`kind must be one of ${SCHEDULE_KINDS.join(', ')}, got ${JSON.stringify(s.kind)}`);
  if (s.kind === 'linear' || s.kind === 'exp' || s.kind === 'cosine') {
    if (!(typeof s.final === 'number' && Number.isFinite(s.final) && s.final >= 0)) bad(`final value must be a finite number >= 0, got ${s.final}`);
    if (s.kind === 'exp' && !(s.final! > 0 && base > 0)) bad(`exp needs base and final > 0 (got ${base} and ${s.final})`);
  }
  if (s.kind === 'cosine' && s.warmup !== undefined && !(Number.isInteger(s.warmup) && s.warmup >= 0)) bad(`warmup must be an integer >= 0, got ${s.warmup}`);
  if (s.kind === 'step') {
    if (!(Number.isInteger(s.every) && s.every! >= 1)) bad(`every must be an integer >= 1, got ${s.every}`);
    if (!(typeof s.gamma === 'number' && s.gamma > 0 && s.gamma <= 1)) bad(`gamma must be in (0, 1], got ${s.gamma}`);
  }
}

/** The scheduled value at step t (0-based) of a run of `steps` steps. */
export function scheduleAt(base: number, s: Schedule | undefined, t: number, steps: number): number {
  if (!s || s.kind === 'constant') return base;
  if (s.kind === 'step') return base * s.gamma! ** Math.floor(t / s.every!);
  const final = s.final!;
  if (steps <= 1) return base;
  if (s.kind === 'cosine') {
    const w = Math.min(s.warmup ?? 0, steps - 1);
    if (t < w) return final + (base - final) * (t + 1) / w;
    const u = Math.min(1, (t - w) / Math.max(1, steps - 1 - w));
    return final + (base - final) * (1 + Math.cos(Math.PI * u)) / 2;
  }
  const u = Math.min(1, t / (steps - 1));
  if (s.kind === 'linear') return base + (final - base) * u;
  return base * (final / base) ** u;
}

/**
 * A population size schedule: the scheduled value rounded down to a multiple
 * of `unit` (shards, times 2 with antithetic pairs), and at least `unit`.
 */
export function popAt(base: number, s: Schedule | undefined, t: number, steps: number, unit: number): number {
  const v = scheduleAt(base, s, t, steps);
  return Math.max(unit, Math.floor(v / unit) * unit);
}
