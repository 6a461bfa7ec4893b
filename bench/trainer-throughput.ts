/**
 * End-to-end throughput: the ES-ProtoNet trainer's candidates/s against the
 * population benchmark's for the same model, episode shape and population, in
 * one run with one protocol (a warm-up, then the median of --reps timed
 * repetitions for each). Real Omniglot episodes, cpu-native. The benchmark
 * evaluates one fixed episode (its plan is built once); the trainer takes a
 * new episode every step, so its figure includes building each step's plan.
 *
 *   bench  one native call evaluating the whole population (threads = --threads), as
 *          dist/bench/population.js measures it;
 *   steps  the trainer's training steps only: member evaluations / wall time of the steps
 *          (the population on worker threads, per-shard estimates, the BN forward of mu,
 *          the update), over --steps steps without validation;
 *   run    the same with the quick preset's validation cadence (every 50 steps, 50 episodes),
 *          over a whole run of --steps steps.
 *
 * Each measure is repeated --reps times, interleaved (bench, steps, run, bench, ...) after one
 * warm-up of each; the ratios are medians of the per-repetition ratios.
 *
 *   npm run build && node dist/bench/trainer-throughput.js [--pops 32,256] [--channels 16]
 *     [--episode 5w5s5q] [--workers 2] [--threads 2] [--reps 3] [--steps-32 300] [--steps-256 40] [--precision fp32|bf16]
 * Writes bench/results/trainer-throughput-<time>.json and prints a markdown table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import { join } from 'node:path';
import '../lib/index.js';
import { NativePopulationEvaluator } from '../lib/device/cpu-native/index.js';
import { ProtoNetLayout } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { ProtoNetEsMethod } from '../lib/methods/protonet-es/method.js';
import { resolveEsConfig, type EsConfigInput } from '../lib/methods/protonet-es/config.js';
import { omniglotSources } from '../lib/methods/protonet/data.js';
import { runLoop } from '../lib/train/loop.js';
import { arg } from './common.js';

const POPS = arg('pops', '32,256').split(',').map(Number);
const CHANNELS = arg('channels', '16').split(',').map(Number);
const EP = /^(\d+)w(\d+)s(\d+)q$/.exec(arg('episode', '5w5s5q'));
if (!EP) throw new RangeError('--episode: expected e.g. 5w5s5q');
const [way, shot, query] = [Number(EP[1]), Number(EP[2]), Number(EP[3])];
const WORKERS = Number(arg('workers', '2'));
const THREADS = Number(arg('threads', '2'));
const REPS = Number(arg('reps', '3'));
const PRECISION = arg('precision', 'fp32');
if (PRECISION !== 'fp32' && PRECISION !== 'bf16') throw new RangeError(`--precision: expected fp32 or bf16, got ${PRECISION}`);

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

/** One repetition of the population benchmark: the candidates/s of ceil(2048 / pop) native calls of the whole population. */
async function benchPopulation(ev: NativePopulationEvaluator, cfg: ReturnType<typeof resolveEsConfig>, src: ReturnType<typeof omniglotSources>, warmUp: boolean): Promise<number> {
  const layout = new ProtoNetLayout(cfg.model);
  const mu = initParams(layout, 0);
  const ep = src.train.episode(0);
  const req = { model: cfg.model, mu, perturbation: { kind: 'gaussian' as const, sigma: cfg.sigma, antithetic: false }, seed: 1, step: 0, start: 0, end: cfg.pop, episode: ep, distance: cfg.distance };
  if (warmUp) await ev.evaluate(req);
  const n = Math.max(1, Math.ceil(2048 / cfg.pop));
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await ev.evaluate({ ...req, step: i + 1 });
  return (n * cfg.pop) / ((performance.now() - t0) / 1000);
}

/** One repetition of the trainer: member evaluations / wall time of a whole runLoop of `steps` steps. */
async function trainerRate(input: EsConfigInput, src: ReturnType<typeof omniglotSources>, steps: number, withVal: boolean): Promise<number> {
  const m = await ProtoNetEsMethod.create({ ...input, steps, valEvery: withVal ? 50 : 0, valEpisodes: withVal ? 50 : 0 }, src, { device: 'cpu-native' });
  try {
    const t0 = performance.now();
    const res = await runLoop(m, { valEvery: withVal ? 50 : 0 });
    return res.loop.work / ((performance.now() - t0) / 1000);
  } finally {
    await m.close();
  }
}

const rows: Array<Record<string, number | string | Record<string, number[]>>> = [];
for (const c of CHANNELS) {
  for (const pop of POPS) {
    const shards = pop >= 256 ? 8 : 2;
    const input: EsConfigInput = {
      model: { channels: c, imageSize: 28 }, pop, shards, workers: WORKERS, optimizer: 'sgd', momentum: 0.9, lr: 0.1, sigma: 0.01,
      train: { way, shot, query }, seed: 0, precision: PRECISION,
    };
    const cfg = resolveEsConfig(input);
    const src = omniglotSources(cfg);
    const steps = Number(arg(`steps-${pop}`, String(Math.max(20, Math.round(9600 / pop)))));
    const load0 = loadavg()[0]!;
    // Interleaved repetitions (bench, trainer steps, trainer run; then again), after one warm-up
    // of each, so that a drift in the machine's speed reaches all three alike; the ratios are
    // the medians of the per-repetition ratios.
    const ev = new NativePopulationEvaluator({ threads: THREADS, precision: PRECISION });
    const reps = { bench: [] as number[], steps: [] as number[], run: [] as number[] };
    try {
      await benchPopulation(ev, cfg, src, true);
      await trainerRate(input, src, steps, false);
      await trainerRate(input, src, steps, true);
      for (let r = 0; r < REPS; r++) {
        reps.bench.push(await benchPopulation(ev, cfg, src, false));
        reps.steps.push(await trainerRate(input, src, steps, false));
        reps.run.push(await trainerRate(input, src, steps, true));
      }
    } finally {
      await ev.close();
    }
    const bench = median(reps.bench), stepsOnly = median(reps.steps), run = median(reps.run);
    const stepsRatio = median(reps.steps.map((x, i) => x / reps.bench[i]!)), runRatio = median(reps.run.map((x, i) => x / reps.bench[i]!));
    const row = { channels: c, episode: `${way}w${shot}s${query}q`, precision: PRECISION, pop, shards, workers: WORKERS, threads: THREADS, steps, bench, stepsOnly, run, stepsRatio, runRatio, reps, load1: load0, load1After: loadavg()[0]! };
    rows.push(row);
    console.error(JSON.stringify(row));
  }
}
console.log('| C | episode | precision | pop | bench cand/s | trainer steps cand/s | ratio | trainer with validation | ratio | load |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r['channels']} | ${r['episode']} | ${r['precision']} | ${r['pop']} | ${Math.round(r['bench'] as number)} | ${Math.round(r['stepsOnly'] as number)} | ${(100 * (r['stepsRatio'] as number)).toFixed(0)}% | ${Math.round(r['run'] as number)} | ${(100 * (r['runRatio'] as number)).toFixed(0)}% | ${(r['load1'] as number).toFixed(1)} |`);
}
const dir = join('bench', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `trainer-throughput-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ bench: 'trainer-throughput', cpu: cpus()[0]?.model, reps: REPS, precision: PRECISION, rows }, null, 2));
console.log(`\n${file}`);
