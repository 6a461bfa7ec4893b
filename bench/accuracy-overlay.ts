/**
 * The validation curves of committed accuracy summaries (the JSON of bench/accuracy-summary.ts)
 * overlaid against steps, wall-clock time and member-evaluations, so the overlay can be redrawn
 * from the repository alone, without the runs' metrics.jsonl:
 *
 *   node dist/bench/accuracy-overlay.js --out bench/results/accuracy/presets-and-paper-charts A.json B.json ...
 *
 * Member-evaluations at a validation point are its step times the run's evaluations per step
 * (the summary's total over its steps; constant for the fixed-population presets).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chartSpec, METRICS, renderSvg } from '../lib/report/charts.js';
import { timeUnit, type ChartRow, type XAxis } from '../lib/report/series.js';
import { arg } from './common.js';
import type { SummaryRun } from './accuracy-format.js';

function readSummaries(files: readonly string[]): SummaryRun[] {
  return files.flatMap((f) => {
    let d: { runs?: unknown };
    try {
      d = JSON.parse(readFileSync(f, 'utf8')) as { runs?: unknown };
    } catch (e) {
      throw new Error(`${f}: not a readable JSON file (${(e as Error).message})`);
    }
    if (!Array.isArray(d.runs)) throw new Error(`${f}: no "runs" array (not an accuracy summary of bench/accuracy-summary.js)`);
    return (d.runs as SummaryRun[]).map((r, i) => {
      if (typeof r.name !== 'string' || !Array.isArray(r.val) || !Number.isInteger(r.steps)) throw new Error(`${f}: runs[${i}] lacks its name, steps or val curve`);
      return r;
    });
  });
}

/** Rows of one axis: each run's validation points (accuracy in %). */
function overlayRows(runs: readonly SummaryRun[], axis: XAxis, unitSeconds: number): ChartRow[] {
  const rows: ChartRow[] = [];
  for (const r of runs) {
    const perStep = r.evals !== null && r.steps > 0 ? r.evals / r.steps : undefined;
    for (const [step, minutes, acc] of r.val) {
      const x = axis === 'step' ? step : axis === 'time' ? (minutes === null ? undefined : (minutes * 60) / unitSeconds) : perStep === undefined ? undefined : step * perStep;
      if (x !== undefined && Number.isFinite(acc)) rows.push({ run: r.name, x, y: 100 * acc, kind: 'line' });
    }
  }
  return rows;
}

async function main(): Promise<void> {
  const out = arg('out', '');
  const files = process.argv.slice(2).filter((a, i, all) => a !== '--out' && all[i - 1] !== '--out');
  if (!out || files.length === 0) {
    console.error('usage: node dist/bench/accuracy-overlay.js --out DIR SUMMARY.json [SUMMARY.json ...]');
    process.exit(2);
  }
  const runs = readSummaries(files);
  const metric = { ...METRICS.find((m) => m.id === 'val-acc')!, band: undefined, note: 'each run on its own validation episodes (no band: the summaries keep the accuracy only)' };
  const unit = timeUnit(Math.max(...runs.flatMap((r) => r.val.map((v) => (v[1] ?? 0) * 60))));
  mkdirSync(out, { recursive: true });
  for (const axis of ['step', 'time', 'evals'] as const) {
    const rows = overlayRows(runs, axis, unit.seconds);
    const spec = chartSpec(metric, axis, unit, rows, '', runs.map((r) => r.name));
    const file = join(out, `val-acc-vs-${axis}.svg`);
    writeFileSync(file, await renderSvg(spec));
    console.log(`wrote ${file} (${runs.length} runs, ${rows.length} points)`);
  }
}

main().catch((e: unknown) => {
  console.error(`accuracy-overlay: ${(e as Error).message}`);
  process.exit(1);
});
