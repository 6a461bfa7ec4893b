/**
 * The jaxlib executor: a long-lived `python3 tools/xla_runner.py --serve`
 * child that compiles our StableHLO text with XLA's CPU compiler and runs it,
 * with several host devices standing in for replicas. For verification on
 * machines without an accelerator; optional (Python and jax are never a
 * dependency of the package).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { closeSync, constants as fsc, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { createHash } from 'node:crypto';
import type { Program } from './hlo.js';
import { checkInputs, fromBytes, type HostArray, type XlaExecutor } from './executor.js';

/** tools/xla_runner.py of this checkout (searched upwards from this module), or undefined. */
export function runnerScript(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'tools', 'xla_runner.py');
    if (existsSync(p)) return p;
    dir = resolve(dir, '..');
  }
  return undefined;
}

export interface JaxAvailability { ok: boolean; reason: string; jax?: string; devices?: number }

/** Whether python3 + jax/jaxlib can run the runner here; the reason says why not. */
export function jaxAvailability(python = process.env.PYTHON ?? 'python3'): JaxAvailability {
  const script = runnerScript();
  if (!script) return { ok: false, reason: 'tools/xla_runner.py not found (it ships with the repository, not the npm package)' };
  const r = spawnSync(python, [script, '--check'], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, XLA_FLAGS: process.env.XLA_FLAGS ?? '--xla_force_host_platform_device_count=8' } });
  if (r.error) return { ok: false, reason: `${python} could not be started: ${r.error.message}` };
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    const j = JSON.parse(line) as { ok: boolean; error?: string; jax?: string; devices?: number };
    if (!j.ok) return { ok: false, reason: `jax/jaxlib not importable: ${j.error}` };
    return { ok: true, reason: `jax ${j.jax}, ${j.devices} host devices`, jax: j.jax, devices: j.devices };
  } catch {
    return { ok: false, reason: `runner check failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').pop()}` };
  }
}

interface Pending { resolve: (v: HostArray[][]) => void; reject: (e: Error) => void; dir: string; program: Program }

export class JaxRunner implements XlaExecutor {
  readonly platform: string;
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly work: string;
  private readonly written = new Set<string>();
  private dead: Error | undefined;
  private stderrTail = '';

  private constructor(
    child: ChildProcessWithoutNullStreams, readonly deviceCount: number, jax: string,
    private readonly python: string, private readonly env: NodeJS.ProcessEnv, private readonly fifos?: { req: string; resp: string },
  ) {
    this.child = child;
    this.platform = `cpu (jaxlib ${jax})`;
    this.work = mkdtempSync(join(tmpdir(), 'evometa-xla-'));
    const work = this.work;
    process.once('exit', () => rmSync(work, { recursive: true, force: true }));
    child.stderr.on('data', (d: Buffer) => { this.stderrTail = (this.stderrTail + d.toString()).slice(-2000); });
    createInterface({ input: child.stdout }).on('line', (line) => this.onLine(line));
    child.on('exit', (code) => this.fail(new Error(`xla_runner exited with code ${code}: ${this.stderrTail.trim().split('\n').pop() ?? ''}`)));
    child.on('error', (e) => this.fail(e));
    this.idle();
  }

  /** While no request is pending the child does not keep the process alive (a finished CLI run exits). */
  private idle(): void {
    this.child.unref();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr] as unknown as { unref?: () => void }[]) s.unref?.();
  }

  private busy(): void {
    this.child.ref();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr] as unknown as { ref?: () => void }[]) s.ref?.();
  }

  /** Start the runner; throws with the reason when python/jax is unavailable. */
  static start(opts: { python?: string; hostDevices?: number } = {}): JaxRunner {
    const python = opts.python ?? process.env.PYTHON ?? 'python3';
    const av = jaxAvailability(python);
    if (!av.ok) throw new Error(av.reason);
    const devices = opts.hostDevices ?? 8;
    const env = { ...process.env, XLA_FLAGS: `--xla_force_host_platform_device_count=${devices}`, JAX_PLATFORMS: 'cpu' };
    // Blocking calls (Device.run) reach the same server through a FIFO pair (see runSync).
    const fifoDir = mkdtempSync(join(tmpdir(), 'evometa-xla-fifo-'));
    const fifos = { req: join(fifoDir, 'req'), resp: join(fifoDir, 'resp') };
    const made = spawnSync('mkfifo', [fifos.req, fifos.resp]).status === 0;
    const args = made ? [runnerScript()!, '--serve', '--sync-fifo', fifos.req] : [runnerScript()!, '--serve'];
    const child = spawn(python, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    process.once('exit', () => rmSync(fifoDir, { recursive: true, force: true }));
    return new JaxRunner(child, devices, av.jax ?? '?', python, env, made ? fifos : undefined);
  }

  private fail(e: Error): void {
    this.dead ??= e;
    if (this.pending.size) this.idle();
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private onLine(line: string): void {
    let msg: { id: number; ok: boolean; error?: string; outputs?: { path: string; dtype: string; shape: number[] }[][] };
    try { msg = JSON.parse(line); } catch { return; }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (this.pending.size === 0) this.idle();
    if (!msg.ok) { rmSync(p.dir, { recursive: true, force: true }); p.reject(new Error(`XLA (jaxlib CPU): ${msg.error}`)); return; }
    try {
      const outs = msg.outputs!.map((rep) => rep.map((o, k): HostArray => {
        const t = p.program.outputs[k];
        if (!t) throw new Error(`runner returned output ${k}, program declares ${p.program.outputs.length}`);
        return { dtype: t.dtype, shape: t.shape, data: fromBytes(new Uint8Array(readFileSync(o.path)), t) };
      }));
      p.resolve(outs);
    } catch (e) {
      p.reject(e as Error);
    } finally {
      rmSync(p.dir, { recursive: true, force: true });
    }
  }

  async run(program: Program, perReplica: readonly (readonly HostArray[])[]): Promise<HostArray[][]> {
    if (this.dead) throw this.dead;
    checkInputs(program, perReplica);
    if (program.replicas > this.deviceCount) throw new RangeError(`program needs ${program.replicas} replicas, the runner has ${this.deviceCount} host devices`);
    const hash = createHash('sha256').update(program.text).digest('hex').slice(0, 24);
    const mlir = join(this.work, `${hash}.mlir`);
    if (!this.written.has(mlir)) { writeFileSync(mlir, program.text); this.written.add(mlir); }
    const id = this.nextId++;
    const dir = join(this.work, `call${id}`);
    const inputs = perReplica.map((ins, r) => ins.map((a, i) => {
      const path = join(this.work, `call${id}_r${r}_i${i}.bin`);
      writeFileSync(path, new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength));
      return { path, dtype: a.dtype, shape: a.shape };
    }));
    return new Promise<HostArray[][]>((resolveP, rejectP) => {
      this.pending.set(id, {
        resolve: (v) => { cleanup(); resolveP(v); },
        reject: (e) => { cleanup(); rejectP(e); },
        dir, program,
      });
      const cleanup = (): void => { for (const rep of inputs) for (const f of rep) rmSync(f.path, { force: true }); };
      this.busy();
      this.child.stdin.write(`${JSON.stringify({ id, mlir, replicas: program.replicas, inputs, outdir: dir })}\n`);
    });
  }

  /** Is the server process still alive? */
  private alive(): boolean {
    if (this.dead || this.child.exitCode !== null || this.child.pid === undefined) return false;
    try { process.kill(this.child.pid, 0); return true; } catch { return false; }
  }

  /**
   * Blocking request to the running server through the FIFO pair: open/write/read
   * non-blocking, sleeping 1 ms between tries (Atomics.wait), and give up with an
   * error if the server dies meanwhile -- a blocked caller never hangs forever.
   */
  private requestSync(line: string): string {
    const fifos = this.fifos!;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    const wait = (tries: number): void => {
      Atomics.wait(nap, 0, 0, 1);
      if (tries % 200 === 0 && !this.alive()) throw new Error(`xla_runner died: ${this.stderrTail.trim().split('\n').pop() ?? ''}`);
    };
    let fd = -1;
    for (let t = 1; fd < 0; t++) {
      try { fd = openSync(fifos.req, fsc.O_WRONLY | fsc.O_NONBLOCK); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENXIO') throw e; wait(t); }
    }
    try { writeSync(fd, line); } finally { closeSync(fd); }
    const rfd = openSync(fifos.resp, fsc.O_RDONLY | fsc.O_NONBLOCK);
    try {
      const buf = Buffer.alloc(1 << 16);
      let out = '';
      for (let t = 1; !out.endsWith('\n'); t++) {
        let n = 0;
        try { n = readSync(rfd, buf, 0, buf.length, null); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e; }
        if (n > 0) out += buf.toString('utf8', 0, n); else wait(t);
      }
      return out.trim();
    } finally {
      closeSync(rfd);
    }
  }

  /** Blocking run (Device.run): through the running server when FIFOs are available, else a one-shot runner process. */
  runSync(program: Program, perReplica: readonly (readonly HostArray[])[]): HostArray[][] {
    checkInputs(program, perReplica);
    if (this.fifos && this.alive()) return this.runViaFifo(program, perReplica);
    const id = this.nextId++;
    const dir = join(this.work, `sync${id}`);
    const mlir = join(this.work, `sync${id}.mlir`);
    writeFileSync(mlir, program.text);
    const inputs = perReplica.map((ins, r) => ins.map((a, i) => {
      const path = join(this.work, `sync${id}_r${r}_i${i}.bin`);
      writeFileSync(path, new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength));
      return { path, dtype: a.dtype, shape: a.shape };
    }));
    const req = join(this.work, `sync${id}.json`);
    writeFileSync(req, JSON.stringify({ id, mlir, replicas: program.replicas, inputs, outdir: dir }));
    try {
      const r = spawnSync(this.python, [runnerScript()!, req], { encoding: 'utf8', env: this.env, timeout: 600_000 });
      const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
      let msg: { ok: boolean; error?: string; outputs?: { path: string }[][] };
      try { msg = JSON.parse(line); } catch { throw new Error(`xla_runner failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').pop()}`); }
      if (!msg.ok) throw new Error(`XLA (jaxlib CPU): ${msg.error}`);
      return msg.outputs!.map((rep) => rep.map((o, k): HostArray => {
        const t = program.outputs[k]!;
        return { dtype: t.dtype, shape: t.shape, data: fromBytes(new Uint8Array(readFileSync(o.path)), t) };
      }));
    } finally {
      for (const f of [mlir, req, ...inputs.flat().map((x) => x.path)]) rmSync(f, { force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  }

  private runViaFifo(program: Program, perReplica: readonly (readonly HostArray[])[]): HostArray[][] {
    const id = this.nextId++;
    const dir = join(this.work, `fifo${id}`);
    const hash = createHash('sha256').update(program.text).digest('hex').slice(0, 24);
    const mlir = join(this.work, `${hash}.mlir`);
    if (!this.written.has(mlir)) { writeFileSync(mlir, program.text); this.written.add(mlir); }
    const inputs = perReplica.map((ins, r) => ins.map((a, i) => {
      const path = join(this.work, `fifo${id}_r${r}_i${i}.bin`);
      writeFileSync(path, new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength));
      return { path, dtype: a.dtype, shape: a.shape };
    }));
    try {
      const msg = JSON.parse(this.requestSync(`${JSON.stringify({ id, mlir, replicas: program.replicas, inputs, outdir: dir, reply: this.fifos!.resp })}\n`)) as
        { ok: boolean; error?: string; outputs?: { path: string }[][] };
      if (!msg.ok) throw new Error(`XLA (jaxlib CPU): ${msg.error}`);
      return msg.outputs!.map((rep) => rep.map((o, k): HostArray => {
        const t = program.outputs[k]!;
        return { dtype: t.dtype, shape: t.shape, data: fromBytes(new Uint8Array(readFileSync(o.path)), t) };
      }));
    } finally {
      for (const f of inputs.flat()) rmSync(f.path, { force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  }

  async close(): Promise<void> {
    if (!this.dead) {
      const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
      this.busy();
      this.child.stdin.end();
      await exited;
    }
    rmSync(this.work, { recursive: true, force: true });
  }
}
