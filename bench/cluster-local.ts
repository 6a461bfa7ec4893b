/** A local cluster for the cluster benchmark: redis-server on a free port, `evometa worker` processes, INFO byte counters. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../lib/cli/main.js');
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const a = s.address(); s.close(() => res(typeof a === 'object' && a ? a.port : 0)); });
  });
}

const accepts = (port: number): Promise<boolean> => new Promise((res) => {
  const c = connect(port, '127.0.0.1');
  c.once('connect', () => { c.destroy(); res(true); });
  c.once('error', () => res(false));
});

/** The 1-minute load average (what `uptime` shows) and the core count, recorded with every number. */
export function load(): number { return Math.round(loadavg()[0]! * 100) / 100; }

export class LocalCluster {
  private workers: Array<{ p: ChildProcess; log: string }> = [];
  private admin: Redis;
  private constructor(readonly port: number, private readonly server: ChildProcess, readonly dir: string, readonly device: string) {
    this.admin = new Redis(`redis://127.0.0.1:${port}`, { protocol: 2 });
  }

  get url(): string { return `redis://127.0.0.1:${this.port}`; }

  static async start(device: string): Promise<LocalCluster> {
    const port = await freePort(), dir = mkdtempSync(join(tmpdir(), 'evometa-bench-redis-'));
    const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    for (let i = 0; !(await accepts(port)); i++) {
      if (i > 400) throw new Error('redis-server did not start');
      await sleep(25);
    }
    return new LocalCluster(port, server, dir, device);
  }

  /** Have exactly n worker processes (threads each) serving; extra ones are stopped. */
  async workersTo(n: number, threads = 1): Promise<void> {
    while (this.workers.length > n) {
      const w = this.workers.pop()!;
      w.p.kill('SIGKILL');
    }
    const starting: Array<Promise<void>> = [];
    while (this.workers.length < n) {
      const w = { p: spawn(process.execPath, [CLI, 'worker', '--redis', this.url, '--device', this.device, '--workers', String(threads), '--name', `bench-${this.workers.length}`, '--redis-timeout', '30'], { stdio: ['ignore', 'ignore', 'pipe'] }), log: '' };
      w.p.stderr!.on('data', (d: Buffer) => { w.log += d.toString(); });
      this.workers.push(w);
      starting.push((async () => {
        for (let i = 0; !/serving/.test(w.log); i++) {
          if (i > 2400 || w.p.exitCode !== null) throw new Error(`worker did not start:\n${w.log}`);
          await sleep(25);
        }
      })());
    }
    await Promise.all(starting);
  }

  /** The server's total_net_input_bytes and total_net_output_bytes (INFO stats). */
  async netBytes(): Promise<{ input: number; output: number }> {
    const info = await this.admin.info('stats');
    const get = (k: string): number => Number(new RegExp(`${k}:(\\d+)`).exec(info)?.[1] ?? NaN);
    return { input: get('total_net_input_bytes'), output: get('total_net_output_bytes') };
  }

  async close(): Promise<void> {
    await this.workersTo(0);
    this.admin.disconnect();
    this.server.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
