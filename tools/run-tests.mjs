#!/usr/bin/env node
/**
 * The test runner behind `npm test`: uvu over dist/test/*.test.js, one uvu
 * process per file, so a file that fails to load (an import error, a throw at
 * module load, a crash) counts as a failure of that file while the others
 * still run. Per file: uvu's Total excludes skipped tests, so failed = Total -
 * Passed and skipped = uvu's Skipped (a skip is never a pass); no summary at
 * all (the file did not load, or the process died) is 1 failed; a non-zero
 * exit with no failed test (e.g. a hook that threw) is 1 failed; a file that
 * registers no test is 1 failed; a file with statements after its last `.run()` (a test registered
 * there would never run, and nothing would say so) is 1 failed. The last line is
 * `N passed, N failed, N skipped`.
 *
 *   node tools/run-tests.mjs [REGEX]   (only the files whose name matches)
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'dist', 'test');
const filter = process.argv[2] ? new RegExp(process.argv[2]) : null;
const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
let files = [];
try {
  files = readdirSync(dir).filter((f) => f.endsWith('.test.js') && (!filter || filter.test(f))).sort();
} catch (e) {
  console.log(`no dist/test (${e.message}): run npx tsc -p . first`);
}
let passed = 0, failed = 0, skipped = 0;
const problems = [];
if (files.length === 0) { problems.push('no test files'); failed = 1; }
const uvu = join(root, 'node_modules', 'uvu', 'bin.js');
for (const f of files) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [uvu, dir, `^${f.replace(/\./g, '\\.')}$`], { cwd: root, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' }, maxBuffer: 1 << 28 });
  const out = strip(`${r.stdout ?? ''}${r.stderr ?? ''}`);
  process.stdout.write(out);
  const num = (k) => { const m = [...out.matchAll(new RegExp(`^\\s*${k}:\\s+(\\d+)`, 'gm'))].pop(); return m ? Number(m[1]) : null; };
  const total = num('Total'), pass = num('Passed'), skip = num('Skipped');
  let fail;
  if (total === null || pass === null || skip === null) {
    fail = 1; problems.push(`${f}: did not load or did not finish (exit ${r.status ?? r.signal}): counted as 1 failed`);
  } else {
    fail = total - pass;
    if (r.status !== 0 && fail === 0) { fail = 1; problems.push(`${f}: exit ${r.status ?? r.signal} with no failed test: counted as 1 failed`); }
    if (total === 0 && skip === 0) { fail = 1; problems.push(`${f}: registered no test: counted as 1 failed`); }
  }
  // the last statement must be a `.run()`: uvu never runs a test registered after it
  const tail = readFileSync(join(dir, f), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('//')).pop() ?? '';
  if (!/\.run\(\);?$/.test(tail)) { fail += 1; problems.push(`${f}: statements after its last .run() (${JSON.stringify(tail.slice(0, 80))}): tests registered there never run: counted as 1 failed`); }
  console.log(`== ${f}: ${pass ?? 0} passed, ${fail} failed, ${skip ?? 0} skipped (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  passed += fail === 1 && total === null ? 0 : pass; failed += fail; skipped += skip ?? 0;
}
for (const p of problems) console.log(`!! ${p}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exitCode = failed === 0 ? 0 : 1;
