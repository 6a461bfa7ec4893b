/**
 * EvoGrad against the second-order baseline (T1-T2: back-propagation through one inner update):
 * time and peak memory per training iteration (the ordinary step's gradient + the hypergradient)
 * for ProtoNet ConvNet-4 at C = 16, 32, 64, each case in a fresh process as the memory study
 * measures (peak RSS, and the exact bytes of the tapes / graph and vectors; lib/evograd/cost.ts).
 *
 *   node dist/bench/evograd-cost.js [--channels 16,32,64] [--methods evograd,t1t2,fd,unrolled] [--reps 3] [--way 10 --shot 5 --query 5] [--device cpu-native]
 *
 * Writes bench/results/evograd/cost.json, cost.md and cost.svg (--report-only redraws them).
 */
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COST_METHODS, type CostMethod, type CostResult, type CostSpec } from '../lib/evograd/cost.js';
import { renderSvg } from '../lib/memory/charts.js';
import { arg } from './common.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

interface Case { spec: CostSpec; result?: CostResult; maxRss?: number; baselineRss?: number; error?: string; load: number[] }

function runFresh(spec: CostSpec): Promise<Omit<Case, 'load'>> {
  return new Promise((done) => {
    const child = fork(join(here, 'evograd-cost-worker.js'), [JSON.stringify(spec)], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let reply: { ok: boolean; result?: CostResult; error?: string; maxRss: number; baseline?: number } | null = null;
    child.on('message', (m) => { reply = m as typeof reply; });
    child.on('exit', (code) => {
      const r = reply as typeof reply;
      if (r?.ok) done({ spec, result: r.result!, maxRss: r.maxRss, baselineRss: r.baseline! });
      else done({ spec, error: r?.error ?? `worker exited with code ${code}`, ...(r ? { maxRss: r.maxRss } : {}) });
    });
  });
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
const LABEL: Record<CostMethod, string> = { evograd: 'EvoGrad (K = 2)', t1t2: 'second order (T1-T2)', fd: 'T1-T2 by finite difference', unrolled: 'unrolled ES, per step (T = 40)' };

function table(cases: Case[]): string {
  const rows = ['| C | method | time / iteration (median) | accounted peak (exact) | peak RSS | RSS growth |', '|---|---|---|---|---|---|'];
  for (const c of cases) {
    if (!c.result) { rows.push(`| ${c.spec.channels} | ${LABEL[c.spec.method]} | error: ${c.error} | | | |`); continue; }
    const r = c.result;
    rows.push(`| ${c.spec.channels} | ${LABEL[c.spec.method]} | ${r.medianSeconds.toFixed(3)} s | ${mib(r.accountedBytes)} | ${mib(c.maxRss!)} | ${mib(c.maxRss! - c.baselineRss!)} |`);
  }
  const ratios = ['', '| C | T1-T2 / EvoGrad time | T1-T2 / EvoGrad accounted bytes | T1-T2 / EvoGrad peak RSS | FD / EvoGrad time | unrolled ES / EvoGrad time |', '|---|---|---|---|---|---|'];
  for (const ch of [...new Set(cases.map((c) => c.spec.channels))]) {
    const e = cases.find((c) => c.spec.channels === ch && c.spec.method === 'evograd')?.result;
    const t = cases.find((c) => c.spec.channels === ch && c.spec.method === 't1t2');
    if (!e || !t?.result) continue;
    const ec = cases.find((c) => c.spec.channels === ch && c.spec.method === 'evograd')!;
    const fd = cases.find((c) => c.spec.channels === ch && c.spec.method === 'fd')?.result;
    const un = cases.find((c) => c.spec.channels === ch && c.spec.method === 'unrolled')?.result;
    ratios.push(`| ${ch} | ${(t.result.medianSeconds / e.medianSeconds).toFixed(2)}x | ${(t.result.accountedBytes / e.accountedBytes).toFixed(2)}x | ${(t.maxRss! / ec.maxRss!).toFixed(2)}x | ${fd ? `${(fd.medianSeconds / e.medianSeconds).toFixed(2)}x` : '-'} | ${un ? `${(un.medianSeconds / e.medianSeconds).toFixed(2)}x` : '-'} |`);
  }
  return [...rows, ...ratios].join('\n');
}

async function chart(cases: Case[]): Promise<string> {
  const pts = cases.filter((c) => c.result).flatMap((c) => [
    { C: c.spec.channels, method: LABEL[c.spec.method], measure: 'time per iteration (s)', value: c.result!.medianSeconds },
    { C: c.spec.channels, method: LABEL[c.spec.method], measure: 'accounted peak (MiB)', value: c.result!.accountedBytes / 2 ** 20 },
    { C: c.spec.channels, method: LABEL[c.spec.method], measure: 'peak RSS (MiB)', value: c.maxRss! / 2 ** 20 },
  ]);
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title: 'EvoGrad vs the second-order hypergradient (graph and finite difference): ProtoNet ConvNet-4, one iteration',
    data: { values: pts }, config: { font: 'sans-serif', legend: { labelLimit: 320 } },
    facet: { column: { field: 'measure', type: 'nominal', title: null } },
    spec: {
      width: 200, height: 260, mark: 'bar',
      encoding: {
        x: { field: 'C', type: 'ordinal', title: 'channels C' }, xOffset: { field: 'method' },
        y: { field: 'value', type: 'quantitative', title: null }, color: { field: 'method', type: 'nominal', title: null },
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
  return renderSvg(spec as never);
}

async function main(): Promise<void> {
  const out = resolve(arg('out', join(repo, 'bench', 'results', 'evograd')));
  mkdirSync(out, { recursive: true });
  const file = join(out, 'cost.json');
  if (process.argv.includes('--report-only')) {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { cases: Case[] };
    writeFileSync(join(out, 'cost.md'), `${table(saved.cases)}\n`);
    writeFileSync(join(out, 'cost.svg'), await chart(saved.cases));
    return;
  }
  const channels = arg('channels', '16,32,64').split(',').map(Number);
  const reps = Number(arg('reps', '3'));
  const shape = { way: Number(arg('way', '10')), shot: Number(arg('shot', '5')), query: Number(arg('query', '5')), imageSize: 28 };
  const device = arg('device', 'cpu-native');
  const methods = arg('methods', COST_METHODS.join(',')).split(',') as CostMethod[];
  for (const m of methods) if (!COST_METHODS.includes(m)) throw new Error(`--methods: unknown method ${JSON.stringify(m)}; methods: ${COST_METHODS.join(', ')}`);
  const cases: Case[] = [];
  for (const ch of channels) {
    for (const method of methods) {
      const spec: CostSpec = { method, channels: ch, ...shape, reps, device };
      const load = loadavg();
      const r = await runFresh(spec);
      cases.push({ ...r, load });
      process.stderr.write(r.result
        ? `C=${ch} ${method}: ${r.result.medianSeconds.toFixed(3)} s/iteration, accounted ${mib(r.result.accountedBytes)}, peak RSS ${mib(r.maxRss!)} (load ${load.map((x) => x.toFixed(1)).join(' ')})\n`
        : `C=${ch} ${method}: error ${r.error}\n`);
    }
  }
  const res = {
    description: 'EvoGrad vs T1-T2 second-order hypergradient, one training iteration (ordinary gradient + hypergradient); see docs/evograd.md',
    command: `node dist/bench/evograd-cost.js ${process.argv.slice(2).join(' ')}`, startedAt: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version, note: 'shared 2-core machine, other jobs running: the load average at the start of each case is recorded' },
    cases,
  };
  writeFileSync(file, `${JSON.stringify(res, null, 1)}\n`);
  writeFileSync(join(out, 'cost.md'), `${table(cases)}\n`);
  writeFileSync(join(out, 'cost.svg'), await chart(cases));
  process.stderr.write(`${table(cases)}\n`);
  void existsSync;
}

main().catch((e) => { console.error(e); process.exit(1); });
