/**
 * One memory-study case in this (fresh) process: argv[2] is the CaseSpec as
 * JSON; the result and this process's peak RSS go back to the parent over IPC.
 */
import '../lib/device/cpu-ts/index.js';
import '../lib/device/cpu-native/index.js';
import { runCase, type CaseSpec } from '../lib/memory/cases.js';

const rssBytes = (): number => process.resourceUsage().maxRSS * 1024;

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? 'null') as CaseSpec;
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const baseline = rssBytes();
  try {
    const result = await runCase(spec);
    process.send?.({ ok: true, result, maxRss: rssBytes(), baseline });
  } catch (e) {
    process.send?.({ ok: false, error: e instanceof Error ? e.message : String(e), maxRss: rssBytes(), baseline });
  }
}

main().then(() => process.disconnect?.(), (e) => { console.error(e); process.exit(1); });
