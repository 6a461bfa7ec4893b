/**
 * Shared helpers of the benchmark scripts, and the one measurement protocol that
 * bench/population.ts and bench/backprop.ts apply to every implementation alike:
 *
 *   1. warm-up: every implementation runs untimed first (JIT, allocator, oneDNN primitives,
 *      torch.compile);
 *   2. rounds: in each of `rounds` (at least 3) rounds every implementation runs one timed
 *      repetition, interleaved, the order rotating from round to round, so that a change in the
 *      machine's load falls on all of them alike;
 *   3. the figure is the median over the rounds (wall-clock and process CPU seconds; min and
 *      max kept beside it), with the 1-minute load average sampled at each repetition.
 *
 * Implementations are labelled by role: 'ours' (cpu-native), 'peer' (another library: PyTorch),
 * 'variant' (another formulation of ours, measured beside it for comparison: never the headline)
 * and 'reference' (cpu-ts, the TypeScript spec implementation: never a peer).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';

/** The value of --name V or --name=V on the command line, or `def`. */
export function arg(name: string, def: string): string {
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  if (eq !== undefined) return eq.slice(name.length + 3);
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}

/** Whether --name is on the command line. */
export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

/**
 * Convolution FLOPs of the ConvNet-4 forward for `images` images (multiply-adds x 2):
 * sum over blocks of 2 * 9 * cin * C * side^2 * images, side halving after each block.
 * Every implementation is measured against this same count.
 */
export function convFlops(c: number, images: number, size = 28, blocks = 4, cin = 1): number {
  let f = 0, s = size, ci = cin;
  for (let l = 0; l < blocks; l++) {
    f += 2 * 9 * ci * c * s * s * images;
    ci = c;
    s = Math.floor(s / 2);
  }
  return f;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** `uptime` as the machine prints it (the load averages), for the record of each run. */
export function uptime(): string {
  const r = spawnSync('uptime', { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : `load average: ${loadavg().map((v) => v.toFixed(2)).join(', ')}`;
}

export type Role = 'ours' | 'peer' | 'variant' | 'reference';

export interface Timing { wall: number; cpu: number }

/** One implementation under the protocol. */
export interface Impl {
  name: string;
  role: Role;
  /** Untimed runs before the rounds. */
  warmup(): Promise<void>;
  /** One timed repetition. */
  run(): Promise<Timing>;
}

export interface Measured {
  name: string;
  role: Role;
  rounds: number;
  /** Medians over the rounds. */
  wall: number;
  cpu: number;
  wallMin: number;
  wallMax: number;
  samples: Timing[];
  /** The 1-minute load average when each repetition started. */
  load1: number[];
}

/** Time a synchronous body: wall-clock and process CPU seconds (all threads). */
export function timeSync(body: () => void): Timing {
  const c0 = process.cpuUsage(), t0 = performance.now();
  body();
  const wall = (performance.now() - t0) / 1000, cu = process.cpuUsage(c0);
  return { wall, cpu: (cu.user + cu.system) / 1e6 };
}

/** Time an asynchronous body: wall-clock and process CPU seconds (all threads). */
export async function timeAsync(body: () => Promise<unknown>): Promise<Timing> {
  const c0 = process.cpuUsage(), t0 = performance.now();
  await body();
  const wall = (performance.now() - t0) / 1000, cu = process.cpuUsage(c0);
  return { wall, cpu: (cu.user + cu.system) / 1e6 };
}

/** The protocol above: warm-up, then `rounds` interleaved rounds with a rotating order; medians. */
export async function interleaved(impls: readonly Impl[], rounds: number, log: (s: string) => void = () => {}): Promise<Measured[]> {
  if (!Number.isInteger(rounds) || rounds < 3) throw new RangeError(`--rounds must be an integer >= 3 (the median of at least 3), got ${rounds}`);
  for (const im of impls) {
    const t0 = performance.now();
    await im.warmup();
    log(`  warm-up ${im.name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const samples = impls.map(() => [] as Timing[]), loads = impls.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < impls.length; k++) {
      const i = (k + r) % impls.length;
      loads[i]!.push(loadavg()[0]!);
      samples[i]!.push(await impls[i]!.run());
    }
  }
  return impls.map((im, i) => {
    const s = samples[i]!, walls = s.map((t) => t.wall);
    return {
      name: im.name, role: im.role, rounds, wall: median(walls), cpu: median(s.map((t) => t.cpu)),
      wallMin: Math.min(...walls), wallMax: Math.max(...walls), samples: s, load1: loads[i]!,
    };
  });
}

/**
 * A PyTorch peer process (bench/torch_peer.py): one JSON command per line, one JSON answer per
 * line. `start` resolves to a string (the reason) when python3 or torch is missing.
 */
export class TorchPeer {
  private readonly lines: AsyncIterator<string>;
  private stderr = '';
  /** torch.__version__, from the setup answer. */
  version = '';

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.stderr.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-4000); });
    this.lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }

  static async start(script: string, setup: Record<string, unknown>): Promise<TorchPeer | string> {
    const child = spawn('python3', [script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let spawnError: string | undefined;
    child.on('error', (e) => { spawnError = `python3 failed to start: ${e.message}`; });
    child.stdin.on('error', () => {});  // a peer that exits early (torch missing) closes its stdin
    const peer = new TorchPeer(child);
    const first = await peer.call({ cmd: 'setup', ...setup }).catch((e: Error) => ({ error: e.message }) as Record<string, unknown>);
    await new Promise((r) => setImmediate(r));
    if (spawnError !== undefined) return spawnError;
    if (typeof first.skipped === 'string') {
      peer.close();
      return first.skipped;
    }
    if (first.error !== undefined) {
      peer.close();
      throw new Error(`PyTorch peer setup ${JSON.stringify(setup)}: ${String(first.error)}`);
    }
    peer.version = String(first.torch);
    return peer;
  }

  async call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.child.stdin.write(`${JSON.stringify(cmd)}\n`);
    const r = await this.lines.next();
    if (r.done) throw new Error(`PyTorch peer exited (${this.stderr.trim().split('\n').pop() ?? 'no message'})`);
    const out = JSON.parse(r.value) as Record<string, unknown>;
    if (out.error !== undefined && cmd.cmd !== 'setup') throw new Error(`PyTorch peer ${String(cmd.cmd)}: ${String(out.error)}`);
    return out;
  }

  /** This peer as a protocol implementation. */
  impl(name: string): Impl {
    return {
      name, role: 'peer',
      warmup: async () => { await this.call({ cmd: 'warmup' }); },
      run: async () => {
        const r = await this.call({ cmd: 'run' });
        return { wall: r.wall as number, cpu: r.cpu as number };
      },
    };
  }

  close(): void {
    if (this.child.exitCode === null) {
      this.child.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
    }
  }
}

/** A file name stamp: the ISO time without ':' and '.'. */
export function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}
