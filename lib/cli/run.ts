/**
 * The driver every training command shares (train --method es|backprop,
 * evograd, l2l): metrics (JSONL, cut back on --resume), progress, Ctrl-C,
 * the loop, one summary line, and closing the method's workers on every exit
 * path. Exit codes: 0 done or stopped by --max-minutes; 130 interrupted
 * (SIGINT/SIGTERM: the state of the last completed step is saved); 2 the
 * user's error or a collapse; 1 anything else.
 */
import { join } from 'node:path';
import { createProgress } from '../train/progress.js';
import { MetricsLog, onInterrupt, truncateMetrics } from '../train/metrics.js';
import { CsvMetricsSink, type MetricsSink } from '../train/metrics-sinks.js';
import { runLoop, type LoopResult } from '../train/loop.js';
import type { CollapseConfig } from '../train/collapse.js';
import type { TrainMethod } from '../train/method.js';
import type { LoopState } from '../train/run-files.js';

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
    let r: LoopResult;
    try {
      r = await runLoop(method, {
        out: t.out, sinks, valEvery: t.valEvery, checkpointEvery: t.checkpointEvery, signal: abort.signal,
        ...(t.collapse ? { collapse: t.collapse } : {}), ...(t.maxMinutes !== undefined ? { maxMs: t.maxMinutes * 60000 } : {}),
        ...(t.resume ? { resume: t.resume } : {}), ...(t.startRecord ? { startRecord: t.startRecord } : {}),
        onStep: (s, step) => bar.update(step + 1, {
          loss: s.loss, val: pct(lastVal), ...(s['candPerS'] !== undefined ? { 'cand/s': Math.round(s['candPerS']) } : {}),
        }),
        onVal: (v, step) => { lastVal = v.score; bar.update(step, { val: pct(v.score) }); },
      });
    } finally {
      bar.stop();
      for (const s of sinks) s.close?.();
    }
    const l = r.loop;
    const why = { done: 'finished', interrupted: 'interrupted', time: `stopped after --max-minutes ${t.maxMinutes}` }[r.end];
    const best = l.bestStep >= 0 ? `; best validation ${pct(l.bestScore)} at step ${l.bestStep}${r.bestCheckpoint ? ` (${r.bestCheckpoint})` : ''}` : '';
    log(`${why} at step ${l.step} of ${method.totalSteps} after ${l.elapsedS.toFixed(0)} s${best}; last checkpoint ${r.lastCheckpoint ?? '-'}`);
    if (r.end !== 'done') log(`continue with: --resume ${r.lastCheckpoint ?? join(t.out, 'last.safetensors')}`);
    if (r.end === 'interrupted') process.exitCode = 130;
    else if (t.after) await t.after(r, metrics);
    if (t.report ?? true) await report(t.out);
    return r;
  } finally {
    await method.close();
    off();
  }
}
