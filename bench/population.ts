/**
 * Population-evaluation benchmark: candidates/s and GFLOP/s of the ES hot loop on cpu-native,
 * PyTorch CPU (best of a loop over members and grouped convolution over chunks; skipped with a
 * message when torch is absent) and the cpu-ts reference, for C = 16, 32, 64, episodes 5w5s5q
 * and 20w5s15q at 28x28, on 1 and 2 threads; plus the machine's fp32 FMA peak, so every figure
 * also reads as a fraction of peak. Prints a table, writes JSON to bench/results/.
 *
 *   npm run build && node dist/bench/population.js [--members 256 | auto] [--peer-members 16] [--ts-members 1]
 *     [--channels 16,32,64] [--episodes 5w5s5q,20w5s15q] [--threads 1,2] [--no-torch] [--no-ts]
 *     [--precision fp32,bf16] [--bf16-kernels amx,avx512bf16] [--repeats 3]
 *
 * Every implementation of one (C, episode, threads) cell is measured under the one protocol of
 * bench/common.ts: a warm-up, then --repeats (>= 3) interleaved rounds with a rotating order,
 * medians. cpu-native evaluates --members members per repetition; PyTorch (bench/torch_peer.py,
 * one process per formulation: a loop over members and grouped convolutions of 8/16/32 members,
 * NCHW and channels_last) --peer-members; the table compares candidates/s, so the counts differ
 * only in how long one repetition takes. The ratio is against the best PyTorch formulation of the
 * same cell. cpu-ts is the TypeScript reference (the spec), timed once: never a peer.
 * --precision fp32,bf16 runs cpu-native in both precisions in the same rounds, once per bf16
 * kernel the CPU has (or those of --bf16-kernels), and reports each bf16 row's ratio to the fp32
 * row of the same C, episode and threads. --members auto sizes each configuration to about --gflop GFLOP (40)
 * of convolutions per timed run. Every row records the load average when it was measured.
 *
 * GFLOP/s counts the convolutions' multiply-adds (2 FLOPs each) of every member, the same
 * count for every implementation and precision: sum over blocks of 2 * 9 * cin * C * side^2 * images.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import { join } from 'node:path';
import '../lib/index.js';
import { NativePopulationEvaluator, nativeInfo, type Bf16Kernel } from '../lib/device/cpu-native/index.js';
import { addon, PACKAGE_ROOT } from '../lib/device/cpu-native/addon.js';
import { DirectOpsPopulationEvaluator } from '../lib/es/population-ts.js';
import type { PopulationRequest } from '../lib/es/population.js';
import { ProtoNetLayout } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import type { Episode } from '../lib/model/protonet.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { arg, convFlops, flag, interleaved, timeAsync, TorchPeer, type Impl, type Measured } from './common.js';

const MEMBERS_ARG = arg('members', '256');
const GFLOP = Number(arg('gflop', '40'));
const REPEATS = Number(arg('repeats', '3'));
if (!Number.isInteger(REPEATS) || REPEATS < 3) throw new RangeError(`--repeats must be an integer >= 3 (the median of at least 3), got ${arg('repeats', '')}`);
const PEER_FORMULATIONS = arg('peer-formulations', 'loop-nchw,loop-cl,grouped8-nchw,grouped8-cl,grouped16-nchw,grouped16-cl').split(',');
const PRECISIONS = arg('precision', 'fp32').split(',');
for (const p of PRECISIONS) if (p !== 'fp32' && p !== 'bf16') throw new RangeError(`--precision: expected fp32 and/or bf16, got ${p}`);
const membersFor = (c: number, images: number): number => {
  if (MEMBERS_ARG !== 'auto') return Number(MEMBERS_ARG);
  return 2 * Math.max(4, Math.min(512, Math.round(GFLOP * 1e9 / convFlops(c, images) / 2)));
};
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
const PEER_SCRIPT = join(PACKAGE_ROOT, 'bench', 'torch_peer.py');


/** The benchmark's episode: the library's synthetic source (class templates plus noise), seeded. */
function episode(way: number, shot: number, query: number): Episode {
  return new SyntheticEpisodes({ way, shot, query, imageSize: SIZE, classes: Math.max(20, way), seed: 7 }).episode(0);
}

interface Row {
  impl: string; channels: number; episode: string; threads: number; members: number;
  /** wall-clock seconds and process CPU seconds of the timed run (the median run of cpu-native) */
  seconds: number; cpuSeconds: number;
  /** cpu-native: wall seconds of every timed run */
  samples?: number[];
  /** the 1-minute load average when the row was measured */
  load1: number;
  precision?: string; kernel?: string;
  /** bf16 rows: cand/s and GFLOP per CPU-second over the fp32 cpu-native row of the same C, episode and threads */
  vsFp32?: number; vsFp32PerCpu?: number;
  candidatesPerSec: number; gflops: number;
  /** GFLOP per CPU-second: throughput per busy core, robust to other processes sharing the machine */
  gflopsPerCpuSecond: number;
  /** gflopsPerCpuSecond / the per-core FMA peak */
  fractionOfPeak: number;
}

/** A population evaluator as a protocol implementation: warm-up on 2 members, one timed call per repetition. */
function evaluatorImpl(name: string, role: Impl['role'], evaluate: (r: PopulationRequest) => Promise<Float64Array>, req: PopulationRequest): Impl {
  return {
    name, role,
    warmup: async () => { await evaluate({ ...req, end: req.start + Math.min(2, req.end - req.start) }); },
    run: () => timeAsync(() => evaluate(req)),
  };
}

async function main(): Promise<void> {
  const loadavgStart = loadavg();
  const uptimeStart = spawnSync('uptime', { encoding: 'utf8' }).stdout?.trim() ?? '';
  console.log(`uptime at the start: ${uptimeStart}`);
  const info = nativeInfo();
  const a = addon();
  const peak: Record<number, { wallGflops: number; perCoreGflops: number }> = {};
  for (const t of THREADS) peak[t] = a.fmaPeak({ threads: t, seconds: 1 });
  const perCore = Math.max(...Object.values(peak).map((p) => p.perCoreGflops));
  console.log(`cpu-native: ${info.isa} (${info.reason}), ${cpus().length} CPUs (${cpus()[0]?.model}), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`fp32 FMA peak (${info.isa} FMA loop): ${perCore.toFixed(1)} GFLOP per CPU-second per core (${THREADS.map((t) => `${t} thread${t > 1 ? 's' : ''}: ${peak[t]!.wallGflops.toFixed(1)} GFLOP/s wall`).join(', ')})`);
  const kernels: Bf16Kernel[] = PRECISIONS.includes('bf16') ? arg('bf16-kernels', info.bf16.available.filter((k) => k !== 'emulated').join(',')).split(',').filter(Boolean) as Bf16Kernel[] : [];
  for (const k of kernels) if (!info.bf16.available.includes(k)) throw new RangeError(`--bf16-kernels: this CPU cannot run ${k} (${info.bf16.reason})`);
  if (PRECISIONS.includes('bf16') && kernels.length === 0) throw new RangeError(`--precision bf16: no bf16 kernel on this CPU (${info.bf16.reason})`);
  const bf16Peak: Record<string, number> = {};
  for (const k of kernels) if (k !== 'emulated') bf16Peak[k] = a.bf16Peak({ kernel: k, seconds: 1 });
  if (kernels.length) console.log(`bf16 peak per core (${info.bf16.reason}): ${Object.entries(bf16Peak).map(([k, g]) => `${k} ${g.toFixed(1)} GFLOP per CPU-second`).join(', ')}`);
  const rows: Row[] = [];
  const notes: string[] = [];
  const add = (impl: string, c: number, epName: string, threads: number, members: number, t: { wall: number; cpu: number; samples?: number[] }, images: number, extra: Partial<Row> = {}): Row => {
    const work = convFlops(c, images) * members / 1e9;
    const perCpu = work / t.cpu;
    const row: Row = { impl, channels: c, episode: epName, threads, members, seconds: t.wall, cpuSeconds: t.cpu, ...(t.samples ? { samples: t.samples } : {}), load1: loadavg()[0]!, candidatesPerSec: members / t.wall, gflops: work / t.wall, gflopsPerCpuSecond: perCpu, fractionOfPeak: perCpu / perCore, ...extra };
    rows.push(row);
    return row;
  };
  let torchMissing: string | undefined, torchVersion: string | undefined;
  for (const c of CHANNELS) {
    const layout = new ProtoNetLayout({ channels: c, imageSize: SIZE });
    const mu = initParams(layout, 1);
    for (const ep of EPISODES) {
      const e = episode(ep.way, ep.shot, ep.query);
      const images = ep.way * (ep.shot + ep.query);
      const MEMBERS = membersFor(c, images);
      const base: PopulationRequest = {
        model: layout.config, mu, perturbation: { kind: 'gaussian', sigma: 0.01, antithetic: true },
        seed: 1, step: 0, start: 0, end: MEMBERS, episode: e, distance: 'euclidean',
      };
      for (const t of THREADS) {
        // every implementation of this cell, measured in the same interleaved rounds
        const cell: { impl: Impl; members: number; extra: Partial<Row> }[] = [];
        const closers: (() => unknown)[] = [];
        if (PRECISIONS.includes('fp32')) {
          const nat = new NativePopulationEvaluator({ threads: t });
          closers.push(() => nat.close());
          cell.push({ impl: evaluatorImpl('cpu-native', 'ours', (r) => nat.evaluate(r), base), members: MEMBERS, extra: { precision: 'fp32' } });
        }
        for (const k of kernels) {
          const nat = new NativePopulationEvaluator({ threads: t, precision: 'bf16', bf16Kernel: k });
          closers.push(() => nat.close());
          cell.push({ impl: evaluatorImpl(`cpu-native bf16 ${k}`, 'ours', (q) => nat.evaluate(q), base), members: MEMBERS, extra: { precision: 'bf16', kernel: k } });
        }
        if (!flag('no-torch') && torchMissing === undefined) {
          const members = Math.min(PEER_MEMBERS, MEMBERS);
          for (const formulation of PEER_FORMULATIONS) {
            const g = /^grouped(\d+)/.exec(formulation);
            if (g && members % Number(g[1]) !== 0) continue;
            const p = await TorchPeer.start(PEER_SCRIPT, { mode: 'population', formulation, channels: c, ...ep, imageSize: SIZE, threads: t, members });
            if (typeof p === 'string') {
              torchMissing = p;
              notes.push(`PyTorch skipped: ${p}`);
              console.log(`PyTorch peer skipped: ${p}`);
              break;
            }
            torchVersion = p.version;
            closers.push(() => p.close());
            cell.push({ impl: p.impl(`pytorch ${formulation}`), members, extra: {} });
          }
        }
        const measured: Measured[] = await interleaved(cell.map((x) => x.impl), REPEATS);
        let fp32: Row | undefined;
        measured.forEach((m, i) => {
          const x = cell[i]!;
          const r = add(m.name, c, ep.name, t, x.members, { wall: m.wall, cpu: m.cpu, samples: m.samples.map((q) => q.wall) }, images, { ...x.extra, load1: m.load1.reduce((u, v) => u + v, 0) / m.load1.length });
          if (m.name === 'cpu-native') fp32 = r;
        });
        if (fp32) {
          for (const r of rows) {
            if (r.precision === 'bf16' && r.channels === c && r.episode === ep.name && r.threads === t) {
              r.vsFp32 = r.candidatesPerSec / fp32.candidatesPerSec;
              r.vsFp32PerCpu = r.gflopsPerCpuSecond / fp32.gflopsPerCpuSecond;
            }
          }
        }
        for (const close of closers) await close();
        console.log(`  C ${c} ${ep.name} ${t} thread${t > 1 ? 's' : ''}: ${measured.map((m, i) => `${m.name} ${(cell[i]!.members / m.wall).toFixed(1)} cand/s`).join(', ')}`);
      }
      if (!flag('no-ts') && TS_MEMBERS > 0) {
        const ts = new DirectOpsPopulationEvaluator('cpu-ts');
        const req = { ...base, end: TS_MEMBERS };
        add('cpu-ts', c, ep.name, 1, TS_MEMBERS, await timeAsync(() => ts.evaluate(req)), images);
      }
    }
  }
  // table, with the speedup over the best peer of the same C, episode and thread count
  const native = (r: Row): boolean => r.impl.startsWith('cpu-native');
  const peerBest = (r: Row, key: 'gflops' | 'gflopsPerCpuSecond'): Row | undefined => rows
    .filter((p) => p.impl.startsWith('pytorch') && p.channels === r.channels && p.episode === r.episode && p.threads === r.threads)
    .sort((x, y) => y[key] - x[key])[0];
  const lines = [
    '| impl | C | episode | threads | members | cand/s | GFLOP/s (wall) | GFLOP/CPU-s | % of fp32 core peak | vs fp32 (cand/s) | vs fp32 (per CPU-s) | vs best peer (wall) | vs best peer (per CPU-s) | load |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const pw = native(r) ? peerBest(r, 'gflops') : undefined;
    const pc = native(r) ? peerBest(r, 'gflopsPerCpuSecond') : undefined;
    lines.push(`| ${r.impl} | ${r.channels} | ${r.episode} | ${r.threads} | ${r.members} | ${r.candidatesPerSec.toFixed(1)} | ${r.gflops.toFixed(1)} | ${r.gflopsPerCpuSecond.toFixed(1)} | ${(100 * r.fractionOfPeak).toFixed(1)} | ${r.vsFp32 !== undefined ? `${r.vsFp32.toFixed(2)}x` : ''} | ${r.vsFp32PerCpu !== undefined ? `${r.vsFp32PerCpu.toFixed(2)}x` : ''} | ${pw ? `${(r.gflops / pw.gflops).toFixed(2)}x ${pw.impl}` : ''} | ${pc ? `${(r.gflopsPerCpuSecond / pc.gflopsPerCpuSecond).toFixed(2)}x` : ''} | ${r.load1.toFixed(1)} |`);
  }
  console.log(lines.join('\n'));
  const dir = join(PACKAGE_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `population-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const uptime = spawnSync('uptime', { encoding: 'utf8' }).stdout?.trim() ?? '';
  console.log(`uptime at the end: ${uptime}`);
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), argv: process.argv.slice(2), protocol: `warm-up on 2 members (PyTorch: its warmup command), then ${REPEATS} interleaved rounds with a rotating order, medians (bench/common.ts)`, torch: torchVersion, native: info, cpus: cpus().length, cpuModel: cpus()[0]?.model, loadavgStart, loadavg: loadavg(), uptimeStart, uptimeEnd: uptime, fmaPeakGflops: peak, bf16PeakGflopsPerCore: bf16Peak, rows, notes }, null, 2));
  console.log(`wrote ${file}`);
}

await main();
