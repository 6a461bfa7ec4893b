/**
 * A real Redis for the cluster tests: `redis-server` on a free port in a
 * temporary directory, without persistence (a restart loses everything, as
 * the fault tests want), and `evometa worker` processes started from the
 * built CLI, with their logs kept for assertions.
 *
 * In CI (.ci/run sets EVOMETA_CI=1) redis-server must be there: its absence
 * is a failure, never a skip. Elsewhere the tests skip with the reason.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import { command, needs, type TestFn } from './peers.js';

export const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../../lib/cli/main.js');

/** `test` when redis-server runs; in CI a missing one fails (a test that says so), elsewhere the tests skip with the reason. */
export function withRedis(what: string): TestFn {
  const p = command('redis-server', ['--version']);
  if (!p.ok && process.env['EVOMETA_CI']) {
    test(`${what}: redis-server is required in CI`, () => { throw new Error(`redis-server is not runnable in CI (${p.reason}); .ci/run installs it with apt-get`); });
    return (name) => test.skip(name);
  }
  return needs(p, what);
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(ok: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((res) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); res(true); });
    c.once('error', () => res(false));
  });
}

export class RedisServer {
  private proc: ChildProcess | null = null;
  readonly dir: string;
  log = '';

  private constructor(readonly port: number, readonly extra: string[], readonly tls: boolean) {
    this.dir = mkdtempSync(join(tmpdir(), 'evometa-redis-'));
  }

  /** Plain TCP URL (a password, if any, is not in it). */
  get url(): string { return `redis://127.0.0.1:${this.port}`; }

  /** extra: more redis-server options; tls: the port speaks TLS only (give the --tls-* files in extra). */
  static async start(extra: string[] = [], o: { tls?: boolean } = {}): Promise<RedisServer> {
    const s = new RedisServer(await freePort(), extra, o.tls ?? false);
    await s.launch();
    return s;
  }

  /** Start (again) on the same port and directory. */
  async launch(): Promise<void> {
    const ports = this.tls ? ['--port', '0', '--tls-port', String(this.port)] : ['--port', String(this.port)];
    const args = [...ports, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, ...this.extra];
    const p = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout!.on('data', (d: Buffer) => { this.log += d.toString(); });
    p.stderr!.on('data', (d: Buffer) => { this.log += d.toString(); });
    this.proc = p;
    await until(() => accepts(this.port), 10000, `redis-server on port ${this.port}`);
  }

  /** Kill it (SIGKILL by default: everything in memory is lost). */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    await gone;
    this.proc = null;
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class WorkerProc {
  log = '';
  readonly exited: Promise<number | null>;
  constructor(readonly proc: ChildProcess, readonly name: string) {
    proc.stdout!.on('data', (d: Buffer) => { this.log += d.toString(); });
    proc.stderr!.on('data', (d: Buffer) => { this.log += d.toString(); });
    this.exited = new Promise((r) => proc.once('exit', (code) => r(code)));
  }

  get alive(): boolean { return this.proc.exitCode === null && this.proc.signalCode === null; }

  async waitFor(re: RegExp, timeoutMs = 30000): Promise<void> {
    await until(() => re.test(this.log) || !this.alive, timeoutMs, `worker ${this.name} to log ${re}`);
    if (!re.test(this.log)) throw new Error(`worker ${this.name} exited before logging ${re}:\n${this.log}`);
  }

  /** Stop it: SIGTERM (finish the units in flight, leave) or SIGKILL (kill -9). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.alive) return;
    this.proc.kill(signal);
    await this.exited;
  }
}

/** `evometa worker` from the built CLI, serving cpu-ts; resolves once it serves. It gives up 60 s after Redis goes away for good (no orphans). */
export async function startWorker(url: string, name: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<WorkerProc> {
  const p = spawn(process.execPath, [CLI, 'worker', '--redis', url, '--device', 'cpu-ts', '--name', name, '--redis-timeout', '60', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const w = new WorkerProc(p, name);
  await w.waitFor(/serving cpu-ts/);
  return w;
}
