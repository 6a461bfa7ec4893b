/**
 * A compact, committable summary of accuracy runs: for each run directory, the configuration,
 * the validation curve (step, elapsed minutes, accuracy), the best validation, the test results
 * the run recorded (`--test-episodes N --test-shots 5,1`), steps, member evaluations and wall
 * time. metrics.jsonl itself (megabytes for a long run) stays out of the repository.
 *
 *   node dist/bench/accuracy-summary.js --out bench/results/accuracy/NAME.json RUN_DIR [RUN_DIR ...]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { summarizeRun } from './accuracy-format.js';
import { arg } from './common.js';

const out = arg('out', '');
const dirs = process.argv.slice(2).filter((a, i, all) => a !== '--out' && all[i - 1] !== '--out');
if (!out || dirs.length === 0) {
  console.error('usage: node dist/bench/accuracy-summary.js --out FILE.json RUN_DIR [RUN_DIR ...]');
  process.exit(2);
}

const runs = dirs.map(summarizeRun);

mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), command: `node dist/bench/accuracy-summary.js --out ${out} ${dirs.join(' ')}`, fields: { val: '[step, elapsed minutes, validation accuracy]' }, runs }, null, 1)}\n`);
for (const r of runs) {
  console.log(`${r.name}: ${r.steps} steps, ${r.elapsedMinutes?.toFixed(1) ?? '?'} min, best val ${r.bestVal ? (100 * (r.bestVal.acc as number)).toFixed(1) : '-'}% at ${r.bestVal?.step ?? '-'}; ${r.tests.map((t) => `test ${t.way}-way ${t.shot}-shot ${(100 * (t.acc as number)).toFixed(1)}% +- ${(100 * (t.ci95 as number)).toFixed(1)}`).join(', ')}`);
}
console.log(`wrote ${out}`);
