/**
 * The native boundary under abuse: user JavaScript that shrinks or detaches a buffer between the
 * argument checks and the kernel, worker threads torn down (or the process exiting) while a
 * native call runs, allocations that fail, requests beyond the native limits, bad sigma, and
 * cancellation. Whatever used to kill the process runs in a child process
 * (test/helpers/boundary-child.ts), so a crash shows up here as a failed assertion.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../lib/index.js';
import { deviceReport, getDevice } from '../lib/device/registry.js';
import { NativePopulationEvaluator, nativeLimits } from '../lib/device/cpu-native/index.js';
import { addon } from '../lib/device/cpu-native/addon.js';
import { DirectOpsPopulationEvaluator } from '../lib/es/population-ts.js';
import type { PopulationRequest } from '../lib/es/population.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { ProtoNetLayout } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import type { Episode } from '../lib/model/protonet.js';
import { Tensor } from '../lib/tensor/tensor.js';

const child = join(dirname(fileURLToPath(import.meta.url)), 'helpers', 'boundary-child.js');
const native = deviceReport().find((d) => d.name === 'cpu-native');
const haveNative = native?.available === true;
if (!haveNative) console.log(`native-boundary: SKIP: cpu-native unavailable (${native?.reason ?? 'not registered'})`);
const t = haveNative ? test : test.skip;
// AddressSanitizer reserves terabytes of address space for its shadow memory: it cannot start
// under `ulimit -v`, so the allocation-failure case runs only on the plain build.
const underAsan = /libasan/.test(process.env.LD_PRELOAD ?? '');
if (underAsan) console.log('native-boundary: the allocation-failure case SKIP: running under AddressSanitizer (no ulimit -v)');
const tOom = haveNative && !underAsan ? test : test.skip;

function runChild(mode: string, ulimitKb?: number): { code: number | null; signal: NodeJS.Signals | null; out: string; err: string } {
  const r = ulimitKb === undefined
    ? spawnSync(process.execPath, [child, mode], { encoding: 'utf8', timeout: 120000 })
    : spawnSync('sh', ['-c', `ulimit -v ${ulimitKb} && exec "$0" "$1" "$2"`, process.execPath, child, mode], { encoding: 'utf8', timeout: 120000 });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

function noCrash(what: string, r: { code: number | null; signal: NodeJS.Signals | null; err: string }): void {
  assert.is(r.signal, null, `${what}: the child died by ${r.signal}; stderr:\n${r.err}`);
  assert.ok(r.code !== 134 && r.code !== 139, `${what}: the child aborted / crashed (${r.code}); stderr:\n${r.err}`);
  assert.not.match(r.err, /terminate called|Napi::Error|AddressSanitizer|runtime error/, `${what}: native error in stderr:\n${r.err}`);
}

t('every export: a later argument\'s getter that shrinks or detaches an earlier buffer gets a RangeError, never a crash', () => {
  const r = runChild('resize');
  noCrash('resize', r);
  assert.is(r.code, 0, r.err);
  const results = JSON.parse(r.out.trim().split('\n').pop()!) as Array<{ fn: string; victim: string; how: string; result: string }>;
  const fns = new Set(results.map((x) => x.fn));
  // every function of the addon that takes a typed array is exercised
  for (const fn of ['conv2d', 'batchnorm2dTrain', 'relu', 'maxpool2d', 'maxpool2dBackward', 'prototypes', 'crossEntropy', 'accuracy', 'evaluatePopulation', 'noiseSum', 'gaussianFill']) assert.ok(fns.has(fn), fn);
  assert.is(results.length, 52);
  for (const x of results) {
    if (x.fn === 'gaussianFill') {
      // its length is the array's own: it fills the (now empty) array
      assert.is(x.result, 'returned', `${x.how} gaussianFill`);
    } else {
      assert.ok(x.result.startsWith(`RangeError: ${x.fn}: field '${x.victim}' has 0 elements`), `${x.how} ${x.fn}: ${x.result}`);
    }
  }
});

t('a worker thread terminated while a native population call runs in it: no abort', () => {
  const r = runChild('terminate');
  noCrash('terminate', r);
  assert.is(r.code, 0, r.err);
  assert.ok((JSON.parse(r.out.trim()) as { terminated: boolean }).terminated);
});

t('process.exit(130) while two worker threads run native calls: exits 130, no abort', () => {
  const r = runChild('exit');
  noCrash('exit', r);
  assert.is(r.code, 130, r.err);
});

tOom('allocation failures inside native code become a RangeError (address space limited to 2.5 GB)', () => {
  const r = runChild('oom', 2500000);
  noCrash('oom', r);
  assert.is(r.code, 0, r.err);
  const res = JSON.parse(r.out.trim()) as Record<string, string>;
  assert.is(res.evaluatePopulation, 'RangeError: evaluatePopulation: out of memory (an allocation failed)');
  assert.is(res.conv2d, 'RangeError: conv2d: out of memory (an allocation failed)');
  assert.is(res.alive, 'yes');
});

// ---- limits ----

t('limits: the addon, the device info and nativeLimits() agree; 4112 classes (the vinyals train split) fit', async () => {
  const lim = nativeLimits();
  assert.equal(addon().limits(), lim);
  assert.equal((getDevice('cpu-native').info().detail as { limits: unknown }).limits, lim);
  assert.ok(lim.way >= 4112, `way limit ${lim.way}`);
  for (const k of ['blocks', 'inChannels', 'imageSize', 'channels', 'way', 'images', 'members', 'memberIndex', 'params', 'workingBytes', 'threads'] as const) {
    assert.ok(Number.isInteger(lim[k]) && lim[k] > 0, k);
  }
  const ev = new NativePopulationEvaluator({ threads: 1 });
  assert.equal(ev.limits(), { way: lim.way, images: lim.images, members: lim.members, params: lim.params, channels: lim.channels, imageSize: lim.imageSize });
  // a 4112-way 1-shot 1-query episode (failed inside the worker before: way was capped at 4096);
  // tiny 4x4 images keep it cheap (the cost is way^2 distances)
  const layout = new ProtoNetLayout({ channels: 4, imageSize: 4, blocks: 2 });
  const way = 4112, px = 16;
  const img = (off: number): Tensor => new Tensor(Float32Array.from({ length: way * px }, (_, i) => (Math.sin(i * 0.37 + off) > 0.3 ? 1 : 0)), [way, 1, 4, 4]);
  const labels = Int32Array.from({ length: way }, (_, i) => i);
  const ep: Episode = { way, support: img(0), supportLabels: labels, query: img(0.1), queryLabels: labels };
  const req: PopulationRequest = {
    model: layout.config, mu: initParams(layout, 1), perturbation: { kind: 'gaussian', sigma: 0.05, antithetic: false },
    seed: 5, step: 0, start: 0, end: 1, episode: ep, distance: 'euclidean',
  };
  const got = await ev.evaluate(req);
  const want = await new DirectOpsPopulationEvaluator('cpu-ts').evaluate(req);
  assert.ok(Number.isFinite(got[0]!), `fitness ${got[0]}`);
  assert.ok(Math.abs(got[0]! - want[0]!) / Math.max(1, Math.abs(want[0]!)) < 2e-5, `4112-way: native ${got[0]} vs cpu-ts ${want[0]}`);
});

function popArgs(over: Record<string, unknown>): Record<string, unknown> {
  const c = (over.channels as number | undefined) ?? 2, s = (over.imageSize as number | undefined) ?? 4;
  const ns = (over.supportCount as number | undefined) ?? 2, nq = (over.queryCount as number | undefined) ?? 2;
  const big = ns * s * s > 1 << 20;  // absurd requests: the arrays are never read (the limits come first)
  return {
    blocks: 1, inChannels: 1, imageSize: s, channels: c, bnEps: 1e-5, way: 2, supportCount: ns, queryCount: nq,
    distance: 'euclidean', cosineScale: 1, kind: 'gaussian', sigma: 0.1, antithetic: false, seed: 1, step: 0, start: 0, end: 2, threads: 1,
    mu: new Float32Array(c * 9 + 3 * c), support: new Float32Array(big ? 1 : ns * s * s), query: new Float32Array(big ? 1 : nq * s * s),
    supportLabels: Int32Array.from({ length: Math.min(ns, 1 << 16) }, (_, i) => i % 2), queryLabels: Int32Array.from({ length: Math.min(nq, 1 << 16) }, (_, i) => i % 2),
    ...over,
  };
}

t('requests beyond the limits are refused up front (synchronously, before allocating) with a RangeError naming the field', async () => {
  const a = addon(), lim = nativeLimits();
  const refuses = (what: string, f: () => unknown, re: RegExp): void => {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof RangeError, `${what}: expected a RangeError, got ${String(err)}`);
    assert.match((err as Error).message, re, what);
  };
  // sanity: the base request is valid
  assert.is((await a.evaluatePopulation(popArgs({}))).length, 2);
  refuses('way', () => a.evaluatePopulation(popArgs({ way: lim.way + 1 })), /evaluatePopulation: field 'way' must be an integer in \[1, 65536\]/);
  refuses('images', () => a.evaluatePopulation(popArgs({ supportCount: lim.images, queryCount: 1 })), /supportCount \+ queryCount = 1048577 images exceeds the limit/);
  refuses('members', () => a.evaluatePopulation(popArgs({ end: lim.members + 1 })), /end - start = 67108865 members exceeds the limit/);
  refuses('channels', () => a.evaluatePopulation(popArgs({ channels: lim.channels + 1 })), /field 'channels' must be an integer in \[1, 4096\]/);
  // ~ 4 TB of embeddings: refused by the working-memory bound, not by a failed allocation
  const huge = popArgs({ channels: 4096, imageSize: 4096, supportCount: 64, queryCount: 64 });
  refuses('working memory', () => a.evaluatePopulation(huge), /needs about [\d.]+ GiB of working memory .* above the limit of 16\.0 GiB/);
  refuses('numParams', () => a.noiseSum({ numParams: 2 ** 40, seed: 0, step: 0, antithetic: false, sigma: 1, start: 0, threads: 1, weights: new Float64Array(1) }), /noiseSum: field 'numParams' must be an integer in \[0, 2147483647\], got 1099511627776/);
  refuses('member index', () => a.noiseSum({ numParams: 4, seed: 0, step: 0, antithetic: false, sigma: 1, start: 2 ** 32 - 1, threads: 1, weights: new Float64Array(2) }), /member indices .* exceed 2\^32 - 1/);
  // the TypeScript evaluator checks before the call (the episode is never read)
  const layout = new ProtoNetLayout({ channels: 2, imageSize: 28 });
  const ev = new NativePopulationEvaluator({ threads: 1 });
  const bigEp = { way: lim.way + 1, support: { shape: [lim.way + 1, 1, 28, 28] }, query: { shape: [1, 1, 28, 28] } } as unknown as Episode;
  let err: unknown;
  try {
    await ev.evaluate({ model: layout.config, mu: initParams(layout, 1), perturbation: { kind: 'gaussian', sigma: 0.1, antithetic: false }, seed: 0, step: 0, start: 0, end: 1, episode: bigEp, distance: 'euclidean' });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof RangeError && /episode\.way 65537 exceeds the native limit of 65536 classes per episode/.test(err.message), String(err));
});

t('sigma <= 0 or not finite is refused with a RangeError naming sigma (addon, native and cpu-ts evaluators)', async () => {
  const a = addon();
  for (const sigma of [0, -0.1, NaN, Infinity]) {
    let err: unknown;
    try {
      a.evaluatePopulation(popArgs({ sigma }));
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof RangeError && /evaluatePopulation: field 'sigma' must be (> 0|finite)/.test(err.message), `addon sigma ${sigma}: ${String(err)}`);
  }
  const layout = new ProtoNetLayout({ channels: 2, imageSize: 28 });
  const ep = new SyntheticEpisodes({ way: 2, shot: 1, query: 1, imageSize: 28 }).episode(0);
  for (const ev of [new NativePopulationEvaluator({ threads: 1 }), new DirectOpsPopulationEvaluator('cpu-ts')]) {
    for (const sigma of [0, -1, NaN]) {
      let err: unknown;
      try {
        await ev.evaluate({ model: layout.config, mu: initParams(layout, 1), perturbation: { kind: 'gaussian', sigma, antithetic: false }, seed: 0, step: 0, start: 0, end: 1, episode: ep, distance: 'euclidean' });
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof RangeError && /perturbation\.sigma must be finite and > 0/.test(err.message), `${ev.device} sigma ${sigma}: ${String(err)}`);
    }
  }
});

t('close() cancels the evaluator\'s native calls in flight: they reject "cancelled" and no job is left', async () => {
  const layout = new ProtoNetLayout({ channels: 64, imageSize: 28 });
  const ep = new SyntheticEpisodes({ way: 5, shot: 5, query: 15, imageSize: 28 }).episode(1);
  const ev = new NativePopulationEvaluator({ threads: 1 });
  const other = new NativePopulationEvaluator({ threads: 1 });
  const req: PopulationRequest = {
    model: layout.config, mu: initParams(layout, 2), perturbation: { kind: 'gaussian', sigma: 0.01, antithetic: true },
    seed: 1, step: 0, start: 0, end: 64, episode: ep, distance: 'euclidean',
  };
  const t0 = Date.now();
  const inFlight = ev.evaluate(req);
  const mine = other.evaluate({ ...req, end: 1 }); // another evaluator's call is not cancelled
  await ev.close();
  let err: unknown;
  try {
    await inFlight;
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Error && /evaluatePopulation: cancelled/.test(err.message), String(err));
  assert.is((await mine).length, 1);
  assert.is(addon().pendingJobs(), 0);
  console.log(`  cancelled a 64-member C=64 evaluation after ${Date.now() - t0} ms`);
  let closed: unknown;
  try {
    await ev.evaluate(req);
  } catch (e) {
    closed = e;
  }
  assert.ok(closed instanceof Error && /evaluator closed/.test(closed.message), String(closed));
});

test.run();
