/**
 * Meta-train the MAML-style learner (lib/maml) on real Omniglot episodes, the
 * three ways, and report validation meta-loss/accuracy before and after, time
 * per meta-gradient and the accounted peak bytes:
 *   node dist/bench/memory-maml-train.js [--methods second-order,first-order,es] [--steps 200] [--inner-steps 10] ...
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import '../lib/device/cpu-ts/index.js';
import '../lib/device/cpu-native/index.js';
import { getDevice } from '../lib/device/registry.js';
import { initialBnState } from '../lib/model/layout.js';
import { loadOmniglot } from '../lib/data/omniglot.js';
import { getSplit } from '../lib/data/splits.js';
import { EpisodeSampler } from '../lib/data/sampler.js';
import { MamlLayout, initMaml, type MamlConfig } from '../lib/maml/layout.js';
import { MAML_METHODS, type MamlMethod } from '../lib/maml/metagrad.js';
import { evaluateMaml, trainMaml, defaultOptimizer } from '../lib/maml/train.js';
import { fmtBytes, fmtSeconds } from '../lib/memory/report.js';

const here = dirname(fileURLToPath(import.meta.url));

const program = new Command('memory-maml-train')
  .description('Meta-train the MAML-style learner on Omniglot by backprop (second/first order) and ES')
  .option('--methods <list>', `comma-separated: ${MAML_METHODS.join(', ')}`, 'second-order,first-order,es')
  .option('--steps <n>', 'meta-training episodes per method', '200')
  .option('--channels <n>', 'ConvNet-4 channels', '16')
  .option('--image-size <n>', '28 (vinyals split) or 32', '28')
  .option('--way <n>', 'classes per episode', '5')
  .option('--shot <n>', 'support images per class', '5')
  .option('--query <n>', 'query images per class', '5')
  .option('--inner-steps <n>', 'inner SGD steps l on the support set', '10')
  .option('--inner-lr <x>', 'inner learning rate', '0.5')
  .option('--lr <x>', 'outer learning rate (Adam for backprop, the plain ES step for ES)')
  .option('--pop <n>', 'ES population (antithetic)', '64')
  .option('--sigma <x>', 'ES sigma', '0.01')
  .option('--val-episodes <n>', 'validation episodes (val split)', '50')
  .option('--seed <n>', 'seed', '1')
  .option('--out <file>', 'JSON results', join(here, '..', '..', 'bench', 'results', 'memory', 'maml-train.json'));

function int(v: string, name: string, min = 1): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new RangeError(`--${name} must be an integer >= ${min}, got ${v}`);
  return n;
}

function num(v: string, name: string): number {
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n)) throw new RangeError(`--${name} must be a positive number, got ${v}`);
  return n;
}

async function main(): Promise<void> {
  program.parse();
  const o = program.opts<Record<string, string>>();
  const methods = o['methods']!.split(',').map((s) => s.trim()) as MamlMethod[];
  for (const m of methods) if (!MAML_METHODS.includes(m)) throw new RangeError(`--methods: unknown method ${m} (expected ${MAML_METHODS.join(', ')})`);
  const imageSize = int(o['imageSize']!, 'image-size');
  const shape = { way: int(o['way']!, 'way', 2), shot: int(o['shot']!, 'shot'), query: int(o['query']!, 'query') };
  const seed = int(o['seed']!, 'seed', 0);
  const cfg: MamlConfig = { model: { channels: int(o['channels']!, 'channels'), imageSize }, way: shape.way, innerSteps: int(o['innerSteps']!, 'inner-steps', 0), innerLr: num(o['innerLr']!, 'inner-lr') };
  const device = getDevice();
  const ds = loadOmniglot({ imageSize });
  const scheme = imageSize === 32 ? 'paper' : 'vinyals';
  const train = new EpisodeSampler(getSplit(ds, scheme, 'train'), { ...shape, seed });
  const valSampler = new EpisodeSampler(getSplit(ds, scheme, 'val'), { ...shape, seed: seed + 1 });
  const val = Array.from({ length: int(o['valEpisodes']!, 'val-episodes') }, (_, i) => valSampler.episode(i));
  const layout = new MamlLayout(cfg.model, cfg.way);
  const before = evaluateMaml({ device, layout, cfg, bn: initialBnState(layout.encoder) }, initMaml(layout, seed), val);
  const steps = int(o['steps']!, 'steps');
  process.stderr.write(`MAML-style learner on Omniglot (${scheme} split, ${imageSize}px), ${shape.way}-way ${shape.shot}-shot, l = ${cfg.innerSteps}, C = ${cfg.model.channels}, device ${device.name}\n`);
  process.stderr.write(`untrained: val meta-loss ${before.loss.toFixed(3)}, accuracy ${(100 * before.accuracy).toFixed(1)}%\n`);
  const results = [];
  for (const method of methods) {
    const isEs = method === 'es' || method === 'es-matrix';
    const opt = { ...defaultOptimizer(method), ...(o['lr'] ? { lr: num(o['lr'], 'lr') } : {}) };
    const t0 = performance.now();
    const r = trainMaml({
      device, cfg, method, steps, seed, train, val, evalEvery: Math.max(1, Math.floor(steps / 4)), optimizer: opt,
      ...(isEs ? { es: { pop: int(o['pop']!, 'pop', 2), sigma: num(o['sigma']!, 'sigma'), antithetic: true } } : {}),
      onStep: (s) => {
        if (s.valLoss !== undefined) process.stderr.write(`  ${method} step ${s.step + 1}: val meta-loss ${s.valLoss.toFixed(3)}, accuracy ${(100 * s.valAccuracy!).toFixed(1)}%\n`);
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    const last = r.log[r.log.length - 1]!;
    const perStep = r.log.reduce((a, s) => a + s.seconds, 0) / r.log.length;
    results.push({ method, optimizer: opt, steps, seconds, secondsPerMetaGradient: perStep, peakBytes: r.peakBytes, valLoss: last.valLoss, valAccuracy: last.valAccuracy, log: r.log });
    process.stderr.write(`${method}: val meta-loss ${before.loss.toFixed(3)} -> ${last.valLoss!.toFixed(3)}, accuracy ${(100 * before.accuracy).toFixed(1)}% -> ${(100 * last.valAccuracy!).toFixed(1)}%, ${fmtSeconds(perStep)} per meta-gradient, accounted peak ${fmtBytes(r.peakBytes)}, ${fmtSeconds(seconds)} in all\n`);
  }
  const out = resolve(o['out']!);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ device: device.name, cfg, shape, scheme, seed, before, results }, null, 1) + '\n');
  process.stderr.write(`wrote ${out}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`memory-maml-train: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
});
