/**
 * One cost case of bench/evograd-cost.ts in this (fresh) process: argv[2] is the CostSpec as JSON;
 * the result, this process's peak RSS and its RSS before the case go back to the parent over IPC.
 */
import '../lib/device/cpu-ts/index.js';
import '../lib/device/cpu-native/index.js';
import { runCostCase, type CostSpec } from '../lib/evograd/cost.js';

const rss = (): number => process.resourceUsage().maxRSS * 1024;

try {
  const spec = JSON.parse(process.argv[2] ?? 'null') as CostSpec;
  (globalThis as { gc?: () => void }).gc?.();
  const baseline = rss();
  const result = runCostCase(spec);
  process.send?.({ ok: true, result, maxRss: rss(), baseline }, () => process.disconnect?.());
} catch (e) {
  process.send?.({ ok: false, error: e instanceof Error ? e.message : String(e), maxRss: rss() }, () => process.disconnect?.());
}
