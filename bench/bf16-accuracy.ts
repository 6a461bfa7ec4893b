/**
 * How much precision 'bf16' changes what ES sees, one step at a time (a measurement, not the
 * training curves: those need same-seed runs, `evometa train --precision bf16`). For each C and
 * episode shape, on Omniglot training episodes at the initial parameters: the population's
 * fitness in fp32 and in bf16 (every bf16 kernel the CPU has), and
 *   - the relative fitness difference per member (median, max);
 *   - Spearman's rank correlation of the two fitness vectors (ES uses ranks);
 *   - the cosine between the ES gradient estimates from each (centered ranks, the same noise),
 *     beside the cosine between two fp32 estimates on different episodes with the same noise
 *     (the episode noise that ES already averages over).
 *
 *   npm run build && node dist/bench/bf16-accuracy.js [--channels 16,32,64] [--episodes 5w5s5q,20w5s15q]
 *     [--pop 256] [--sigma 0.01] [--threads 2]
 *
 * Writes JSON to bench/results/bf16-accuracy-<date>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import '../lib/index.js';
import { NativePopulationEvaluator, nativeInfo, type Bf16Kernel } from '../lib/device/cpu-native/index.js';
import { PACKAGE_ROOT } from '../lib/device/cpu-native/addon.js';
import { centeredRanks } from '../lib/es/estimators.js';
import type { PopulationRequest } from '../lib/es/population.js';
import { resolveEsConfig } from '../lib/methods/protonet-es/config.js';
import { omniglotSources } from '../lib/methods/protonet/data.js';
import { ProtoNetLayout } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { arg } from './common.js';

const CHANNELS = arg('channels', '16,32,64').split(',').map(Number);
const EPISODES = arg('episodes', '5w5s5q,20w5s15q').split(',').map((s) => {
  const m = /^(\d+)w(\d+)s(\d+)q$/.exec(s);
  if (!m) throw new RangeError(`--episodes: expected e.g. 5w5s5q, got ${s}`);
  return { name: s, way: Number(m[1]), shot: Number(m[2]), query: Number(m[3]) };
});
const POP = Number(arg('pop', '256'));
const SIGMA = Number(arg('sigma', '0.01'));
const THREADS = Number(arg('threads', '2'));

function ranks(x: Float64Array): Float64Array {
  return centeredRanks(x, new Uint8Array(x.length).fill(1));
}

function pearson(a: Float64Array, b: Float64Array): number {
  let sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < a.length; i++) {
    sa += a[i]!; sb += b[i]!;
  }
  const ma = sa / a.length, mb = sb / b.length;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! - ma, y = b[i]! - mb;
    sab += x * y; saa += x * x; sbb += y * y;
  }
  return sab / Math.sqrt(saa * sbb);
}

function cosine(a: Float64Array, b: Float64Array): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!; aa += a[i]! * a[i]!; bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}

const quantile = (x: number[], q: number): number => [...x].sort((p, r) => p - r)[Math.min(x.length - 1, Math.floor(q * x.length))]!;

async function main(): Promise<void> {
  const info = nativeInfo();
  const kernels = info.bf16.available.filter((k) => k !== 'emulated') as Bf16Kernel[];
  if (kernels.length === 0) kernels.push('emulated');
  console.log(`bf16 kernels: ${kernels.join(', ')} (${info.bf16.reason}); pop ${POP} antithetic, sigma ${SIGMA}, initial parameters, Omniglot vinyals/train episodes`);
  const rows: Record<string, unknown>[] = [];
  const lines = ['| C | episode | kernel | rel. fitness diff median | max | Spearman (fp32 vs bf16) | cos(g_fp32, g_bf16) | cos(g_fp32, g_fp32 other episode) |', '|---|---|---|---|---|---|---|---|'];
  for (const c of CHANNELS) {
    for (const ep of EPISODES) {
      const cfg = resolveEsConfig({ model: { channels: c, imageSize: 28 }, train: { way: ep.way, shot: ep.shot, query: ep.query }, seed: 3 });
      const sources = omniglotSources(cfg);
      const layout = new ProtoNetLayout(cfg.model);
      const mu = initParams(layout, 1);
      const req = (episode: number): PopulationRequest => ({
        model: layout.config, mu, perturbation: { kind: 'gaussian', sigma: SIGMA, antithetic: true },
        seed: 11, step: 0, start: 0, end: POP, episode: sources.train.episode(episode), distance: 'euclidean',
      });
      const fp32 = new NativePopulationEvaluator({ threads: THREADS });
      const grad = async (f: Float64Array): Promise<Float64Array> => fp32.noiseSum({ mu, seed: 11, step: 0, antithetic: true, sigma: SIGMA, start: 0, weights: ranks(f) });
      const f32 = await fp32.evaluate(req(0));
      const g32 = await grad(f32);
      const other = await grad(await fp32.evaluate(req(1)));
      const cosEpisode = cosine(g32, other);
      for (const k of kernels) {
        const fb = await new NativePopulationEvaluator({ threads: THREADS, precision: 'bf16', bf16Kernel: k }).evaluate(req(0));
        const rel = [...fb].map((v, i) => Math.abs(v - f32[i]!) / Math.abs(f32[i]!));
        const row = {
          channels: c, episode: ep.name, kernel: k, pop: POP, sigma: SIGMA,
          relMedian: quantile(rel, 0.5), relMax: Math.max(...rel), spearman: pearson(ranks(f32), ranks(fb)),
          cosGrad: cosine(g32, await grad(fb)), cosGradOtherEpisode: cosEpisode,
        };
        rows.push(row);
        lines.push(`| ${c} | ${ep.name} | ${k} | ${row.relMedian.toExponential(1)} | ${row.relMax.toExponential(1)} | ${row.spearman.toFixed(4)} | ${row.cosGrad.toFixed(4)} | ${cosEpisode.toFixed(4)} |`);
        console.log(lines[lines.length - 1]);
      }
    }
  }
  console.log(lines.join('\n'));
  const dir = join(PACKAGE_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bf16-accuracy-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), argv: process.argv.slice(2), native: info, cpus: cpus().length, cpuModel: cpus()[0]?.model, loadavg: loadavg(), rows }, null, 2));
  console.log(`wrote ${file}`);
}

await main();
