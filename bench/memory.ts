/**
 * `npm run bench:memory [-- --quick] [-- --budget 4GiB]`: the memory study.
 * Measures an idle process, runs every case in a fresh process, and writes
 * memory.json, memory.md and three SVG charts to bench/results/memory/ (quick
 * mode: bench/results/memory/quick/).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import '../lib/device/cpu-ts/index.js';
import '../lib/device/cpu-native/index.js';
import { getDevice } from '../lib/device/registry.js';
import { parseBytes, runSweep, STUDIES, type StudyName, type SweepResult } from '../lib/memory/sweep.js';
import { markdownReport, fmtBytes, fmtSeconds } from '../lib/memory/report.js';
import { headTaskLengthChart, populationChart, taskLengthChart } from '../lib/memory/charts.js';
import { caseId } from '../lib/memory/cases.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

const program = new Command('bench:memory')
  .description('Memory study: backprop vs forward mode vs ES over channels, task length and population (each case in a fresh process)')
  .option('--quick', 'small sweep that finishes in about 2 minutes (C = 16 for the task-length and population studies, fewer l, sampled ES members)', false)
  .option('--budget <bytes>', 'skip cases predicted above this many bytes, recorded as "out of memory budget" (e.g. 16GiB, 4GiB)', '4GiB')
  .option('--studies <list>', `comma-separated subset of ${STUDIES.join(', ')}`, STUDIES.join(','))
  .option('--device <name>', 'device for the kernels (default: the best available)')
  .option('--out <dir>', 'output directory (default bench/results/memory, quick: bench/results/memory/quick)')
  .option('--timeout <seconds>', 'per-case wall-clock limit', '600')
  .option('--merge', 'keep the other studies\' cases from an existing memory.json in the output directory (run the studies one at a time)', false)
  .option('--report-only', 'rewrite memory.md and the charts from the existing memory.json (no cases run)', false);

async function main(): Promise<void> {
  program.parse();
  const o = program.opts<{ quick: boolean; budget: string; studies: string; device?: string; out?: string; timeout: string; merge: boolean; reportOnly: boolean }>();
  const studies = o.studies.split(',').map((s) => s.trim()).filter(Boolean) as StudyName[];
  for (const s of studies) if (!STUDIES.includes(s)) throw new RangeError(`--studies: unknown study ${s} (expected ${STUDIES.join(', ')})`);
  const budgetBytes = parseBytes(o.budget);
  const timeout = Number(o.timeout);
  if (!(timeout > 0)) throw new RangeError(`--timeout must be a positive number of seconds, got ${o.timeout}`);
  const device = getDevice(o.device).name;
  const out = resolve(o.out ?? join(repo, 'bench', 'results', 'memory', ...(o.quick ? ['quick'] : [])));
  mkdirSync(out, { recursive: true });
  if (o.reportOnly) {
    const saved = JSON.parse(readFileSync(join(out, 'memory.json'), 'utf8')) as SweepResult & { device: string; command: string };
    await writeReport(out, saved, { device: saved.device, command: saved.command });
    process.stderr.write(`rewrote the report and charts in ${out} from memory.json\n`);
    return;
  }
  process.stderr.write(`memory study (${o.quick ? 'quick' : 'full'}), device ${device}, budget ${fmtBytes(budgetBytes)}, output ${out}\n`);
  const worker = join(here, 'memory-worker.js');
  const sweep = await runSweep(worker, {
    quick: o.quick, budgetBytes, studies, ...(o.device ? { device: o.device } : {}), timeoutMs: timeout * 1000,
    onCase: (c, r, i, n) => {
      const what = r.status === 'ok'
        ? `measured: peak RSS ${fmtBytes(r.measured?.peakRss)}, tracked ${fmtBytes(r.measured?.peak.tracked)}; accounted peak ${fmtBytes(r.accounted.peak)} (${r.dominant.name} ${fmtBytes(r.dominant.bytes)}); ${fmtSeconds(r.seconds)}`
        : r.status === 'out of memory budget' ? `out of memory budget (predicted ${fmtBytes(r.predictedBytes)})` : `error: ${r.error}`;
      process.stderr.write(`[${i + 1}/${n}] ${c.study} ${caseId(c.spec)}: ${what}${r.wallSeconds !== undefined ? ` [process ${fmtSeconds(r.wallSeconds)}]` : ''}\n`);
      if (r.status === 'ok' && r.accounted.peak > r.predictedBytes) process.stderr.write(`  note: accounted peak above the budget prediction (${fmtBytes(r.predictedBytes)})\n`);
    },
  });
  if (sweep.idle) process.stderr.write(`idle process (same modules and device): peak RSS ${fmtBytes(sweep.idle.peakRss)}, tracked ${fmtBytes(sweep.idle.trackedAtRest)} (${sweep.idle.source})\n`);
  const jsonPath = join(out, 'memory.json');
  if (o.merge && existsSync(jsonPath)) {
    const old = JSON.parse(readFileSync(jsonPath, 'utf8')) as SweepResult;
    if (old.quick !== sweep.quick) throw new RangeError(`--merge: ${jsonPath} is a ${old.quick ? 'quick' : 'full'} sweep, this run is ${sweep.quick ? 'quick' : 'full'}`);
    const kept = old.cases.filter((c) => !studies.includes(c.study));
    sweep.cases = [...kept, ...sweep.cases].sort((a, b) => STUDIES.indexOf(a.study) - STUDIES.indexOf(b.study));
    sweep.runs = [...(old.runs ?? []).filter((r) => r.studies.some((st) => !studies.includes(st as StudyName))), ...(sweep.runs ?? [])];
    sweep.seconds = sweep.runs.reduce((a, r) => a + r.seconds, 0);
    sweep.startedAt = old.startedAt < sweep.startedAt ? old.startedAt : sweep.startedAt;
    // The idle baseline of this run stays the reference; the kept cases were measured against the old one.
    if (!sweep.idle) sweep.idle = old.idle ?? null;
  }
  const command = `npm run bench:memory --${o.quick ? ' --quick' : ''}${o.budget !== '4GiB' ? ` --budget ${o.budget}` : ''}${o.merge ? ' (studies run one at a time with --merge)' : ''}`;
  writeFileSync(jsonPath, JSON.stringify({ device, command, ...sweep }, null, 1) + '\n');
  await writeReport(out, sweep, { device, command });
  const failed = sweep.cases.filter((c) => c.result.status === 'error');
  process.stderr.write(`done in ${fmtSeconds(sweep.seconds)}: ${sweep.cases.length} cases, ${failed.length} errors; wrote ${out}\n`);
  if (failed.length > 0) process.exitCode = 1;
}

async function writeReport(out: string, sweep: SweepResult, meta: { device: string; command: string }): Promise<void> {
  const all = new Set(sweep.cases.map((c) => c.study));
  writeFileSync(join(out, 'memory.md'), markdownReport(sweep, meta));
  if (all.has('task-length')) writeFileSync(join(out, 'memory-vs-task-length.svg'), await taskLengthChart(sweep));
  if (all.has('task-length-head')) writeFileSync(join(out, 'memory-vs-task-length-head.svg'), await headTaskLengthChart(sweep));
  if (all.has('population')) writeFileSync(join(out, 'memory-vs-population.svg'), await populationChart(sweep));
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:memory: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
});
