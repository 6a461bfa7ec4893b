/**
 * The driver every training command shares (train --method es|backprop,
 * evograd, l2l): metrics (JSONL, cut back on --resume), progress, Ctrl-C,
 * the loop, one summary line, and closing the method's workers on every exit
 * path. Exit codes: 0 done or stopped by --max-minutes; 130 interrupted
 * (SIGINT/SIGTERM: the state of the last completed step is saved); 2 the
 * user's error or a collapse; 1 anything else.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UserError, parseNum } from '../errors.js';
import { createProgress } from '../train/progress.js';
import { MetricsLog, onInterrupt, truncateMetrics } from '../train/metrics.js';
import { CsvMetricsSink, type MetricsSink } from '../train/metrics-sinks.js';
import { runLoop, type LoopResult } from '../train/loop.js';
import type { CollapseConfig } from '../train/collapse.js';
import type { TrainMethod } from '../train/method.js';
import { readRunState, resolveResumePath, type LoopState, type RunState } from '../train/run-files.js';

export interface TrainingRun {
  method: TrainMethod;
  out: string;
  /** A resumed run: the loop state read from its checkpoint. */
  resume?: LoopState;
  valEvery: number;
  checkpointEvery: number;
  collapse?: CollapseConfig;
  maxMinutes?: number;
  progress: boolean;
  /** Also write the metrics as CSV files (metrics-step.csv, metrics-val.csv, ...) in the run directory. */
  csv?: boolean;
  /** Extra sinks. */
  sinks?: MetricsSink[];
  /** Write report.html (charts of the run) at the end (default true). */
  report?: boolean;
  startRecord?: Record<string, unknown>;
  /** Lines describing the run, printed before it starts. */
  describe: string[];
  /** After a run that was not interrupted (test evaluation, ...). */
  after?: (r: LoopResult, metrics: MetricsLog) => Promise<void>;
}

/** The loop options the training commands take (train's --checkpoint-every for ES is its config's). */
export interface LoopCliOptions { maxMinutes?: string; checkpointEvery?: string; testEpisodes?: string }

/**
 * --max-minutes, --checkpoint-every and --test-episodes, parsed with one set of bounds for every
 * command; checkpointEvery is absent when not given (each command has its own default).
 */
export function loopOptions(o: LoopCliOptions): { maxMinutes?: number; checkpointEvery?: number; testEpisodes: number } {
  const maxMinutes = parseNum('max-minutes', o.maxMinutes, { min: 0 });
  const checkpointEvery = parseNum('checkpoint-every', o.checkpointEvery, { int: true, min: 0 });
  const testEpisodes = parseNum('test-episodes', o.testEpisodes, { int: true, min: 0, max: 1_000_000 }) ?? 0;
  return { ...(maxMinutes !== undefined ? { maxMinutes } : {}), ...(checkpointEvery !== undefined ? { checkpointEvery } : {}), testEpisodes };
}

/** The options every training command reads before it builds its method. */
export interface RunPlanOptions { resume?: string; preset?: string; out?: string; showConfig?: boolean }

export interface RunPlanSpec<C> {
  /** The method tag saved in the run state ('es', 'backprop', 'evograd', 'l2l'). */
  method: string;
  /** What a run of this method is called in errors ('an ES run'). */
  label: string;
  /** Added to the wrong-method error (e.g. '(use --method backprop)'); default none. */
  hint?: (savedMethod: string) => string;
  /** The configuration of a new run (preset plus options). */
  fresh: () => C;
  /** The configuration of a resumed run from its saved one (and the options that may change). */
  resumed: (saved: RunState) => C;
  /** The default output directory's name under runs/ (a timestamp is appended). */
  outName: (cfg: C) => string;
}

export interface RunPlan<C> {
  cfg: C;
  out: string;
  /** Set when resuming: the checkpoint's run state, and its path. */
  statePath?: string;
  saved?: RunState;
}

/**
 * The prelude every training command shares: the configuration from a preset or from the run
 * being resumed (--preset and --resume exclude each other; a run of another method is refused),
 * --show-config (prints it; null is returned and the command ends), and the output directory
 * (default runs/NAME-TIME, or the resumed run's own; a directory that already holds a run is
 * refused unless resuming).
 */
export function planRun<C>(o: RunPlanOptions, spec: RunPlanSpec<C>): RunPlan<C> | null {
  let cfg: C, statePath: string | undefined, saved: RunState | undefined;
  if (o.resume !== undefined) {
    if (o.preset !== undefined) throw new UserError('--preset does not apply with --resume (the saved run\'s configuration is used)');
    statePath = resolveResumePath(o.resume);
    saved = readRunState(statePath);
    if (saved.method !== spec.method) throw new UserError(`--resume ${o.resume}: a ${saved.method} run, not ${spec.label}${spec.hint ? ` ${spec.hint(saved.method)}` : ''}`);
    cfg = spec.resumed(saved);
  } else {
    cfg = spec.fresh();
  }
  if (o.showConfig) {
    process.stdout.write(`${JSON.stringify(cfg, null, 2)}\n`);
    return null;
  }
  const out = o.out ?? (statePath ? dirname(statePath) : join('runs', `${spec.outName(cfg)}-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  if (!statePath && existsSync(join(out, 'last.state.safetensors'))) {
    throw new UserError(`${out} already holds a run: continue it with --resume ${out}, or choose another --out`);
  }
  return { cfg, out, ...(statePath ? { statePath, saved: saved! } : {}) };
}

/**
 * Loads the resumed run's method state (read afresh from `statePath`) and returns its loop state;
 * undefined for a new run. If loading fails the method, and its workers, are closed first.
 */
export async function resumeMethod(method: TrainMethod, statePath: string | undefined): Promise<LoopState | undefined> {
  if (!statePath) return undefined;
  try {
    const saved = readRunState(statePath);
    method.loadState(saved.state);
    return saved.loop;
  } catch (e) {
    await method.close();
    throw e;
  }
}

/** Write RUN/report.html; a failure to chart never fails the run. */
async function report(out: string): Promise<void> {
  try {
    const { writeRunReport } = await import('../report/index.js');
    const r = await writeRunReport([out], join(out, 'report.html'));
    log(`report: ${r.html}`);
  } catch (e) {
    log(`report: not written (${(e as Error).message}); run evometa report ${out}`);
  }
}

export function log(msg: string): void { process.stderr.write(`${msg}\n`); }

export function pct(x: number | null | undefined): string { return typeof x === 'number' && Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '-'; }

export async function runTraining(t: TrainingRun): Promise<LoopResult> {
  const { method } = t;
  const metricsPath = join(t.out, 'metrics.jsonl');
  // Installed first and removed last: a first SIGINT/SIGTERM stops the run after the step in
  // flight (saving it); a second one, also while the workers close, exits at once with 130.
  const abort = new AbortController();
  const off = onInterrupt((sig) => {
    abort.abort();
    process.stderr.write(`\n${sig}: finishing the step in flight, then saving; press Ctrl-C again to quit at once\n`);
  });
  try {
    if (t.resume) {
      const dropped = truncateMetrics(metricsPath, t.resume.step);
      if (dropped > 0) log(`  metrics: dropped ${dropped} records after step ${t.resume.step} (the steps this run replays)`);
    }
    const metrics = new MetricsLog(metricsPath);
    const sinks: MetricsSink[] = [metrics, ...(t.csv ? [new CsvMetricsSink(t.out)] : []), ...(t.sinks ?? [])];
    for (const line of t.describe) log(line);
    const bar = createProgress(method.name, method.totalSteps, { enabled: t.progress });
    let lastVal: number | null = t.resume?.bestScore ?? null;
    const score = (x: number | null | undefined): string => method.scoreFormat === 'number' ? (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(4) : '-') : pct(x);
    let r: LoopResult;
    try {
      r = await runLoop(method, {
        out: t.out, sinks, valEvery: t.valEvery, checkpointEvery: t.checkpointEvery, signal: abort.signal,
        ...(t.collapse ? { collapse: t.collapse } : {}), ...(t.maxMinutes !== undefined ? { maxMs: t.maxMinutes * 60000 } : {}),
        ...(t.resume ? { resume: t.resume } : {}), ...(t.startRecord ? { startRecord: t.startRecord } : {}),
        onStep: (s, step) => bar.update(step + 1, {
          loss: s.loss, val: score(lastVal), ...(s['candPerS'] !== undefined ? { 'cand/s': Math.round(s['candPerS']) } : {}),
        }),
        onVal: (v, step) => { lastVal = v.score; bar.update(step, { val: score(v.score) }); },
      });
    } finally {
      bar.stop();
      for (const s of sinks) s.close?.();
    }
    const l = r.loop;
    const why = { done: 'finished', interrupted: 'interrupted', time: `stopped after --max-minutes ${t.maxMinutes}` }[r.end];
    const best = l.bestStep >= 0 ? `; best validation ${score(l.bestScore)} at step ${l.bestStep}${r.bestCheckpoint ? ` (${r.bestCheckpoint})` : ''}` : '';
    log(`${why} at step ${l.step} of ${method.totalSteps} after ${l.elapsedS.toFixed(0)} s${best}; last checkpoint ${r.lastCheckpoint ?? '-'}`);
    if (r.end !== 'done') log(`continue with: --resume ${r.lastCheckpoint ?? join(t.out, 'last.safetensors')}`);
    if (r.end === 'interrupted') {
      process.exitCode = 130;
      return r;
    }
    if (t.after) await t.after(r, metrics);
    if (t.report ?? true) await report(t.out);
    return r;
  } finally {
    await method.close();
    off();
  }
}
