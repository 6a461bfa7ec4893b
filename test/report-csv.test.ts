/** Metrics sinks: CSV per record type (round trip, a header that widens, a resumed run appending), the tee, and MetricsLog as a sink. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CsvMetricsSink, flattenRecord, readMetricsCsv, teeSinks, type MetricsSink } from '../lib/train/metrics-sinks.js';
import { MetricsLog } from '../lib/train/metrics.js';
import { readRun } from '../lib/report/index.js';
import { UserError } from '../lib/errors.js';
import { esRun } from './helpers/metrics-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'evometa-csv-'));

/** What a record should read back as: flat keys, no type (it names the file), null and undefined left out. */
function expected(rec: Record<string, unknown>): Record<string, unknown> {
  const { type: _t, ...rest } = rec;
  return Object.fromEntries(Object.entries(flattenRecord(rest)).filter(([, v]) => v !== null && v !== undefined));
}

test('CSV round trip: every record type parses back equal to what was written, one file per type', () => {
  const dir = join(root, 'rt');
  const sink = new CsvMetricsSink(dir);
  const recs = esRun(1, 50, 25);
  // Values that a plain CSV writer gets wrong: NaN and infinities, quotes/commas/newlines in strings, tiny and huge numbers, nulls.
  recs.splice(3, 0, { type: 'step', time: '2026-01-01T00:00:01.000Z', step: 2.5, elapsed_s: 1e-7, loss: NaN, fitness_mean: -Infinity, fitness_max: Infinity, sigma: 1.2345678901234567e-12, g_norm: 6.02e23, mu_norm: 0, cand_per_s: 0.1 + 0.2, evals: 64 });
  recs.push({ type: 'test', time: '2026-01-01T00:09:00.000Z', checkpoint: 'runs/a "b", c\nd.safetensors', episodes: 10, way: 5, shot: 1, query: 15, test_acc: 0.5, test_ci95: null, test_loss: 1 });
  for (const r of recs) sink.write(r);
  assert.equal(readdirSync(dir).sort(), ['metrics-end.csv', 'metrics-start.csv', 'metrics-step.csv', 'metrics-test.csv', 'metrics-val.csv']);
  for (const type of ['start', 'step', 'val', 'test', 'end']) {
    const back = readMetricsCsv(sink.pathFor(type));
    const want = recs.filter((r) => r.type === type).map(expected);
    assert.is(back.length, want.length, type);
    back.forEach((b, i) => {
      const w = want[i]!;
      assert.equal(Object.keys(b).sort(), Object.keys(w).sort(), `${type} row ${i} keys`);
      for (const k of Object.keys(w)) {
        if (typeof w[k] === 'number' && Number.isNaN(w[k])) assert.ok(Number.isNaN(b[k] as number), `${type}.${k} NaN`);
        else assert.is(b[k], w[k], `${type} row ${i} ${k}`);
      }
    });
  }
  const header = readFileSync(sink.pathFor('step'), 'utf8').split('\n')[0];
  assert.is(header, 'step,elapsed_s,time,loss,fitness_mean,fitness_max,sigma,g_norm,mu_norm,cand_per_s,evals', 'step, elapsed_s, time first; then the record order');
  assert.ok(readFileSync(sink.pathFor('start'), 'utf8').split('\n')[0]!.includes('config.model.channels'), 'nested config as dotted columns');
});

test('a field the header lacks widens it once; earlier rows get empty cells; a second sink (a resumed run) appends under the same header', () => {
  const dir = join(root, 'wide');
  const sink = new CsvMetricsSink(dir);
  sink.write({ type: 'step', time: 't0', step: 1, loss: 1 });
  sink.write({ type: 'step', time: 't1', step: 2, loss: 2, working_bytes: 100 });
  sink.write({ type: 'step', time: 't2', step: 3, loss: 3 });
  const text = readFileSync(sink.pathFor('step'), 'utf8');
  assert.is(text, 'step,time,loss,working_bytes\n1,t0,1,\n2,t1,2,100\n3,t2,3,\n');
  const resumed = new CsvMetricsSink(dir);
  resumed.write({ type: 'step', time: 't3', loss: 4, step: 4, working_bytes: 5 });
  assert.equal(readMetricsCsv(sink.pathFor('step')).at(-1), { step: 4, time: 't3', loss: 4, working_bytes: 5 });
  assert.throws(() => sink.write({ type: '../x', step: 1 }), (e: unknown) => e instanceof UserError && /"type" must be a word/.test((e as Error).message));
});

test('teeSinks stamps one time for all sinks; MetricsLog is a MetricsSink and the report reads what it wrote', () => {
  const dir = join(root, 'tee');
  const log: MetricsSink = new MetricsLog(join(dir, 'metrics.jsonl'));
  const csv = new CsvMetricsSink(dir);
  const both = teeSinks(log, csv);
  for (const r of esRun(2, 20, 10)) {
    const { time: _t, ...noTime } = r;
    both.write(noTime);
  }
  both.close?.();
  const jsonl = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const steps = readMetricsCsv(csv.pathFor('step'));
  const jsteps = jsonl.filter((r) => r.type === 'step');
  assert.is(steps.length, 20);
  steps.forEach((s, i) => {
    assert.is(s.time, jsteps[i]!.time, 'same time stamp in both');
    assert.is(s.loss, jsteps[i]!.loss);
  });
  const run = readRun(dir);
  assert.is(run.steps.length, 20);
  assert.is(run.tests.length, 2);
});

test.run();
