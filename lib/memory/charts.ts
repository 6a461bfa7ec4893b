/**
 * Charts of the memory study as SVG: a vega-lite spec compiled to vega and
 * rendered headless (renderer 'none' + toSVG). Log scales on both axes.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { SweepResult } from './sweep.js';
import { methodLabel } from './labels.js';

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
      strokeDash: { field: 'measure', type: 'nominal', title: 'measure' },
      tooltip: [{ field: 'series' }, { field: 'measure' }, { field: 'x' }, { field: 'bytes', format: ',' }],
    },
  };
  const panels = new Set(points.map((p) => p.panel).filter((p) => p !== undefined));
  const base = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title, data: { values: points }, config: { font: 'sans-serif', legend: { labelLimit: 320 } } };
  return (panels.size > 0 ? { ...base, facet: { column: { field: 'panel', type: 'nominal', title: null } }, spec: layer } : { ...base, ...layer }) as TopLevelSpec;
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const compiled = compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/** Accounted peak (solid) and peak RSS (dashed) of the MAML-style learner against the inner steps l. */
export function taskLengthPoints(s: SweepResult): ChartPoint[] {
  const pts: ChartPoint[] = [];
  for (const c of s.cases) {
    const r = c.result;
    if (c.study !== 'task-length' || r.status !== 'ok') continue;
    const x = c.spec.innerSteps!;
    const series = methodLabel(c.spec.method);
    pts.push({ x, bytes: r.accounted.peak, series, measure: 'accounted peak' });
    if (r.rss) pts.push({ x, bytes: r.rss.maxRss, series, measure: 'peak RSS (process)' });
    if (r.dominant.bytes > 0) pts.push({ x, bytes: r.dominant.bytes, series, measure: 'dominant term' });
  }
  return pts;
}

/** ES memory against the population size, one panel per C, with the forward-mode Jacobian and the backprop tape of the same model as flat references. */
export function populationPoints(s: SweepResult): ChartPoint[] {
  const pts: ChartPoint[] = [];
  const pops = [...new Set(s.cases.filter((c) => c.study === 'population').map((c) => c.spec.pop!))].sort((a, b) => a - b);
  const channels = new Set(s.cases.filter((c) => c.study === 'population').map((c) => c.spec.channels));
  for (const c of s.cases) {
    const r = c.result, sp = c.spec;
    if (r.status !== 'ok' || !channels.has(sp.channels)) continue;
    const panel = `C = ${sp.channels}`;
    if (c.study === 'population') {
      const series = methodLabel(sp.method);
      pts.push({ x: sp.pop!, bytes: r.accounted.peak, series, measure: 'accounted peak', panel });
      if (r.rss) pts.push({ x: sp.pop!, bytes: r.rss.maxRss, series, measure: 'peak RSS (process)', panel });
      pts.push({ x: sp.pop!, bytes: r.dominant.bytes, series, measure: 'dominant term', panel });
    } else if (c.study === 'channels' && (sp.method === 'forward' || sp.method === 'backprop') && sp.way === 10) {
      const series = methodLabel(sp.method) + ' (no P)';
      for (const p of pops) {
        pts.push({ x: p, bytes: r.accounted.peak, series, measure: 'accounted peak', panel });
        pts.push({ x: p, bytes: r.dominant.bytes, series, measure: 'dominant term', panel });
      }
    }
  }
  return pts;
}

export async function taskLengthChart(s: SweepResult): Promise<string> {
  return renderSvg(lineSpec('Memory vs task length (MAML-style learner, l inner steps)', 'inner steps l', taskLengthPoints(s)));
}

export async function populationChart(s: SweepResult): Promise<string> {
  return renderSvg(lineSpec('Memory vs population size (ProtoNet)', 'population P', populationPoints(s)));
}
