/**
 * Distributed ES over Redis, measured (docs/distributed.md, "Measurements"):
 *
 *   node dist/bench/cluster.js [--part all|throughput|latency|bytes|scale|model] [--rounds 3] [--steps 6] [--device NAME]
 *
 *  throughput  steps/s and candidates/s of one configuration: in process on 1 and 2 worker threads
 *              against 1 and 2 worker processes over a local Redis (sync mean; 2 processes also sync fitness),
 *              interleaved rounds, each the median step time of --steps steps after 2 warm-up steps
 *  latency     what Redis adds per step: a tiny model, in process (1 thread) against 1 worker process
 *  bytes       bytes per step through the Redis server (INFO total_net_input/output_bytes) for each scheme and
 *              sync mode at several D and P, against the payload formulas (bench/cluster-model.ts)
 *  scale       1, 2, 4, 8, 16 worker processes against one local Redis (tiny compute), against the model
 *  model       the model's parameters from these measurements and its prediction for 8, 64, 256 workers
 *
 * Every number is written with the load average at the time (`uptime`); on a loaded machine the
 * ratios are what to read, and a quiet rerun gives the absolute numbers. Results:
 * bench/results/cluster/cluster-<time>.json and .md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../lib/index.js';
import { getDevice } from '../lib/device/registry.js';
import { evaluatorSpecFor, loadEvaluator } from '../lib/es/evaluators.js';
import type { PopulationRunner } from '../lib/es/runner.js';
import { WorkerRunner } from '../lib/es/worker-runner.js';
import { ProtoNetEsMethod } from '../lib/methods/protonet-es/method.js';
import { resolveEsConfig, type EsConfig, type EsConfigInput } from '../lib/methods/protonet-es/config.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { ProtoNetLayout } from '../lib/model/layout.js';
import { Redis } from 'ioredis';
import { RedisRunner } from '../lib/cluster/coordinator.js';
import { parseResult, resultFields, type Expect } from '../lib/cluster/protocol.js';
import type { SyncMode } from '../lib/cluster/protocol.js';
import { VERSION } from '../lib/version.js';
import { arg } from './common.js';
import { load, LocalCluster } from './cluster-local.js';
import { bytesPerStep, stepSeconds, type ModelParams, type StepShape } from './cluster-model.js';

const part = arg('part', 'all');
const rounds = Number(arg('rounds', '3'));
const steps = Number(arg('steps', '6'));
const device = getDevice(arg('device', '') || undefined).name;
const spec = evaluatorSpecFor(device);
const out: Record<string, unknown> = { bench: 'cluster', version: VERSION, device, cores: availableParallelism(), started: new Date().toISOString(), load_start: load(), rounds, steps };
const md: string[] = [];
const say = (s: string): void => { process.stderr.write(`${s}\n`); md.push(s); };
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };

function config(c: EsConfigInput): EsConfig { return resolveEsConfig({ valEpisodes: 0, valEvery: 0, seed: 1, steps: 1000, ...c }); }
function sourcesOf(cfg: EsConfig): { train: SyntheticEpisodes } {
  return { train: new SyntheticEpisodes({ ...cfg.train, imageSize: cfg.model.imageSize, seed: 3 }) };
}

interface Timed { stepS: number[]; median: number; load: number; bytesOut?: number; bytesIn?: number; publishS?: number; waitS?: number }

/** Warm-up 2 steps, then `n` timed steps (each: trainStep's wall time). */
async function timed(cfg: EsConfig, runner: PopulationRunner, n: number): Promise<Timed> {
  const m = await ProtoNetEsMethod.create(cfg, sourcesOf(cfg), { runner });
  if (runner instanceof RedisRunner) runner.attachStrategy(m.strategy);
  try {
    for (let i = 0; i < 2; i++) await m.trainStep();
    const stepS: number[] = [], pub: number[] = [], wait: number[] = [];
    let bo = 0, bi = 0;
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await m.trainStep();
      stepS.push((performance.now() - t0) / 1000);
      if (runner instanceof RedisRunner) { pub.push(runner.stats.last.publishSeconds); wait.push(runner.stats.last.waitSeconds); bo += runner.stats.last.bytesOut; bi += runner.stats.last.bytesIn; }
    }
    return { stepS, median: median(stepS), load: load(), ...(runner instanceof RedisRunner ? { bytesOut: bo / n, bytesIn: bi / n, publishS: median(pub), waitS: median(wait) } : {}) };
  } finally {
    await m.close();
  }
}

/** In process on `threads` worker threads (also 1: the population off the main thread, as over Redis). */
const inproc = (_cfg: EsConfig, threads: number): Promise<PopulationRunner> => WorkerRunner.create(threads, { ...spec, threads: 1 });
const redis = (cl: LocalCluster, cfg: EsConfig, sync: SyncMode, sp = spec): Promise<RedisRunner> => RedisRunner.create({ url: cl.url, config: cfg, data: { kind: 'synthetic', train: { ...cfg.train, imageSize: cfg.model.imageSize, seed: 3 } }, spec: sp, sync, timeoutMs: 30000 });

const results: Record<string, unknown> = {};

async function throughput(cl: LocalCluster): Promise<void> {
  const cfg = config({ model: { channels: 8, imageSize: 28 }, pop: 32, shards: 4, estimator: 'wsr', scheme: 'paper', optimizer: 'sgd', momentum: 0.9, lr: 0.1, sigma: 0.01, train: { way: 5, shot: 5, query: 5 } });
  const variants: Array<[string, () => Promise<Timed>]> = [
    ['in-process, 1 thread', async () => timed(cfg, await inproc(cfg, 1), steps)],
    ['in-process, 2 threads', async () => timed(cfg, await inproc(cfg, 2), steps)],
    ['Redis, 1 worker process, sync mean', async () => { await cl.workersTo(1); return timed(cfg, await redis(cl, cfg, 'mean'), steps); }],
    ['Redis, 2 worker processes, sync mean', async () => { await cl.workersTo(2); return timed(cfg, await redis(cl, cfg, 'mean'), steps); }],
    ['Redis, 2 worker processes, sync fitness', async () => { await cl.workersTo(2); return timed(cfg, await redis(cl, cfg, 'fitness'), steps); }],
  ];
  const per: Record<string, Timed[]> = {};
  for (let r = 0; r < rounds; r++) for (const [name, f] of variants) (per[name] ??= []).push(await f());
  say(`\n## Throughput: C ${cfg.model.channels}, ${cfg.model.imageSize}x${cfg.model.imageSize}, ${cfg.train.way}-way ${cfg.train.shot}+${cfg.train.query}, pop ${cfg.pop} in ${cfg.shards} shards, ${new ProtoNetLayout(cfg.model).numParams} parameters, device ${device}`);
  say(`median over ${rounds} interleaved rounds of each round's median step (${steps} steps after 2 warm-up)\n`);
  say('| runner | s/step | steps/s | candidates/s | vs in-process 1 thread | quietest round s/step | load (1 min) per round |');
  say('|---|---|---|---|---|---|---|');
  const base = median(per[variants[0]![0]]!.map((x) => x.median));
  const rows: Record<string, unknown> = {};
  for (const [name] of variants) {
    const xs = per[name]!, s = median(xs.map((x) => x.median));
    rows[name] = { step_s: s, steps_per_s: 1 / s, candidates_per_s: cfg.pop / s, rounds: xs };
    say(`| ${name} | ${s.toFixed(3)} | ${(1 / s).toFixed(2)} | ${(cfg.pop / s).toFixed(1)} | ${(base / s).toFixed(2)}x | ${Math.min(...xs.map((x) => x.median)).toFixed(3)} | ${xs.map((x) => x.load).join(', ')} |`);
  }
  results['throughput'] = { config: cfg, rows };
}

async function latency(cl: LocalCluster): Promise<void> {
  const cfg = config({ model: { channels: 4, imageSize: 16 }, pop: 8, shards: 4, estimator: 'wsr', scheme: 'paper', sigma: 0.02, train: { way: 5, shot: 1, query: 1 } });
  await cl.workersTo(1);
  const a: Timed[] = [], b: Timed[] = [];
  for (let r = 0; r < rounds; r++) {
    a.push(await timed(cfg, await inproc(cfg, 1), 3 * steps));
    b.push(await timed(cfg, await redis(cl, cfg, 'mean'), 3 * steps));
  }
  const ia = median(a.map((x) => x.median)), rb = median(b.map((x) => x.median));
  say(`\n## Latency Redis adds per step (C 4, 16x16, pop 8 in 4 shards: compute is tiny)\n`);
  say(`in-process 1 worker thread ${(1000 * ia).toFixed(1)} ms/step; Redis 1 worker process ${(1000 * rb).toFixed(1)} ms/step: Redis adds ${(1000 * (rb - ia)).toFixed(1)} ms per step (${cfg.shards} units: ${(1000 * (rb - ia) / cfg.shards).toFixed(2)} ms per unit); coordinator publish ${(1000 * median(b.map((x) => x.publishS!))).toFixed(2)} ms, wait for results ${(1000 * median(b.map((x) => x.waitS!))).toFixed(1)} ms (load ${b.map((x) => x.load).join(', ')})`);
  results['latency'] = { config: cfg, inprocess: a, redis: b, added_s: rb - ia };
}

async function bytes(cl: LocalCluster): Promise<void> {
  await cl.workersTo(2);
  say(`\n## Bytes per step through Redis (2 worker processes; INFO stats of the server, 4 steps after 2 warm-up)\n`);
  say('| estimator / scheme | sync | D | P | S | measured in | measured out | formula in | formula out | (measured - formula) in / S | coordinator payload out / in |');
  say('|---|---|---|---|---|---|---|---|---|---|---|');
  const rows: unknown[] = [];
  const cases: Array<[EsConfigInput, SyncMode]> = [];
  for (const ch of [4, 16, 32]) for (const pop of [32, 128]) {
    cases.push([{ estimator: 'wsr', scheme: 'paper', model: { channels: ch, imageSize: 16 }, pop }, 'mean']);
    cases.push([{ estimator: 'wsr', scheme: 'paper', model: { channels: ch, imageSize: 16 }, pop }, 'fitness']);
    cases.push([{ estimator: 'openai', scheme: 'openai', optimizer: 'adam', lr: 0.01, model: { channels: ch, imageSize: 16 }, pop }, 'mean']);
  }
  cases.push([{ estimator: 'pgpe', scheme: 'paper', optimizer: 'clipup', lr: 0.01, model: { channels: 16, imageSize: 16 }, pop: 32 }, 'mean']);
  for (const [c, sync] of cases) {
    const cfg = config({ shards: 4, sigma: 0.02, train: { way: 5, shot: 1, query: 1 }, ...c });
    const D = new ProtoNetLayout(cfg.model).numParams;
    // per-parameter sigma (pgpe) runs on cpu-ts: cpu-native does not build it
    const r = await redis(cl, cfg, sync, cfg.estimator === 'pgpe' ? evaluatorSpecFor('cpu-ts') : spec);
    const m = await ProtoNetEsMethod.create(cfg, sourcesOf(cfg), { runner: r });
    r.attachStrategy(m.strategy);
    let n0 = { input: 0, output: 0 }, n1 = n0;
    try {
      for (let i = 0; i < 2; i++) await m.trainStep();
      const a0 = r.stats.bytesOut, b0 = r.stats.bytesIn;
      n0 = await cl.netBytes();
      for (let i = 0; i < 4; i++) await m.trainStep();
      n1 = await cl.netBytes();
      const shape: StepShape = { P: cfg.pop, S: cfg.shards, D, W: 2, sync, scheme: cfg.scheme, square: cfg.estimator === 'pgpe', diagonal: cfg.estimator === 'pgpe' };
      const f = bytesPerStep(shape);
      const row = { estimator: cfg.estimator, scheme: cfg.scheme, sync, D, P: cfg.pop, S: cfg.shards, input: (n1.input - n0.input) / 4, output: (n1.output - n0.output) / 4, formula: f, payloadOut: (r.stats.bytesOut - a0) / 4, payloadIn: (r.stats.bytesIn - b0) / 4, load: load() };
      rows.push(row);
      const k = (x: number): string => `${(x / 1024).toFixed(1)} KiB`;
      say(`| ${cfg.estimator} / ${cfg.scheme} | ${sync} | ${D} | ${cfg.pop} | ${cfg.shards} | ${k(row.input)} | ${k(row.output)} | ${k(f.input)} | ${k(f.output)} | ${((row.input - f.input) / cfg.shards).toFixed(0)} B | ${k(row.payloadOut)} / ${k(row.payloadIn)} |`);
    } finally {
      await m.close();
    }
  }
  results['bytes'] = rows;
}

async function scale(cl: LocalCluster): Promise<void> {
  const cfg = config({ model: { channels: 4, imageSize: 16 }, pop: 64, shards: 16, estimator: 'wsr', scheme: 'paper', sigma: 0.02, train: { way: 5, shot: 1, query: 1 } });
  say(`\n## Scaling on this machine: 1-16 worker processes, one local Redis (C 4, 16x16, pop 64 in 16 shards; ${availableParallelism()} cores)\n`);
  say('| worker processes | s/step | candidates/s | load (1 min) |');
  say('|---|---|---|---|');
  const rows: Array<{ W: number; step_s: number; load: number }> = [];
  for (const W of [1, 2, 4, 8, 16]) {
    await cl.workersTo(W);
    const x = await timed(cfg, await redis(cl, cfg, 'mean'), 2 * steps);
    rows.push({ W, step_s: x.median, load: x.load });
    say(`| ${W} | ${x.median.toFixed(3)} | ${(cfg.pop / x.median).toFixed(0)} | ${x.load} |`);
  }
  results['scale'] = { config: cfg, rows };
}

/** Per-member evaluation and per-element noise-sum seconds on this machine, for the model. */
async function kernels(): Promise<{ tMember: Record<string, number>; tNoise: number }> {
  const ev = await loadEvaluator({ ...spec, threads: 1 });
  const shapes: Record<string, EsConfigInput> = {
    'quick (C 16, 28x28, 5-way 5+5)': { model: { channels: 16, imageSize: 28 }, train: { way: 5, shot: 5, query: 5 } },
    'paper T1 1-shot (C 16, 32x32, 20-way 1+5)': { model: { channels: 16, imageSize: 32 }, train: { way: 20, shot: 1, query: 5 } },
  };
  const tMember: Record<string, number> = {};
  for (const [k, c] of Object.entries(shapes)) {
    const cfg = config({ ...c, pop: 8, sigma: 0.01 });
    const mu = new Float32Array(new ProtoNetLayout(cfg.model).numParams);
    const episode = sourcesOf(cfg).train.episode(0);
    const req = { mu, perturbation: { kind: 'gaussian' as const, sigma: 0.01, antithetic: false }, seed: 1, step: 0, start: 0, end: 8, model: cfg.model, episode, distance: cfg.distance };
    await ev.evaluate(req);
    const ts: number[] = [];
    for (let i = 0; i < 3; i++) { const t0 = performance.now(); await ev.evaluate(req); ts.push((performance.now() - t0) / 1000 / 8); }
    tMember[k] = median(ts);
  }
  const D = 7248, n = 32;
  const ts: number[] = [];
  for (let i = 0; i < 4; i++) {
    const t0 = performance.now();
    await ev.noiseSum({ mu: new Float32Array(D), seed: 1, step: i, antithetic: false, sigma: 0.01, start: 0, weights: new Float64Array(n).fill(0.1) });
    ts.push((performance.now() - t0) / 1000 / (n * D));
  }
  await ev.close?.();
  return { tMember, tNoise: median(ts.slice(1)) };
}

/** The coordinator's cost of one estimate result (parse, check lengths, add the D-vector), per result, at dimension D. */
function coordCost(D: number): number {
  const e: Expect = { run: 'r', step: 0, kind: 'estimate', units: 1, members: () => 16, dim: D, square: false };
  const fields = resultFields({ run: 'r', step: 0, unit: 0, kind: 'estimate', worker: 'w', fitness: new Float64Array(16), linear: new Float64Array(D).fill(0.5), nonFinite: 0, degenerate: 0, evalSeconds: 0, sumSeconds: 0 })
    .map((x) => (Buffer.isBuffer(x) ? x : Buffer.from(x)));
  const acc = new Float64Array(D);
  const ts: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) {
      const p = parseResult(fields, e);
      if (p.type === 'ok') for (let j = 0; j < D; j++) acc[j] = acc[j]! + p.result.linear![j]!;
    }
    ts.push((performance.now() - t0) / 1000 / 100);
  }
  return median(ts);
}

async function rtt(cl: LocalCluster): Promise<number> {
  const r = new Redis(cl.url, { protocol: 2 });
  const ts: number[] = [];
  for (let i = 0; i < 200; i++) { const t0 = performance.now(); await r.ping(); ts.push((performance.now() - t0) / 1000); }
  r.disconnect();
  return median(ts);
}

async function model(cl: LocalCluster): Promise<void> {
  const k = await kernels();
  const lat = results['latency'] as { added_s: number; config: EsConfig; redis: Timed[] } | undefined;
  const sc = results['scale'] as { rows: Array<{ W: number; step_s: number }>; config: EsConfig } | undefined;
  const ping = await rtt(cl);
  const c516 = coordCost(516), c28k = coordCost(28320);
  const tAdd = Math.max(0, (c28k - c516) / (28320 - 516));
  const t0 = lat ? 2 * median(lat.redis.map((x) => x.publishS!)) : 4 * ping;
  const oUnit = Math.max(3 * ping, lat ? (lat.added_s - t0) / lat.config.shards : 0);
  const p: ModelParams = { t0, oUnit, oCoord: c516, tMember: 0, tNoise: k.tNoise, tAdd, bw: 1.25e9 };
  say(`\n## Model (bench/cluster-model.ts): parameters measured here, a 10 Gbit/s link assumed for N machines\n`);
  say(`Redis round trip (PING) ${(1e6 * ping).toFixed(0)} us; T0 = 2 x publish ${(1000 * p.t0).toFixed(2)} ms; o_unit = max(3 round trips, (added - T0) / S) ${(1000 * p.oUnit).toFixed(2)} ms; ` +
    `o_coord ${(1e6 * c516).toFixed(0)} us per result + ${(1e9 * tAdd).toFixed(2)} ns per parameter (${(1e6 * c28k).toFixed(0)} us at D 28320); t_noise ${(1e9 * k.tNoise).toFixed(2)} ns per member and parameter; ` +
    `t_member: ${Object.entries(k.tMember).map(([n, v]) => `${n} ${(1000 * v).toFixed(1)} ms`).join('; ')} (device ${device}, 1 thread, load ${load()})`);
  results['model_params'] = { ping_s: ping, coord_516_s: c516, coord_28320_s: c28k, ...p };
  if (sc) {
    const tm = sc.rows[0]!.step_s;
    say(`\nCheck on this machine (${availableParallelism()} cores: at most 2 shards compute at once, so the check is of the per-unit and per-result costs that grow with W):\n`);
    say('| W | measured s/step | model s/step |');
    say('|---|---|---|');
    const cfg = sc.config, D = new ProtoNetLayout(cfg.model).numParams;
    // compute of one unit from W = 1: the measured step minus the model's overhead, shared by 16 units
    const base = stepSeconds({ ...p, tMember: 0 }, { P: cfg.pop, S: cfg.shards, D, W: 1, sync: 'mean', scheme: 'paper' }).total;
    const tMemberTiny = Math.max(0, (tm - base) / cfg.pop);
    for (const r of sc.rows) {
      const eff = Math.min(r.W, availableParallelism());
      const m = stepSeconds({ ...p, tMember: tMemberTiny }, { P: cfg.pop, S: cfg.shards, D, W: eff, sync: 'mean', scheme: 'paper' }).total;
      say(`| ${r.W} | ${r.step_s.toFixed(3)} | ${m.toFixed(3)} |`);
    }
  }
  say(`\nPrediction for N machines, one worker process each, the paper's design: shards = workers, 64 members per shard (P = 64 W), D = 7248 (C 16):\n`);
  say('| workers | sync | s/step | compute | coordinator | network | replicated | efficiency |');
  say('|---|---|---|---|---|---|---|---|');
  const pred: unknown[] = [];
  const tMember = Object.values(k.tMember)[1]!;
  for (const W of [1, 8, 64, 256]) for (const sync of ['mean', 'fitness'] as const) {
    const s = stepSeconds({ ...p, tMember }, { P: 64 * W, S: W, D: 7248, W, sync, scheme: 'paper' });
    const ideal = 64 * tMember;
    pred.push({ W, sync, ...s });
    say(`| ${W} | ${sync} | ${s.total.toFixed(3)} | ${s.compute.toFixed(3)} | ${s.coordinator.toFixed(3)} | ${s.network.toFixed(4)} | ${s.replicated.toFixed(3)} | ${(100 * ideal / s.total).toFixed(0)}% |`);
  }
  results['model'] = { params: p, kernels: k, prediction: pred };
}

const cl = await LocalCluster.start(device === 'cpu-ts' ? device : `${device},cpu-ts`);
try {
  if (part === 'all' || part === 'throughput') await throughput(cl);
  if (part === 'all' || part === 'latency' || part === 'model') await latency(cl);
  if (part === 'all' || part === 'bytes') await bytes(cl);
  if (part === 'all' || part === 'scale') await scale(cl);
  if (part === 'all' || part === 'model') await model(cl);
} finally {
  await cl.close();
}
out['results'] = results;
out['load_end'] = load();
const dir = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../bench/results/cluster'));
mkdirSync(dir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
writeFileSync(join(dir, `cluster-${stamp}.json`), `${JSON.stringify(out, null, 1)}\n`);
writeFileSync(join(dir, `cluster-${stamp}.md`), `# evometa cluster benchmark ${out['started']}\n\nnode dist/bench/cluster.js --part ${part} --rounds ${rounds} --steps ${steps}; device ${device}; ${availableParallelism()} cores; load average ${out['load_start']} at the start, ${out['load_end']} at the end.\n${md.join('\n')}\n`);
process.stderr.write(`wrote ${join(dir, `cluster-${stamp}`)}.{json,md}\n`);
