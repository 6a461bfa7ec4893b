/** Series for the report's charts: smoothing, thinning, and the rows of several runs overlaid. */
import type { MetricsPoint, RunData } from './records.js';

/**
 * Exponential moving average with bias correction (as TensorBoard's smoothing slider):
 * s_t = w s_{t-1} + (1-w) y_t from s = 0, reported as s_t / (1 - w^n) after n finite values, so the
 * first smoothed value is the first raw value rather than a value pulled towards zero.
 * Non-finite values are passed over (their output is NaN) and do not disturb the average.
 */
export function ema(ys: readonly number[], w: number): number[] {
  if (!(w >= 0 && w < 1)) throw new RangeError(`smoothing weight must be in [0, 1), got ${w}`);
  const out = new Array<number>(ys.length);
  let s = 0, n = 0;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i]!;
    if (!Number.isFinite(y)) { out[i] = NaN; continue; }
    s = w * s + (1 - w) * y;
    n++;
    out[i] = s / (1 - w ** n);
  }
  return out;
}

/**
 * The smoothing weight used when none is given: an averaging window of about n/30 points,
 * between 5 and 2000, so a short run keeps its shape and a long one still reads as a curve.
 */
export function autoSmoothing(n: number): number {
  const window = Math.min(2000, Math.max(5, n / 30));
  return 1 - 1 / window;
}

/**
 * At most about `max` points of (x, y) in x order: the points are split into max/2 buckets and each
 * bucket keeps its lowest and its highest y (so spikes stay visible), plus the last point.
 */
export function thin<T extends { y: number }>(pts: readonly T[], max: number): T[] {
  if (pts.length <= max || max < 4) return pts.slice();
  const buckets = Math.floor(max / 2);
  const size = pts.length / buckets;
  const out: T[] = [];
  for (let b = 0; b < buckets; b++) {
    const a = Math.floor(b * size), e = Math.min(pts.length, Math.floor((b + 1) * size));
    let lo = -1, hi = -1;
    for (let i = a; i < e; i++) {
      const y = pts[i]!.y;
      if (!Number.isFinite(y)) continue;
      if (lo < 0 || y < pts[lo]!.y) lo = i;
      if (hi < 0 || y > pts[hi]!.y) hi = i;
    }
    if (lo < 0) continue;
    if (lo === hi) out.push(pts[lo]!);
    else out.push(pts[Math.min(lo, hi)]!, pts[Math.max(lo, hi)]!);
  }
  const last = pts[pts.length - 1]!;
  if (out[out.length - 1] !== last && Number.isFinite(last.y)) out.push(last);
  return out;
}

/**
 * A chart's x axis: steps, wall-clock time in a unit picked for the longest run, or member-evaluations
 * (the cumulative `evals` of the step records: population members evaluated, the ES runs' unit of work,
 * which compares runs of different populations).
 */
export type XAxis = 'step' | 'time' | 'evals';
export interface TimeUnit { name: 's' | 'min' | 'h'; seconds: number }

export function timeUnit(maxSeconds: number): TimeUnit {
  if (maxSeconds >= 3 * 3600) return { name: 'h', seconds: 3600 };
  if (maxSeconds >= 180) return { name: 'min', seconds: 60 };
  return { name: 's', seconds: 1 };
}

/** One row of a chart's data: a run's point, drawn as `raw` (faint), `line` (the main curve) or with a band lo..hi. */
export interface ChartRow { run: string; x: number; y: number; kind: 'raw' | 'line'; lo?: number; hi?: number }

/** What a chart plots: a field of the step or validation records. */
export interface MetricDef {
  id: string;
  title: string;
  /** Y axis title, with its unit. */
  yTitle: string;
  source: 'steps' | 'vals';
  field: string;
  /** Smoothed line over faint raw values. */
  smooth?: boolean;
  /** Field holding the half-width of a 95% confidence band around the value. */
  band?: string;
  /** Values are fractions shown as percent. */
  percent?: boolean;
  /** Draw a point on each value (sparse series such as validations). */
  points?: boolean;
  /** A note under the title. */
  note?: string;
  /** Hold each value until the next (a schedule that changes in steps). */
  steps?: boolean;
  /** Also charted against member-evaluations (runs that log them). */
  byEvals?: boolean;
}

export interface SeriesOptions {
  /** EMA weight in [0, 1), or 'auto' (see autoSmoothing). */
  smoothing: number | 'auto';
  /** Most points per run per chart line (raw values are thinned by min/max buckets). */
  maxPoints: number;
}

/** Whether any run logged this metric (a chart of it is drawn only then). */
export function hasMetric(runs: readonly RunData[], m: MetricDef): boolean {
  return runs.some((r) => r[m.source].some((p) => Number.isFinite(p.values[m.field])));
}

/** The largest elapsed time over the runs, for the wall-clock unit. */
export function maxElapsed(runs: readonly RunData[]): number {
  let m = 0;
  for (const r of runs) for (const p of [...r.steps, ...r.vals]) if (p.elapsed !== undefined && p.elapsed > m) m = p.elapsed;
  return m;
}

/**
 * Member-evaluations done before a validation at `step`, from the run's step records (their cumulative
 * `evals`; a step record numbered k is the trainer's step k, counted from 0, so a validation at step s
 * follows step record s - 1): the evals of the last step record numbered below s, 0 before the first.
 * Undefined for every step when the run logs no evaluation counts (backprop).
 */
export function evalsBefore(r: RunData): (step: number) => number | undefined {
  const pts = r.steps.filter((p) => Number.isFinite(p.values.evals));
  if (pts.length === 0) return () => undefined;
  return (step) => {
    let lo = 0, hi = pts.length; // first index whose step is >= `step`
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (pts[mid]!.step < step) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0 : pts[lo - 1]!.values.evals;
  };
}

/**
 * The rows of one chart for several runs overlaid: per run, the raw values (when smoothed) and the
 * main line (EMA or raw), with lo/hi of the band where the metric has one. Against wall-clock time,
 * points without an elapsed time are left out; against member-evaluations, runs without evaluation
 * counts (see evalsBefore).
 */
export function chartRows(runs: readonly RunData[], m: MetricDef, axis: XAxis, unit: TimeUnit, opt: SeriesOptions): ChartRow[] {
  const rows: ChartRow[] = [];
  const scale = m.percent ? 100 : 1;
  for (const r of runs) {
    const evals = axis === 'evals' ? evalsBefore(r) : undefined;
    const hasX = (p: MetricsPoint): boolean => (axis === 'step' ? true : axis === 'time' ? p.elapsed !== undefined : evals!(p.step) !== undefined);
    const pts: MetricsPoint[] = r[m.source].filter((p) => Number.isFinite(p.values[m.field]) && hasX(p));
    if (pts.length === 0) continue;
    const xs = pts.map((p) => (axis === 'step' ? p.step : axis === 'time' ? p.elapsed! / unit.seconds : evals!(p.step)!));
    const ys = pts.map((p) => p.values[m.field]! * scale);
    const raw = xs.map((x, i) => ({ run: r.name, x, y: ys[i]!, kind: 'raw' as const }));
    if (m.smooth) {
      const w = opt.smoothing === 'auto' ? autoSmoothing(pts.length) : opt.smoothing;
      const s = ema(ys, w);
      rows.push(...thin(raw, opt.maxPoints));
      rows.push(...thin(xs.map((x, i) => ({ run: r.name, x, y: s[i]!, kind: 'line' as const })), opt.maxPoints));
    } else {
      const line: ChartRow[] = raw.map((p, i) => {
        const row: ChartRow = { ...p, kind: 'line' };
        const h = m.band ? pts[i]!.values[m.band] : undefined;
        if (h !== undefined && Number.isFinite(h)) { row.lo = p.y - h * scale; row.hi = p.y + h * scale; }
        return row;
      });
      rows.push(...thin(line, opt.maxPoints));
    }
  }
  return rows;
}
