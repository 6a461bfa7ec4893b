/**
 * The seed's acceleration study on the learned optimizer: wall-clock to a
 * target meta-validation score for the sequential baseline (one random task
 * at a time) and each acceleration alone and together -- (a) threads over a
 * meta-batch's groups, (a') the meta-batch as one stacked (vectorized)
 * program, (b) meta-batches drawn from one task cluster -- on the
 * quadratic-mix task distribution, same protocol for all: same T, K, meta-lr,
 * validation tasks and target, median over seeds.
 *
 *   node dist/bench/l2l.js [--budget 120] [--seeds 3] [--configs all|name,name] [--val-every 5] [--meta-lr 3e-3] [--name speedup]
 *
 * Writes bench/results/l2l/speedup-<time>.json, then speedup.md and the charts (bench/l2l-report.ts).
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import '../lib/index.js';
import { arg } from './common.js';
import { machine, timedRun, type ValPoint } from './l2l-common.js';
import { reportStudy } from './l2l-report.js';
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
const common: L2lConfigInput = { horizon: Number(arg('horizon', '100')), unroll: 20, valTasks: Number(arg('val-tasks', '32')), steps: 1e9, ...(arg('meta-lr', '') !== '' ? { metaLr: Number(arg('meta-lr', '')) } : {}) };
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

const m1 = machine();
const out = { bench: 'l2l-acceleration', command: `node dist/bench/l2l.js ${process.argv.slice(2).join(' ')}`.trim(), preset, common, budget, seeds, valEvery, references: ref, machineStart: m0, machineEnd: m1, variants, runs };
const dir = 'bench/results/l2l';
mkdirSync(dir, { recursive: true });
const file = `${dir}/speedup-${m0.time.replace(/[:.]/g, '-')}.json`;
writeFileSync(file, JSON.stringify(out, null, 1));
console.log(await reportStudy(file, Number.isFinite(Number(arg('target', 'NaN'))) ? [Number(arg('target', 'NaN'))] : [], arg('name', 'speedup')));
