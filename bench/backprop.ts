/**
 * Backprop training step (forward + backward + Adam) of ConvNet-4 ProtoNet, C = 64, 20-way
 * 5-shot 15-query at 28x28, on cpu-native (the tape in lib/autodiff over the native kernels)
 * against PyTorch CPU on 1 and 2 threads (skipped with a message when torch is absent).
 * Prints a table, writes JSON to bench/results/.
 *
 *   npm run build && node dist/bench/backprop.js [--channels 64] [--episode 20w5s15q] [--steps 3]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import '../lib/index.js';
import { getDevice } from '../lib/device/registry.js';
import { PACKAGE_ROOT } from '../lib/device/cpu-native/addon.js';
import { setNativeThreads } from '../lib/device/cpu-native/index.js';
import { episodeGradient } from '../lib/autodiff/protonet.js';
import { createOptimizer } from '../lib/optim/optimizers.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { Rng } from '../lib/rng/philox.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { arg, convFlops } from './common.js';

const C = Number(arg('channels', '64')), STEPS = Number(arg('steps', '3'));
const m = /^(\d+)w(\d+)s(\d+)q$/.exec(arg('episode', '20w5s15q'))!;
const way = Number(m[1]), shot = Number(m[2]), query = Number(m[3]);

const rng = new Rng(2);
const img = (n: number): Tensor => {
  const t = Tensor.zeros([n, 1, 28, 28], 'float32');
  for (let i = 0; i < t.size; i++) t.data[i] = rng.uniform() < 0.8 ? 1 : 0;
  return t;
};
const lab = (k: number): Int32Array => Int32Array.from({ length: way * k }, (_, i) => i % way);
const ep = { way, support: img(way * shot), supportLabels: lab(shot), query: img(way * query), queryLabels: lab(query) };

const rows: { impl: string; threads: number; stepSeconds: number; cpuSeconds: number; gflops: number; gflopsPerCpuSecond: number }[] = [];
const flops = 3 * convFlops(C, way * (shot + query)); // forward + data and weight gradients
const notes: string[] = [];

for (const threads of [1, 2]) {
  setNativeThreads(threads);
  const layout = new ProtoNetLayout({ channels: C });
  const params = initParams(layout, 1), bn = initialBnState(layout);
  const opt = createOptimizer({ name: 'adam', lr: 1e-3 });
  const dev = getDevice('cpu-native');
  const step = (): void => {
    const g = episodeGradient(dev, layout, params, bn, ep, { bn: 'batch', trackStats: bn });
    opt.step(params, g.grad);
  };
  step();
  let best = Infinity, bestCpu = Infinity;
  for (let s = 0; s < STEPS; s++) {
    const c0 = process.cpuUsage(), t0 = performance.now();
    step();
    const wall = (performance.now() - t0) / 1000, cu = process.cpuUsage(c0);
    if (wall < best) { best = wall; bestCpu = (cu.user + cu.system) / 1e6; }
  }
  rows.push({ impl: 'cpu-native', threads, stepSeconds: best, cpuSeconds: bestCpu, gflops: flops / best / 1e9, gflopsPerCpuSecond: flops / bestCpu / 1e9 });
  const r = spawnSync('python3', [join(PACKAGE_ROOT, 'bench', 'torch_population.py'), JSON.stringify({ mode: 'backprop', channels: C, way, shot, query, imageSize: 28, threads, steps: STEPS })], { encoding: 'utf8' });
  const out = r.status === 0 ? JSON.parse(r.stdout) as { skipped?: string; stepSeconds?: number; stepCpuSeconds?: number } : { skipped: `python3 failed: ${r.error?.message ?? r.stderr.trim().split('\n').pop()}` };
  if (out.skipped) {
    notes.push(`PyTorch skipped: ${out.skipped}`);
    console.log(`PyTorch skipped: ${out.skipped}`);
  } else {
    rows.push({ impl: 'pytorch', threads, stepSeconds: out.stepSeconds!, cpuSeconds: out.stepCpuSeconds!, gflops: flops / out.stepSeconds! / 1e9, gflopsPerCpuSecond: flops / out.stepCpuSeconds! / 1e9 });
  }
}

console.log(`backprop step (fwd + bwd + Adam), C=${C}, ${way}w${shot}s${query}q 28x28; load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
console.log('| impl | threads | step s (wall) | step CPU-s | conv GFLOP/s (wall) | GFLOP/CPU-s |\n|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.impl} | ${r.threads} | ${r.stepSeconds.toFixed(3)} | ${r.cpuSeconds.toFixed(3)} | ${r.gflops.toFixed(1)} | ${r.gflopsPerCpuSecond.toFixed(1)} |`);
const dir = join(PACKAGE_ROOT, 'bench', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `backprop-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), channels: C, episode: { way, shot, query }, loadavg: loadavg(), rows, notes }, null, 2));
console.log(`wrote ${file}`);
