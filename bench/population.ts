/**
 * Population-evaluation benchmark: candidates/s and GFLOP/s of the ES hot loop on cpu-native,
 * PyTorch CPU (best of a loop over members and grouped convolution over chunks; skipped with a
 * message when torch is absent) and the cpu-ts reference, for C = 16, 32, 64, episodes 5w5s5q
 * and 20w5s15q at 28x28, on 1 and 2 threads; plus the machine's fp32 FMA peak, so every figure
 * also reads as a fraction of peak. Prints a table, writes JSON to bench/results/.
 *
 *   npm run build && node dist/bench/population.js [--members 256] [--peer-members 16] [--ts-members 1]
 *     [--channels 16,32,64] [--episodes 5w5s5q,20w5s15q] [--threads 1,2] [--no-torch] [--no-ts]
 *
 * GFLOP/s counts the convolutions' multiply-adds (2 FLOPs each) of every member, the same
 * count for every implementation: sum over blocks of 2 * 9 * cin * C * side^2 * images.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import { join } from 'node:path';
import '../lib/index.js';
import { NativePopulationEvaluator, nativeInfo } from '../lib/device/cpu-native/index.js';
import { addon, PACKAGE_ROOT } from '../lib/device/cpu-native/addon.js';
import { DirectOpsPopulationEvaluator } from '../lib/es/population-ts.js';
import type { PopulationRequest } from '../lib/es/population.js';
import { ProtoNetLayout } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import type { Episode } from '../lib/model/protonet.js';
import { Rng } from '../lib/rng/philox.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { arg, convFlops } from './common.js';

const flag = (name: string): boolean => process.argv.includes(`--${name}`);

const MEMBERS = Number(arg('members', '256'));
const PEER_MEMBERS = Number(arg('peer-members', '16'));
const TS_MEMBERS = Number(arg('ts-members', '1'));
const CHANNELS = arg('channels', '16,32,64').split(',').map(Number);
const EPISODES = arg('episodes', '5w5s5q,20w5s15q').split(',').map((s) => {
  const m = /^(\d+)w(\d+)s(\d+)q$/.exec(s);
  if (!m) throw new RangeError(`--episodes: expected e.g. 5w5s5q, got ${s}`);
  return { name: s, way: Number(m[1]), shot: Number(m[2]), query: Number(m[3]) };
});
const THREADS = arg('threads', '1,2').split(',').map(Number);
const SIZE = 28;


function episode(way: number, shot: number, query: number): Episode {
  const rng = new Rng(7);
  const img = (n: number): Tensor => {
    const t = Tensor.zeros([n, 1, SIZE, SIZE], 'float32');
    for (let i = 0; i < t.size; i++) t.data[i] = rng.uniform() < 0.8 ? 1 : 0;
    return t;
  };
  const lab = (k: number): Int32Array => Int32Array.from({ length: way * k }, (_, i) => i % way);
  return { way, support: img(way * shot), supportLabels: lab(shot), query: img(way * query), queryLabels: lab(query) };
}

interface Row {
  impl: string; channels: number; episode: string; threads: number; members: number;
  /** wall-clock seconds and process CPU seconds of the timed run */
  seconds: number; cpuSeconds: number;
  candidatesPerSec: number; gflops: number;
  /** GFLOP per CPU-second: throughput per busy core, robust to other processes sharing the machine */
  gflopsPerCpuSecond: number;
  /** gflopsPerCpuSecond / the per-core FMA peak */
  fractionOfPeak: number;
}

async function timeEvaluator(evaluate: (r: PopulationRequest) => Promise<Float64Array>, req: PopulationRequest, repeats: number): Promise<{ wall: number; cpu: number }> {
  await evaluate({ ...req, end: req.start + Math.min(2, req.end - req.start) });
  let best = { wall: Infinity, cpu: Infinity };
  for (let r = 0; r < repeats; r++) {
    const c0 = process.cpuUsage(), t0 = performance.now();
    await evaluate(req);
    const wall = (performance.now() - t0) / 1000, cu = process.cpuUsage(c0);
    if (wall < best.wall) best = { wall, cpu: (cu.user + cu.system) / 1e6 };
  }
  return best;
}

function torchPeer(c: number, ep: { way: number; shot: number; query: number }, threads: number, members: number): { best: string; seconds: number; cpuSeconds: number; all: Record<string, number> } | string {
  const script = join(PACKAGE_ROOT, 'bench', 'torch_population.py');
  const req = { mode: 'population', channels: c, ...ep, imageSize: SIZE, threads, members, groups: [8, 16, 32] };
  const r = spawnSync('python3', [script, JSON.stringify(req)], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `python3 failed: ${r.error?.message ?? r.stderr.trim().split('\n').pop()}`;
  const out = JSON.parse(r.stdout) as { skipped?: string; seconds?: Record<string, number>; cpuSeconds?: Record<string, number> };
  if (out.skipped) return out.skipped;
  const all = out.seconds!;
  const [best, seconds] = Object.entries(all).sort((a, b) => a[1] - b[1])[0]!;
  return { best, seconds, cpuSeconds: out.cpuSeconds![best]!, all };
}

async function main(): Promise<void> {
  const info = nativeInfo();
  const a = addon();
  const peak: Record<number, { wallGflops: number; perCoreGflops: number }> = {};
  for (const t of THREADS) peak[t] = a.fmaPeak({ threads: t, seconds: 1 });
  const perCore = Math.max(...Object.values(peak).map((p) => p.perCoreGflops));
  console.log(`cpu-native: ${info.isa} (${info.reason}), ${cpus().length} CPUs (${cpus()[0]?.model}), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`fp32 FMA peak (${info.isa} FMA loop): ${perCore.toFixed(1)} GFLOP per CPU-second per core (${THREADS.map((t) => `${t} thread${t > 1 ? 's' : ''}: ${peak[t]!.wallGflops.toFixed(1)} GFLOP/s wall`).join(', ')})`);
  const rows: Row[] = [];
  const notes: string[] = [];
  const add = (impl: string, c: number, epName: string, threads: number, members: number, t: { wall: number; cpu: number }, images: number): void => {
    const work = convFlops(c, images) * members / 1e9;
    const perCpu = work / t.cpu;
    rows.push({ impl, channels: c, episode: epName, threads, members, seconds: t.wall, cpuSeconds: t.cpu, candidatesPerSec: members / t.wall, gflops: work / t.wall, gflopsPerCpuSecond: perCpu, fractionOfPeak: perCpu / perCore });
  };
  let torchMissing: string | undefined;
  for (const c of CHANNELS) {
    const layout = new ProtoNetLayout({ channels: c, imageSize: SIZE });
    const mu = initParams(layout, 1);
    for (const ep of EPISODES) {
      const e = episode(ep.way, ep.shot, ep.query);
      const images = ep.way * (ep.shot + ep.query);
      const base: PopulationRequest = {
        model: layout.config, mu, perturbation: { kind: 'gaussian', sigma: 0.01, antithetic: true },
        seed: 1, step: 0, start: 0, end: MEMBERS, episode: e, distance: 'euclidean',
      };
      for (const t of THREADS) {
        const nat = new NativePopulationEvaluator({ threads: t });
        add('cpu-native', c, ep.name, t, MEMBERS, await timeEvaluator((r) => nat.evaluate(r), base, 2), images);
        if (!flag('no-torch') && torchMissing === undefined) {
          const members = Math.min(PEER_MEMBERS, MEMBERS);
          const tr = torchPeer(c, ep, t, members);
          if (typeof tr === 'string') {
            torchMissing = tr;
            notes.push(`PyTorch skipped: ${tr}`);
            console.log(`PyTorch peer skipped: ${tr}`);
          } else {
            add(`pytorch (${tr.best})`, c, ep.name, t, members, { wall: tr.seconds, cpu: tr.cpuSeconds }, images);
          }
        }
      }
      if (!flag('no-ts') && TS_MEMBERS > 0) {
        const ts = new DirectOpsPopulationEvaluator('cpu-ts');
        const req = { ...base, end: TS_MEMBERS };
        const c0 = process.cpuUsage(), t0 = performance.now();
        await ts.evaluate(req);
        const cu = process.cpuUsage(c0);
        add('cpu-ts', c, ep.name, 1, TS_MEMBERS, { wall: (performance.now() - t0) / 1000, cpu: (cu.user + cu.system) / 1e6 }, images);
      }
    }
  }
  // table, with the speedup over the best peer of the same C, episode and thread count
  const peerBest = (r: Row, key: 'gflops' | 'gflopsPerCpuSecond'): Row | undefined => rows
    .filter((p) => p.impl !== 'cpu-native' && p.channels === r.channels && p.episode === r.episode && p.threads === r.threads)
    .sort((x, y) => y[key] - x[key])[0];
  const lines = [
    '| impl | C | episode | threads | members | cand/s | GFLOP/s (wall) | GFLOP/CPU-s | % of core peak | vs best peer (wall) | vs best peer (per CPU-s) |',
    '|---|---|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const pw = r.impl === 'cpu-native' ? peerBest(r, 'gflops') : undefined;
    const pc = r.impl === 'cpu-native' ? peerBest(r, 'gflopsPerCpuSecond') : undefined;
    lines.push(`| ${r.impl} | ${r.channels} | ${r.episode} | ${r.threads} | ${r.members} | ${r.candidatesPerSec.toFixed(1)} | ${r.gflops.toFixed(1)} | ${r.gflopsPerCpuSecond.toFixed(1)} | ${(100 * r.fractionOfPeak).toFixed(1)} | ${pw ? `${(r.gflops / pw.gflops).toFixed(2)}x ${pw.impl}` : ''} | ${pc ? `${(r.gflopsPerCpuSecond / pc.gflopsPerCpuSecond).toFixed(2)}x` : ''} |`);
  }
  console.log(lines.join('\n'));
  const dir = join(PACKAGE_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `population-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), native: info, cpus: cpus().length, cpuModel: cpus()[0]?.model, loadavg: loadavg(), fmaPeakGflops: peak, rows, notes }, null, 2));
  console.log(`wrote ${file}`);
}

await main();
