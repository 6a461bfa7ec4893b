/** Progress reporting on stderr: a cli-progress bar on a TTY, periodic plain lines otherwise (logs, CI). */
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

function fmt(fields: Record<string, string | number>): string {
  return Object.entries(fields).map(([k, v]) => `${k} ${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toFixed(4)) : v}`).join('  ');
}

export function createProgress(label: string, total: number, opts: { enabled?: boolean; intervalMs?: number } = {}): Progress {
  const enabled = opts.enabled ?? true;
  if (!enabled) return { update() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar({
      stream: process.stderr,
      format: `${label} [{bar}] {value}/{total} | {info} | {rate}/s | ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 50,
    }, cliProgress.Presets.shades_classic);
    const t0 = Date.now();
    bar.start(total, 0, { info: '', rate: '0' });
    return {
      update(done, fields = {}) {
        const rate = done / Math.max(1e-3, (Date.now() - t0) / 1000);
        bar.update(done, { info: fmt(fields), rate: rate.toFixed(2) });
      },
      stop() { bar.stop(); },
    };
  }
  const every = opts.intervalMs ?? 10000;
  const t0 = Date.now();
  let last = 0;
  return {
    update(done, fields = {}) {
      const now = Date.now();
      if (now - last < every && done < total) return;
      last = now;
      const el = (now - t0) / 1000, rate = done / Math.max(1e-3, el);
      const eta = rate > 0 ? (total - done) / rate : 0;
      process.stderr.write(`${label} ${done}/${total}  ${fmt(fields)}  ${rate.toFixed(2)}/s  ETA ${eta.toFixed(0)}s\n`);
    },
    stop() {},
  };
}
