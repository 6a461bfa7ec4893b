/**
 * The paper's 1-D illustration with the authors' protocol (their Illustration1d notebook): for
 * 100 lambdas evenly over [0.1, 2], 100 trials of x ~ N(0, 1), copies x + sigma eps (Gaussian,
 * sigma 1), tau 0.5, K = 2, 10, 100; the EvoGrad estimate by the library (the tape objective of
 * the toy program) against the exact hypergradient (lambda - 1) / (lambda + 1)^3.
 *
 *   node dist/bench/evograd-toy.js [--points 100] [--trials 100] [--seed 1]
 *
 * Writes bench/results/evograd/toy.json and toy.svg.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { tapeObjective } from '../lib/evograd/objective.js';
import { TOY_PROGRAM, toySweep, type ToySweep } from '../lib/evograd/toy.js';
import { renderSvg } from '../lib/memory/charts.js';
import { arg } from './common.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

async function chart(runs: { copies: number; sweep: Pick<ToySweep, 'lambdas' | 'exact' | 'mean' | 'std'> }[]): Promise<string> {
  const pts = runs.flatMap((r) => r.sweep.lambdas.flatMap((l, i) => [
    { lambda: l, value: r.sweep.exact[i]!, series: 'exact', K: `K = ${r.copies}`, lo: r.sweep.exact[i]!, hi: r.sweep.exact[i]! },
    { lambda: l, value: r.sweep.mean[i]!, series: 'EvoGrad (mean +- std over trials)', K: `K = ${r.copies}`, lo: r.sweep.mean[i]! - r.sweep.std[i]!, hi: r.sweep.mean[i]! + r.sweep.std[i]! },
  ]));
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title: 'EvoGrad hypergradient on the 1-D problem vs the exact one',
    data: { values: pts }, config: { font: 'sans-serif', legend: { labelLimit: 320 } }, facet: { column: { field: 'K', type: 'nominal', title: null, sort: ['K = 2', 'K = 10', 'K = 100'] } },
    spec: {
      width: 240, height: 220,
      layer: [
        { transform: [{ filter: "datum.series != 'exact'" }], mark: { type: 'area', opacity: 0.25 }, encoding: { x: { field: 'lambda', type: 'quantitative', title: 'lambda' }, y: { field: 'lo', type: 'quantitative', title: 'hypergradient', scale: { domain: [-1, 1], clamp: true } }, y2: { field: 'hi' } } },
        { mark: 'line', encoding: { x: { field: 'lambda', type: 'quantitative' }, y: { field: 'value', type: 'quantitative' }, color: { field: 'series', type: 'nominal', title: null } } },
      ],
    },
  };
  return renderSvg(spec as never);
}

async function main(): Promise<void> {
  const out = resolve(arg('out', join(repo, 'bench', 'results', 'evograd')));
  mkdirSync(out, { recursive: true });
  const points = Number(arg('points', '100')), trials = Number(arg('trials', '100')), seed = Number(arg('seed', '1'));
  const obj = tapeObjective(getDevice('cpu-ts'), TOY_PROGRAM);
  const runs: { copies: number; sweep: ToySweep; seconds: number; signMissRange: [number, number] | null }[] = [];
  if (process.argv.includes('--report-only')) {
    // Redraw toy.svg from toy.json.
    const saved = JSON.parse(readFileSync(join(out, 'toy.json'), 'utf8')) as { runs: (ToySweep & { copies: number })[] };
    writeFileSync(join(out, 'toy.svg'), await chart(saved.runs.map((r) => ({ copies: r.copies, sweep: r }))));
    return;
  }
  for (const copies of [2, 10, 100]) {
    const t0 = Date.now();
    const sweep = toySweep(obj, { copies, sigma: 1, tau: 0.5, noise: 'gaussian', seed }, { points, trials });
    const m = sweep.signMisses;
    runs.push({ copies, sweep, seconds: (Date.now() - t0) / 1000, signMissRange: m.length ? [Math.min(...m), Math.max(...m)] : null });
    process.stderr.write(`K=${copies}: Pearson ${sweep.pearson.toFixed(4)}, signs agree at ${(100 * sweep.signAgreement).toFixed(0)}% of the lambdas` +
      `${m.length ? ` (differ at ${m.length}, lambda in [${Math.min(...m).toFixed(3)}, ${Math.max(...m).toFixed(3)}])` : ''}, ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  writeFileSync(join(out, 'toy.json'), `${JSON.stringify({
    description: 'EvoGrad on the paper\'s 1-D illustration, the authors\' protocol; see docs/evograd.md',
    command: `node dist/bench/evograd-toy.js ${process.argv.slice(2).join(' ')}`, settings: { sigma: 1, tau: 0.5, noise: 'gaussian', points, trials, seed },
    runs: runs.map((r) => ({ copies: r.copies, pearson: r.sweep.pearson, signAgreement: r.sweep.signAgreement, signMisses: r.sweep.signMisses, signMissRange: r.signMissRange, seconds: r.seconds, lambdas: r.sweep.lambdas, exact: r.sweep.exact, mean: r.sweep.mean, std: r.sweep.std })),
  }, null, 1)}\n`);
  writeFileSync(join(out, 'toy.svg'), await chart(runs));
}

main().catch((e) => { console.error(e); process.exit(1); });
