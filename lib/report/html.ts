/** The report page: one self-contained HTML file (inline CSS and inline SVG; no script, no network). */
import type { RunData } from './records.js';
import type { Chart } from './charts.js';

export const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const pct = (v: unknown): string => (typeof v === 'number' && Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : '–');
const num = (v: unknown): string => (typeof v === 'number' ? (Number.isFinite(v) && !Number.isInteger(v) ? String(+v.toPrecision(6)) : String(v)) : v === null || v === undefined ? '–' : String(v));

export function duration(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s)) return '–';
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(2)} h`;
}

/** Flatten nested objects to dotted keys (arrays as JSON). */
export function flatten(obj: Record<string, unknown>, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) flatten(v as Record<string, unknown>, key, out);
    else out[key] = Array.isArray(v) ? JSON.stringify(v) : num(v);
  }
  return out;
}

/** A run's headline numbers. */
export function runSummary(r: RunData): Record<string, string> {
  const lastStep = r.steps.length ? r.steps[r.steps.length - 1]! : undefined;
  let best: { acc: number; step: number } | undefined;
  for (const v of r.vals) {
    const a = v.values.val_acc;
    if (a !== undefined && Number.isFinite(a) && (!best || a > best.acc)) best = { acc: a, step: v.step };
  }
  const lastVal = r.vals.length ? r.vals[r.vals.length - 1] : undefined;
  let wall: number | undefined;
  for (const p of [...r.steps, ...r.vals]) if (p.elapsed !== undefined && (wall === undefined || p.elapsed > wall)) wall = p.elapsed;
  const cfg = (r.start?.config ?? {}) as Record<string, unknown>;
  const bestVal = typeof r.end?.best_val === 'number' ? r.end.best_val : best?.acc;
  const bestStep = typeof r.end?.best_step === 'number' ? r.end.best_step : best?.step;
  return {
    method: r.method ?? 'unknown',
    preset: r.start?.preset === undefined ? '–' : String(r.start.preset ?? 'none'),
    device: r.start?.device === undefined ? '–' : String(r.start.device),
    seed: num(cfg.seed),
    'last step logged': lastStep ? String(lastStep.step) : '–',
    'ended': r.end ? String(r.end.end) + (r.end.reason ? ` (${String(r.end.reason)})` : '') : 'no end record (still running, killed, or an older trainer)',
    'best validation accuracy': bestVal === undefined ? '–' : `${pct(bestVal)} at step ${bestStep ?? '?'}`,
    'last validation accuracy': lastVal ? `${pct(lastVal.values.val_acc)} ± ${pct(lastVal.values.val_ci95)} at step ${lastVal.step}` : '–',
    'wall-clock': duration(wall),
    resumes: String(r.resumes),
  };
}

function table(head: string[], rows: string[][], cls = ''): string {
  return `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.join('')}</tr>`).join('\n')}</tbody></table>`;
}

function summaryTable(runs: readonly RunData[]): string {
  const sums = runs.map(runSummary);
  const keys = Object.keys(sums[0] ?? {});
  return table(['', ...runs.map((r) => r.name)], keys.map((k) => [`<th>${esc(k)}</th>`, ...sums.map((s) => `<td>${esc(s[k])}</td>`)]));
}

function testTable(runs: readonly RunData[]): string {
  const rows: string[][] = [];
  for (const r of runs) {
    for (const t of r.tests) {
      const ck = typeof t.checkpoint === 'string' ? t.checkpoint.split(/[/\\]/).pop()! : '–';
      rows.push([r.name, ck, num(t.episodes), `${num(t.way)}-way ${num(t.shot)}-shot`, num(t.query), `${pct(t.test_acc)} ± ${pct(t.test_ci95)}`, typeof t.test_loss === 'number' ? t.test_loss.toPrecision(4) : num(t.test_loss)].map((c) => `<td>${esc(c)}</td>`));
    }
  }
  if (rows.length === 0) return '<p class="muted">No test records (the runs were not evaluated on the test split, or are not finished).</p>';
  return table(['run', 'checkpoint', 'episodes', 'task', 'query / class', 'test accuracy ± 95% CI', 'test loss (nats)'], rows);
}

function configTable(runs: readonly RunData[]): string {
  const flat = runs.map((r) => {
    const s = r.start ?? {};
    const top: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s)) if (k !== 'type' && k !== 'time' && k !== 'config') top[k] = v;
    return { ...flatten((s as { config?: Record<string, unknown> }).config ?? {}), ...flatten(top, 'run') };
  });
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))];
  if (keys.length === 0) return '<p class="muted">No start record with a configuration (older backprop runs did not write one).</p>';
  const rows = keys.map((k) => {
    const vals = flat.map((f) => f[k] ?? '–');
    const differs = runs.length > 1 && new Set(vals).size > 1;
    return [`<th${differs ? ' class="differs"' : ''}>${esc(k)}</th>`, ...vals.map((v) => `<td${differs ? ' class="differs"' : ''}>${esc(v)}</td>`)];
  });
  return (runs.length > 1 ? '<p class="muted">Highlighted: settings that differ between the runs.</p>' : '') + table(['setting', ...runs.map((r) => r.name)], rows, 'config');
}

const CSS = `
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.muted { color: #666; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
thead th { background: #f3f3f3; }
table.config td, table.config th { font-family: monospace; font-size: 12px; }
.differs { background: #fff4cc; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }
figure.chart { margin: 0; border: 1px solid #eee; padding: 6px; }
figure.chart svg { max-width: 100%; height: auto; }
figure.chart figcaption { font-size: 12px; color: #555; }
ul.warnings { color: #8a5a00; font-size: 13px; }
`;

export interface PageInput {
  runs: readonly RunData[];
  charts: readonly Chart[];
  /** Relative path of each chart's SVG file, by chart id. */
  svgFiles: Record<string, string>;
  warnings: readonly string[];
  generated: string;
}

export function renderPage(p: PageInput): string {
  const title = `evometa run report: ${p.runs.map((r) => r.name).join(', ')}`;
  const figures = p.charts.map((c) => `<figure class="chart" id="${esc(c.id)}" data-metric="${esc(c.metric.id)}" data-axis="${c.axis}">${c.svg}<figcaption><a href="${esc(p.svgFiles[c.id] ?? '')}">${esc(c.id)}.svg</a></figcaption></figure>`);
  const omitted = p.runs.length > 0 ? '<p class="muted">Charts of metrics that none of these runs logged are left out.</p>' : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${CSS}</style></head>
<body>
<h1>${esc(title)}</h1>
<p class="muted">Generated ${esc(p.generated)} from ${p.runs.map((r) => `<code>${esc(r.file)}</code>`).join(', ')}.</p>
${p.warnings.length ? `<ul class="warnings">${p.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>` : ''}
<h2>Runs</h2>
${summaryTable(p.runs)}
<h2>Test results</h2>
${testTable(p.runs)}
<h2>Charts</h2>
${omitted}
<div class="charts">
${figures.join('\n')}
</div>
<h2>Configuration</h2>
${configTable(p.runs)}
</body></html>
`;
}
