/** Memory accounting: exact on hand-countable cases; ES bounded in l and P; budget skipping; fresh-process runs; report and charts. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { DirectOps } from '../lib/ops/api.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { episodeLoss } from '../lib/model/protonet.js';
import { Tape, layoutLeaves } from '../lib/autodiff/tape.js';
import { PeakMeter, bytesOf, meterOps } from '../lib/ops/accounting.js';
import { syntheticEpisode } from '../lib/memory/episodes.js';
import { MamlLayout, initMaml } from '../lib/maml/layout.js';
import { mamlBackprop } from '../lib/maml/metagrad.js';
import { paperFormula, predictBytes, runCase, type CaseSpec } from '../lib/memory/cases.js';
import { parseBytes, runInFreshProcess, runSweep, sweepCases, type SweepResult } from '../lib/memory/sweep.js';
import { fmtBytes, markdownReport } from '../lib/memory/report.js';
import { renderSvg, taskLengthPoints } from '../lib/memory/charts.js';

const dev = getDevice('cpu-ts');

test('PeakMeter: peak of the sum, parts at the peak, per-part maxima, reached() restores', () => {
  const m = new PeakMeter();
  m.set('a', 100);
  m.set('b', 50);
  m.reached('c', 30); // a moment with a + b + c = 180
  assert.is(m.current, 150);
  assert.is(m.peak, 180);
  m.set('a', 10);
  m.set('b', 160); // 170 < 180
  assert.is(m.peak, 180);
  assert.equal(m.atPeak, { a: 100, b: 50, c: 30 });
  assert.equal(m.maxima, { a: 100, b: 160, c: 30 });
  assert.is(m.maxOf('b'), 160);
  assert.throws(() => m.set('a', -1), /bytes for a must be a finite number >= 0/);
});

test('meterOps: the largest (intermediate inputs + outputs) of one op call, constants excluded (hand-counted)', () => {
  const m = meterOps(new DirectOps(dev));
  const x = m.ops.constant(Tensor.from(Array.from({ length: 16 }, (_, i) => i - 7.5), [1, 1, 4, 4], 'float64')); // 128 B, excluded
  const w = m.ops.constant(Tensor.from([0, 0, 0, 0, 1, 0, 0, 0, 0], [1, 1, 3, 3], 'float64'));
  const c = m.ops.conv2d(x, w, undefined, { stride: 1, padding: 1 }); // out 128 B -> 128
  const r = m.ops.relu(c); // 128 + 128 = 256
  m.ops.maxpool2d(r, { kernel: 2, stride: 2 }); // 128 + 32 = 160
  assert.is(m.opPeak, 256);
  m.reset();
  assert.is(m.opPeak, 0);
  assert.is(bytesOf({ v: Tensor.zeros([3], 'float64'), t: Tensor.zeros([2, 3], 'float64') }), 72);
});

/** 1 block, C = 2, 4 x 4 images, 2-way 1-shot 1-query, float64: every saved tensor can be counted by hand. */
function handCase() {
  const layout = new ProtoNetLayout({ channels: 2, imageSize: 4, blocks: 1 });
  const params = Float64Array.from(initParams(layout, 1));
  const ep = syntheticEpisode({ way: 2, shot: 1, query: 1, imageSize: 4 }, 3, 0, 'float64');
  return { layout, params, ep, bn: initialBnState(layout) };
}

test('backprop tape bytes are exact on a hand-countable ProtoNet', () => {
  const { layout, params, ep, bn } = handCase();
  const tape = new Tape(dev);
  episodeLoss(tape, layout, params, bn, ep, { bn: 'batch' }, layoutLeaves(tape, layout));
  // N = 4 images [4,1,4,4]; float64 = 8 B, Int32 = 4 B. Saved for backward:
  const images = 4 * 16 * 8;            // conv2d input (the concatenated episode)
  const convOut = 4 * 2 * 16 * 8;       // batchnorm input
  const bnStats = 2 * 2 * 8;            // batchnorm mean and invStd
  const bnOut = 4 * 2 * 16 * 8;         // relu input
  const argmax = 4 * 2 * 2 * 2 * 4;     // max-pool argmax (Int32)
  const supportLabels = 2 * 4;          // prototypes
  const q = 2 * 8 * 8, p = 2 * 8 * 8;   // sqEuclidean inputs: query embeddings and prototypes (E = 2 x 2 x 2 = 8)
  const logp = 2 * 2 * 8;               // logSoftmax output = crossEntropy input (one array)
  const queryLabels = 2 * 4;
  assert.is(tape.bytesHeld(), images + convOut + bnStats + bnOut + argmax + supportLabels + q + p + logp + queryLabels);
});

test('second-order MAML accounting: encoder tape + head tape l (K E + NS K) + parameter vectors, exact', () => {
  const cfg = { model: { channels: 2, imageSize: 4, blocks: 1 }, way: 2, innerSteps: 7, innerLr: 0.3 };
  const layout = new MamlLayout(cfg.model, cfg.way);
  const phi = Float64Array.from(initMaml(layout, 2));
  const ep = syntheticEpisode({ way: 2, shot: 1, query: 1, imageSize: 4 }, 3, 0, 'float64');
  const r = mamlBackprop({ device: dev, layout, cfg, bn: initialBnState(layout.encoder) }, phi, ep, 'second-order');
  const d = layout.numParams; // encoder 18 + 2 + 4 = 24, head 2 x 8 + 2 = 18
  assert.is(d, 42);
  const mx = r.meter.maxima;
  assert.is(mx['params'], 8 * d);
  assert.is(mx['gradient'], 8 * d);
  assert.is(mx['episode'], 4 * 16 * 8);
  assert.is(mx['head tape'], 7 * (2 * 8 + 2 * 2) * 8); // l (K E + NS K) float64s
  assert.is(mx['embeddings'], 4 * 8 * 8);
  // The encoder tape (embed only: images, conv out, BN stats, BN out, argmax) as counted above.
  const encoderAfterForward = 4 * 16 * 8 + 4 * 2 * 16 * 8 + 2 * 2 * 8 + 4 * 2 * 16 * 8 + 4 * 2 * 2 * 2 * 4;
  assert.ok(mx['tape']! >= encoderAfterForward);
  assert.ok(r.meter.peak >= encoderAfterForward + mx['head tape']! + 2 * 8 * d + mx['episode']!);
});

const tiny: Omit<CaseSpec, 'method'> = { channels: 2, imageSize: 16, way: 3, shot: 2, query: 2, seed: 1, device: 'cpu-ts', reps: 0 };

test('ProtoNet ES: the working set is the same for every P; fitness and weights add exactly 16 bytes per member', async () => {
  const a = await runCase({ ...tiny, method: 'es', pop: 8 });
  const b = await runCase({ ...tiny, method: 'es', pop: 64 });
  const d = a.dPhi;
  assert.is(a.dominant.bytes, 4 * d + 4 * d + 8 * d); // theta, noise, noise sum
  assert.is(b.dominant.bytes, a.dominant.bytes);
  assert.is(b.accounted.maxima['fitness']! - a.accounted.maxima['fitness']!, 8 * 56);
  assert.is(b.accounted.maxima['weights']! - a.accounted.maxima['weights']!, 8 * 56);
  assert.ok(b.accounted.peak - a.accounted.peak <= 16 * 56);
  const m = await runCase({ ...tiny, method: 'es-matrix', pop: 64, maxMembers: 8 });
  assert.is(m.dominant.bytes, 64 * d * 4);
  assert.is(m.dominant.bytes, m.formula!.bytes);
  assert.match(m.timeNote, /extrapolated from 8 of 64 members/);
});

test('every method runs; the prediction used for the budget is at least the accounted peak', async () => {
  for (const spec of [
    { ...tiny, method: 'backprop' }, { ...tiny, method: 'forward', fmSample: 2, fmChunk: 2 }, { ...tiny, method: 'es', pop: 4 }, { ...tiny, method: 'es-matrix', pop: 4 },
    { ...tiny, method: 'maml-second-order', innerSteps: 50 }, { ...tiny, method: 'maml-first-order', innerSteps: 50 },
    { ...tiny, method: 'maml-es', innerSteps: 50, pop: 4 }, { ...tiny, method: 'maml-es-matrix', innerSteps: 50, pop: 4 },
  ] as CaseSpec[]) {
    const r = await runCase(spec);
    assert.is(r.status, 'ok');
    assert.ok(r.accounted.peak > 0 && r.dominant.bytes > 0, spec.method);
    assert.ok(predictBytes(spec) >= r.accounted.peak, `${spec.method}: predicted ${predictBytes(spec)} < accounted ${r.accounted.peak}`);
    // The paper gives a closed form for every method but backprop and first-order MAML; ES regenerates
    // its noise, so only the materialized-matrix variants hold the formula's bytes.
    const closedForm = !['backprop', 'maml-first-order'].includes(spec.method);
    assert.is(Boolean(r.formula), closedForm, `${spec.method}: has a closed form`);
    if (closedForm && spec.method !== 'es' && spec.method !== 'maml-es') assert.is(r.dominant.bytes, r.formula!.bytes, `${spec.method}: measured term equals the formula`);
  }
  assert.is(paperFormula({ ...tiny, method: 'forward' })!.bytes, 4 * (3 * 2) * (12 * 2 + 3 * (36 + 6))); // D_psi = way x E (E = C at 16 px), D_phi = 27 C^2 + 21 C
});

test('budget: cases predicted above it are recorded as "out of memory budget" without starting a process', async () => {
  const s = await runSweep('/nonexistent-worker.js', { quick: true, budgetBytes: 2 ** 20, studies: ['channels'] });
  assert.ok(s.cases.length >= 12);
  for (const c of s.cases) {
    assert.is(c.result.status, 'out of memory budget');
    assert.ok(c.result.predictedBytes > 2 ** 20);
  }
  assert.match(markdownReport(s, { device: 'cpu-ts', command: 'test' }), /out of memory budget \(predicted/);
});

test('sweeps: quick covers C 16/32/64, l = 1..1000, P = 64..4096 and the paper 40x case', () => {
  const q = sweepCases({ quick: true });
  const has = (f: (s: CaseSpec) => boolean): boolean => q.some((c) => f(c.spec));
  for (const c of [16, 32, 64]) assert.ok(has((s) => s.method === 'forward' && s.channels === c));
  for (const l of [1, 10, 100, 1000]) assert.ok(has((s) => s.method === 'maml-second-order' && s.innerSteps === l));
  for (const p of [64, 256, 1024, 4096]) assert.ok(has((s) => s.method === 'es' && s.pop === p));
  assert.ok(has((s) => s.method === 'es-matrix' && s.channels === 64 && s.pop === 64 && s.way === 10 && s.imageSize === 32));
  assert.ok(sweepCases({ quick: false }).some((c) => c.spec.innerSteps === 10000));
  assert.is(new Set(q.map((c) => `${c.study}/${c.id}`)).size, q.length);
});

test('a case in a fresh process reports its peak RSS', async () => {
  const worker = fileURLToPath(new URL('../bench/memory-worker.js', import.meta.url));
  const r = await runInFreshProcess(worker, { ...tiny, method: 'maml-second-order', innerSteps: 20 }, 60_000);
  assert.is(r.status, 'ok', r.error);
  assert.ok(r.rss!.maxRss >= r.rss!.baseline && r.rss!.baseline > 10 * 2 ** 20);
  const bad = await runInFreshProcess(worker, { ...tiny, method: 'es', pop: 3 }, 60_000);
  assert.is(bad.status, 'error');
  assert.match(bad.error!, /pop must be an even integer/);
});

test('parseBytes and fmtBytes', () => {
  assert.is(parseBytes('16GiB'), 16 * 2 ** 30);
  assert.is(parseBytes('4g'), 4 * 2 ** 30);
  assert.is(parseBytes('512MiB'), 512 * 2 ** 20);
  assert.is(parseBytes('1e9'), 1e9);
  assert.throws(() => parseBytes('lots'), /cannot parse a byte size from "lots"/);
  assert.is(fmtBytes(1.5 * 2 ** 30), '1.50 GiB');
  assert.is(fmtBytes(512), '512 B');
});

test('report and chart: the 40x table and an SVG with log axes from a small sweep', async () => {
  const results: SweepResult['cases'] = [];
  for (const spec of [
    { ...tiny, channels: 64, imageSize: 32, way: 10, method: 'forward', pop: undefined },
    { ...tiny, channels: 64, imageSize: 32, way: 10, method: 'es', pop: 64 },
    { ...tiny, channels: 64, imageSize: 32, way: 10, method: 'es-matrix', pop: 64 },
  ] as CaseSpec[]) {
    const f = paperFormula(spec)!;
    const dominant = spec.method === 'es' ? 16 * 111936 : f.bytes;
    results.push({ study: 'channels', id: spec.method, spec, result: {
      spec, status: 'ok', device: 'cpu-ts', dPhi: 111936, dPsi: 2560, formula: f, dominant: { name: 'x', bytes: dominant },
      accounted: { peak: dominant * 1.1, atPeak: {}, maxima: {} }, predictedBytes: 0, seconds: 1, timeNote: 'measured', rss: { maxRss: dominant * 1.2, baseline: 1 },
    } });
  }
  for (const l of [1, 10]) {
    const spec: CaseSpec = { ...tiny, method: 'maml-second-order', innerSteps: l };
    results.push({ study: 'task-length', id: `l${l}`, spec, result: { ...results[0]!.result, spec, dominant: { name: 'head tape', bytes: 100 * l } } });
  }
  const sweep: SweepResult = { quick: true, budgetBytes: 2 ** 34, startedAt: 'now', seconds: 1, cases: results };
  const md = markdownReport(sweep, { device: 'cpu-ts', command: 'npm run bench:memory -- --quick' });
  assert.match(md, /The paper's 40x case/);
  assert.match(md, /\*\*40\.0x\*\* \(paper: "approximately forty times"\)/);
  assert.match(md, /\*\*640x\*\*/); // Jacobian 4 D_psi D_phi over 16 D_phi bytes: D_psi / 4
  assert.is(taskLengthPoints(sweep).length, 6);
  const svg = await renderSvg({ data: { values: taskLengthPoints(sweep) }, mark: 'line', encoding: { x: { field: 'x', type: 'quantitative', scale: { type: 'log' }, title: 'inner steps l' }, y: { field: 'bytes', type: 'quantitative', scale: { type: 'log' } } } });
  assert.match(svg, /^<svg/);
  assert.match(svg, /inner steps l/);
});

test.run();
