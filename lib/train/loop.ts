/**
 * The one training loop. Every method (ES-ProtoNet, backprop, EvoGrad, a
 * learned optimizer) plugs in through TrainMethod (lib/train/method.ts); the
 * loop owns: the validation schedule and best-so-far tracking, atomic
 * checkpoint pairs that resume bit for bit (lib/train/run-files.ts), metrics
 * records, progress, the wall-clock limit, Ctrl-C (an AbortSignal) and
 * collapse detection. It never closes the method: the caller does, in a
 * finally, so every exit path releases workers (see runMethod below).
 *
 * Schedule, with S = steps done: the untrained model is validated once (a
 * fresh run with validation), then after each step whose S is a multiple of
 * valEvery and after the last step; the last checkpoint is written after each
 * S that is a multiple of checkpointEvery, on Ctrl-C, on the time limit and at
 * the end; best is written whenever validation improves.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { VERSION } from '../version.js';
import { CollapseDetector, type CollapseConfig } from './collapse.js';
import type { MetricsSink } from './metrics-sinks.js';
import type { StepMetrics, TrainMethod, ValResult } from './method.js';
import { writeRunCheckpoint, type LoopState } from './run-files.js';

export interface LoopOptions {
  /** Run directory: last.safetensors, best.safetensors (+ .state pairs). Absent: nothing is written. */
  out?: string;
  sinks?: MetricsSink[];
  /** Validate every n steps (0: only at the start and end; requires method.validate). */
  valEvery?: number;
  /** Write the last checkpoint every n steps (0: only at stops and the end). */
  checkpointEvery?: number;
  /** Stop (saving) after this much wall time in this session. */
  maxMs?: number;
  signal?: AbortSignal;
  collapse?: CollapseConfig;
  /** The saved loop state of a resumed run. */
  resume?: LoopState;
  /** Extra fields of the start record (preset, device, ...). */
  startRecord?: Record<string, unknown>;
  onStep?: (r: StepMetrics, step: number, loop: LoopState) => void;
  onVal?: (v: ValResult, step: number, loop: LoopState) => void;
}

export type LoopEnd = 'done' | 'interrupted' | 'time';

export interface LoopResult {
  end: LoopEnd;
  loop: LoopState;
  lastCheckpoint?: string;
  bestCheckpoint?: string;
}

export class CollapseError extends UserError {
  constructor(readonly reason: string, readonly step: number, readonly lastGood?: string) {
    super(`training collapsed: ${reason}; stopped without saving this state${lastGood ? `; the last good checkpoint is ${lastGood}` : ''} (try a smaller --lr or --sigma)`);
  }
}

/** Camel-case keys of a record to snake_case, dropping undefined values. */
function snake(r: Record<string, number | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(r)) if (v !== undefined) out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
  return out;
}

export async function runLoop(method: TrainMethod, opts: LoopOptions = {}): Promise<LoopResult> {
  const sinks = opts.sinks ?? [];
  const write = (r: Record<string, unknown>): void => { for (const s of sinks) s.write(r); };
  const loop: LoopState = opts.resume ? { ...opts.resume } : { step: method.step, bestScore: null, bestStep: -1, elapsedS: 0, work: 0, collapse: null };
  if (loop.step !== method.step) throw new Error(`runLoop: loop state at step ${loop.step} but the method at ${method.step}`);
  const collapse = new CollapseDetector(opts.collapse ?? { window: 0, lossFactor: 10, valChecks: 0 });
  if (loop.collapse) collapse.load(loop.collapse);
  const valEvery = opts.valEvery ?? 0, ckEvery = opts.checkpointEvery ?? 0;
  const canVal = typeof method.validate === 'function';
  const workKey = method.workKey ?? 'work';
  const sessionStart = Date.now(), elapsed0 = loop.elapsedS;
  const elapsed = (): number => elapsed0 + (Date.now() - sessionStart) / 1000;
  const last = opts.out ? join(opts.out, 'last.safetensors') : undefined;
  const best = opts.out ? join(opts.out, 'best.safetensors') : undefined;
  if (opts.out) mkdirSync(opts.out, { recursive: true });
  let lastCheckpoint: string | undefined, bestCheckpoint: string | undefined = loop.bestStep >= 0 && best ? best : undefined;

  const sync = (): void => { loop.step = method.step; loop.elapsedS = elapsed(); loop.collapse = collapse.state(); };
  const saveLast = (): void => {
    sync();
    if (!last) return;
    writeRunCheckpoint(last, method, loop, VERSION);
    lastCheckpoint = last;
  };
  const result = (end: LoopEnd): LoopResult => {
    saveLast();
    write({ type: 'end', step: loop.step, end, best_val: loop.bestScore, best_step: loop.bestStep, elapsed_s: loop.elapsedS, [workKey]: loop.work });
    return { end, loop: { ...loop }, ...(lastCheckpoint ? { lastCheckpoint } : {}), ...(bestCheckpoint ? { bestCheckpoint } : {}) };
  };
  const collapsed = (reason: string): never => {
    write({ type: 'collapse', step: method.step, reason, last_good: lastCheckpoint ?? null });
    throw new CollapseError(reason, method.step, lastCheckpoint);
  };
  const validate = async (): Promise<void> => {
    const v = await method.validate!();
    const improved = loop.bestScore === null || v.score > loop.bestScore;
    if (improved) {
      loop.bestScore = v.score;
      loop.bestStep = method.step;
    }
    const { score, ci95, loss, ...extra } = v;
    write({ type: 'val', step: method.step, elapsed_s: elapsed(), val_acc: score, val_ci95: ci95 ?? null, val_loss: loss ?? null, best_val: loop.bestScore, ...snake(extra) });
    opts.onVal?.(v, method.step, loop);
    const why = collapse.observeVal(method.step, score, method.chanceScore ?? -Infinity);
    if (why) collapsed(why);
    if (improved && best) {
      sync();
      writeRunCheckpoint(best, method, loop, VERSION, { val_acc: v.score, ...(v.ci95 !== undefined ? { val_ci95: v.ci95 } : {}) });
      bestCheckpoint = best;
    }
  };

  write(opts.resume
    ? { type: 'resume', step: loop.step, method: method.name, version: VERSION, ...opts.startRecord }
    : { type: 'start', step: loop.step, method: method.name, config: method.config, version: VERSION, work_unit: method.workUnit ?? null, ...opts.startRecord });
  if (canVal && !opts.resume && method.step === 0) await validate();
  let lastVal = method.step;
  while (method.step < method.totalSteps) {
    if (opts.signal?.aborted) return result('interrupted');
    if (opts.maxMs !== undefined && Date.now() - sessionStart > opts.maxMs) return result('time');
    const r = await method.trainStep(opts.signal);
    if (!r) return result('interrupted');
    loop.work += r.work ?? 0;
    const { loss, work: _w, ...extra } = r;
    write({ type: 'step', step: method.step - 1, elapsed_s: elapsed(), loss, ...snake(extra), [workKey]: loop.work });
    opts.onStep?.(r, method.step - 1, loop);
    const why = collapse.observeLoss(method.step - 1, loss, method.chanceLoss ?? Infinity);
    if (why) collapsed(why);
    const done = method.step >= method.totalSteps;
    if (canVal && ((valEvery > 0 && method.step % valEvery === 0) || done)) {
      await validate();
      lastVal = method.step;
    }
    if (!done && ckEvery > 0 && method.step % ckEvery === 0) saveLast();
    // let signal handlers (Ctrl-C) run between steps
    await new Promise<void>((res) => setImmediate(res));
  }
  if (canVal && lastVal !== method.step) await validate();
  return result('done');
}
