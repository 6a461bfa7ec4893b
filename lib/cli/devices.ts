/**
 * `evometa devices`: every registered device, whether it initializes, and why not, as a table with
 * the default marked (or JSON with --json); and the one-line fallback warning that train and eval
 * print when the best device cannot be used.
 */
import type { Command } from 'commander';
import { defaultDevice, deviceReport, type DeviceStatus } from '../device/registry.js';
import '../index.js';

export interface DeviceRow extends DeviceStatus {
  /** The device getDevice() picks when none is named. */
  default: boolean;
}

/** The device report with the default marked. */
export function deviceRows(): DeviceRow[] {
  const rows = deviceReport();
  let def: string | undefined;
  try { def = defaultDevice().device.name; } catch { def = undefined; }
  return rows.map((r) => ({ ...r, default: r.name === def }));
}

/** A readable table: one line per device, the default marked with '*'. */
export function deviceTable(rows: DeviceRow[]): string {
  const status = (r: DeviceRow): string => (r.available === true ? 'available' : r.available === false ? 'unavailable' : 'not tried');
  const detail = (r: DeviceRow): string => {
    if (r.available !== true) return r.reason ?? '';
    const i = r.info;
    const threads = typeof i?.detail?.['threads'] === 'number' ? `, ${i.detail['threads']} threads` : '';
    return `${i?.isa ? `${i.isa}${threads}: ` : ''}${i?.reason ?? ''}`;
  };
  const head = ['', 'DEVICE', 'PRIORITY', 'STATUS', 'DETAIL'];
  const body = rows.map((r) => [r.default ? '*' : '', r.name, String(r.priority), status(r), detail(r)]);
  const w = head.map((_, c) => Math.max(...[head, ...body].map((row) => row[c]!.length)));
  const fmt = (row: string[]): string => `${row[0]!.padEnd(w[0]!)} ${row.slice(1).map((cell, i) => (i === 1 ? cell.padStart(w[i + 1]!) : i === row.length - 2 ? cell : cell.padEnd(w[i + 1]!))).join('  ')}`.trimEnd();
  const def = rows.find((r) => r.default);
  const foot = def ? `default device (marked *, used when --device is not given): ${def.name}` : 'no device is available';
  return [fmt(head), ...body.map(fmt), '', foot].join('\n');
}

const SLOWER: Record<string, string> = { 'cpu-ts': 'the TypeScript reference device, about 100 times slower than cpu-native' };

/**
 * When the default device is not the best registered one (cpu-native's addon did not load), say so
 * once on stderr with the reason; the library itself stays silent (defaultDevice() tells it).
 */
export function warnDeviceFallback(write: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): void {
  let choice: ReturnType<typeof defaultDevice>;
  try { choice = defaultDevice(); } catch { return; } // no device at all: the command itself reports it
  const { device, skipped } = choice;
  for (const s of skipped) {
    const what = SLOWER[device.name] ? `${device.name} (${SLOWER[device.name]})` : device.name;
    write(`evometa: warning: device ${s.name} is unavailable, running on ${what}: ${s.reason}`);
  }
}

export function registerDevices(program: Command): void {
  program
    .command('devices')
    .description('list devices, the one chosen by default, and why others are unavailable')
    .option('--json', 'print JSON (one object per device, the default marked "default": true) instead of the table')
    .action((o: { json?: boolean }) => {
      const rows = deviceRows();
      console.log(o.json ? JSON.stringify(rows, null, 2) : deviceTable(rows));
    });
}
