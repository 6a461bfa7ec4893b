/**
 * The cluster through the CLI, on Omniglot, against a password-protected
 * redis-server: `evometa train --redis` with `evometa worker` processes
 * (password from $EVOMETA_REDIS_PASSWORD) ends bitwise where the in-process
 * `evometa train` ends, also when the coordinator is killed with kill -9 and
 * continued with --resume while the workers stay connected (here the resumed
 * session even switches to --redis-sync fitness: the sync mode moves data, not
 * maths). A wrong password is a clear error. TLS (rediss://, a private CA made
 * with openssl) carries a run too.
 */
import * as assert from 'uvu/assert';
import { test } from 'uvu';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../lib/device/cpu-ts/index.js';
import { readRunState } from '../lib/train/run-files.js';
import { resolveEsConfig } from '../lib/methods/protonet-es/config.js';
import { ProtoNetEsMethod } from '../lib/methods/protonet-es/method.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { evaluatorSpecFor } from '../lib/es/evaluators.js';
import { InlineRunner } from '../lib/es/runner.js';
import { DirectOpsPopulationEvaluator } from '../lib/es/population-ts.js';
import { RedisRunner } from '../lib/cluster/coordinator.js';
import { RedisUnavailableError } from '../lib/cluster/connect.js';
import { command, missing, needs } from './helpers/peers.js';
import { CLI, RedisServer, sleep, startWorker, withRedis, type WorkerProc } from './helpers/redis-server.js';

const t = withRedis('cluster through the CLI');
const PASS = 's3cr3t-pw';
const dir = mkdtempSync(join(tmpdir(), 'evometa-cluster-cli-'));
let server: RedisServer;
const workers: WorkerProc[] = [];

const ARGS = ['--device', 'cpu-ts', '--channels', '4', '--pop', '8', '--shards', '4', '--steps', '6', '--seed', '3', '--val-episodes', '2', '--val-every', '0',
  '--checkpoint-every', '1', '--workers', '1', '--no-progress', '--no-report'];

function train(args: string[]): { code: number | null; err: string } {
  const r = spawnSync(process.execPath, [CLI, 'train', ...args], { encoding: 'utf8', timeout: 180000 });
  return { code: r.status, err: r.stderr };
}

function stateBits(out: string): Map<string, Buffer> {
  const s = readRunState(join(out, 'last.state.safetensors'));
  assert.is(s.loop.step, 6, `${out} ended at step ${s.loop.step}`);
  return new Map(Object.entries(s.state.tensors).map(([k, v]) => [k, Buffer.from(v.buffer, v.byteOffset, v.byteLength)]));
}

test.before(async () => {
  if (t !== test) return;
  server = await RedisServer.start(['--requirepass', PASS]);
  for (const name of ['c1', 'c2']) workers.push(await startWorker(server.url, name, ['--claim-timeout', '2', '--unit-delay', '150'], { EVOMETA_REDIS_PASSWORD: PASS }));
});

test.after(async () => {
  for (const w of workers) await w.stop('SIGKILL');
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('train --redis refuses --precision bf16 (the workers evaluate in fp32) before connecting, naming the option', () => {
  const r = train([...ARGS, '--redis', 'redis://127.0.0.1:9', '--precision', 'bf16', '--out', join(dir, 'bf16')]);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /--precision bf16 does not run over --redis yet \(the workers evaluate in fp32\)/);
});

t('a wrong or missing password is a clear error', async () => {
  const r = train([...ARGS, '--redis', server.url, '--out', join(dir, 'nopass'), '--redis-timeout', '5']);
  assert.is(r.code, 1, r.err);
  assert.match(r.err, /Redis at redis:\/\/127\.0\.0\.1:\d+ refused the credentials \(NOAUTH/);
  let err: unknown = null;
  try {
    await RedisRunner.create({ url: `redis://:wrong@127.0.0.1:${server.port}`, config: resolveEsConfig({}), data: { kind: 'omniglot' }, spec: evaluatorSpecFor('cpu-ts'), timeoutMs: 5000 });
  } catch (e) { err = e; }
  assert.instance(err, RedisUnavailableError);
  assert.match((err as Error).message, /redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused the credentials \(WRONGPASS/);
  assert.not.match((err as Error).message, /wrong/, 'the password is not printed');
});

t('train --redis, coordinator killed with kill -9 after step 2 and resumed with --resume: bitwise the in-process run', async () => {
  const ref = join(dir, 'ref');
  const r0 = train([...ARGS, '--out', ref]);
  assert.is(r0.code, 0, r0.err);

  const out = join(dir, 'redis');
  const url = `redis://:${PASS}@127.0.0.1:${server.port}`;
  const coord = spawn(process.execPath, [CLI, 'train', ...ARGS, '--out', out, '--redis', url], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  coord.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((r) => coord.once('exit', (c) => r(c)));
  const metrics = join(out, 'metrics.jsonl');
  const t0 = Date.now();
  // each step takes >= 150 ms (the workers' unit delay): kill once step 2's checkpoint is written
  while (!(existsSync(metrics) && /"type":"step","step":2\b/.test(readFileSync(metrics, 'utf8')))) {
    if (Date.now() - t0 > 120000 || coord.exitCode !== null) break;
    await sleep(20);
  }
  coord.kill('SIGKILL');
  await exited;
  assert.match(err, /over Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+: run [\w-]+, sync mean/);
  assert.not.match(err, new RegExp(PASS), 'the password is not printed');
  const mid = readRunState(join(out, 'last.state.safetensors')).loop.step;
  assert.ok(mid >= 2 && mid < 6, `killed mid-run (checkpoint at step ${mid})`);

  const r1 = train(['--resume', out, '--redis', url, '--redis-sync', 'fitness', '--no-progress', '--no-report']);
  assert.is(r1.code, 0, r1.err);
  assert.match(r1.err, new RegExp(`resuming at step ${mid}`));
  assert.match(r1.err, /run [\w-]+, sync fitness/);
  assert.match(r1.err, /cluster: \d+ shard\(s\) over \d+ step\(s\) by [12] worker\(s\)/);
  const a = stateBits(ref), b = stateBits(out);
  assert.equal([...b.keys()].sort(), [...a.keys()].sort());
  for (const [k, v] of a) assert.ok(Buffer.compare(v, b.get(k)!) === 0, `tensor ${k} differs from the in-process run`);
  assert.ok(workers.every((w) => /joined run/.test(w.log)), 'both workers served');
});

const openssl = command('openssl', ['version']);
const tlsTest = missing(openssl) ? needs(openssl, 'cluster over TLS') : t;

tlsTest('rediss:// with a private CA (--redis-ca): a run over TLS is bitwise the in-process run', async () => {
  const d = join(dir, 'tls');
  const ossl = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  mkdirSync(d, { recursive: true });
  ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=evometa-test-ca', '-keyout', join(d, 'ca.key'), '-out', join(d, 'ca.crt')]);
  ossl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', join(d, 'srv.key'), '-out', join(d, 'srv.csr')]);
  ossl(['x509', '-req', '-in', join(d, 'srv.csr'), '-CA', join(d, 'ca.crt'), '-CAkey', join(d, 'ca.key'), '-CAcreateserial', '-days', '2', '-out', join(d, 'srv.crt'),
    '-extensions', 'v3', '-extfile', writeExt(d)]);
  const tls = await RedisServer.start(['--tls-cert-file', join(d, 'srv.crt'), '--tls-key-file', join(d, 'srv.key'), '--tls-ca-cert-file', join(d, 'ca.crt'), '--tls-auth-clients', 'no'], { tls: true });
  const url = `rediss://127.0.0.1:${tls.port}`;
  const w = await startWorker(url, 'tls1', ['--redis-ca', join(d, 'ca.crt')]);
  try {
    const IMG = 16, TRAIN = { way: 5, shot: 2, query: 2, imageSize: IMG, seed: 1 };
    const sources = { train: new SyntheticEpisodes(TRAIN) };
    const cfg = resolveEsConfig({ model: { channels: 4, imageSize: IMG }, pop: 8, shards: 2, steps: 2, seed: 2, valEpisodes: 0, train: { way: 5, shot: 2, query: 2 } });
    const spec = evaluatorSpecFor('cpu-ts');
    const run = async (runner: RedisRunner | InlineRunner): Promise<Float32Array> => {
      const m = await ProtoNetEsMethod.create(cfg, sources, { runner });
      if (runner instanceof RedisRunner) runner.attachStrategy(m.strategy);
      try {
        for (let i = 0; i < cfg.steps; i++) await m.trainStep();
        return m.mu.slice();
      } finally {
        await m.close();
      }
    };
    const ref = await run(new InlineRunner(new DirectOpsPopulationEvaluator('cpu-ts'), spec));
    const r = await RedisRunner.create({ url, caFile: join(d, 'ca.crt'), config: cfg, data: { kind: 'synthetic', train: TRAIN }, spec, timeoutMs: 10000 });
    const got = await run(r);
    assert.ok(Buffer.compare(Buffer.from(ref.buffer), Buffer.from(got.buffer)) === 0, 'TLS run differs');
    assert.equal([...r.stats.perWorker.keys()], ['tls1']);
  } finally {
    await w.stop('SIGKILL');
    await tls.close();
  }
});

/** The server certificate's extension: its IP address, which the client checks. */
function writeExt(d: string): string {
  const p = join(d, 'ext.cnf');
  writeFileSync(p, '[v3]\nsubjectAltName=IP:127.0.0.1\n');
  return p;
}

test.run();
