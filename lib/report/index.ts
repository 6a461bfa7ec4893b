/**
 * Run reports: one self-contained HTML page (inline SVG charts, tables of the configuration and
 * the test results) and each chart as its own SVG file, from one or more run directories.
 * Below the training loop in the layers (it reads files and imports only errors and vega), so the
 * loop can call writeRunReport when a run ends.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { readRun, uniqueNames, type RunData } from './records.js';
import type { Chart } from './charts.js';
import { renderPage } from './html.js';
import type { SeriesOptions } from './series.js';

export { readRun, parseMetricsLines, metricsPath, uniqueNames } from './records.js';
export type { RunData, MetricsPoint, MetricsRecord, MetricsStartRecord, MetricsStepRecord, MetricsValRecord, MetricsTestRecord, MetricsEndRecord, MetricsResumeRecord } from './records.js';
export { ema, thin, autoSmoothing, chartRows, timeUnit } from './series.js';
export type { MetricDef, ChartRow, SeriesOptions } from './series.js';
export type { Chart } from './charts.js';

export interface ReportOptions extends Partial<SeriesOptions> {
  /** Folder for the SVG files (default: next to the HTML file, `<name>-charts/`). */
  svgDir?: string;
}

export interface ReportResult {
  /** The HTML file written. */
  html: string;
  /** The SVG files written, one per chart. */
  svgs: string[];
  charts: Chart[];
  runs: RunData[];
  /** Problems that did not stop the report (a torn last line, an empty file). */
  warnings: string[];
}

/** The report path used when none is given: `report.html` in the run directory (one run) or in the working directory (several). */
export function defaultReportPath(runDirs: readonly string[]): string {
  return runDirs.length === 1 ? join(runDirs[0]!, 'report.html') : 'report.html';
}

/**
 * Read the runs' metrics.jsonl and write the report (HTML + SVG files). Throws a UserError naming
 * the directory, or the file and line, when a run has no metrics or a malformed record.
 */
export async function writeRunReport(runDirs: readonly string[], outFile: string = defaultReportPath(runDirs), opts: ReportOptions = {}): Promise<ReportResult> {
  if (runDirs.length === 0) throw new UserError('report: give at least one run directory');
  const smoothing = opts.smoothing ?? 'auto';
  if (smoothing !== 'auto' && !(smoothing >= 0 && smoothing < 1)) throw new UserError(`--smoothing: expected a weight in [0, 1) or "auto", got ${smoothing}`);
  const maxPoints = opts.maxPoints ?? 1500;
  if (!Number.isInteger(maxPoints) || maxPoints < 10) throw new UserError(`--max-points: expected an integer >= 10, got ${maxPoints}`);
  const runs = runDirs.map(readRun);
  const names = uniqueNames(runDirs);
  runs.forEach((r, i) => { r.name = names[i]!; });
  const warnings = runs.flatMap((r) => r.warnings);
  // vega loads only when a report is written (importing the package stays light).
  const { buildCharts } = await import('./charts.js');
  const charts = await buildCharts(runs, { smoothing, maxPoints });

  const html = resolve(outFile);
  const svgDir = resolve(opts.svgDir ?? join(dirname(html), `${basename(html, extname(html))}-charts`));
  mkdirSync(dirname(html), { recursive: true });
  mkdirSync(svgDir, { recursive: true });
  const svgs: string[] = [];
  const svgFiles: Record<string, string> = {};
  for (const c of charts) {
    const p = join(svgDir, `${c.id}.svg`);
    writeFileSync(p, c.svg.startsWith('<?xml') ? c.svg : `<?xml version="1.0" encoding="UTF-8"?>\n${c.svg}`);
    svgs.push(p);
    svgFiles[c.id] = relative(dirname(html), p).split('\\').join('/');
  }
  writeFileSync(html, renderPage({ runs, charts, svgFiles, warnings, generated: new Date().toISOString() }));
  return { html, svgs, charts, runs, warnings };
}
