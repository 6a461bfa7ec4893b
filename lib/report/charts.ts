/**
 * The report's charts: which metrics, their vega-lite specs, and SVG rendered headless
 * (vega's 'none' renderer + toSVG), so the page needs no script and no network to show them.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { RunData } from './records.js';
import { chartRows, hasMetric, maxElapsed, timeUnit, type MetricDef, type ChartRow, type SeriesOptions, type TimeUnit, type XAxis } from './series.js';

/** The metrics charted, in page order; a chart appears only when some run logged its field. */
export const METRICS: readonly MetricDef[] = [
  { id: 'loss', title: 'Training loss', yTitle: 'loss (nats)', source: 'steps', field: 'loss', smooth: true, note: 'query cross-entropy on each training episode' },
  { id: 'val-acc', title: 'Validation accuracy', yTitle: 'validation accuracy (%)', source: 'vals', field: 'val_acc', band: 'val_ci95', percent: true, points: true, byEvals: true, note: 'mean over validation episodes; band: 95% CI' },
  { id: 'train-acc', title: 'Training accuracy', yTitle: 'training accuracy (%)', source: 'steps', field: 'acc', smooth: true, percent: true, note: 'query accuracy on each training episode' },
  { id: 'cand-per-s', title: 'Throughput', yTitle: 'candidates / s', source: 'steps', field: 'cand_per_s', smooth: true, note: 'population members evaluated per second' },
  { id: 'sigma', title: 'ES noise scale', yTitle: 'σ (parameter units)', source: 'steps', field: 'sigma', steps: true, note: 'standard deviation of the ES perturbations' },
  { id: 'g-norm', title: 'Gradient norm', yTitle: '‖g‖₂', source: 'steps', field: 'g_norm', smooth: true, note: 'L2 norm of the gradient estimate' },
  { id: 'lr', title: 'Learning rate', yTitle: 'learning rate', source: 'steps', field: 'lr', steps: true, note: 'step size of the optimizer' },
];

export interface Chart {
  /** File name stem, e.g. `loss-vs-step`. */
  id: string;
  metric: MetricDef;
  axis: XAxis;
  title: string;
  svg: string;
  /** Number of data rows drawn (per run: raw and line points). */
  rows: number;
}

function xTitle(axis: XAxis, unit: TimeUnit): string {
  return axis === 'step' ? 'training step' : axis === 'time' ? `wall-clock time since start (${unit.name})` : 'member-evaluations (population members evaluated)';
}

const AXIS_NAME: Record<XAxis, string> = { step: 'step', time: 'wall-clock time', evals: 'member-evaluations' };

/** The vega-lite spec of one chart: runs by colour, faint raw values under the smoothed line, a 95% band where the metric has one. */
export function chartSpec(m: MetricDef, axis: XAxis, unit: TimeUnit, rows: ChartRow[], smoothingNote: string, runNames?: readonly string[]): TopLevelSpec {
  const x = { field: 'x', type: 'quantitative', title: xTitle(axis, unit), axis: { format: axis === 'time' ? '~r' : '~s' } };
  const y = { field: 'y', type: 'quantitative', title: m.yTitle, scale: { zero: false }, axis: { format: '~r' } };
  // One colour per run across all charts (the scale's domain is every run of the report); the legend lists the runs this chart has.
  const present = [...new Set(rows.map((r) => r.run))];
  const domain = runNames ? [...runNames] : present;
  const color = {
    field: 'run', type: 'nominal', title: 'run', scale: { domain },
    legend: { values: domain.filter((n) => present.includes(n)), orient: 'bottom', columns: 2, labelLimit: 360, symbolType: 'stroke', symbolOpacity: 1, symbolStrokeWidth: 2.5, symbolSize: 200 },
  };
  const layers: unknown[] = [];
  if (m.band) {
    layers.push({
      transform: [{ filter: 'isValid(datum.lo)' }],
      mark: { type: 'area', opacity: 0.18, clip: true },
      encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color },
    });
  }
  if (m.smooth) {
    layers.push({ transform: [{ filter: "datum.kind === 'raw'" }], mark: { type: 'line', opacity: 0.22, strokeWidth: 1, clip: true }, encoding: { x, y, color } });
  }
  layers.push({
    transform: [{ filter: "datum.kind === 'line'" }],
    mark: { type: 'line', strokeWidth: 2, clip: true, ...(m.points ? { point: { size: 30 } } : {}), ...(m.steps ? { interpolate: 'step-after' } : {}) },
    encoding: { x, y, color },
  });
  const subtitle = [m.note, m.smooth ? smoothingNote : undefined].filter((s): s is string => !!s);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `${m.title} vs ${AXIS_NAME[axis]}`, ...(subtitle.length ? { subtitle } : {}), anchor: 'start' },
    width: 440,
    height: 260,
    data: { values: rows },
    layer: layers,
    config: { font: 'sans-serif', background: 'white', axis: { titleFontWeight: 'normal', titleFontSize: 12 }, title: { fontSize: 14, subtitleFontSize: 11, subtitleColor: '#555' } },
  } as unknown as TopLevelSpec;
}

/** Give the SVG's ids (clip paths) a chart prefix, so several inlined in one page cannot clash. */
function prefixIds(svg: string, prefix: string): string {
  return svg.replace(/id="([^"]+)"/g, `id="${prefix}-$1"`).replace(/url\(#([^)]+)\)/g, `url(#${prefix}-$1)`);
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Every chart the runs have data for: each metric against steps and against wall-clock time, and those marked byEvals against member-evaluations. */
export async function buildCharts(runs: readonly RunData[], opt: SeriesOptions): Promise<Chart[]> {
  const note = opt.smoothing === 'auto'
    ? 'faint: raw; solid: EMA (bias-corrected, window ≈ n/30 points)'
    : `faint: raw; solid: EMA (bias-corrected, weight ${opt.smoothing})`;
  const charts: Chart[] = [];
  for (const m of METRICS) {
    if (!hasMetric(runs, m)) continue;
    // The wall-clock unit suits the longest of the runs in this chart.
    const unit = timeUnit(maxElapsed(runs.filter((r) => hasMetric([r], m))));
    for (const axis of m.byEvals ? (['step', 'time', 'evals'] as const) : (['step', 'time'] as const)) {
      const rows = chartRows(runs, m, axis, unit, opt);
      if (rows.length === 0) continue; // no wall-clock times (or evaluation counts) in these records
      const id = `${m.id}-vs-${axis}`;
      const spec = chartSpec(m, axis, unit, rows, note, runs.map((r) => r.name));
      const svg = prefixIds(await renderSvg(spec), id);
      charts.push({ id, metric: m, axis, title: `${m.title} vs ${AXIS_NAME[axis]}`, svg, rows: rows.length });
    }
  }
  return charts;
}
