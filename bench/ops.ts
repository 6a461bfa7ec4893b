/**
 * Single-op benchmark (tinybench): every hot op of the ProtoNet forward and backward at
 * ConvNet-4 block-2 shapes (100 images, C = 64, 14x14), on cpu-native and cpu-ts, float32.
 * Prints a table (median ms, GFLOP/s for the convolutions, speedup) and writes JSON to
 * bench/results/.
 *
 *   npm run build && node dist/bench/ops.js [--images 100] [--channels 64] [--time 500]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import '../lib/index.js';
import { getDevice, type Device } from '../lib/device/registry.js';
import { PACKAGE_ROOT } from '../lib/device/cpu-native/addon.js';
import { Rng } from '../lib/rng/philox.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { arg } from './common.js';

const N = Number(arg('images', '100')), C = Number(arg('channels', '64')), S = 14, TIME = Number(arg('time', '500'));

const rng = new Rng(3);
const rand = (shape: number[]): Tensor => {
  const t = Tensor.zeros(shape, 'float32');
  for (let i = 0; i < t.size; i++) t.data[i] = rng.uniform() * 2 - 1;
  return t;
};
const x = rand([N, C, S, S]), w = rand([C, C, 3, 3]), b = rand([C]), dy = rand([N, C, S, S]);
const gamma = rand([C]), beta = rand([C]);
const convFlops = 2 * 9 * C * C * S * S * N;
const conv = { stride: 1, padding: 1 };

const ops: { name: string; flops?: number; run(d: Device): unknown }[] = [
  { name: 'conv2d', flops: convFlops, run: (d) => d.run('conv2d', { x, w, b }, conv) },
  { name: 'conv2dBackwardInput', flops: convFlops, run: (d) => d.run('conv2dBackwardInput', { dy, w }, { ...conv, inputShape: x.shape }) },
  { name: 'conv2dBackwardWeight', flops: convFlops, run: (d) => d.run('conv2dBackwardWeight', { dy, x }, { ...conv, weightShape: w.shape }) },
  { name: 'batchnorm2dTrain', run: (d) => d.run('batchnorm2dTrain', { x, gamma, beta }, { eps: 1e-5 }) },
  { name: 'relu', run: (d) => d.run('relu', { x }, {}) },
  { name: 'maxpool2d', run: (d) => d.run('maxpool2d', { x }, { kernel: 2, stride: 2 }) },
];

interface Stat { latency: { p50: number } }

async function main(): Promise<void> {
  const devices = ['cpu-native', 'cpu-ts'].map((n) => getDevice(n));
  const bench = new Bench({ time: TIME, iterations: 3 });
  for (const op of ops) for (const d of devices) bench.add(`${op.name}@${d.name}`, () => { op.run(d); });
  await bench.run();
  const ms = new Map<string, number>();
  for (const t of bench.tasks) ms.set(t.name, (t.result as unknown as Stat).latency.p50);
  const rows = ops.map((op) => {
    const nat = ms.get(`${op.name}@cpu-native`)!, ts = ms.get(`${op.name}@cpu-ts`)!;
    return { op: op.name, nativeMs: nat, tsMs: ts, speedup: ts / nat, nativeGflops: op.flops ? op.flops / nat / 1e6 : undefined, tsGflops: op.flops ? op.flops / ts / 1e6 : undefined };
  });
  console.log(`single ops, float32, x = [${N}, ${C}, ${S}, ${S}], cpu-native on ${(getDevice('cpu-native').info().detail?.threads as number | undefined) ?? '?'} threads (conv ops split images over the pool), cpu-ts on one; load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
  console.log('| op | cpu-native ms | cpu-ts ms | speedup | cpu-native GFLOP/s | cpu-ts GFLOP/s |\n|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.op} | ${r.nativeMs.toFixed(3)} | ${r.tsMs.toFixed(3)} | ${r.speedup.toFixed(1)}x | ${r.nativeGflops?.toFixed(1) ?? ''} | ${r.tsGflops?.toFixed(2) ?? ''} |`);
  }
  const dir = join(PACKAGE_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `ops-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), shape: [N, C, S, S], loadavg: loadavg(), native: getDevice('cpu-native').info(), rows }, null, 2));
  console.log(`wrote ${file}`);
}

await main();
