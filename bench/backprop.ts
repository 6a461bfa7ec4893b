/**
 * Backprop training step (forward + backward + Adam) of ConvNet-4 ProtoNet, C = 64, 20-way
 * 5-shot 15-query at 28x28: cpu-native (the tape in lib/autodiff over the native kernels)
 * against PyTorch CPU in each of its formulations -- NCHW and channels_last, eager and
 * torch.compile'd -- all under the protocol of bench/common.ts (warm-up, interleaved rounds,
 * medians), on 1 and 2 threads. The ratio is against the best PyTorch formulation of the same
 * run and thread count. PyTorch is skipped with a message when it is not importable; a
 * formulation that fails (e.g. torch.compile without a compiler) is dropped with its reason.
 * Prints a table, writes JSON to bench/results/.
 *
 *   npm run build && node dist/bench/backprop.js [--channels 64] [--episode 20w5s15q]
 *     [--threads 1,2] [--rounds 7] [--no-compile] [--no-torch] [--unfused]
 *
 * --unfused adds a variant of ours, the tape recording each block's BN, ReLU and max-pool as three ops
 * instead of the fused bnReluPool (ForwardOptions.fuse = false), in the same interleaved rounds.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import '../lib/index.js';
import { getDevice } from '../lib/device/registry.js';
import { PACKAGE_ROOT } from '../lib/device/cpu-native/addon.js';
import { nativeInfo, setNativeThreads } from '../lib/device/cpu-native/index.js';
import { episodeGradient } from '../lib/autodiff/protonet.js';
import { createOptimizer } from '../lib/optim/optimizers.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { arg, convFlops, flag, interleaved, stamp, timeSync, TorchPeer, uptime, type Impl, type Measured } from './common.js';

const C = Number(arg('channels', '64')), ROUNDS = Number(arg('rounds', '7'));
const THREADS = arg('threads', '1,2').split(',').map(Number);
const m = /^(\d+)w(\d+)s(\d+)q$/.exec(arg('episode', '20w5s15q'));
if (!m) throw new RangeError(`--episode: expected e.g. 20w5s15q, got ${arg('episode', '')}`);
const way = Number(m[1]), shot = Number(m[2]), query = Number(m[3]);

const ep = new SyntheticEpisodes({ way, shot, query, imageSize: 28, classes: Math.max(20, way), seed: 2 }).episode(0);
const flops = 3 * convFlops(C, way * (shot + query)); // forward + data and weight gradients

/** cpu-native through the tape; `fuse` false records each block's BN, ReLU and max-pool as three tape ops instead of bnReluPool. */
function ours(fuse = true): Impl {
  const layout = new ProtoNetLayout({ channels: C });
  const params = initParams(layout, 1), bn = initialBnState(layout);
  const opt = createOptimizer({ name: 'adam', lr: 1e-3 });
  const dev = getDevice('cpu-native');
  const step = (): void => {
    const g = episodeGradient(dev, layout, params, bn, ep, { bn: 'batch', trackStats: bn, fuse });
    opt.step(params, g.grad);
  };
  return {
    name: fuse ? 'cpu-native' : 'cpu-native unfused', role: fuse ? 'ours' : 'variant',
    warmup: async () => { step(); step(); },
    run: async () => timeSync(step),
  };
}

interface Row extends Measured { threads: number; gflops: number; gflopsPerCpuSecond: number }

async function main(): Promise<void> {
  const script = join(PACKAGE_ROOT, 'bench', 'torch_peer.py');
  const start = uptime();
  console.log(`backprop step (fwd + bwd + Adam), C=${C}, ${way}w${shot}s${query}q 28x28; cpu-native ${nativeInfo().isa}; ${ROUNDS} interleaved rounds after warm-up, medians`);
  console.log(start);
  const rows: Row[] = [], notes: string[] = [];
  let torchVersion: string | undefined, torchMissing: string | undefined;
  for (const threads of THREADS) {
    setNativeThreads(threads);
    const impls: Impl[] = [ours(), ...(flag('unfused') ? [ours(false)] : [])];
    const peers: TorchPeer[] = [];
    if (!flag('no-torch') && torchMissing === undefined) {
      for (const compile of flag('no-compile') ? [false] : [false, true]) {
        for (const formulation of ['nchw', 'cl']) {
          const name = `pytorch ${formulation === 'cl' ? 'channels_last' : 'NCHW'}${compile ? ' compiled' : ''}`;
          const setup = { mode: 'backprop', formulation, compile, channels: C, way, shot, query, imageSize: 28, threads };
          const p = await TorchPeer.start(script, setup);
          if (typeof p === 'string') {
            torchMissing = p;
            notes.push(`PyTorch skipped: ${p}`);
            console.log(`PyTorch skipped: ${p}`);
            break;
          }
          torchVersion = p.version;
          peers.push(p);
          impls.push(p.impl(name));
        }
        if (torchMissing !== undefined) break;
      }
    }
    // a formulation whose warm-up fails (torch.compile needs a C++ compiler) is dropped with its reason
    const usable: Impl[] = [];
    for (const im of impls) {
      try {
        await im.warmup();
        usable.push({ ...im, warmup: async () => {} });
      } catch (e) {
        notes.push(`${im.name} (${threads} thread${threads > 1 ? 's' : ''}) dropped: ${(e as Error).message}`);
        console.log(`${im.name} dropped: ${(e as Error).message}`);
      }
    }
    console.log(`threads ${threads}: ${usable.map((u) => u.name).join(', ')}`);
    const measured = await interleaved(usable, ROUNDS);
    for (const p of peers) p.close();
    for (const r of measured) rows.push({ ...r, threads, gflops: flops / r.wall / 1e9, gflopsPerCpuSecond: flops / r.cpu / 1e9 });
  }
  const end = uptime();
  const best = THREADS.map((t) => {
    const o = rows.find((r) => r.threads === t && r.role === 'ours');
    const peer = rows.filter((r) => r.threads === t && r.role === 'peer').sort((a, b) => a.wall - b.wall)[0];
    return { threads: t, ours: o?.wall, bestPeer: peer?.name, bestPeerSeconds: peer?.wall, speedup: o && peer ? peer.wall / o.wall : undefined };
  });
  console.log('| impl | threads | step s (median) | min - max | step CPU-s | conv GFLOP/s | 1-min load |\n|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const load = r.load1.reduce((a, b) => a + b, 0) / r.load1.length;
    console.log(`| ${r.name} | ${r.threads} | ${r.wall.toFixed(3)} | ${r.wallMin.toFixed(3)} - ${r.wallMax.toFixed(3)} | ${r.cpu.toFixed(3)} | ${r.gflops.toFixed(1)} | ${load.toFixed(1)} |`);
  }
  for (const b of best) {
    if (b.speedup !== undefined) console.log(`${b.threads} thread${b.threads > 1 ? 's' : ''}: cpu-native ${b.ours!.toFixed(3)} s vs best peer ${b.bestPeer} ${b.bestPeerSeconds!.toFixed(3)} s: ${b.speedup.toFixed(2)}x`);
  }
  console.log(end);
  const dir = join(PACKAGE_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `backprop-${stamp()}.json`);
  writeFileSync(file, JSON.stringify({
    date: new Date().toISOString(), protocol: { warmup: 'ours: 2 steps; PyTorch: 2 steps (compilation included)', rounds: ROUNDS, statistic: 'median', interleaved: true },
    uptimeStart: start, uptimeEnd: end, native: nativeInfo(), torch: torchVersion, channels: C, episode: { way, shot, query }, rows, best, notes,
  }, null, 2));
  console.log(`wrote ${file}`);
}

await main();
