/** Metrics as JSON lines, appended and flushed per record so a killed run keeps what it logged. */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export class MetricsLog {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }

  write(record: Record<string, unknown>): void {
    appendFileSync(this.path, JSON.stringify({ time: new Date().toISOString(), ...record }) + '\n');
  }
}

/** Calls `onStop` on the first SIGINT/SIGTERM (save and exit cleanly); a second SIGINT exits at once. */
export function onInterrupt(onStop: () => void): () => void {
  let hits = 0;
  const h = (): void => {
    hits++;
    if (hits > 1) process.exit(130);
    onStop();
  };
  process.on('SIGINT', h);
  process.on('SIGTERM', h);
  return () => {
    process.off('SIGINT', h);
    process.off('SIGTERM', h);
  };
}
