/**
 * The seed's acceleration study on the learned optimizer: wall-clock to a
 * target meta-validation score for the sequential baseline (one random task
 * at a time) and each acceleration alone and together -- (a) threads over a
 * meta-batch's groups, (a') the meta-batch as one stacked (vectorized)
 * program, (b) meta-batches drawn from one task cluster -- on the
 * quadratic-mix task distribution, same protocol for all: same T, K, meta-lr,
 * validation tasks and target, median over seeds.
 *
 *   node dist/bench/l2l.js [--budget 120] [--seeds 3] [--configs all] [--val-every 5]
 *
 * Writes bench/results/l2l/speedup-<time>.json, speedup.md and speedup.svg.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import '../lib/index.js';
import { arg } from './common.js';
import { lineChart, machine, median, renderSvg, timedRun, timeToTarget, type ValPoint } from './l2l-common.js';
import type { L2lConfigInput } from '../lib/l2l/config.js';
import { QuadraticFamily } from '../lib/l2l/tasks/quadratic.js';
import { tuneBaseline } from '../lib/l2l/baselines.js';
import { resolveL2lConfig } from '../lib/l2l/config.js';

interface Variant { name: string; what: string; cfg: L2lConfigInput; workers: number }

const B = Number(arg('meta-batch', '8'));
const VARIANTS: Variant[] = [
  { name: 'baseline', what: 'one random task at a time, sequential (B = 1)', cfg: { metaBatch: 1, groupSize: 1, batchMode: 'random' }, workers: 1 },
  { name: 'batch', what: `B = ${B} random tasks, one program per task, 1 thread`, cfg: { metaBatch: B, groupSize: 1, batchMode: 'random' }, workers: 1 },
  { name: 'threads', what: `B = ${B} random, one program per task, 2 worker threads`, cfg: { metaBatch: B, groupSize: 1, batchMode: 'random' }, workers: 2 },
  { name: 'vectorized', what: `B = ${B} random, one stacked program, 1 thread`, cfg: { metaBatch: B, groupSize: B, batchMode: 'random' }, workers: 1 },
  { name: 'vec+threads', what: `B = ${B} random, 2 stacked programs on 2 threads`, cfg: { metaBatch: B, groupSize: B / 2, batchMode: 'random' }, workers: 2 },
  { name: 'cluster', what: `B = ${B} from one cluster (k = 9), one program per task, 1 thread`, cfg: { metaBatch: B, groupSize: 1, batchMode: 'cluster', clusters: 9 }, workers: 1 },
  { name: 'cluster+vec', what: `B = ${B} from one cluster, one stacked program, 1 thread`, cfg: { metaBatch: B, groupSize: B, batchMode: 'cluster', clusters: 9 }, workers: 1 },
  { name: 'all', what: `B = ${B} from one cluster, 2 stacked programs on 2 threads`, cfg: { metaBatch: B, groupSize: B / 2, batchMode: 'cluster', clusters: 9 }, workers: 2 },
];

const budget = Number(arg('budget', '120')), seeds = Number(arg('seeds', '3')), valEvery = Number(arg('val-every', '5'));
const which = arg('configs', 'all');
const variants = which === 'all' ? VARIANTS : VARIANTS.filter((v) => which.split(',').includes(v.name));
const common: L2lConfigInput = { horizon: Number(arg('horizon', '100')), unroll: 20, valTasks: Number(arg('val-tasks', '32')), steps: 1e9 };
const preset = 'quadratic-mix';

const m0 = machine();
console.error(`l2l acceleration study: ${variants.length} configurations x ${seeds} seeds, ${budget} s of training each; machine ${JSON.stringify(m0)}`);

// Hand-designed references on the same validation tasks (lr tuned on them: an upper bound for SGD/Adam).
const rc = resolveL2lConfig(common, preset);
const fam = new QuadraticFamily(rc.family as never);
const valTasks = Array.from({ length: rc.valTasks }, (_, i) => fam.task('val', i));
const sgd = tuneBaseline('sgd', valTasks, rc.horizon), adam = tuneBaseline('adam', valTasks, rc.horizon);
const ref = { sgd: { lr: sgd.config.lr, score: -sgd.score / Math.LN10 }, adam: { lr: adam.config.lr, score: -adam.score / Math.LN10 } };
console.error(`references on the validation tasks (score = -mean log10 final loss): tuned SGD ${ref.sgd.score.toFixed(3)} (lr ${ref.sgd.lr.toExponential(1)}), tuned Adam ${ref.adam.score.toFixed(3)} (lr ${ref.adam.lr.toExponential(1)})`);

const runs: { variant: string; seed: number; points: ValPoint[]; steps: number; trainSeconds: number; cpuSeconds: number; optimizeeSteps: number; loadavg: number[] }[] = [];
for (let seed = 0; seed < seeds; seed++) {
  for (const v of variants) {
    const r = await timedRun({ ...common, ...v.cfg, seed }, preset, { workers: v.workers }, budget, valEvery);
    const best = Math.max(...r.points.map((p) => p.score));
    console.error(`${v.name.padEnd(12)} seed ${seed}: ${r.steps} meta-steps, ${r.optimizeeSteps} optimizee steps in ${r.trainSeconds.toFixed(1)} s (cpu ${r.cpuSeconds.toFixed(1)} s), best score ${best.toFixed(3)}, load ${machine().loadavg.join('/')}`);
    runs.push({ variant: v.name, seed, points: r.points, steps: r.steps, trainSeconds: r.trainSeconds, cpuSeconds: r.cpuSeconds, optimizeeSteps: r.optimizeeSteps, loadavg: machine().loadavg });
  }
}

// Targets: the tuned-SGD score, and the best level every baseline run reached (so its time is defined).
const baseBest = runs.filter((r) => r.variant === 'baseline').map((r) => Math.max(...r.points.map((p) => p.score)));
const targets = [...new Set([ref.sgd.score, ...(baseBest.length ? [Math.min(...baseBest)] : []), Number(arg('target', 'NaN'))].filter((t) => Number.isFinite(t)))].sort((a, b) => a - b);
const table = targets.map((target) => {
  const rows = variants.map((v) => {
    const times = runs.filter((r) => r.variant === v.name).map((r) => timeToTarget(r.points, target));
    const reached = times.filter((t): t is number => t !== null);
    return { variant: v.name, what: v.what, times, reached: reached.length, median: reached.length === times.length ? median(reached) : null };
  });
  const base = rows.find((r) => r.variant === 'baseline')?.median ?? null;
  return { target, rows: rows.map((r) => ({ ...r, speedup: base !== null && r.median !== null && r.median > 0 ? base / r.median : null })) };
});
const finalScores = variants.map((v) => {
  const fs = runs.filter((r) => r.variant === v.name).map((r) => r.points[r.points.length - 1]!.score);
  const ops = runs.filter((r) => r.variant === v.name).map((r) => r.optimizeeSteps / r.trainSeconds);
  return { variant: v.name, medianFinalScore: median(fs), medianOptimizeeStepsPerSecond: median(ops) };
});

const m1 = machine();
const out = { bench: 'l2l-acceleration', command: `node dist/bench/l2l.js ${process.argv.slice(2).join(' ')}`.trim(), preset, common, budget, seeds, valEvery, references: ref, machineStart: m0, machineEnd: m1, variants, runs, table, finalScores };
const dir = 'bench/results/l2l';
mkdirSync(dir, { recursive: true });
const stamp = m0.time.replace(/[:.]/g, '-');
writeFileSync(`${dir}/speedup-${stamp}.json`, JSON.stringify(out, null, 1));

const md: string[] = [`# Learned optimizer: acceleration study (${m0.time})`, '', `Command: \`${out.command}\`. Task distribution \`${preset}\` (quadratics, n in {5, 10, 20}, W scale in {0.5, 1, 2}), T = ${rc.horizon}, K = 20, Adam ${rc.metaLr} on phi, ${rc.valTasks} validation tasks; score = -mean log10 final loss after T steps (higher is better); training wall-clock, validation excluded; ${seeds} seed(s); load average ${m0.loadavg.join('/')} at start, ${m1.loadavg.join('/')} at end on ${m0.cpus} CPUs (${m0.model}).`, '', `References (lr tuned on the validation tasks): SGD ${ref.sgd.score.toFixed(3)} (lr ${ref.sgd.lr.toExponential(1)}), Adam ${ref.adam.score.toFixed(3)} (lr ${ref.adam.lr.toExponential(1)}).`, ''];
for (const t of table) {
  md.push(`## Target score ${t.target.toFixed(3)}`, '', '| configuration | what | time to target (s), per seed | median | speedup vs baseline |', '|---|---|---|---|---|');
  for (const r of t.rows) md.push(`| ${r.variant} | ${r.what} | ${r.times.map((x) => (x === null ? '—' : x.toFixed(1))).join(', ')} | ${r.median === null ? 'not reached by all' : r.median.toFixed(1)} | ${r.speedup === null ? '—' : r.speedup.toFixed(2) + 'x'} |`);
  md.push('');
}
md.push('## Throughput and final score', '', '| configuration | optimizee steps / s (median) | final score (median) |', '|---|---|---|');
for (const f of finalScores) md.push(`| ${f.variant} | ${f.medianOptimizeeStepsPerSecond.toFixed(0)} | ${f.medianFinalScore.toFixed(3)} |`);
writeFileSync(`${dir}/speedup.md`, md.join('\n') + '\n');
const values = runs.filter((r) => r.seed === 0).flatMap((r) => r.points.map((p) => ({ series: r.variant, 'training seconds': p.trainSeconds, score: p.score })));
writeFileSync(`${dir}/speedup.svg`, await renderSvg(lineChart('Validation score vs training wall-clock (seed 0)', 'training seconds', 'score', values)));
console.log(md.join('\n'));
