/**
 * One memory-study case in this (fresh) process: argv[2] is the CaseSpec as
 * JSON, or {"idle": true, "device"?: name} for the idle baseline (the same
 * modules loaded and the device initialized, nothing run). The result and the
 * process's measurement (lib/memory/measure.ts) go back to the parent over IPC.
 */
import '../lib/device/cpu-ts/index.js';
import '../lib/device/cpu-native/index.js';
import { getDevice } from '../lib/device/registry.js';
import { runCase, type CaseSpec } from '../lib/memory/cases.js';
import { Tracker, idleMeasurement, nativeMemStats, type Measurement } from '../lib/memory/measure.js';

async function main(): Promise<void> {
  const arg = JSON.parse(process.argv[2] ?? 'null') as (CaseSpec & { idle?: undefined }) | { idle: true; device?: string };
  const gc = (globalThis as { gc?: () => void }).gc;
  // The same start-up in both kinds of process: the device initialized (the addon loaded, its malloc tuning applied).
  let device = '';
  try { device = getDevice(arg.device).name; } catch { /* a bad device name: runCase reports it */ }
  nativeMemStats();
  gc?.();
  if (arg.idle) {
    process.send?.({ ok: true, idle: idleMeasurement(), device });
    return;
  }
  const tracker = new Tracker();
  let measured: Measurement | null = null;
  const stop = (): Measurement => (measured ??= tracker.stop());
  tracker.start();
  try {
    // The measurement ends with the first meta-gradient: timing repetitions after it are not measured.
    const result = await runCase(arg, { probe: () => { if (!measured) tracker.sample(); }, afterFirst: stop });
    process.send?.({ ok: true, result, measured: stop() });
  } catch (e) {
    process.send?.({ ok: false, error: e instanceof Error ? e.message : String(e), measured: stop() });
  }
}

main().then(() => process.disconnect?.(), (e) => { console.error(e); process.exit(1); });
