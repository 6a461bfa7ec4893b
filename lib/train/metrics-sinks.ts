/**
 * Where a training run's metrics records go. The loop writes each record to a MetricsSink:
 * MetricsLog (metrics.jsonl, lib/train/metrics.ts) is one, CsvMetricsSink (one CSV per record
 * type) is another, and teeSinks writes to several.
 *
 * CSV format: `metrics-<type>.csv` in the run directory (metrics-step.csv, metrics-val.csv,
 * metrics-test.csv, ...). The header is the first record's fields, with `step`, `elapsed_s` and
 * `time` first when present and the rest in the record's order; nested objects (the start
 * record's config) become dotted columns (`config.model.channels`), arrays a JSON cell. A later
 * record with a field the header lacks adds a column at the end: the file is rewritten once with
 * the wider header (earlier rows get empty cells), so every row always has the header's columns.
 * Cells: numbers in full precision (String(x), which reads back exactly), NaN as `NaN`, infinities
 * as `inf`/`-inf`, booleans as `true`/`false`, null or absent as an empty cell.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { parse } from 'csv-parse/sync';
import { UserError } from '../errors.js';

/** Anything the training loop can hand its metrics records to. */
export interface MetricsSink {
  write(record: Record<string, unknown>): void;
  /** Flush and release what the sink holds (optional: the built-in sinks write through). */
  close?(): void;
}

/** Write each record to every sink, with one `time` stamp shared by all of them. */
export function teeSinks(...sinks: MetricsSink[]): MetricsSink {
  return {
    write(record) {
      const r = 'time' in record ? record : { time: new Date().toISOString(), ...record };
      for (const s of sinks) s.write(r);
    },
    close() {
      for (const s of sinks) s.close?.();
    },
  };
}

/** Nested objects to dotted keys; arrays stay values (written as JSON cells). */
export function flattenRecord(obj: Record<string, unknown>, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) flattenRecord(v as Record<string, unknown>, key, out);
    else out[key] = v;
  }
  return out;
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : v === Infinity ? 'inf' : v === -Infinity ? '-inf' : String(v);
  if (typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

const LEAD = ['step', 'elapsed_s', 'time'];
const TYPE_OK = /^[A-Za-z0-9_-]+$/;

/** One CSV file per record type in `dir` (see the module comment for the format). */
export class CsvMetricsSink implements MetricsSink {
  private readonly headers = new Map<string, string[]>();

  constructor(readonly dir: string, readonly prefix = 'metrics-') {
    mkdirSync(dir, { recursive: true });
  }

  /** The file that records of this type go to. */
  pathFor(type: string): string {
    return join(this.dir, `${this.prefix}${type}.csv`);
  }

  write(record: Record<string, unknown>): void {
    const type = record.type;
    if (typeof type !== 'string' || !TYPE_OK.test(type)) throw new UserError(`metrics record: "type" must be a word of letters, digits, _ or -, got ${JSON.stringify(type)}`);
    const { type: _t, ...rest } = record;
    const flat = flattenRecord('time' in rest ? rest : { time: new Date().toISOString(), ...rest });
    const path = this.pathFor(type);
    let header = this.headers.get(type) ?? this.readHeader(path);
    if (!header) {
      const keys = Object.keys(flat);
      header = [...LEAD.filter((k) => keys.includes(k)), ...keys.filter((k) => !LEAD.includes(k))];
      writeFileSync(path, stringify([header]));
    } else {
      const extra = Object.keys(flat).filter((k) => !header!.includes(k));
      if (extra.length > 0) header = this.widen(path, [...header, ...extra]);
    }
    this.headers.set(type, header);
    appendFileSync(path, stringify([header.map((k) => cell(flat[k]))]));
  }

  /** The header of a file a previous process wrote (a resumed run appends to it). */
  private readHeader(path: string): string[] | undefined {
    if (!existsSync(path)) return undefined;
    const rows = parse(readFileSync(path), { to_line: 1 }) as string[][];
    return rows[0] && rows[0].length > 0 ? rows[0] : undefined;
  }

  /** Rewrite the file with a wider header, padding the rows already written. */
  private widen(path: string, header: string[]): string[] {
    const rows = parse(readFileSync(path), { relax_column_count: true }) as string[][];
    const body = rows.slice(1).map((r) => [...r, ...new Array<string>(header.length - r.length).fill('')]);
    const tmp = `${path}.tmp`;
    writeFileSync(tmp, stringify([header, ...body]));
    renameSync(tmp, path);
    return header;
  }
}

/** A CSV cell back to a value: '' is absent, NaN/inf/-inf and numbers are numbers, true/false booleans, the rest strings. */
export function parseCell(s: string): unknown {
  if (s === '') return undefined;
  if (s === 'NaN') return NaN;
  if (s === 'inf') return Infinity;
  if (s === '-inf') return -Infinity;
  if (s === 'true') return true;
  if (s === 'false') return false;
  if (/^-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s)) return Number(s);
  return s;
}

/** Read a metrics CSV back into records (flat keys; empty cells left out). */
export function readMetricsCsv(path: string): Array<Record<string, unknown>> {
  const rows = parse(readFileSync(path), { relax_column_count: true }) as string[][];
  const [header, ...body] = rows;
  if (!header) return [];
  return body.map((r) => {
    const o: Record<string, unknown> = {};
    header.forEach((k, i) => {
      const v = parseCell(r[i] ?? '');
      if (v !== undefined) o[k] = v;
    });
    return o;
  });
}
