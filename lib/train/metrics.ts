/**
 * Metrics as JSON lines (metrics.jsonl), appended and flushed per record so a
 * killed run keeps what it logged. A MetricsSink is anything that takes the
 * records (the JSONL log, a CSV writer, ...). On --resume the log is first cut
 * back to the resumed step (truncateMetrics), so replayed steps never appear twice.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import type { MetricsSink } from './metrics-sinks.js';

export class MetricsLog implements MetricsSink {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }

  write(record: Record<string, unknown>): void {
    appendFileSync(this.path, JSON.stringify({ time: new Date().toISOString(), ...record }) + '\n');
  }
}

/**
 * Cut a metrics log back to a state saved at `step` steps done: keep 'start'
 * and 'resume' records, 'step' records of steps < step and 'val' records at
 * <= step; drop the rest (the steps after the checkpoint, which the resumed
 * run replays, and the old run's end/test records). Written atomically.
 * Returns the number of records dropped.
 */
export function truncateMetrics(path: string, step: number): number {
  if (!existsSync(path)) return 0;
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0);
  const keep: string[] = [];
  for (const line of lines) {
    let r: { type?: unknown; step?: unknown };
    try { r = JSON.parse(line) as typeof r; } catch { continue; } // a torn last line of a killed run
    const s = typeof r.step === 'number' ? r.step : NaN;
    if (r.type === 'start' || r.type === 'resume' || (r.type === 'step' && s < step) || (r.type === 'val' && s <= step)) keep.push(line);
  }
  if (keep.length !== lines.length) writeFileAtomic(path, [new TextEncoder().encode(keep.map((l) => `${l}\n`).join(''))]);
  return lines.length - keep.length;
}

/** Calls `onStop` on the first SIGINT/SIGTERM (save and exit cleanly); a second one exits at once with 130. */
export function onInterrupt(onStop: (signal: NodeJS.Signals) => void): () => void {
  let hits = 0;
  const h = (sig: NodeJS.Signals): void => {
    hits++;
    if (hits > 1) process.exit(130);
    onStop(sig);
  };
  process.on('SIGINT', h);
  process.on('SIGTERM', h);
  return () => {
    process.off('SIGINT', h);
    process.off('SIGTERM', h);
  };
}
