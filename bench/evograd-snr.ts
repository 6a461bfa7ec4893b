/**
 * How much signal one hypergradient of the rotation angle carries (docs/evograd.md): after
 * `--pretrain` plain steps (seed `--seed`; the training images upright, or rotated by `--pretrain-angle`
 * degrees: the state a run whose angle has stayed there would reach), for each training angle of `--angles`, each
 * validation batch size M of `--val-batch` and each estimator of `--estimators`, the hypergradient
 * on `--batches` independent (training episode, M rotated validation episodes) pairs: its mean,
 * standard deviation, signal-to-noise ratio (mean / sd) and t = mean / sd * sqrt(batches).
 *  - exact[@D]: the one-step (T1-T2) hypergradient per unit SGD step, h = -g . v with g the validation
 *    gradient (mean over the M episodes) and v = d/dA dL_train/dtheta by central differences of +-D
 *    degrees (default 1; a wide D is the mean of the 1-degree value over [A - D, A + D]);
 *  - evogradK: EvoGrad with K copies on the tape (sign noise, sigma 0.001, tau 0.05: the preset's),
 *    its validation loss the mean over the M episodes (meanValObjective);
 *  - populationK[@D]: EvoGrad with K Gaussian antithetic copies evaluated forward by the population
 *    evaluator (`--precision fp32|bf16`, the angle derivative by +-D degrees, default 1: `--copy-eval
 *    population --fd-delta D`).
 * Every estimator sees the same pairs; with `exact` among them, each other's Pearson correlation with it
 * over the pairs says how well it estimates that pair's exact value.
 * Negative values raise the angle (Adam descends). The angle's Adam moves it by about
 * lr * mean / sqrt(mean^2 + sd^2) per step, so the snr says how many steps a drift needs to beat the
 * random walk: about (3 / snr)^2 for three standard deviations.
 *
 * `--hyper-val train` draws the validation episodes from the training classes (rotated) instead of the validation split.
 *
 *   node dist/bench/evograd-snr.js [--pretrain 400] [--pretrain-angle 0] [--hyper-val val|train] [--angles 0,15,30,45] [--val-batch 1,8]
 *     [--estimators exact,evograd2] [--batches 150] [--seed 0] [--precision bf16] [--out bench/results/evograd/snr]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../lib/device/cpu-ts/index.js';
import '../lib/device/cpu-native/index.js';
import { getDevice } from '../lib/device/registry.js';
import { resolveEvoGradConfig } from '../lib/evograd/config.js';
import { EvoGradMethod } from '../lib/evograd/method.js';
import { hyperValSeed, rotationSources, uprightSampler } from '../lib/evograd/data.js';
import { meanValObjective, tapeObjective } from '../lib/evograd/objective.js';
import { RotatedEpisodes, rotationCopyLosses, rotationProgram } from '../lib/evograd/rotation.js';
import { evoGradHypergradient } from '../lib/evograd/hypergrad.js';
import { populationHypergradient } from '../lib/evograd/population.js';
import { FdWorkspace, lambdaFdHypergradient } from '../lib/evograd/lookahead/fd.js';
import { pearson } from '../lib/evograd/toy.js';
import { evaluatorSpecFor, loadEvaluator } from '../lib/es/evaluators.js';
import type { PopulationEvaluator } from '../lib/es/population.js';
import { initialBnState } from '../lib/model/layout.js';
import type { Episode } from '../lib/model/protonet.js';
import { arg } from './common.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

interface Point { angle: number; valBatch: number; estimator: string; mean: number; sd: number; snr: number; t: number; corrExact?: number }

async function main(): Promise<void> {
  const out = resolve(arg('out', join(repo, 'bench', 'results', 'evograd', 'snr')));
  const num = (name: string, def: string): number => Number(arg(name, def));
  const list = (name: string, def: string): string[] => arg(name, def).split(',').map((s) => s.trim()).filter(Boolean);
  const pre = num('pretrain', '400'), preAngle = num('pretrain-angle', '0'), batches = num('batches', '150'), seed = num('seed', '0');
  if (!Number.isFinite(preAngle)) throw new Error(`--pretrain-angle: a number of degrees, got ${arg('pretrain-angle', '')}`);
  const angles = list('angles', '0,15,30,45').map(Number), valBatches = list('val-batch', '1,8').map(Number);
  const estimators = list('estimators', 'exact,evograd2');
  // each estimator parsed once: its kind, copies K and angle difference D (exact and populationK: @D, default 1 degree)
  const ESTIMATOR = /^(?:(exact)|population(\d+))(?:@(\d+(?:\.\d+)?))?$|^evograd(\d+)$/;
  const spec = new Map(estimators.map((e) => {
    const m = ESTIMATOR.exec(e);
    if (!m) throw new Error(`--estimators: exact[@D], evogradK or populationK[@D] (K copies, D the angle difference in degrees), got ${JSON.stringify(e)}`);
    return [e, { copies: Number(m[2] ?? m[4]), delta: Number(m[3] ?? '1') }];
  }));
  const precision = arg('precision', 'bf16') as 'fp32' | 'bf16';
  for (const m of valBatches) if (!Number.isInteger(m) || m < 1 || m > 64) throw new Error(`--val-batch: integers in [1, 64], got ${m}`);
  mkdirSync(out, { recursive: true });
  const device = getDevice(arg('device', 'cpu-native'));
  const t0 = Date.now();
  // plain training rotates its images when the initial angle is not 0
  const cfg = resolveEvoGradConfig({ seed, mode: 'plain', steps: pre + 1, initAngle: preAngle });
  const { sources, dataset } = rotationSources(cfg, device);
  // --hyper-val train: the validation episodes of the hypergradient drawn from the training classes (rotated), as in the paper's MNIST task, where training and validation share the classes
  const hyperValSplit = arg('hyper-val', 'val');
  if (hyperValSplit !== 'val' && hyperValSplit !== 'train') throw new Error(`--hyper-val: val or train, got ${JSON.stringify(hyperValSplit)}`);
  const hyperVal = hyperValSplit === 'train' ? new RotatedEpisodes(uprightSampler(dataset, 'train', cfg.val, hyperValSeed(seed)), cfg.valAngle, device, cfg.supersample) : sources.hyperVal;
  const base = new EvoGradMethod(cfg, sources, { device });
  while (base.step < pre) await base.trainStep();
  const start = base.evaluate(sources.val!, 50);
  process.stderr.write(`after ${pre} steps ${preAngle === 0 ? 'upright' : `at ${preAngle} degrees`}: rotated validation accuracy ${(100 * start.acc).toFixed(1)}%, ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  const theta = base.params;
  const objective = meanValObjective(tapeObjective(device, rotationProgram(base.layout, initialBnState(base.layout), cfg.distance, true, cfg.supersample)));
  const ws = new FdWorkspace(theta);
  const points: Point[] = [];
  let evaluator: PopulationEvaluator | null = null;
  if (estimators.some((e) => e.startsWith('population'))) evaluator = await loadEvaluator(evaluatorSpecFor(device.name, { precision }));
  const copyLosses = evaluator ? rotationCopyLosses(evaluator, device, base.layout.config, cfg.distance, cfg.supersample) : null;
  for (const angle of angles) {
    for (const m of valBatches) {
      const hs = new Map<string, number[]>(estimators.map((e) => [e, []]));
      for (let b = 0; b < batches; b++) {
        // pair b: training episode 2e6 + b, validation episodes 2e6 + 64 b .. (disjoint from the runs' and from each other)
        const tb = sources.train.episode(2_000_000 + b);
        const vbs: Episode[] = Array.from({ length: m }, (_, j) => hyperVal.episode(2_000_000 + 64 * b + j));
        const lambda = Float32Array.of(angle);
        for (const est of estimators) {
          let h: number;
          if (est.startsWith('exact')) {
            h = lambdaFdHypergradient(objective, theta, lambda, tb, vbs, spec.get(est)!.delta, ws).grad[0]!;
          } else if (est.startsWith('population')) {
            const { copies, delta } = spec.get(est)!;
            h = (await populationHypergradient(copyLosses!, evaluator!, objective, theta, lambda, tb, vbs, { copies, sigma: cfg.sigma, tau: cfg.tau, antithetic: true, delta, seed }, b)).grad[0]!;
          } else {
            const { copies } = spec.get(est)!;
            h = evoGradHypergradient(objective, theta, lambda, tb, vbs, { copies, sigma: cfg.sigma, tau: cfg.tau, noise: 'sign', seed }, b).grad[0]!;
          }
          hs.get(est)!.push(h);
        }
      }
      for (const est of estimators) {
        const v = hs.get(est)!;
        const mean = v.reduce((a, b) => a + b, 0) / batches;
        const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (batches - 1));
        const p: Point = { angle, valBatch: m, estimator: est, mean, sd, snr: mean / sd, t: (mean / sd) * Math.sqrt(batches) };
        if (est !== 'exact' && hs.has('exact')) p.corrExact = pearson(v, hs.get('exact')!);
        points.push(p);
        process.stderr.write(`angle ${angle}, ${m} validation episodes, ${est}: mean ${mean.toExponential(2)}, sd ${sd.toExponential(2)}, snr ${p.snr.toFixed(3)}, t ${p.t.toFixed(2)}${p.corrExact !== undefined ? `, correlation with exact ${p.corrExact.toFixed(3)}` : ''} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
      }
    }
  }
  await evaluator?.close?.();
  await base.close();
  const result = {
    description: 'Rotation task: the one-step hypergradient of the angle per (training episode, M rotated validation episodes) pair after pretraining (upright, or at pretrainAngle): exact (-g.v per unit SGD step) and EvoGrad with K copies; negative raises the angle',
    command: `node dist/bench/evograd-snr.js ${process.argv.slice(2).join(' ')}`.trim(),
    settings: { pretrain: pre, pretrainAngle: preAngle, hyperVal: hyperValSplit, batches, seed, angles, valBatches, estimators, precision, supersample: cfg.supersample, startValAcc: start.acc },
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version, device: device.name, load: loadavg() },
    seconds: (Date.now() - t0) / 1000,
    points,
  };
  writeFileSync(join(out, 'snr.json'), `${JSON.stringify(result, null, 1)}\n`);
  const rows = points.map((p) => `| ${p.angle} | ${p.valBatch} | ${p.estimator} | ${p.mean.toExponential(2)} | ${p.sd.toExponential(2)} | ${p.snr.toFixed(3)} | ${p.t.toFixed(2)} | ${p.corrExact?.toFixed(3) ?? ''} |`);
  writeFileSync(join(out, 'snr.md'), ['| angle | validation episodes | estimator | mean | sd | snr | t | correlation with exact |', '|---|---|---|---|---|---|---|---|', ...rows, ''].join('\n'));
}

main().catch((e) => { console.error(e); process.exit(1); });
