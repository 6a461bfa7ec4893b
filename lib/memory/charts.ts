/**
 * Charts of the memory study as SVG: a vega-lite spec compiled to vega and
 * rendered headless (renderer 'none' + toSVG). Log scales on both axes.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { SweepResult } from './sweep.js';
import { methodLabel } from './labels.js';
import { rssOverIdle, trackedOverIdle } from './report.js';

export interface ChartPoint { x: number; bytes: number; series: string; measure: string; panel?: string }

function lineSpec(title: string, xTitle: string, points: ChartPoint[]): TopLevelSpec {
  const layer = {
    width: 420,
    height: 300,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', scale: { type: 'log' }, title: xTitle, axis: { format: '~s' } },
      y: { field: 'bytes', type: 'quantitative', scale: { type: 'log' }, title: 'bytes', axis: { format: '~s' } },
      color: { field: 'series', type: 'nominal', title: 'method' },
      strokeDash: { field: 'measure', type: 'nominal', title: 'kind' },
      tooltip: [{ field: 'series' }, { field: 'measure' }, { field: 'x' }, { field: 'bytes', format: ',' }],
    },
  };
  const panels = new Set(points.map((p) => p.panel).filter((p) => p !== undefined));
  const base = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title, data: { values: points }, config: { font: 'sans-serif', legend: { labelLimit: 320 } } };
  return (panels.size > 0 ? { ...base, facet: { column: { field: 'panel', type: 'nominal', title: null } }, resolve: { scale: { y: 'shared' } }, spec: layer } : { ...base, ...layer }) as TopLevelSpec;
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const compiled = compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

const MEASURED_RSS = 'measured: peak RSS over idle';
const MEASURED_TRACKED = 'measured: tracked heap over idle';
const ACCOUNTED = 'accounting: accounted peak';

/**
 * A task-length study (MAML adapting every parameter, or the head-only learner) against l:
 * one panel per kind of number (measured RSS over idle, measured tracked heap over idle,
 * accounted peak); cases over the budget appear in the accounting panel as their prediction.
 */
export function taskLengthPoints(s: SweepResult, study: 'task-length' | 'task-length-head' = 'task-length'): ChartPoint[] {
  const pts: ChartPoint[] = [];
  const push = (x: number, bytes: number | null, series: string, panel: string, measure: string): void => {
    if (bytes !== null && bytes > 0) pts.push({ x, bytes, series, measure, panel });
  };
  for (const c of s.cases) {
    const r = c.result;
    if (c.study !== study) continue;
    const x = c.spec.innerSteps!;
    if (x < 1) continue;
    const series = methodLabel(c.spec.method);
    if (r.status === 'out of memory budget') { push(x, r.predictedBytes, series, ACCOUNTED, 'predicted (over budget, not run)'); continue; }
    if (r.status !== 'ok') continue;
    push(x, rssOverIdle(r, s.idle), series, MEASURED_RSS, 'measured');
    push(x, trackedOverIdle(r, s.idle), series, MEASURED_TRACKED, 'measured');
    push(x, r.accounted.peak, series, ACCOUNTED, 'accounted');
  }
  return pts;
}

/** ES memory against the population size, one panel per C, with forward mode and backprop of the same model as flat references. */
export function populationPoints(s: SweepResult): ChartPoint[] {
  const pts: ChartPoint[] = [];
  const pops = [...new Set(s.cases.filter((c) => c.study === 'population').map((c) => c.spec.pop!))].sort((a, b) => a - b);
  const channels = new Set(s.cases.filter((c) => c.study === 'population').map((c) => c.spec.channels));
  const push = (x: number, bytes: number | null, series: string, measure: string, panel: string): void => {
    if (bytes !== null && bytes > 0) pts.push({ x, bytes, series, measure, panel });
  };
  for (const c of s.cases) {
    const r = c.result, sp = c.spec;
    if (r.status !== 'ok' || !channels.has(sp.channels)) continue;
    const panel = `C = ${sp.channels}`;
    if (c.study === 'population') {
      const series = methodLabel(sp.method);
      push(sp.pop!, rssOverIdle(r, s.idle), series, MEASURED_RSS, panel);
      push(sp.pop!, r.accounted.peak, series, ACCOUNTED, panel);
    } else if (c.study === 'channels' && (sp.method === 'forward' || sp.method === 'backprop') && sp.way === 10) {
      const series = methodLabel(sp.method) + ' (no P)';
      for (const p of pops) {
        push(p, rssOverIdle(r, s.idle), series, MEASURED_RSS, panel);
        push(p, r.accounted.peak, series, ACCOUNTED, panel);
      }
    }
  }
  return pts;
}

export async function taskLengthChart(s: SweepResult): Promise<string> {
  return renderSvg(lineSpec('MAML adapting every ConvNet-4 parameter: memory vs task length', 'inner steps l', taskLengthPoints(s, 'task-length')));
}

export async function headTaskLengthChart(s: SweepResult): Promise<string> {
  return renderSvg(lineSpec('Head-only learner (only the linear head adapted): memory vs task length', 'inner steps l', taskLengthPoints(s, 'task-length-head')));
}

export async function populationChart(s: SweepResult): Promise<string> {
  return renderSvg(lineSpec('Memory vs population size (ProtoNet)', 'population P', populationPoints(s)));
}
