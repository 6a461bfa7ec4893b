/**
 * A compact, committable summary of accuracy runs: for each run directory, the configuration,
 * the validation curve (step, elapsed minutes, accuracy), the best validation, the test results
 * the run recorded (`--test-episodes N --test-shots 5,1`), steps, member evaluations and wall
 * time. metrics.jsonl itself (megabytes for a long run) stays out of the repository.
 *
 *   node dist/bench/accuracy-summary.js --out bench/results/accuracy/NAME.json RUN_DIR [RUN_DIR ...]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { readRun } from '../lib/report/index.js';
import { arg } from './common.js';

const out = arg('out', '');
const dirs = process.argv.slice(2).filter((a, i, all) => a !== '--out' && all[i - 1] !== '--out');
if (!out || dirs.length === 0) {
  console.error('usage: node dist/bench/accuracy-summary.js --out FILE.json RUN_DIR [RUN_DIR ...]');
  process.exit(2);
}

const runs = dirs.map((dir) => {
  const run = readRun(dir);  // resumed runs: later records replace the earlier ones at the same steps
  const start = run.start as Record<string, unknown> | null;
  const last = run.steps[run.steps.length - 1];
  const best = run.vals.reduce<typeof run.vals[number] | undefined>((b, v) => (b === undefined || v.values.val_acc! > b.values.val_acc! ? v : b), undefined);
  return {
    name: basename(dir),
    config: start?.config ?? null,
    version: start?.version ?? null,
    device: start?.device ?? null, evaluator: start?.evaluator ?? null, workers: start?.workers ?? null,
    resumes: run.resumes,
    steps: last ? last.step + 1 : 0,
    evals: last?.values.evals ?? null,
    elapsedMinutes: last?.elapsed !== undefined ? last.elapsed / 60 : null,
    bestVal: best ? { step: best.step, acc: best.values.val_acc, ci95: best.values.val_ci95 ?? null } : null,
    val: run.vals.map((v) => [v.step, v.elapsed !== undefined ? Number((v.elapsed / 60).toFixed(2)) : null, v.values.val_acc]),
    tests: run.tests.map((t) => ({ checkpoint: t.checkpoint, episodes: t.episodes, way: t.way, shot: t.shot, query: t.query, acc: t.test_acc, ci95: t.test_ci95, loss: t.test_loss })),
    end: run.end?.end ?? null,
  };
});

mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), command: `node dist/bench/accuracy-summary.js --out ${out} ${dirs.join(' ')}`, fields: { val: '[step, elapsed minutes, validation accuracy]' }, runs }, null, 1)}\n`);
for (const r of runs) {
  console.log(`${r.name}: ${r.steps} steps, ${r.elapsedMinutes?.toFixed(1) ?? '?'} min, best val ${r.bestVal ? (100 * (r.bestVal.acc as number)).toFixed(1) : '-'}% at ${r.bestVal?.step ?? '-'}; ${r.tests.map((t) => `test ${t.way}-way ${t.shot}-shot ${(100 * (t.acc as number)).toFixed(1)}% +- ${(100 * (t.ci95 as number)).toFixed(1)}`).join(', ')}`);
}
console.log(`wrote ${out}`);
