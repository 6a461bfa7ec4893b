/**
 * Kept for tests written against it; new tests use ./peers.js (pythonModules + needs, runPython),
 * which this wraps: the same interpreter ($PYTHON, else python3) and the same EVOMETA_TEST_HIDE.
 */
import { pythonModules, runPython as run } from './peers.js';

/** null when `$PYTHON -c "import <mods>"` works, else the reason it does not. */
export function pythonMissing(modules: string[]): string | null {
  const p = pythonModules(modules);
  return p.ok ? null : p.reason;
}

export function runPython(args: string[], timeoutMs = 300000): string {
  return run(args, { timeoutMs });
}
