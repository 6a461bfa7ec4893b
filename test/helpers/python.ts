/** Optional Python peers (torch, jax): tests that need them skip, saying why, when they are missing. */
import { spawnSync } from 'node:child_process';

const cache = new Map<string, string | null>();

/** null when `python3 -c "import <mods>"` works, else the reason it does not. */
export function pythonMissing(modules: string[]): string | null {
  const key = modules.join(',');
  if (cache.has(key)) return cache.get(key)!;
  const r = spawnSync('python3', ['-c', modules.map((m) => `import ${m}`).join('; ')], { encoding: 'utf8', timeout: 120000 });
  const reason = r.error ? `python3 not runnable (${r.error.message})` : r.status !== 0 ? `python modules ${modules.join(', ')} not importable: ${(r.stderr || '').trim().split('\n').pop()}` : null;
  cache.set(key, reason);
  return reason;
}

export function runPython(args: string[], timeoutMs = 300000): string {
  const r = spawnSync('python3', args, { encoding: 'utf8', timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`python3 ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}
