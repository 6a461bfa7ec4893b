/**
 * Tables and charts of an acceleration study from its JSON (bench/l2l.ts):
 * time to each target score in training wall-clock AND in process CPU seconds
 * (all threads), medians over seeds, speedups against the baseline.
 *
 *   node dist/bench/l2l-report.js bench/results/l2l/speedup-<time>.json [--targets 0.3,0.5] [--name speedup]
 *
 * Writes <name>.md, <name>.svg (score vs wall-clock) and <name>-cpu.svg beside it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { arg } from './common.js';
import { lineChart, median, renderSvg, type ValPoint } from './l2l-common.js';

interface Run { variant: string; seed: number; points: ValPoint[]; steps: number; trainSeconds: number; cpuSeconds: number; optimizeeSteps: number; loadavg: number[] }
interface Study {
  command: string; preset: string; budget: number; seeds: number; common: { horizon?: number; valTasks?: number; metaLr?: number };
  references: { sgd: { lr: number; score: number }; adam: { lr: number; score: number } };
  machineStart: { time: string; loadavg: number[]; cpus: number; model: string }; machineEnd: { loadavg: number[] };
  variants: { name: string; what: string; workers: number }[]; runs: Run[];
}

/** Write speedup.md and the charts beside `file`; returns the markdown. */
export async function reportStudy(file: string, given: number[] = [], name = 'speedup'): Promise<string> {
const s = JSON.parse(readFileSync(file, 'utf8')) as Study;
const first = (pts: readonly ValPoint[], t: number, key: 'trainSeconds' | 'cpuSeconds'): number | null => pts.find((p) => p.score >= t)?.[key] ?? null;
const baseBest = s.runs.filter((r) => r.variant === 'baseline').map((r) => Math.max(...r.points.map((p) => p.score)));
const targets = [...new Set([s.references.sgd.score, ...(baseBest.length ? [Math.min(...baseBest)] : []), ...given])].sort((a, b) => a - b);

const md: string[] = [
  `# Learned optimizer: acceleration study (${s.machineStart.time})`, '',
  `Command: \`${s.command}\` (tables: \`node dist/bench/l2l-report.js ${file}\`). Task distribution \`${s.preset}\`: quadratics with n in {5, 10, 20} and W scale in {0.5, 1, 2}; T = ${s.common.horizon ?? 100} optimizee steps, truncation K = 20, Adam ${s.common.metaLr ?? 3e-3} on phi, log meta-loss, ${s.common.valTasks ?? 32} validation tasks; score = -mean log10 final loss after T steps (higher is better). ${s.budget} s of training wall-clock per run, validation outside the clock; ${s.seeds} seeds; medians over seeds where every seed reached the target.`,
  '', `Machine: ${s.machineStart.cpus} CPUs (${s.machineStart.model}), shared: load average ${s.machineStart.loadavg.join('/')} at start, ${s.machineEnd.loadavg.join('/')} at end (1/5/15 min). With the machine this loaded, a process got a fraction of a core and that fraction moved with the other jobs, so wall-clock ratios carry that noise; CPU seconds (all threads of the process) are the steadier measure of work, but cannot show what threads buy.`,
  '', `References on the same validation tasks, learning rate tuned on them: SGD ${s.references.sgd.score.toFixed(3)} (lr ${s.references.sgd.lr.toExponential(1)}), Adam ${s.references.adam.score.toFixed(3)} (lr ${s.references.adam.lr.toExponential(1)}).`, '',
];
for (const t of targets) {
  md.push(`## Target score ${t.toFixed(3)}${Math.abs(t - s.references.sgd.score) < 1e-12 ? ' (tuned SGD)' : baseBest.length && Math.abs(t - Math.min(...baseBest)) < 1e-12 ? ' (the best score every baseline seed reached)' : ''}`, '',
    '| configuration | what | wall-clock to target (s), per seed | median | speedup | CPU s to target, per seed | median | speedup (CPU) |', '|---|---|---|---|---|---|---|---|');
  const rows = s.variants.map((v) => {
    const rs = s.runs.filter((r) => r.variant === v.name);
    const w = rs.map((r) => first(r.points, t, 'trainSeconds')), c = rs.map((r) => first(r.points, t, 'cpuSeconds'));
    const mw = w.every((x) => x !== null) && w.length ? median(w as number[]) : null, mc = c.every((x) => x !== null) && c.length ? median(c as number[]) : null;
    return { v, w, c, mw, mc };
  });
  const b = rows.find((r) => r.v.name === 'baseline');
  const f = (x: number | null): string => (x === null ? '—' : x.toFixed(1));
  const sp = (base: number | null | undefined, x: number | null): string => (base != null && x !== null && x > 0 ? `${(base / x).toFixed(2)}x` : '—');
  for (const r of rows) md.push(`| ${r.v.name} | ${r.v.what} | ${r.w.map(f).join(', ')} | ${r.mw === null ? 'not all' : f(r.mw)} | ${sp(b?.mw, r.mw)} | ${r.c.map(f).join(', ')} | ${r.mc === null ? 'not all' : f(r.mc)} | ${sp(b?.mc, r.mc)} |`);
  md.push('');
}
md.push('## Throughput and quality at the end of the budget', '',
  'Throughput in optimizee steps (one task advanced one step, forward and backward through the LSTM) per second. The "vs batch" column compares each B = 8 configuration with `batch` (the same meta-batch, one program per task, one thread): the same maths, so it is the pure computational speedup of threads and stacking.', '',
  '| configuration | meta-steps (median) | optimizee steps per wall s | vs batch | per CPU s | vs batch | best score (median) | final score (median) |', '|---|---|---|---|---|---|---|---|');
const tput = (name: string, key: 'trainSeconds' | 'cpuSeconds'): number | null => {
  const rs = s.runs.filter((r) => r.variant === name);
  return rs.length ? median(rs.map((r) => r.optimizeeSteps / r[key])) : null;
};
for (const v of s.variants) {
  const rs = s.runs.filter((r) => r.variant === v.name);
  if (!rs.length) continue;
  const w = tput(v.name, 'trainSeconds')!, c = tput(v.name, 'cpuSeconds')!, bw = tput('batch', 'trainSeconds'), bc = tput('batch', 'cpuSeconds');
  const rel = (x: number, b: number | null): string => (b && v.name !== 'baseline' ? `${(x / b).toFixed(2)}x` : '—');
  md.push(`| ${v.name} | ${median(rs.map((r) => r.steps))} | ${w.toFixed(0)} | ${rel(w, bw)} | ${c.toFixed(0)} | ${rel(c, bc)} | ${median(rs.map((r) => Math.max(...r.points.map((p) => p.score)))).toFixed(3)} | ${median(rs.map((r) => r.points[r.points.length - 1]!.score)).toFixed(3)} |`);
}
const dir = dirname(file);
writeFileSync(join(dir, `${name}.md`), md.join('\n') + '\n');
const pts = (key: 'trainSeconds' | 'cpuSeconds', label: string): Record<string, unknown>[] => s.runs.filter((r) => r.seed === 0).flatMap((r) => r.points.map((p) => ({ series: r.variant, [label]: p[key], score: p.score })));
writeFileSync(join(dir, `${name}.svg`), await renderSvg(lineChart('Validation score vs training wall-clock (seed 0)', 'training seconds', 'score', pts('trainSeconds', 'training seconds'))));
writeFileSync(join(dir, `${name}-cpu.svg`), await renderSvg(lineChart('Validation score vs process CPU seconds (seed 0)', 'CPU seconds', 'score', pts('cpuSeconds', 'CPU seconds'))));
return md.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2];
  if (!file) throw new Error('usage: node dist/bench/l2l-report.js <speedup-*.json> [--targets a,b]');
  console.log(await reportStudy(file, arg('targets', '').split(',').filter((x) => x !== '').map(Number), arg('name', 'speedup')));
}
