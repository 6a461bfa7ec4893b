/**
 * Distributed ES over a real Redis (redis-server started here on a free port)
 * with `evometa worker` processes: the parameters after N steps are bitwise
 * those of the in-process worker threads for 1, 2 and 3 worker processes and
 * both sync modes; a worker killed with kill -9 mid-step has its shard taken
 * over; a worker that joins late catches up (sync fitness: its replica starts
 * from the snapshot); stale, foreign and malformed results are dropped;
 * a run a worker cannot serve stops the coordinator with the reason; Redis
 * restarted mid-run (losing everything) is survived, Redis gone for longer
 * than the timeout is a clear error and no step is applied.
 * The coordinator killed and resumed from its checkpoint: test/cluster-cli.test.ts.
 */
import * as assert from 'uvu/assert';
import { test } from 'uvu';
import { Redis } from 'ioredis';
import '../lib/device/cpu-ts/index.js';
import { ProtoNetEsMethod } from '../lib/methods/protonet-es/method.js';
import { resolveEsConfig, type EsConfig, type EsConfigInput } from '../lib/methods/protonet-es/config.js';
import { SyntheticEpisodes, type SyntheticOptions } from '../lib/data/synthetic.js';
import { evaluatorSpecFor } from '../lib/es/evaluators.js';
import { createRunner } from '../lib/es/runner.js';
import { ClusterError, RedisRunner, type RedisRunnerOptions } from '../lib/cluster/coordinator.js';
import { RedisUnavailableError } from '../lib/cluster/connect.js';
import { GROUP, keys, PROTOCOL, unitFields, type SyncMode } from '../lib/cluster/protocol.js';
import { configHash } from '../lib/cluster/protonet.js';
import { VERSION } from '../lib/version.js';
import { RedisServer, sleep, startWorker, withRedis, type WorkerProc } from './helpers/redis-server.js';

const t = withRedis('cluster over Redis');

const IMG = 16;
const TRAIN: SyntheticOptions = { way: 5, shot: 2, query: 2, imageSize: IMG, seed: 1 };
const sources = { train: new SyntheticEpisodes(TRAIN), val: new SyntheticEpisodes({ way: 5, shot: 2, query: 3, imageSize: IMG, seed: 2 }) };
const BASE: EsConfigInput = { model: { channels: 4, imageSize: IMG }, pop: 16, shards: 4, steps: 4, seed: 5, valEpisodes: 2, valEvery: 0, sigma: 0.02, train: { way: 5, shot: 2, query: 2 } };
const CASES: Record<string, EsConfigInput> = {
  wsr: { estimator: 'wsr', scheme: 'paper', optimizer: 'plain', lr: 1 },
  openai: { estimator: 'openai', scheme: 'openai', optimizer: 'adam', lr: 0.01 },
  pgpe: { estimator: 'pgpe', scheme: 'paper', optimizer: 'clipup', lr: 0.01 },
};
const spec = evaluatorSpecFor('cpu-ts');
const CLAIM = '1.5';

let server: RedisServer;
const workers: WorkerProc[] = [];

function cfgOf(name: string, extra: EsConfigInput = {}): EsConfig { return resolveEsConfig({ ...BASE, ...CASES[name], ...extra }); }

function diffBits(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.max(a.length, b.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let n = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) n++;
  return n;
}

const refs = new Map<string, Float32Array[]>();
/** mu after each step, in process on 2 worker threads (cached per config). */
async function reference(cfg: EsConfig): Promise<Float32Array[]> {
  const key = JSON.stringify(cfg);
  const have = refs.get(key);
  if (have) return have;
  const m = await ProtoNetEsMethod.create(cfg, sources, { runner: await createRunner({ workers: 2, spec }) });
  const out: Float32Array[] = [];
  try {
    for (let i = 0; i < cfg.steps; i++) { await m.trainStep(); out.push(m.mu.slice()); }
  } finally {
    await m.close();
  }
  refs.set(key, out);
  return out;
}

async function runner(cfg: EsConfig, sync: SyncMode, extra: Partial<RedisRunnerOptions> = {}): Promise<RedisRunner> {
  return RedisRunner.create({ url: server.url, config: cfg, data: { kind: 'synthetic', train: TRAIN }, spec, sync, timeoutMs: 20000, noticeAfterMs: 60000, ...extra });
}

/** A run over Redis; `between(step)` runs after each step. Returns mu after each step and the runner (closed). */
async function clusterRun(cfg: EsConfig, sync: SyncMode, between?: (step: number, r: RedisRunner) => Promise<void>, extra: Partial<RedisRunnerOptions> = {}): Promise<{ mus: Float32Array[]; r: RedisRunner }> {
  const r = await runner(cfg, sync, extra);
  const m = await ProtoNetEsMethod.create(cfg, sources, { runner: r });
  r.attachStrategy(m.strategy);
  const mus: Float32Array[] = [];
  try {
    for (let i = 0; i < cfg.steps; i++) {
      await m.trainStep();
      mus.push(m.mu.slice());
      await between?.(i, r);
    }
  } finally {
    await m.close();
  }
  return { mus, r };
}

async function assertSame(name: string, cfg: EsConfig, mus: Float32Array[]): Promise<void> {
  const ref = await reference(cfg);
  assert.is(mus.length, ref.length);
  mus.forEach((mu, i) => assert.is(diffBits(mu, ref[i]!), 0, `${name}: mu after step ${i} differs in ${diffBits(mu, ref[i]!)} of ${mu.length} parameters from the in-process run`));
  assert.ok(diffBits(ref[0]!, ref[ref.length - 1]!) > 0, 'the steps moved mu');
}

async function spawnWorker(name: string, args: string[] = []): Promise<WorkerProc> {
  const w = await startWorker(server.url, name, ['--claim-timeout', CLAIM, ...args]);
  workers.push(w);
  return w;
}

test.before(async () => {
  if (t === test) server = await RedisServer.start();
});

test.after(async () => {
  for (const w of workers) await w.stop('SIGKILL');
  await server?.close();
});

t('1 worker process: sync mean (wsr paper scheme: shard estimates; openai scheme: fitness) and sync fitness (pgpe) are bitwise the in-process run', async () => {
  await spawnWorker('w1');
  for (const [name, sync] of [['wsr', 'mean'], ['openai', 'mean'], ['pgpe', 'fitness'], ['wsr', 'fitness']] as const) {
    const cfg = cfgOf(name);
    const { mus, r } = await clusterRun(cfg, sync);
    await assertSame(`${name} sync ${sync}`, cfg, mus);
    assert.equal([...r.stats.perWorker.keys()], ['w1']);
    assert.is(r.stats.units, cfg.steps * cfg.shards);
  }
});

t('a worker joining late catches up: sync fitness, its replica starts from the snapshot and replays the steps since', async () => {
  const cfg = cfgOf('pgpe', { steps: 6 });
  let late: WorkerProc | null = null;
  const { mus, r } = await clusterRun(cfg, 'fitness', async (step) => {
    if (step !== 2) return;
    late = await spawnWorker('late');
    await workers[0]!.stop('SIGTERM'); // w1 leaves: only the late worker computes steps 3..5
  }, { snapshotEvery: 2 });
  await assertSame('late join', cfg, mus);
  assert.ok(r.stats.perWorker.get('late')! >= 3 * cfg.shards, `the late worker computed steps 3..5 (${r.summary()})`);
  assert.match(late!.log, /replica from the snapshot at step 2, replaying 1 step/);
});

t('2 and 3 worker processes: bitwise the in-process run, every process computes shards', async () => {
  await spawnWorker('w2');
  for (const n of [2, 3]) {
    if (n === 3) await spawnWorker('w3');
    const names = n === 2 ? ['late', 'w2'] : ['late', 'w2', 'w3'];
    for (const [name, sync] of [['wsr', 'mean'], ['openai', 'fitness']] as const) {
      const cfg = cfgOf(name, { steps: 3 });
      const { mus, r } = await clusterRun(cfg, sync);
      await assertSame(`${n} workers ${name} sync ${sync}`, cfg, mus);
      assert.equal([...r.stats.perWorker.keys()].sort(), names, r.summary());
    }
  }
});

t('kill -9 mid-step: the shard it held is taken over after the claim timeout and the run ends bitwise the same', async () => {
  const slow = await spawnWorker('slow', ['--unit-delay', '600000']);
  const cfg = cfgOf('wsr');
  const watcher = new Redis(server.url, { protocol: 2 });
  let killed = false;
  try {
    const run = clusterRun(cfg, 'mean');
    const tasks = keys.tasks('evometa', VERSION, 'cpu-ts');
    for (let i = 0; i < 800 && !killed; i++) {
      const pend = (await watcher.call('XPENDING', tasks, GROUP, '-', '+', '10', 'slow')) as unknown[];
      if (pend.length > 0) {
        await slow.stop('SIGKILL');
        killed = true;
      } else {
        await sleep(25);
      }
    }
    assert.ok(killed, 'the slow worker took a shard');
    const { mus, r } = await run;
    await assertSame('kill -9', cfg, mus);
    assert.not.ok(r.stats.perWorker.has('slow'), 'the killed worker delivered nothing');
    assert.ok(workers.some((w) => /took over unit \d+ of run/.test(w.log)), 'a worker logged the takeover');
  } finally {
    watcher.disconnect();
  }
});

t('stale, foreign and malformed results are dropped; malformed units are dropped by the workers', async () => {
  const cfg = cfgOf('wsr', { steps: 3 });
  const inject = new Redis(server.url, { protocol: 2 });
  try {
    const { mus, r } = await clusterRun(cfg, 'mean', undefined, {});
    await assertSame('no injection', cfg, mus);
    const r2 = await runner(cfg, 'mean');
    const m = await ProtoNetEsMethod.create(cfg, sources, { runner: r2 });
    const res = keys.results('evometa', r2.run);
    const d = m.layout.numParams;
    const good = (step: number, unit: number, run = r2.run): Array<string | Buffer> => ['v', String(PROTOCOL), 'run', run, 'step', String(step), 'unit', String(unit), 'kind', 'estimate', 'worker', 'forger',
      'fitness', Buffer.alloc(8 * 4, 0x41), 'nonfinite', '0', 'degenerate', '0', 'evals', '0', 'sums', '0', 'linear', Buffer.alloc(8 * d, 0x42)];
    // before step 0: results of another step (2) and another run: well-formed, but stale
    await inject.xadd(res, '*', ...good(2, 0));
    await inject.xadd(res, '*', ...good(0, 1, 'another-run'));
    // malformed: a short noise sum, a bad protocol, a unit out of range, a non-numeric step
    const short = good(0, 0);
    short[short.length - 1] = Buffer.alloc(8 * (d - 1));
    await inject.xadd(res, '*', ...short);
    await inject.xadd(res, '*', ...good(0, 0).map((x, i) => (i === 1 ? '9' : x)));
    await inject.xadd(res, '*', ...good(0, 7));
    await inject.xadd(res, '*', ...good(0, 0).map((x, i) => (i === 5 ? 'zero' : x)));
    // malformed units in the task stream: the workers drop them
    const tasks = keys.tasks('evometa', VERSION, 'cpu-ts');
    await inject.xadd(tasks, '*', 'v', '1', 'run', r2.run, 'step', 'x');
    await inject.xadd(tasks, '*', ...unitFields({ run: r2.run, step: 0, unit: 9, units: 4, kind: 'estimate', hash: 'f'.repeat(64) }).map((x) => (x === '9' ? '99' : x)));
    r2.attachStrategy(m.strategy);
    const out: Float32Array[] = [];
    try {
      for (let i = 0; i < cfg.steps; i++) { await m.trainStep(); out.push(m.mu.slice()); }
    } finally {
      await m.close();
    }
    await assertSame('with injected results', cfg, out);
    assert.is(r2.stats.stale, 2, r2.summary());
    assert.is(r2.stats.invalid, 4, r2.summary());
    assert.not.ok(r2.stats.perWorker.has('forger'));
    assert.ok(r.stats.stale === 0 && r.stats.invalid === 0);
    assert.ok(workers.some((w) => /dropped a malformed unit/.test(w.log)), 'a worker dropped the malformed units');
  } finally {
    inject.disconnect();
  }
});

t('a run whose metadata does not validate is refused: the worker says why and the coordinator stops with that reason', async () => {
  const cfg = cfgOf('wsr', { steps: 2 });
  const r = await runner(cfg, 'mean');
  const m = await ProtoNetEsMethod.create(cfg, sources, { runner: r });
  const admin = new Redis(server.url, { protocol: 2 });
  try {
    // tamper with the published config (a population the hash does not cover)
    const k = keys.run('evometa', r.run);
    const meta = JSON.parse((await admin.hget(k, 'meta'))!) as { config: EsConfig; hash: string };
    meta.config = { ...meta.config, pop: 32 };
    await admin.hset(k, 'meta', JSON.stringify(meta));
    assert.is.not(configHash(meta.config, { kind: 'synthetic', train: TRAIN }, 'cpu-ts'), meta.hash);
    let err: unknown = null;
    try { await m.trainStep(); } catch (e) { err = e; }
    assert.instance(err, ClusterError);
    assert.match((err as Error).message, /refuses run .*config hash mismatch/);
    assert.is(m.step, 0, 'no step was applied');
  } finally {
    admin.disconnect();
    await m.close();
  }
});

t('Redis restarted mid-step (everything lost): coordinator and workers reconnect, the step is published again, the run ends bitwise the same', async () => {
  const cfg = cfgOf('pgpe', { steps: 4 });
  for (const w of workers) await w.stop('SIGTERM');
  // the only worker: holds every shard of a step for 0.7 s, so Redis can be killed mid-step
  const slow = await spawnWorker('slow2', ['--workers', '4', '--unit-delay', '700']);
  const watcher = new Redis(server.url, { protocol: 2, lazyConnect: true });
  try {
    for (const sync of ['mean', 'fitness'] as const) {
      const notices: string[] = [];
      let restart: Promise<void> | null = null;
      const { mus, r } = await clusterRun(cfg, sync, async (step) => {
        if (step === 1) {
          restart = (async () => {
            await watcher.connect();
            const tasks = keys.tasks('evometa', VERSION, 'cpu-ts');
            while (((await watcher.call('XPENDING', tasks, GROUP, '-', '+', '10', 'slow2')) as unknown[]).length === 0) await sleep(20);
            watcher.disconnect();
            await server.stop('SIGKILL'); // step 2's shards are out
            await sleep(300);
            await server.launch();
          })();
        }
        if (step === 2) await restart;
      }, { onNotice: (n) => notices.push(n) });
      await assertSame(`restart, sync ${sync}`, cfg, mus);
      assert.is(r.stats.steps, cfg.steps);
      assert.ok(notices.some((n) => /came back without this run's data/.test(n)), notices.join('\n'));
      assert.ok(notices.some((n) => /step 2: publishing the step and its \d+ missing unit\(s\) again/.test(n)), notices.join('\n'));
    }
    // the worker came back on its own (it is the only one, so it computed the steps after the
    // restart); whether it or the coordinator creates the lost task group first is a race, so the
    // group's re-creation by the worker is checked by the next test, where only the worker can do it
    assert.match(slow.log, /went away \(.*\); reconnecting/);
    assert.match(slow.log, /reconnected to Redis at /);
  } finally {
    watcher.disconnect();
  }
});

t('the task group destroyed between steps (what a restart without persistence does to it): the worker creates it again and the run ends bitwise the same', async () => {
  const cfg = cfgOf('wsr', { steps: 3 });
  for (const w of workers) await w.stop('SIGTERM');
  const lone = await spawnWorker('lone');
  const admin = new Redis(server.url, { protocol: 2 });
  try {
    const tasks = keys.tasks('evometa', VERSION, 'cpu-ts');
    const { mus, r } = await clusterRun(cfg, 'mean', async (step) => {
      if (step === 0) assert.is(await admin.call('XGROUP', 'DESTROY', tasks, GROUP), 1, 'the group existed');
    });
    await assertSame('group destroyed', cfg, mus);
    assert.equal([...r.stats.perWorker.keys()], ['lone']);
    assert.match(lone.log, /the task group is gone \(Redis restarted\?\): creating it again/);
  } finally {
    admin.disconnect();
  }
});

t('Redis gone for longer than the timeout: a clear error, and the step in flight is not applied', async () => {
  const cfg = cfgOf('wsr', { steps: 3 });
  const r = await runner(cfg, 'mean', { timeoutMs: 1500 });
  const m = await ProtoNetEsMethod.create(cfg, sources, { runner: r });
  try {
    await m.trainStep();
    const mu1 = m.mu.slice();
    await server.stop('SIGKILL');
    let err: unknown = null;
    const t0 = Date.now();
    try { await m.trainStep(); } catch (e) { err = e; }
    assert.instance(err, RedisUnavailableError);
    assert.match((err as Error).message, new RegExp(`Redis at redis://127\\.0\\.0\\.1:${server.port} has been unreachable for \\d+ s`));
    assert.ok(Date.now() - t0 < 15000, 'gave up near the timeout');
    assert.is(m.step, 1, 'the failed step was not applied');
    assert.is(diffBits(m.mu, mu1), 0);
    assert.is(diffBits(mu1, (await reference(cfg))[0]!), 0);
  } finally {
    await m.close();
    await server.launch();
  }
});

test.run();
