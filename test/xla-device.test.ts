/**
 * The xla device and its PopulationEvaluator on the jaxlib executor (XLA's
 * CPU compiler), against the cpu-ts evaluator: fitness (several devices as
 * replicas), the noise sum, and a single op through Device.run. Built
 * directly (not through the registry, whose outcome is cached per process).
 * Skips with the reason when python/jax is unavailable.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { XlaDevice } from '../lib/device/xla/device.js';
import { XlaPopulationEvaluator } from '../lib/device/xla/evaluator.js';
import { JaxRunner } from '../lib/device/xla/jax-runner.js';
import { createDirectOpsEvaluator } from '../lib/es/population-ts.js';
import { ProtoNetLayout } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import type { Episode } from '../lib/model/protonet.js';
import { Rng } from '../lib/rng/philox.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { maxRelErr, randTensor } from './helpers/random.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jax, needs } from './helpers/peers.js';

/** Tests that run programs need python + jax/jaxlib: skipped (counted, reason printed once) without them. */
const withJax = needs(await jax(), 'xla-device.test: XLA CPU compiler (jaxlib)');

/** The runner starts on first use (only tests that run register with withJax). */
let runner: JaxRunner | undefined;
let opened: { dev: XlaDevice; xla: XlaPopulationEvaluator } | undefined;
function open(): { dev: XlaDevice; xla: XlaPopulationEvaluator } {
  if (!opened) {
    runner = JaxRunner.start({ hostDevices: 4 });
    const dev = new XlaDevice(runner, 'test: jaxlib executor');
    opened = { dev, xla: new XlaPopulationEvaluator(dev) };
  }
  return opened;
}
const cpu = createDirectOpsEvaluator({ device: 'cpu-ts' });
const rng = new Rng(31337);
const model = new ProtoNetLayout({ channels: 4, imageSize: 28 }).config;
const mu = initParams(new ProtoNetLayout(model), 3);
const img = (n: number): Tensor => randTensor(rng, [n, 1, 28, 28], 'float32', 0, 1);
const lab = (n: number, way: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i % way);
const ep: Episode = { way: 5, support: img(5), supportLabels: lab(5, 5), query: img(10), queryLabels: lab(10, 5) };

withJax('device info: the executor and its devices', () => {
  const { dev } = open();
  const info = dev.info();
  assert.is(info.name, 'xla');
  assert.match(info.isa ?? '', /cpu \(jaxlib 0\.10\.2\)/);
  assert.equal(info.detail, { devices: 4, precision: 'exact' });
  assert.ok(dev.supportsOp('conv2d') && dev.supportsOp('accuracy'));
});

withJax('evaluator: fitness of members [3, 11) (4 replicas x 2) and [0, 5) (1 replica) = the cpu-ts evaluator', async () => {
  for (const [start, end, antithetic] of [[3, 11, false], [0, 5, false], [2, 10, true]] as const) {
    const req = { model, mu, perturbation: { kind: 'gaussian' as const, sigma: 0.02, antithetic }, seed: 9, step: 4, start, end, episode: ep, distance: 'euclidean' as const };
    const got = await open().xla.evaluate(req);
    const want = await cpu.evaluate(req);
    assert.is(got.length, end - start);
    const err = maxRelErr(got, want, 1e-3);
    assert.ok(err < 2e-5, `[${start}, ${end}): fitness rel err ${err}`);
  }
});

withJax('evaluator: noise sum = the cpu-ts evaluator (float64 sums of the same float32 noise)', async () => {
  const weights = Float64Array.from({ length: 6 }, () => rng.uniform() - 0.5);
  const req = { mu, seed: 9, step: 4, antithetic: true, sigma: 0.02, start: 2, weights };
  const err = maxRelErr(await open().xla.noiseSum(req), await cpu.noiseSum(req), 1e-6);
  assert.ok(err < 1e-10, `noise sum rel err ${err}`);
});

withJax('Device.run: one op synchronously through the executor', () => {
  const x = randTensor(rng, [2, 3, 5, 5], 'float32'), w = randTensor(rng, [4, 3, 3, 3], 'float32');
  const got = open().dev.run('conv2d', { x, w }, { stride: 1, padding: 1 });
  const want = getDevice('cpu-ts').run('conv2d', { x, w }, { stride: 1, padding: 1 });
  assert.equal(got.shape, want.shape);
  assert.ok(maxRelErr(got.data, want.data, 1e-3) < 3e-5);
});

withJax('evometa train --device xla (jaxlib executor) follows the cpu-ts run: same losses and validation', () => {
  const dir = mkdtempSync(join(tmpdir(), 'evometa-xla-train-'));
  try {
    const run = (device: string): { loss: number[]; val: number[] } => {
      const out = join(dir, device);
      const r = spawnSync(process.execPath, ['dist/lib/cli/main.js', 'train', '--device', device, '--workers', '1', '--shards', '2', '--pop', '8',
        '--steps', '2', '--channels', '4', '--way', '5', '--shot', '1', '--query', '2', '--val-every', '2', '--val-episodes', '1', '--out', out],
      { encoding: 'utf8', env: { ...process.env, EVOMETA_XLA_EXECUTOR: 'jaxlib' }, timeout: 300_000 });
      assert.is(r.status, 0, `${device}: ${r.stderr}`);
      const rows = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; loss?: number; val_acc?: number });
      return { loss: rows.filter((x) => x.type === 'step').map((x) => x.loss!), val: rows.filter((x) => x.type === 'val').map((x) => x.val_acc!) };
    };
    const a = run('xla'), b = run('cpu-ts');
    assert.is(a.loss.length, 2);
    assert.ok(maxRelErr(a.loss, b.loss, 1e-3) < 1e-5, `losses ${a.loss} vs ${b.loss}`);
    assert.equal(a.val, b.val);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.after(async () => { await runner?.close(); });

test.run();
