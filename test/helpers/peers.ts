/**
 * Optional peers for tests: the ONE mechanism for "can this test run here?".
 *
 * Some tests need something outside the package: a Python module (torch, numpy, Pillow), jax and
 * jaxlib (XLA's CPU compiler), the native addon, a device, or a command such as chromium,
 * redis-server or c++. Such a test decides AT MODULE LOAD whether it can run, and registers itself
 * with `test` when it can and with `test.skip` when it cannot, printing the reason once:
 *
 *   import { needs, pythonModules } from './helpers/peers.js';
 *   const withTorch = needs(pythonModules(['torch']), 'optim: PyTorch cross-check');
 *   withTorch('SGD and Adam agree with torch.optim', () => { ... });
 *
 * uvu counts a test registered through `test.skip` as skipped, never as passed. Never `return`
 * early inside a test body and never catch a missing peer inside one: uvu would count it as passed.
 * Decisions that need `await` (nativeAddon, device) use top-level await.
 *
 * Peers (each probed once per process, lazily):
 *   pythonModules(['torch', ...])   `$PYTHON -c "import torch; ..."` ($PYTHON defaults to python3)
 *   jax()                           python + jax/jaxlib able to run tools/xla_runner.py
 *   nativeAddon()                   the cpu-native addon loads (build/ or a prebuild)
 *   device('xla')                   a registered device initializes (its reason otherwise)
 *   command('chromium', ['--version']), command('redis-server', ['--version']), command('c++')
 *   peer(ok, reason, kind)          any other condition decided at load (e.g. a data directory)
 *
 * Hiding peers, to see the skips (and check that they are counted as skips):
 *   EVOMETA_TEST_HIDE=python            every Python peer (torch, numpy, PIL, jax) reports unavailable
 *   EVOMETA_TEST_HIDE=native,chromium   the native addon and chromium; `all` hides every peer
 * Kinds: python, jax, native, a device name (cpu-native, xla), a command name (chromium,
 * redis-server, c++), or a kind given to peer(). PYTHON=/path selects the interpreter (the
 * library's jaxlib executor honours PYTHON too).
 */
import { spawnSync } from 'node:child_process';
import { test, type Callback } from 'uvu';

export interface Peer {
  /** What was probed, e.g. "python: torch" or "command: chromium". */
  readonly name: string;
  readonly ok: boolean;
  /** Why it is unavailable (or, when ok, what was found). */
  readonly reason: string;
}

/** The Python interpreter every test uses: $PYTHON, else python3. */
export const PYTHON = process.env.PYTHON ?? 'python3';

/** The reason when EVOMETA_TEST_HIDE hides any of these kinds, else null. */
export function hidden(kinds: string[]): string | null {
  const hide = (process.env.EVOMETA_TEST_HIDE ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const hit = kinds.find((k) => hide.includes(k)) ?? (hide.includes('all') ? 'all' : undefined);
  return hit === undefined ? null : `hidden by EVOMETA_TEST_HIDE=${process.env.EVOMETA_TEST_HIDE} (${hit})`;
}

const cache = new Map<string, Peer>();

/** The cached answer for key; else hidden, else probe() (once per process). */
function memo(key: string, kinds: string[], probe: () => Peer): Peer {
  const have = cache.get(key);
  if (have) return have;
  const h = hidden(kinds);
  const p = h ? { name: key, ok: false, reason: h } : probe();
  cache.set(key, p);
  return p;
}

/** memo() for probes that first import a library module (imported only when the peer is neither cached nor hidden). */
async function memoAsync(key: string, kinds: string[], probe: () => Promise<Peer>): Promise<Peer> {
  const have = cache.get(key);
  if (have) return have;
  const h = hidden(kinds);
  const p = h ? { name: key, ok: false, reason: h } : await probe();
  cache.set(key, p);
  return p;
}

function lastLine(s: string | null | undefined): string {
  return (s ?? '').trim().split('\n').pop() ?? '';
}

/** A peer decided by the caller (kind: the EVOMETA_TEST_HIDE name that hides it). */
export function peer(ok: boolean, reason: string, kind = 'other'): Peer {
  const h = hidden([kind]);
  return h ? { name: kind, ok: false, reason: h } : { name: kind, ok, reason };
}

/** `$PYTHON -c "import a; import b"` succeeds. */
export function pythonModules(modules: string[]): Peer {
  const key = `python: ${modules.join(', ')}`;
  return memo(key, ['python', ...modules], () => {
    const r = spawnSync(PYTHON, ['-c', modules.map((m) => `import ${m}`).join('; ')], { encoding: 'utf8', timeout: 120_000 });
    if (r.error) return { name: key, ok: false, reason: `${PYTHON} could not be started (${r.error.message})` };
    if (r.status !== 0) return { name: key, ok: false, reason: `${PYTHON} cannot import ${modules.join(', ')}: ${lastLine(r.stderr)}` };
    return { name: key, ok: true, reason: `${PYTHON} imports ${modules.join(', ')}` };
  });
}

/** python + jax/jaxlib can run tools/xla_runner.py (XLA's CPU compiler), as the library checks it. */
export function jax(): Promise<Peer> {
  return memoAsync('jax', ['python', 'jax'], async () => {
    const { jaxAvailability } = await import('../../lib/device/xla/jax-runner.js');
    const av = jaxAvailability(PYTHON);
    return { name: 'jax', ok: av.ok, reason: av.reason };
  });
}

/** The cpu-native addon loads (imported lazily: merely asking registers nothing else). */
export function nativeAddon(): Promise<Peer> {
  return memoAsync('native', ['native', 'cpu-native'], async () => {
    const { nativeInfo } = await import('../../lib/device/cpu-native/index.js');
    try {
      const info = nativeInfo();
      return { name: 'native', ok: true, reason: `${info.path} (${info.detectedIsa})` };
    } catch (e) {
      return { name: 'native', ok: false, reason: `native addon unavailable: ${(e as Error).message}` };
    }
  });
}

/** A registered device initializes (the registry's own reason otherwise). Import the device modules first. */
export function device(name: string): Promise<Peer> {
  const key = `device: ${name}`;
  return memoAsync(key, name === 'cpu-native' ? [name, 'native'] : [name], async () => {
    const { deviceReport } = await import('../../lib/device/registry.js');
    const s = deviceReport().find((d) => d.name === name);
    if (!s) return { name: key, ok: false, reason: `device ${name} is not registered` };
    return s.available === true ? { name: key, ok: true, reason: s.info?.reason ?? 'available' } : { name: key, ok: false, reason: `device ${name} unavailable: ${s.reason}` };
  });
}

/** A command runs (exit status 0), e.g. command('chromium', ['--version']). */
export function command(cmd: string, args: string[] = ['--version']): Peer {
  const key = `command: ${cmd}`;
  return memo(key, [cmd], () => {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
    if (r.error) return { name: key, ok: false, reason: `${cmd} not runnable (${r.error.message})` };
    if (r.status !== 0) return { name: key, ok: false, reason: `${cmd} ${args.join(' ')} exited with ${r.status}: ${lastLine(r.stderr)}` };
    return { name: key, ok: true, reason: lastLine(r.stdout) };
  });
}

/** The first unavailable peer, or null when all are available. */
export function missing(peers: Peer | Peer[]): Peer | null {
  return ([] as Peer[]).concat(peers).find((p) => !p.ok) ?? null;
}

export type TestFn = (name: string, fn: Callback) => void;

const printed = new Set<string>();

/**
 * `test` when every peer is available; otherwise `test.skip` (uvu counts it as skipped), after
 * printing once `  skip: <what>: <reason>`. Call it at module load.
 */
export function needs(peers: Peer | Peer[], what: string): TestFn {
  const m = missing(peers);
  if (!m) return test;
  const line = `  skip: ${what}: ${m.reason}`;
  if (!printed.has(line)) {
    printed.add(line);
    console.log(line);
  }
  return (name) => test.skip(name);
}

/** Run a Python script with $PYTHON; throws with its stderr when it fails. */
export function runPython(args: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  const r = spawnSync(PYTHON, args, { encoding: 'utf8', input: opts.input, timeout: opts.timeoutMs ?? 300_000, maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${PYTHON} ${args[0]} could not run: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${PYTHON} ${args[0] === '-c' ? '-c <script>' : args[0]} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}
