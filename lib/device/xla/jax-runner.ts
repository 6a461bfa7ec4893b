/**
 * The jaxlib executor: a long-lived `python3 tools/xla_runner.py --serve`
 * child that compiles our StableHLO text with XLA's CPU compiler and runs it,
 * with several host devices standing in for replicas. For verification on
 * machines without an accelerator; optional (Python and jax are never a
 * dependency of the package).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

  private constructor(child: ChildProcessWithoutNullStreams, readonly deviceCount: number, jax: string, private readonly python: string, private readonly env: NodeJS.ProcessEnv) {
    this.child = child;
    this.platform = `cpu (jaxlib ${jax})`;
    this.work = mkdtempSync(join(tmpdir(), 'evometa-xla-'));
    child.stderr.on('data', (d: Buffer) => { this.stderrTail = (this.stderrTail + d.toString()).slice(-2000); });
    createInterface({ input: child.stdout }).on('line', (line) => this.onLine(line));
    child.on('exit', (code) => this.fail(new Error(`xla_runner exited with code ${code}: ${this.stderrTail.trim().split('\n').pop() ?? ''}`)));
    child.on('error', (e) => this.fail(e));
  }

  /** Start the runner; throws with the reason when python/jax is unavailable. */
  static start(opts: { python?: string; hostDevices?: number } = {}): JaxRunner {
    const python = opts.python ?? process.env.PYTHON ?? 'python3';
    const av = jaxAvailability(python);
    if (!av.ok) throw new Error(av.reason);
    const devices = opts.hostDevices ?? 8;
    const env = { ...process.env, XLA_FLAGS: `--xla_force_host_platform_device_count=${devices}`, JAX_PLATFORMS: 'cpu' };
    const child = spawn(python, [runnerScript()!, '--serve'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    return new JaxRunner(child, devices, av.jax ?? '?', python, env);
  }

  private fail(e: Error): void {
    this.dead ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private onLine(line: string): void {
    let msg: { id: number; ok: boolean; error?: string; outputs?: { path: string; dtype: string; shape: number[] }[][] };
    try { msg = JSON.parse(line); } catch { return; }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
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
      this.child.stdin.write(`${JSON.stringify({ id, mlir, replicas: program.replicas, inputs, outdir: dir })}\n`);
    });
  }

  /** Blocking run through a one-shot runner process (slow: python and jax start each call; for per-op use only). */
  runSync(program: Program, perReplica: readonly (readonly HostArray[])[]): HostArray[][] {
    checkInputs(program, perReplica);
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

  async close(): Promise<void> {
    if (!this.dead) {
      const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
      this.child.stdin.end();
      await exited;
    }
    rmSync(this.work, { recursive: true, force: true });
  }
}
