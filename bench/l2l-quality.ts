/**
 * Final quality of the learned optimizer against hand-designed optimizers on
 * held-out tasks: meta-train by truncated backprop and by ES for a wall-clock
 * budget each (the best-validation phi kept), then run it, SGD and Adam (their
 * learning rates tuned on the validation tasks, a grid of quarter decades) for
 * T steps on test tasks never seen in meta-training or tuning; loss curves.
 *
 *   node dist/bench/l2l-quality.js [--family quadratic|mlp] [--trainers bptt,es] [--budget 240] [--es-budget 240]
 *     [--es-pop 16] [--es-batch 4] [--es-lr 0.01] [--es-sigma 0.02] [--test-tasks 64] [--suffix NAME]
 *
 * Writes bench/results/l2l/quality-<family>.json and quality-<family>.svg.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import '../lib/index.js';
import { arg } from './common.js';
import { lineChart, machine, renderSvg, timedRun } from './l2l-common.js';
import type { L2lConfigInput } from '../lib/l2l/config.js';
import { lrGrid, runBaseline, tuneBaseline } from '../lib/l2l/baselines.js';
import type { OptimizeeTask } from '../lib/l2l/tasks/task.js';

const family = arg('family', 'quadratic');
const budget = Number(arg('budget', '240')), nTest = Number(arg('test-tasks', family === 'mlp' ? '8' : '64'));
const workers = Number(arg('workers', '2'));
const esBudget = Number(arg('es-budget', String(budget)));
const esCfg: L2lConfigInput = { metaBatch: Number(arg('es-batch', '4')), groupSize: Number(arg('es-batch', '4')) >= 2 ? 2 : 1, metaLr: Number(arg('es-lr', '0.01')), es: { pop: Number(arg('es-pop', '16')), sigma: Number(arg('es-sigma', '0.02')) } };
const pick = arg('trainers', 'bptt,es').split(',');
const suffix = arg('suffix', '');
const allTrainers: { name: string; preset: string; cfg: L2lConfigInput; budget: number }[] = family === 'mlp'
  ? [{ name: 'L2L (truncated backprop)', preset: 'mlp', cfg: {}, budget }]
  : [
    { name: 'L2L (truncated backprop)', preset: 'quadratic', cfg: { metaBatch: 8, groupSize: 4 }, budget },
    { name: 'L2L (ES)', preset: 'quadratic-es', cfg: esCfg, budget: esBudget },
  ];
const trainers = allTrainers.filter((t) => pick.includes(t.name.includes('ES') ? 'es' : 'bptt'));
const m0 = machine();
console.error(`l2l quality (${family}): meta-training budgets ${trainers.map((t) => `${t.name} ${t.budget} s`).join(', ')}; machine ${JSON.stringify(m0)}`);

const results: Record<string, unknown>[] = [];
const curves: { series: string; step: number; loss: number }[] = [];
let tasks: OptimizeeTask[] = [], valTasks: OptimizeeTask[] = [], T = 0;
const summary: { optimizer: string; meanLog10Final: number; meanFinal: number; accuracy?: number; detail: string }[] = [];

function addCurve(series: string, perTask: Float64Array[]): void {
  for (let t = 0; t <= T; t++) {
    let s = 0;
    for (const c of perTask) s += c[t]!;
    curves.push({ series, step: t, loss: s / perTask.length });
  }
}

for (const tr of trainers) {
  const r = await timedRun({ ...tr.cfg, seed: 0 }, tr.preset, { workers }, tr.budget, Math.max(5, tr.budget / 20), Infinity, true);
  const m = r.method;
  try {
    T = m.config.horizon;
    if (tasks.length === 0) {
      tasks = Array.from({ length: nTest }, (_, i) => m.engine.task({ part: 'test', index: i }));
      valTasks = Array.from({ length: m.config.valTasks }, (_, i) => m.engine.task({ part: 'val', index: i }));
    }
    const ev = m.evaluateTasks('test', nTest);
    const perTask = tasks.map(() => new Float64Array(T + 1));
    // evaluateTasks gives the mean curve; the per-task curves come from one more rollout
    const { rollout, newSlot } = await import('../lib/l2l/unroll.js');
    const slots = tasks.map((t) => newSlot(t, m.engine.layout, m.phi));
    const ro = rollout(m.engine.device, m.engine.layout, m.phi, slots, T);
    tasks.forEach((_, i) => perTask[i]!.set(ro.losses.subarray(i * (T + 1), (i + 1) * (T + 1))));
    addCurve(tr.name, perTask);
    const lg = perTask.reduce((a, c) => a + Math.log10(Math.max(c[T]!, 1e-30)), 0) / nTest;
    summary.push({ optimizer: tr.name, meanLog10Final: lg, meanFinal: perTask.reduce((a, c) => a + c[T]!, 0) / nTest, ...(ev.result['accuracy'] !== undefined ? { accuracy: ev.result['accuracy'] } : {}), detail: `${r.steps} meta-steps in ${r.trainSeconds.toFixed(0)} s` });
    results.push({ trainer: tr.name, preset: tr.preset, config: m.config, steps: r.steps, trainSeconds: r.trainSeconds, cpuSeconds: r.cpuSeconds, validation: r.points, test: ev.result });
    console.error(`${tr.name}: ${r.steps} meta-steps, test mean log10 final loss ${lg.toFixed(3)}`);
  } finally {
    await m.close();
  }
}

const grid = family === 'mlp' ? lrGrid(-3, 1, 2) : lrGrid();
for (const name of ['sgd', 'adam'] as const) {
  const tuned = tuneBaseline(name, valTasks, T, grid);
  const runs = tasks.map((t) => runBaseline(t, tuned.config, T));
  addCurve(`${name === 'sgd' ? 'SGD' : 'Adam'} (lr ${tuned.config.lr.toExponential(1)}, tuned)`, runs.map((r) => r.losses));
  const accs = runs.map((r, i) => tasks[i]!.evaluate(r.theta).accuracy);
  const acc = accs.every((a) => a !== undefined) ? accs.reduce((a, b) => a + b!, 0) / accs.length : undefined;
  summary.push({ optimizer: `${name} (lr ${tuned.config.lr.toExponential(1)})`, meanLog10Final: runs.reduce((a, r) => a + Math.log10(Math.max(r.losses[T]!, 1e-30)), 0) / nTest, meanFinal: runs.reduce((a, r) => a + r.losses[T]!, 0) / nTest, ...(acc !== undefined ? { accuracy: acc } : {}), detail: `lr tuned on ${valTasks.length} validation tasks over ${grid.length} values` });
}

const m1 = machine();
const dir = 'bench/results/l2l';
mkdirSync(dir, { recursive: true });
const out = { bench: 'l2l-quality', family, command: `node dist/bench/l2l-quality.js ${process.argv.slice(2).join(' ')}`.trim(), budgets: trainers.map((t) => ({ trainer: t.name, seconds: t.budget })), testTasks: nTest, horizon: T, machineStart: m0, machineEnd: m1, summary, results, curves };
writeFileSync(`${dir}/quality-${family}${suffix}.json`, JSON.stringify(out, null, 1));
writeFileSync(`${dir}/quality-${family}${suffix}.svg`, await renderSvg(lineChart(`Mean training loss on ${nTest} held-out ${family} tasks`, 'step', 'loss', curves, { logY: true })));
console.log(`| optimizer | mean log10 final loss | mean final loss |${summary.some((s) => s.accuracy !== undefined) ? ' held-out accuracy |' : ''} notes |`);
for (const s of summary) console.log(`| ${s.optimizer} | ${s.meanLog10Final.toFixed(3)} | ${s.meanFinal.toPrecision(3)} |${s.accuracy !== undefined ? ` ${(100 * s.accuracy).toFixed(1)}% |` : ''} ${s.detail} |`);
