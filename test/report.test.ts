/** Run reports without a browser: reading metrics.jsonl (new and older records, resumes, bad input), smoothing, thinning, overlays, the files written, and the CLI. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readRun, uniqueNames, ema, thin, chartRows, timeUnit, writeRunReport, autoSmoothing } from '../lib/report/index.js';
import { METRICS, buildCharts } from '../lib/report/charts.js';
import { UserError } from '../lib/errors.js';
import { esRun, oldBackpropRun, oldEsRun, writeRun } from './helpers/metrics-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'evometa-report-'));
const cli = join(dirname(fileURLToPath(import.meta.url)), '../lib/cli/main.js');
const metric = (id: string) => METRICS.find((m) => m.id === id)!;
const opt = { smoothing: 'auto' as const, maxPoints: 1500 };

function throwsUser(fn: () => unknown, re: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, UserError);
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable('expected a UserError');
}

test('reads a run in the unified schema: steps, validations, tests, end, method and config', () => {
  const dir = writeRun(join(root, 'es-new'), esRun(1, 120, 40));
  const r = readRun(dir);
  assert.is(r.method, 'es');
  assert.is(r.steps.length, 120);
  assert.equal(r.vals.map((v) => v.step), [0, 40, 80, 120]);
  assert.is(r.tests.length, 2);
  assert.equal(r.tests.map((t) => t.shot), [5, 1]);
  assert.is(r.end?.end, 'done');
  assert.is((r.start?.config as { pop: number }).pop, 32);
  assert.ok(r.steps.every((p, i) => i === 0 || p.elapsed! > r.steps[i - 1]!.elapsed!), 'elapsed increases');
  assert.ok(Number.isFinite(r.steps[0]!.values.cand_per_s));
  assert.equal(r.warnings, []);
});

test('reads the older ES records: method inferred, validations placed on the wall clock from their time stamps', () => {
  const r = readRun(writeRun(join(root, 'es-old'), oldEsRun(2, 60)));
  assert.is(r.method, 'es');
  assert.is(r.steps.length, 60);
  assert.is(r.end, null);
  // The step-0 validation is stamped 0.6 s after the start record; the last one 0.6 s after the last step record (elapsed 0.75 + 59 * 0.1).
  assert.ok(Math.abs(r.vals[0]!.elapsed! - 0.6) < 1e-9, String(r.vals[0]!.elapsed));
  assert.ok(Math.abs(r.vals[1]!.elapsed! - (0.75 + 5.9 + 0.6)) < 1e-6, String(r.vals[1]!.elapsed));
});

test('reads the older backprop records: episode as step, epoch summaries kept, no start record', () => {
  const r = readRun(writeRun(join(root, 'bp-old'), oldBackpropRun(3, 40, 20)));
  assert.is(r.method, 'backprop');
  assert.is(r.start, null);
  assert.is(r.steps.length, 40);
  assert.equal(r.vals.map((v) => v.step), [0, 20, 40]);
  assert.is(r.epochs.length, 2);
  assert.is(r.steps[35]!.values.lr, 0.0005);
  assert.is(r.tests[0]!.test_acc, 0.97);
});

test('a resume drops the records past its step, later records replace earlier ones, and wall-clock runs on', () => {
  const recs = esRun(4, 30, 10).filter((x) => x.type !== 'test' && x.type !== 'end');
  const before = recs.filter((x) => x.type === 'start' || (x.step as number) <= 25);
  const lastElapsed = before.filter((x) => x.type === 'step').at(-1)!.elapsed_s as number;
  const after = [{ type: 'resume', time: '2026-01-01T01:00:00.000Z', step: 20 }];
  for (let s = 21; s <= 30; s++) after.push({ type: 'step', time: '2026-01-01T01:00:01.000Z', step: s, elapsed_s: 0.1 * (s - 20), loss: 100 + s } as never);
  after.push({ type: 'val', time: '2026-01-01T01:00:02.000Z', step: 30, elapsed_s: 1.1, val_acc: 0.99, val_ci95: 0.01 } as never);
  const r = readRun(writeRun(join(root, 'resumed'), [...before, ...after]));
  assert.is(r.resumes, 1);
  assert.equal(r.steps.map((p) => p.step), Array.from({ length: 30 }, (_, i) => i + 1));
  assert.ok(r.steps.slice(0, 20).every((p) => p.values.loss! < 100), 'steps up to the resume step are the first segment\'s');
  assert.ok(r.steps.slice(20).every((p) => p.values.loss! > 100), 'steps past it are the resumed segment\'s');
  assert.equal(r.vals.map((v) => v.step), [0, 10, 20, 30]);
  assert.is(r.vals[3]!.values.val_acc, 0.99);
  // The resumed writer restarted its clock: the time of the kept first segment (up to step 20) is added.
  const kept = r.steps[19]!.elapsed!;
  assert.ok(kept < lastElapsed);
  assert.ok(Math.abs(r.steps[20]!.elapsed! - (kept + 0.1)) < 1e-9, `${r.steps[20]!.elapsed} vs ${kept + 0.1}`);
});

test('an older ES run resumed in the same directory (a second start record) reads as a resume', () => {
  const first = oldEsRun(13, 30).filter((x) => x.type !== 'val' || x.step === 0);
  const second = oldEsRun(14, 30).map((x) => (x.type === 'start' ? { ...x, step: 20, resumed_from: 'last.safetensors' } : x.type === 'step' ? { ...x, step: (x.step as number) + 20, loss: 50 } : x))
    .filter((x) => x.type !== 'val' || x.step !== 0);
  const r = readRun(writeRun(join(root, 'old-resumed'), [...first, ...second]));
  assert.is(r.resumes, 1);
  assert.is(r.start?.step, 0, 'the first start record is the run\'s');
  assert.is(r.steps.length, 50);
  assert.ok(r.steps.slice(0, 20).every((p) => p.values.loss! < 50) && r.steps.slice(20).every((p) => p.values.loss === 50));
  assert.ok(r.steps.every((p, i) => i === 0 || p.elapsed! >= r.steps[i - 1]!.elapsed!), 'wall-clock does not run backwards');
});

test('a malformed line is refused with the file and line; a torn last line is skipped with a warning', () => {
  const recs = esRun(5, 10, 5).map((x) => JSON.stringify(x));
  const bad = join(root, 'bad');
  mkdirSync(bad);
  writeRun(bad, []);
  writeFileSync(join(bad, 'metrics.jsonl'), [recs[0], recs[1], '{"type":"step","step":3,"loss":', recs[3]].join('\n') + '\n');
  throwsUser(() => readRun(bad), /bad[/\\]metrics\.jsonl:3: not valid JSON/);
  writeFileSync(join(bad, 'metrics.jsonl'), [recs[0], '[1,2]'].join('\n') + '\n');
  throwsUser(() => readRun(bad), /metrics\.jsonl:2: a metrics record must be a JSON object with a string "type"/);
  writeFileSync(join(bad, 'metrics.jsonl'), [recs[0], '{"type":"step","loss":1}'].join('\n') + '\n');
  throwsUser(() => readRun(bad), /metrics\.jsonl:2: a "step" record needs a numeric "step" field/);
  const torn = writeRun(join(root, 'torn'), esRun(5, 10, 5).slice(0, 8), '{"type":"step","step":9,"lo');
  const r = readRun(torn);
  assert.is(r.steps.length, 5);
  assert.is(r.warnings.length, 1);
  assert.match(r.warnings[0]!, /metrics\.jsonl:9: skipped an incomplete last line/);
});

test('a directory without metrics.jsonl, or a missing directory, is a clear error', () => {
  const empty = join(root, 'empty');
  mkdirSync(empty);
  throwsUser(() => readRun(empty), /empty: no metrics\.jsonl in this directory/);
  throwsUser(() => readRun(join(root, 'nope')), /nope: no such run directory/);
});

test('EMA: bias-corrected from the first value, constant series unchanged, non-finite values passed over', () => {
  assert.equal(ema([3, 3, 3, 3], 0.9).map((v) => +v.toFixed(12)), [3, 3, 3, 3]);
  const s = ema([1, 2], 0.5);
  assert.is(s[0], 1);
  assert.ok(Math.abs(s[1]! - (0.25 + 1) / 0.75) < 1e-12);
  const n = ema([1, NaN, 2], 0.5);
  assert.ok(Number.isNaN(n[1]!));
  assert.ok(Math.abs(n[2]! - s[1]!) < 1e-12, 'NaN does not move the average');
  assert.equal(ema([5, 7], 0), [5, 7]);
  assert.throws(() => ema([1], 1), /\[0, 1\)/);
  assert.ok(autoSmoothing(300) === 0.9 && autoSmoothing(10) === 0.8 && autoSmoothing(1e7) === 1 - 1 / 2000);
});

test('thinning keeps each bucket\'s extremes and the last point, within the limit', () => {
  const pts = Array.from({ length: 10000 }, (_, i) => ({ x: i, y: i === 4321 ? 99 : i === 777 ? -99 : Math.sin(i) }));
  const t = thin(pts, 200);
  assert.ok(t.length <= 201, String(t.length));
  assert.ok(t.some((p) => p.y === 99) && t.some((p) => p.y === -99), 'spikes survive');
  assert.is(t.at(-1)!.x, 9999);
  assert.ok(t.every((p, i) => i === 0 || p.x > t[i - 1]!.x), 'x order kept');
  assert.is(thin(pts.slice(0, 50), 200).length, 50);
});

test('overlay rows: every run by name, raw and smoothed loss, validation band in percent, wall-clock in the chosen unit', () => {
  const a = readRun(writeRun(join(root, 'ov', 'a'), esRun(6, 90, 30)));
  const b = readRun(writeRun(join(root, 'ov', 'b'), esRun(7, 60, 30)));
  a.name = 'a';
  b.name = 'b';
  const loss = chartRows([a, b], metric('loss'), 'step', timeUnit(10), opt);
  assert.equal([...new Set(loss.map((r) => r.run))], ['a', 'b']);
  assert.is(loss.filter((r) => r.run === 'a' && r.kind === 'raw').length, 90);
  assert.is(loss.filter((r) => r.run === 'b' && r.kind === 'line').length, 60);
  const val = chartRows([a, b], metric('val-acc'), 'step', timeUnit(10), opt);
  const v = val.find((r) => r.run === 'a' && r.x === 30)!;
  assert.ok(Math.abs(v.hi! - v.lo! - 6) < 1e-9, 'band of +-3 percentage points');
  assert.ok(v.y > 50 && v.y < 100, 'percent');
  assert.equal(timeUnit(100), { name: 's', seconds: 1 });
  assert.equal(timeUnit(600), { name: 'min', seconds: 60 });
  const tl = chartRows([a], metric('loss'), 'time', timeUnit(600), opt);
  assert.ok(Math.abs(tl.at(-1)!.x - a.steps.at(-1)!.elapsed! / 60) < 1e-12);
  // against member-evaluations: a validation at step s after the evals of the last step record numbered below s
  // (the trainer numbers steps from 0: the validation at step 5 follows step record 4)
  const recs: Record<string, unknown>[] = [{ type: 'start', time: '2026-01-01T00:00:00.000Z', method: 'es', step: 0, config: { pop: 64 } }];
  for (let k = 0; k <= 10; k++) {
    if (k % 5 === 0) recs.push({ type: 'val', time: '2026-01-01T00:00:01.000Z', step: k, elapsed_s: k, val_acc: 0.5 + k / 100, val_ci95: 0.01 });
    if (k < 10) recs.push({ type: 'step', time: '2026-01-01T00:00:01.000Z', step: k, elapsed_s: k + 0.5, loss: 1, sigma: 0.01, evals: 64 * (k + 1) });
  }
  const real = readRun(writeRun(join(root, 'ov', 'real'), recs as never));
  const ve = chartRows([real], metric('val-acc'), 'evals', timeUnit(10), opt);
  assert.equal(ve.map((r) => r.x), [0, 320, 640]);
  assert.equal(ve.map((r) => Math.round(r.y * 10) / 10), [50, 55, 60]);
  const bp = readRun(writeRun(join(root, 'ov', 'bp'), oldBackpropRun(3, 40, 20)));
  assert.equal(chartRows([bp], metric('val-acc'), 'evals', timeUnit(10), opt), [], 'a run without evaluation counts has no such points');
});

test('charts a method does not log are left out; each chart has axis titles and line marks', async () => {
  const es = readRun(writeRun(join(root, 'om', 'es'), esRun(8, 50, 25)));
  const bp = readRun(writeRun(join(root, 'om', 'bp'), oldBackpropRun(9, 40, 20)));
  const ids = (cs: Awaited<ReturnType<typeof buildCharts>>) => cs.map((c) => c.id);
  const esCharts = await buildCharts([es], opt);
  // validation accuracy of ES runs also against member-evaluations; backprop logs none
  assert.equal(ids(esCharts), ['loss', 'val-acc', 'cand-per-s', 'sigma', 'g-norm'].flatMap((m) => [`${m}-vs-step`, `${m}-vs-time`, ...(m === 'val-acc' ? [`${m}-vs-evals`] : [])]));
  const bpCharts = await buildCharts([bp], opt);
  assert.equal(ids(bpCharts), ['loss', 'val-acc', 'train-acc', 'lr'].flatMap((m) => [`${m}-vs-step`, `${m}-vs-time`]));
  for (const c of [...esCharts, ...bpCharts]) {
    assert.ok(c.svg.includes('training step') || c.svg.includes('wall-clock time since start (') || c.svg.includes('member-evaluations (population members evaluated)'), `${c.id}: x axis title`);
    assert.ok(c.svg.includes(`>${c.metric.yTitle.replace(/&/g, '&amp;')}<`), `${c.id}: y axis title ${c.metric.yTitle}`);
    assert.match(c.svg, /class="mark-line role-mark[^"]*"[^>]*>\s*<path[^>]* d="M/, `${c.id}: a drawn line`);
  }
  const both = await buildCharts([es, bp], opt);
  assert.ok(ids(both).includes('sigma-vs-step') && ids(both).includes('lr-vs-step'), 'the union of the two methods');
});

test('writeRunReport writes one HTML page with inline SVG, tables, and each chart as an SVG file', async () => {
  const a = writeRun(join(root, 'w', 'seed1'), esRun(10, 60, 20));
  const b = writeRun(join(root, 'w', 'seed2'), esRun(11, 60, 20));
  const out = join(root, 'w', 'out', 'rep.html');
  const r = await writeRunReport([a, b], out);
  assert.is(r.html, out);
  assert.is(r.svgs.length, 11); // 5 ES metrics x (step, time), and validation accuracy vs member-evaluations
  for (const s of r.svgs) {
    assert.ok(s.startsWith(join(root, 'w', 'out', 'rep-charts')), s);
    assert.match(readFileSync(s, 'utf8'), /^<\?xml[^>]*>\n<svg /);
  }
  const html = readFileSync(out, 'utf8');
  assert.is((html.match(/<figure class="chart"/g) ?? []).length, 11);
  assert.not.match(html, /<script|https?:\/\/(?!www\.w3\.org)/, 'no script and no network reference');
  for (const s of ['seed1', 'seed2', '81.0% ± 2.0%', '62.0% ± 3.0%', '5-way 1-shot', 'model.channels']) assert.ok(html.includes(s), s);
  assert.ok(html.includes('class="differs">seed<'), 'the differing seed is highlighted');
  const ids = [...html.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]);
  assert.is(new Set(ids).size, ids.length, 'ids are unique across the inlined SVGs');
  assert.equal(uniqueNames(['/x/runs/a', '/y/runs/a', '/z/b/']), ['x/runs/a', 'y/runs/a', 'b']);
});

test('evometa report: prints the page path; exits 2 naming the file and line of a bad record', async () => {
  const run = (args: string[]) => spawnSync(process.execPath, [cli, 'report', ...args], { encoding: 'utf8', timeout: 60000 });
  const dir = writeRun(join(root, 'cli', 'run'), esRun(12, 30, 10));
  const ok = run([dir]);
  assert.is(ok.status, 0, ok.stderr);
  assert.is(ok.stdout.trim(), join(dir, 'report.html'));
  assert.ok(existsSync(join(dir, 'report-charts', 'loss-vs-step.svg')));
  const bad = writeRun(join(root, 'cli', 'bad'), esRun(12, 3, 10), 'not json\n{"type":"end","end":"done"}\n');
  const e = run([bad, '--out', join(root, 'cli', 'x.html')]);
  assert.is(e.status, 2);
  assert.match(e.stderr, /^evometa: .*bad[/\\]metrics\.jsonl:9: not valid JSON/m);
  // The same checks in-process (no more node start-ups): a directory without metrics, a smoothing weight out of range.
  const empty = join(root, 'cli', 'empty');
  mkdirSync(empty);
  throwsUser(() => readRun(empty), /empty: no metrics\.jsonl/);
  try {
    await writeRunReport([dir], join(root, 'cli', 'y.html'), { smoothing: 1 });
    assert.unreachable('smoothing 1 accepted');
  } catch (err) {
    assert.instance(err, UserError);
    assert.match((err as Error).message, /--smoothing: expected a weight in \[0, 1\)/);
  }
});

test.run();
