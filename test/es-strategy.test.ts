/**
 * The ES core's ask/tell API: each strategy's update checked against its
 * paper's definition on a quadratic (members materialized, the formula in
 * float64), ClipUp and the schedules against theirs, the same generation
 * through ask/tell, evaluate() and runners (inline and worker threads from a
 * module path) bit for bit, exact state round trips, and convergence.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { Rng, gaussianFill, STREAM } from '../lib/rng/philox.js';
import { centeredRanks, snesUtilities } from '../lib/es/estimators.js';
import { FD, NES, OpenAIES, PGPE, SNES, WSR } from '../lib/es/strategies.js';
import type { EvolutionStrategy } from '../lib/es/strategy.js';
import { objectiveRunner } from '../lib/es/objective.js';
import { popAt, scheduleAt } from '../lib/es/schedule.js';
import { createOptimizer } from '../lib/optim/optimizers.js';
import { main as rastriginExample } from '../examples/rastrigin.js';
import { main as networkExample } from '../examples/user-network.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const OBJECTIVES = join(HERE, 'helpers', 'objectives.js');
const D = 12;
const rng = new Rng(11);
const hdiag = Array.from({ length: D }, () => 0.5 + rng.uniform());
const c = Array.from({ length: D }, () => rng.normal());
/** A quadratic to maximize: -1/2 sum h_j (x_j - c_j)^2. */
const quad = (x: Float32Array): number => { let s = 0; for (let j = 0; j < D; j++) s -= 0.5 * hdiag[j]! * (x[j]! - c[j]!) ** 2; return s; };
const init = Float32Array.from({ length: D }, (_, j) => 0.1 * Math.cos(j));

/** Fitness of every member and the members' noise eps_i = x_i - mean (float64). */
function population(es: EvolutionStrategy): { f: Float64Array; eps: Float64Array[] } {
  const gen = es.ask();
  const xs = gen.members();
  const f = Float64Array.from(xs.map((x) => quad(x)));
  const eps = xs.map((x) => Float64Array.from(x, (v, j) => v - gen.center[j]!));
  return { f, eps };
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.is(a.length, b.length, `${what}: length`);
  let scale = 0;
  for (let j = 0; j < b.length; j++) scale = Math.max(scale, Math.abs(b[j]!));
  for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j]! - b[j]!) <= tol * Math.max(scale, 1e-12), `${what}[${j}]: ${a[j]} vs ${b[j]} (tol ${tol} x ${scale})`);
}

/** The mean after one tell, minus the mean before (the step the strategy took). */
async function stepOf(es: EvolutionStrategy, f: Float64Array): Promise<Float64Array> {
  const before = Float64Array.from(es.mean);
  await es.tell(f);
  return Float64Array.from(es.mean, (v, j) => v - before[j]!);
}

function weighted(w: ArrayLike<number>, eps: Float64Array[]): Float64Array {
  const g = new Float64Array(D);
  eps.forEach((e, i) => { for (let j = 0; j < D; j++) g[j] = g[j]! + w[i]! * e[j]!; });
  return g;
}

test('WSR (paper eq. 9): mu += lr (1/n) sum ((F - mean F)/std F) eps, per shard averaged over shards', async () => {
  for (const shards of [1, 2]) {
    const es = new WSR({ init, pop: 16, sigma: 0.1, lr: 0.5, seed: 4, shards });
    const { f, eps } = population(es);
    const per = 16 / shards, w = new Float64Array(16);
    for (let s = 0; s < shards; s++) {
      const g = Array.from(f.subarray(s * per, (s + 1) * per));
      const m = g.reduce((a, b) => a + b, 0) / per, sd = Math.sqrt(g.reduce((a, b) => a + (b - m) ** 2, 0) / per);
      g.forEach((v, i) => { w[s * per + i] = ((v - m) / sd / per) / shards; });
    }
    close(await stepOf(es, f), weighted(w, eps).map((v) => 0.5 * v), 1e-5, `wsr, ${shards} shard(s)`);
  }
});

test('NES (eq. 6): mu += lr/(n sigma^2) sum (F - b) eps, b = 0 or mean F', async () => {
  for (const baseline of [false, true]) {
    const es = new NES({ init, pop: 16, sigma: 0.1, lr: 0.01, seed: 5, baseline });
    const { f, eps } = population(es);
    const b = baseline ? f.reduce((a, v) => a + v, 0) / 16 : 0;
    close(await stepOf(es, f), weighted(Array.from(f, (v) => (v - b) / (16 * 0.01)), eps).map((v) => 0.01 * v), 1e-5, `nes baseline ${baseline}`);
  }
});

test('OpenAI-ES: antithetic pairs, centered ranks, mu += lr/(n sigma) sum r eps', async () => {
  const es = new OpenAIES({ init, pop: 16, sigma: 0.1, lr: 0.02, seed: 6 });
  const { f, eps } = population(es);
  for (let k = 0; k < 16; k += 2) close(eps[k]!, eps[k + 1]!.map((v) => -v), 1e-6, `pair ${k / 2} is +eps/-eps (up to float32 rounding of mean +- eps)`);
  const r = centeredRanks(f, new Uint8Array(16).fill(1));
  close(await stepOf(es, f), weighted(Array.from(r, (v) => v / (16 * 0.1)), eps).map((v) => 0.02 * v), 1e-5, 'openai');
});

test('PGPE (Sehnke et al.): mu gradient sum (r+ - r-)/2 eps / n_pairs; sigma += lr_s sum c (eps^2 - sigma^2)/sigma / n_pairs, clamped', async () => {
  const es = new PGPE({ init, pop: 16, sigma: 0.1, lr: 0.3, optimizer: 'plain', seed: 7, sigmaLr: 0.2, maxSigmaChange: 0.05 });
  es.sigmas[3] = 0.2; // one parameter with its own sigma
  const { f, eps } = population(es);
  const sig = es.sigmas.slice();
  const r = centeredRanks(f, new Uint8Array(16).fill(1));
  const np = 8, gMu = new Float64Array(D), gS = new Float64Array(D);
  let rm = 0;
  for (const v of r) rm += v / 16;
  for (let k = 0; k < 16; k += 2) {
    const cK = (r[k]! + r[k + 1]!) / 2 - rm;
    for (let j = 0; j < D; j++) {
      gMu[j] = gMu[j]! + ((r[k]! - r[k + 1]!) / 2) * eps[k]![j]! / np;
      gS[j] = gS[j]! + cK * (eps[k]![j]! ** 2 - sig[j]! ** 2) / sig[j]! / np;
    }
  }
  close(await stepOf(es, f), gMu.map((v) => 0.3 * v), 1e-5, 'pgpe mu');
  const want = Array.from(sig, (s, j) => s + Math.max(-0.05 * s, Math.min(0.05 * s, 0.2 * gS[j]!)));
  close(es.sigmas, want, 1e-5, 'pgpe sigma');
  assert.ok(want.some((v, j) => Math.abs(v - sig[j]!) === 0.05 * sig[j]!) || want.every((v, j) => Math.abs(v - sig[j]!) < 0.05 * sig[j]!), 'the clamp is the definition\'s');
});

test('SNES (Schaul et al.): utilities u, mu += lr sum u eps, sigma *= exp(lr_s/2 sum u (z^2 - 1)); default pop 4 + floor(3 ln D)', async () => {
  assert.is(new SNES({ dim: 100, sigma: 1 }).basePop, 4 + Math.floor(3 * Math.log(100)));
  const es = new SNES({ init, pop: 16, sigma: 0.1, seed: 8, sigmaLr: 0.3 });
  const { f, eps } = population(es);
  const sig = es.sigmas.slice();
  const order = Array.from(f.keys()).sort((a, b) => f[b]! - f[a]! || a - b);
  const u0 = snesUtilities(16), u = new Float64Array(16);
  order.forEach((i, k) => { u[i] = u0[k]!; });
  let us = 0;
  for (const v of u0) us += v;
  assert.ok(Math.abs(us) < 1e-12, 'utilities sum to 0');
  assert.ok(u0[0]! > u0[1]! && u0[15]! === -1 / 16, 'the best gets the most; the worst half -1/n');
  close(await stepOf(es, f), weighted(u, eps), 1e-5, 'snes mu');
  const sq = new Float64Array(D);
  eps.forEach((e, i) => { for (let j = 0; j < D; j++) sq[j] = sq[j]! + u[i]! * ((e[j]! / sig[j]!) ** 2 - 1); });
  close(es.sigmas, Array.from(sig, (s, j) => s * Math.exp(0.15 * sq[j]!)), 1e-4, 'snes sigma');
});

test('FD (paper II-G): a population of D + 1; g_j = (F_{j+1} - F_0) / delta', async () => {
  const es = new FD({ init, delta: 0.001, lr: 0.1 });
  const gen = es.ask();
  assert.is(gen.size, D + 1);
  const xs = gen.members(), f = Float64Array.from(xs.map(quad));
  const r = await es.tell(f);
  for (let j = 0; j < D; j++) assert.is(r.grad[j], (f[j + 1]! - f[0]!) / 0.001);
});

test('ClipUp (Toklu et al.): v <- m v + lr g/|g|, |v| clipped to maxSpeed, p <- p - v', () => {
  const opt = createOptimizer({ name: 'clipup', lr: 0.1, momentum: 0.9, maxSpeed: 0.12 });
  const p = Float32Array.of(1, 2, 3), g1 = [3, 0, 4], g2 = [0, -1, 0];
  opt.step(p, g1);
  close(p, [1 - 0.1 * 0.6, 2, 3 - 0.1 * 0.8], 1e-6, 'first step');
  const v = [0.9 * 0.06, 0.9 * 0 - 0.1, 0.9 * 0.08], n = Math.hypot(...v), k = n > 0.12 ? 0.12 / n : 1;
  opt.step(p, g2);
  close(p, [0.94 - k * v[0]!, 2 - k * v[1]!, 2.92 - k * v[2]!], 1e-6, 'second step (clipped)');
  assert.ok(n > 0.12, 'the second step exercised the clip');
});

test('schedules: constant, linear, exp, cosine (with warm-up), step; populations round to whole shards and pairs', () => {
  assert.is(scheduleAt(1, undefined, 5, 11), 1);
  assert.ok(Math.abs(scheduleAt(1, { kind: 'linear', final: 0 }, 5, 11) - 0.5) < 1e-15);
  assert.ok(Math.abs(scheduleAt(1, { kind: 'exp', final: 0.01 }, 5, 11) - 0.1) < 1e-15);
  assert.ok(Math.abs(scheduleAt(1, { kind: 'cosine', final: 0 }, 5, 11) - 0.5) < 1e-15);
  assert.is(scheduleAt(1, { kind: 'cosine', final: 0 }, 10, 11), 0);
  assert.ok(Math.abs(scheduleAt(1, { kind: 'cosine', final: 0.1, warmup: 4 }, 1, 11) - (0.1 + 0.9 * 2 / 4)) < 1e-15);
  assert.ok(Math.abs(scheduleAt(0.8, { kind: 'step', every: 3, gamma: 0.5 }, 7, 11) - 0.2) < 1e-15);
  assert.is(popAt(16, { kind: 'linear', final: 64 }, 5, 11, 4), 40);
  assert.is(popAt(16, { kind: 'linear', final: 64 }, 1, 11, 6), 18);
  const es = new WSR({ init, pop: 8, sigma: 0.1, antithetic: true, shards: 2, popSchedule: { kind: 'linear', final: 32 }, steps: 4 });
  assert.equal([0, 1, 2, 3].map((t) => es.popAt(t)), [8, 16, 24, 32]);
  assert.throws(() => new WSR({ init, pop: 6, sigma: 0.1, antithetic: true, shards: 2 }), /pop 6 must be a multiple of 4 \(2 shard\(s\) x 2 for antithetic pairs\)/);
  assert.throws(() => new WSR({ init, pop: 8, sigma: 0 }), /sigma must be a finite number > 0, got 0/);
  assert.throws(() => new PGPE({ init, pop: 8, sigma: 0.1, antithetic: false }), /antithetic cannot be off/);
  assert.throws(() => new WSR({ dim: 0, pop: 8, sigma: 0.1 }), /dim must be a positive integer/);
});

test('one generation four ways -- ask/tell, evaluate(f), an inline runner, 2 worker threads loading the objective by path -- gives the same bits', async () => {
  const mk = (): OpenAIES => new OpenAIES({ init, pop: 24, shards: 4, sigma: 0.2, lr: 0.05, optimizer: 'adam', seed: 9 });
  const sphere = (await import(OBJECTIVES)).sphere as (x: Float32Array) => number;
  const a = mk(), b = mk(), cc = mk(), d = mk();
  for (let g = 0; g < 3; g++) {
    const gen = a.ask();
    const f = new Float64Array(gen.size);
    for (let i = 0; i < gen.size; i++) f[i] = sphere(gen.member(i));
    await a.tell(f);
    await b.evaluate((x) => sphere(x));
  }
  const inline = await objectiveRunner({ objective: (x) => sphere(x) });
  const workers = await objectiveRunner({ module: OBJECTIVES, export: 'sphere', workers: 2 });
  try {
    for (let g = 0; g < 3; g++) { await cc.run(inline); await d.run(workers); }
  } finally {
    await workers.close();
  }
  for (const [name, es] of [['evaluate', b], ['inline runner', cc], ['2 workers', d]] as const) assert.equal(Array.from(es.mean), Array.from(a.mean), name);
});

test('objective modules: a context reaches the objective; a missing export is a clear error', async () => {
  const r = await objectiveRunner({ module: OBJECTIVES, export: 'scaledSphere', workers: 2 });
  try {
    const es = new WSR({ init, pop: 8, sigma: 0.1, seed: 1 });
    const res = await es.run(r, { context: { scale: 3 } });
    const sphere = (await import(OBJECTIVES)).sphere as (x: Float32Array) => number;
    const want = new WSR({ init, pop: 8, sigma: 0.1, seed: 1 }).ask().members().map((x) => 3 * sphere(x));
    close(res.fitness, want, 1e-12, 'scaled fitness');
  } finally {
    await r.close();
  }
  let msg = '';
  try { await objectiveRunner({ module: OBJECTIVES, export: 'notAFunction', workers: 2 }); } catch (e) { msg = (e as Error).message; }
  assert.match(msg, /has no function export "notAFunction"/);
});

test('state round trip: 3 generations, save, load into a fresh strategy, 2 more = 5 uninterrupted, bit for bit (Adam, ClipUp, adapted sigma)', async () => {
  const makers: Array<() => EvolutionStrategy> = [
    () => new WSR({ init, pop: 16, sigma: 0.1, lr: 0.05, optimizer: 'adam', seed: 2, lrSchedule: { kind: 'cosine', final: 0.001 }, steps: 5 }),
    () => new PGPE({ init, pop: 16, sigma: 0.1, lr: 0.05, seed: 2 }),
    () => new SNES({ init, pop: 16, sigma: 0.1, seed: 2 }),
  ];
  for (const mk of makers) {
    const full = mk();
    for (let g = 0; g < 5; g++) await full.evaluate(quad);
    const part = mk();
    for (let g = 0; g < 3; g++) await part.evaluate(quad);
    const st = part.state();
    const again = mk();
    again.load(st);
    assert.is(again.step, 3);
    for (let g = 0; g < 2; g++) await again.evaluate(quad);
    assert.equal(Array.from(again.mean), Array.from(full.mean), full.name);
    if (full instanceof PGPE || full instanceof SNES) assert.equal(Array.from((again as PGPE).sigmas), Array.from(full.sigmas), `${full.name} sigma`);
  }
  const wrong = new SNES({ dim: 3, sigma: 0.1 });
  assert.throws(() => wrong.load(new WSR({ init, pop: 8, sigma: 0.1 }).state()), /saved by strategy "wsr", this is snes/);
});

test('every strategy climbs the quadratic (distance to the optimum falls by 90% or more in 150 generations)', async () => {
  const dist = (x: Float32Array): number => Math.sqrt(c.reduce((s, cj, j) => s + (x[j]! - cj) ** 2, 0));
  const cases: Array<[string, EvolutionStrategy]> = [
    ['wsr', new WSR({ init, pop: 32, sigma: 0.05, lr: 0.05, optimizer: 'adam', seed: 3 })],
    ['nes', new NES({ init, pop: 32, sigma: 0.05, lr: 0.05, optimizer: 'adam', baseline: true, seed: 3 })],
    ['openai', new OpenAIES({ init, pop: 32, sigma: 0.05, lr: 0.05, optimizer: 'adam', seed: 3 })],
    ['pgpe', new PGPE({ init, pop: 32, sigma: 0.3, lr: 0.05, lrSchedule: { kind: 'linear', final: 0.001 }, steps: 150, seed: 3 })],
    ['snes', new SNES({ init, pop: 32, sigma: 0.3, seed: 3 })],
    ['fd', new FD({ init, lr: 0.3 })],
  ];
  const d0 = dist(init);
  for (const [name, es] of cases) {
    for (let g = 0; g < 150; g++) await es.evaluate(quad);
    assert.ok(dist(es.mean) < 0.1 * d0, `${name}: distance ${d0.toFixed(3)} -> ${dist(es.mean).toFixed(4)}`);
  }
});

test('examples: SNES solves 20-D Rastrigin from far away; ES on worker threads fits a small user network to two spirals', async () => {
  const r = await rastriginExample(300, false);
  assert.ok(r.start! > 200, `start ${r.start}`);
  assert.ok(r['snes']! < 5, `snes: ${r['snes']}`);
  assert.ok(r['openai']! < r.start! && r['pgpe']! < r.start!, JSON.stringify(r));
  const n = await networkExample(150, false);
  assert.ok(n.after < 0.5 * n.before && n.acc > 0.9, JSON.stringify(n));
});

test('noise of a generation is the documented Philox stream: member i of generation t is mean + f32(sigma z(seed, t, i))', () => {
  const es = new WSR({ init, pop: 4, sigma: 0.25, seed: 77 });
  es.step = 3;
  const x = es.ask().member(2), z = new Float32Array(D);
  gaussianFill(z, 77, STREAM.esNoise, 3, 2, 0);
  for (let j = 0; j < D; j++) assert.is(x[j], Math.fround(init[j]! + Math.fround(0.25 * z[j]!)));
});

test.run();
