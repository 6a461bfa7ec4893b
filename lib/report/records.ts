/**
 * The records a training run writes to `metrics.jsonl` (one JSON object per line), and a reader
 * that turns one run's file into series for the report.
 *
 * The reader accepts the unified schema (`start`, `step`, `val`, `test`, `end`, `resume`) and the
 * records written before it: backprop `episode` records (`episode` in place of `step`), backprop
 * `epoch` summaries, a second `start` record of a resumed ES run, and the ES `collapse` record.
 *
 * Malformed input: a line that is not a JSON object with a string `type`, or a `step`/`val` record
 * without a numeric step, is refused with a UserError naming the file and line. The one exception
 * is a final line without its newline that does not parse: that is a write torn by a killed run,
 * and it is skipped with a warning (the rest of the run is still worth a report).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { UserError } from '../errors.js';

/** How a run ended (the `end` record). */
export type RunEnd = 'done' | 'interrupted' | 'time' | 'collapsed' | 'error';

/** The first record of a run. */
export interface MetricsStartRecord {
  type: 'start';
  time?: string;
  method?: string;
  step?: number;
  config?: Record<string, unknown>;
  preset?: string | null;
  device?: string;
  [k: string]: unknown;
}

/** One training step (ES generation, backprop episode): `loss` plus method-specific numbers. */
export interface MetricsStepRecord { type: 'step'; time?: string; step: number; elapsed_s?: number; loss?: number; [k: string]: unknown }
/** One validation pass. */
export interface MetricsValRecord { type: 'val'; time?: string; step: number; elapsed_s?: number; val_acc?: number; val_ci95?: number; val_loss?: number; best_val?: number; [k: string]: unknown }
/** One evaluation on test-split episodes after training (several may follow a run, e.g. 5-shot and 1-shot). */
export interface MetricsTestRecord {
  type: 'test';
  time?: string;
  checkpoint?: string;
  episodes?: number;
  way?: number;
  shot?: number;
  query?: number;
  test_acc?: number;
  test_ci95?: number;
  test_loss?: number;
  [k: string]: unknown;
}
/** The last record of a run that ended by itself (or was stopped cleanly). */
export interface MetricsEndRecord { type: 'end'; time?: string; step?: number; end: RunEnd | string; best_val?: number; best_step?: number; [k: string]: unknown }
/** A resumed run continues in the same file: later records at steps <= this step replace the earlier ones. */
export interface MetricsResumeRecord { type: 'resume'; time?: string; step: number; [k: string]: unknown }

export type MetricsRecord = MetricsStartRecord | MetricsStepRecord | MetricsValRecord | MetricsTestRecord | MetricsEndRecord | MetricsResumeRecord | { type: string; [k: string]: unknown };

/** A step or validation point: its step, its wall-clock seconds since the run began (across resumes), and its numeric fields. */
export interface MetricsPoint {
  step: number;
  /** Seconds since the run began; undefined when the record had neither elapsed_s nor a usable time. */
  elapsed?: number;
  values: Record<string, number>;
}

/** One run's metrics, ready to chart. */
export interface RunData {
  dir: string;
  /** The label in legends and tables (the directory name; made unique across a report by the caller). */
  name: string;
  file: string;
  method: string | null;
  start: MetricsStartRecord | null;
  /** Training steps in step order, after resume replacement. */
  steps: MetricsPoint[];
  /** Validation passes in step order, after resume replacement. */
  vals: MetricsPoint[];
  tests: MetricsTestRecord[];
  end: MetricsEndRecord | null;
  /** Older backprop runs: per-epoch summaries (train_loss, train_acc, ...). */
  epochs: MetricsPoint[];
  resumes: number;
  warnings: string[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The numeric fields of a record (null, strings, booleans and nested objects are not series). */
function numbers(rec: Record<string, unknown>, skip: ReadonlySet<string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(rec)) if (!skip.has(k) && typeof v === 'number') out[k] = v;
  return out;
}
const NOT_SERIES = new Set(['type', 'time', 'step', 'episode', 'elapsed_s']);

/** `metrics.jsonl` of a run directory (a path to the file itself is accepted too). */
export function metricsPath(dirOrFile: string): string {
  if (!existsSync(dirOrFile)) throw new UserError(`${dirOrFile}: no such run directory`);
  const file = statSync(dirOrFile).isDirectory() ? join(dirOrFile, 'metrics.jsonl') : dirOrFile;
  if (!existsSync(file)) throw new UserError(`${dirOrFile}: no metrics.jsonl in this directory (is it a run's --out directory?)`);
  return file;
}

/** Parse the lines of a metrics file into records, refusing a malformed line by file and line number (see the module comment). */
export function parseMetricsLines(text: string, file: string, warnings: string[] = []): Array<{ line: number; rec: Record<string, unknown> }> {
  const lines = text.split('\n');
  const torn = !text.endsWith('\n') && lines[lines.length - 1]!.trim() !== '';
  const out: Array<{ line: number; rec: Record<string, unknown> }> = [];
  for (let i = 0; i < lines.length; i++) {
    const s = lines[i]!.trim();
    if (s === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch (e) {
      if (torn && i === lines.length - 1) {
        warnings.push(`${file}:${i + 1}: skipped an incomplete last line (a write cut short when the run stopped)`);
        continue;
      }
      throw new UserError(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (!isObj(v) || typeof v.type !== 'string') throw new UserError(`${file}:${i + 1}: a metrics record must be a JSON object with a string "type" field`);
    out.push({ line: i + 1, rec: v });
  }
  return out;
}

/** The step of a step/val/resume record: `step`, or `episode` in older backprop records. */
function stepOf(rec: Record<string, unknown>, file: string, line: number): number {
  const s = rec.step ?? rec.episode;
  if (typeof s !== 'number' || !Number.isFinite(s)) throw new UserError(`${file}:${line}: a "${String(rec.type)}" record needs a numeric "step" field, got ${JSON.stringify(s)}`);
  return s;
}

const ms = (t: unknown): number | undefined => {
  if (typeof t !== 'string') return undefined;
  const v = Date.parse(t);
  return Number.isFinite(v) ? v : undefined;
};

/**
 * Read one run: series of steps and validations (a resume drops the earlier records past its step,
 * and a later record at the same step replaces the earlier one), test results, and the end.
 *
 * Wall-clock: `elapsed_s` where the record has it. A record without it (older validation records)
 * gets the elapsed time of the run's latest step record plus the time between the two records'
 * `time` stamps. After a resume whose elapsed_s starts again from zero (older trainers), the time
 * already spent before the resume is added, so the wall-clock axis runs on across resumes.
 */
export function readRun(dir: string): RunData {
  const file = metricsPath(dir);
  const warnings: string[] = [];
  const recs = parseMetricsLines(readFileSync(file, 'utf8'), file, warnings);
  const steps = new Map<number, MetricsPoint>(), vals = new Map<number, MetricsPoint>(), epochs = new Map<number, MetricsPoint>();
  const tests: MetricsTestRecord[] = [];
  let start: MetricsStartRecord | null = null, end: MetricsEndRecord | null = null, resumes = 0;
  // Wall-clock bookkeeping for the current segment (the records since the start or the last resume).
  let segStartMs: number | undefined, offset = 0, offsetPending = false, segBase = 0;
  let lastStep: { elapsed: number; ms?: number } | undefined;
  let sawEpisode = false;

  const elapsedOf = (rec: Record<string, unknown>): number | undefined => {
    const e = rec.elapsed_s;
    if (typeof e === 'number' && Number.isFinite(e)) {
      if (offsetPending) {
        // The first elapsed_s after a resume tells whether this writer restarts its clock.
        offset = e < segBase ? segBase : 0;
        offsetPending = false;
      }
      return e + offset;
    }
    const t = ms(rec.time);
    if (t === undefined) return undefined;
    if (lastStep?.ms !== undefined) return lastStep.elapsed + (t - lastStep.ms) / 1000;
    if (segStartMs !== undefined) return segBase + (t - segStartMs) / 1000;
    return undefined;
  };
  const resumeAt = (step: number, rec: Record<string, unknown>): void => {
    resumes++;
    for (const m of [steps, vals, epochs]) for (const k of [...m.keys()]) if (k > step) m.delete(k);
    if (end) end = null;
    let base = 0;
    for (const p of [...steps.values(), ...vals.values()]) if (p.elapsed !== undefined && p.elapsed > base) base = p.elapsed;
    segBase = base;
    segStartMs = ms(rec.time);
    lastStep = undefined;
    offsetPending = true;
  };

  for (const { line, rec } of recs) {
    switch (rec.type) {
      case 'start': {
        if (start === null) {
          start = rec as MetricsStartRecord;
          segStartMs = ms(rec.time);
        } else {
          // Older ES runs wrote a second start record when resumed.
          resumeAt(typeof rec.step === 'number' ? rec.step : stepOf(rec, file, line), rec);
        }
        break;
      }
      case 'resume':
        resumeAt(stepOf(rec, file, line), rec);
        break;
      case 'step':
      case 'episode': {
        if (rec.type === 'episode') sawEpisode = true;
        const step = stepOf(rec, file, line);
        const elapsed = elapsedOf(rec);
        steps.set(step, { step, elapsed, values: numbers(rec, NOT_SERIES) });
        if (elapsed !== undefined) lastStep = { elapsed, ms: ms(rec.time) };
        break;
      }
      case 'val': {
        const step = stepOf(rec, file, line);
        vals.set(step, { step, elapsed: elapsedOf(rec), values: numbers(rec, NOT_SERIES) });
        break;
      }
      case 'epoch': {
        const step = stepOf(rec, file, line);
        epochs.set(step, { step, elapsed: elapsedOf(rec), values: numbers(rec, NOT_SERIES) });
        break;
      }
      case 'test':
        tests.push(rec as MetricsTestRecord);
        break;
      case 'end':
        end = rec as MetricsEndRecord;
        break;
      case 'collapse': // older ES runs: the run stopped on a collapse and wrote no end record
        end = { type: 'end', time: rec.time as string | undefined, step: typeof rec.step === 'number' ? rec.step : undefined, end: 'collapsed', reason: rec.reason };
        break;
      default:
        break; // records of types this reader does not chart are kept out of the report
    }
  }
  const sorted = (m: Map<number, MetricsPoint>): MetricsPoint[] => [...m.values()].sort((a, b) => a.step - b.step);
  const stepList = sorted(steps);
  const method = typeof start?.method === 'string' ? start.method
    : stepList.some((p) => 'sigma' in p.values || 'cand_per_s' in p.values) ? 'es'
      : sawEpisode ? 'backprop' : null;
  if (recs.length === 0) warnings.push(`${file}: no records yet`);
  return { dir, name: basename(dir.replace(/[/\\]+$/, '')) || dir, file, method, start, steps: stepList, vals: sorted(vals), tests, end, epochs: sorted(epochs), resumes, warnings };
}

/** Labels for several runs: directory names, extended by their parent directories where two would read the same. */
export function uniqueNames(dirs: readonly string[]): string[] {
  const parts = dirs.map((d) => d.replace(/[/\\]+$/, '').split(/[/\\]+/).filter((p) => p !== ''));
  const names = parts.map((p) => p[p.length - 1] ?? '.');
  for (let depth = 2; depth <= Math.max(...parts.map((p) => p.length), 1); depth++) {
    const seen = new Map<string, number>();
    for (const n of names) seen.set(n, (seen.get(n) ?? 0) + 1);
    if ([...seen.values()].every((c) => c === 1)) break;
    for (let i = 0; i < names.length; i++) if (seen.get(names[i]!)! > 1) names[i] = parts[i]!.slice(-depth).join('/');
  }
  const count = new Map<string, number>();
  return names.map((n) => {
    const c = (count.get(n) ?? 0) + 1;
    count.set(n, c);
    return c > 1 ? `${n} (${c})` : n;
  });
}
