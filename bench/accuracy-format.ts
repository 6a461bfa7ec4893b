/**
 * The run entries of an accuracy summary (bench/accuracy-summary.ts writes them, bench/accuracy-overlay.ts
 * reads them): a run directory's configuration, validation curve, best validation, tests, steps, member
 * evaluations and wall time.
 */
import { basename } from 'node:path';
import { readRun } from '../lib/report/index.js';

export interface SummaryTest { checkpoint: unknown; episodes: unknown; way: unknown; shot: unknown; query: unknown; acc: unknown; ci95: unknown; loss: unknown }

export interface SummaryRun {
  name: string;
  config: unknown; version: unknown; device: unknown; evaluator: unknown; workers: unknown;
  resumes: unknown;
  steps: number;
  /** Member evaluations over the run's steps (null when the run did not count them). */
  evals: number | null;
  elapsedMinutes: number | null;
  bestVal: { step: number; acc: number | undefined; ci95: number | null } | null;
  /** [step, elapsed minutes, validation accuracy]. */
  val: [number, number | null, number][];
  tests: SummaryTest[];
  end: unknown;
}

/** The summary entry of one run directory (resumed runs: later records replace the earlier ones at the same steps). */
export function summarizeRun(dir: string): SummaryRun {
  const run = readRun(dir);
  const start = run.start as Record<string, unknown> | null;
  const last = run.steps[run.steps.length - 1];
  const best = run.vals.reduce<typeof run.vals[number] | undefined>((b, v) => (b === undefined || v.values.val_acc! > b.values.val_acc! ? v : b), undefined);
  return {
    name: basename(dir),
    config: start?.config ?? null,
    version: start?.version ?? null,
    device: start?.device ?? null, evaluator: start?.evaluator ?? null, workers: start?.workers ?? null,
    resumes: run.resumes,
    steps: last ? last.step + 1 : 0,
    evals: last?.values.evals ?? null,
    elapsedMinutes: last?.elapsed !== undefined ? last.elapsed / 60 : null,
    bestVal: best ? { step: best.step, acc: best.values.val_acc, ci95: best.values.val_ci95 ?? null } : null,
    val: run.vals.map((v) => [v.step, v.elapsed !== undefined ? Number((v.elapsed / 60).toFixed(2)) : null, v.values.val_acc!]),
    tests: run.tests.map((t) => ({ checkpoint: t.checkpoint, episodes: t.episodes, way: t.way, shot: t.shot, query: t.query, acc: t.test_acc, ci95: t.test_ci95, loss: t.test_loss })),
    end: run.end?.end ?? null,
  };
}
