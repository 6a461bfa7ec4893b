/** Memory accounting exact on hand-countable cases (tape, ES forward, MAML records); the same categories for every method; budget skipping; measurement fields of fresh-process runs present and plausible; report and charts. */
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
import { PART, PeakMeter, bytesOf, meterOps } from '../lib/ops/accounting.js';
import { syntheticEpisode } from '../lib/memory/episodes.js';
import { MamlLayout, initMaml } from '../lib/maml/layout.js';
import { mamlBackprop } from '../lib/maml/metagrad.js';
import { fullBackprop } from '../lib/maml/full.js';
import { convnetBackward, convnetForward, recordBytes, stepRecordBytes } from '../lib/maml/convnet.js';
import { nativeMemStats } from '../lib/memory/measure.js';
import { fullStepBytes, paperFormula, predictBytes, runCase, type CaseSpec } from '../lib/memory/cases.js';
import { measureIdle, parseBytes, runInFreshProcess, runSweep, sweepCases, type SweepResult } from '../lib/memory/sweep.js';
import { fmtBytes, markdownReport } from '../lib/memory/report.js';
import { renderSvg, taskLengthPoints } from '../lib/memory/charts.js';

const dev = getDevice('cpu-ts');

test('PeakMeter: peak of the sum, parts at the peak, per-part maxima, reached() restores, the probe runs on every change', () => {
  let probes = 0;
  const m = new PeakMeter(() => { probes++; });
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
  assert.is(probes, 5);
});

test('meterOps: the largest (intermediate inputs + outputs) of one op call, constants excluded (hand-counted)', () => {
  const m = meterOps(new DirectOps(dev));
  const x = m.ops.constant(Tensor.from(Array.from({ length: 16 }, (_, i) => i - 7.5), [1, 1, 4, 4], 'float64')); // 128 B, excluded
  const w = m.ops.constant(Tensor.from([0, 0, 0, 0, 1, 0, 0, 0, 0], [1, 1, 3, 3], 'float64'));
  const c = m.ops.conv2d(x, w, undefined, { stride: 1, padding: 1 }); // out 128 B -> 128
  const r = m.ops.relu(c); // 128 + 128 = 256
  const p = m.ops.maxpool2d(r, { kernel: 2, stride: 2 }); // 128 + 32 = 160
  m.ops.reshape(p, [1, 4]); // a view: allocates nothing
  m.ops.sliceRows(m.ops.reshape(p, [4, 1]), 1, 3); // a view of an output already counted
  assert.is(m.opPeak, 256);
  assert.is(m.allocated, 128 + 128 + 32); // every output array once
  m.reset();
  assert.is(m.opPeak, 0);
  assert.is(m.allocated, 0);
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
  // N = 4 images [4,1,4,4]; float64 = 8 B, Int32 = 4 B. Saved for backward (the block's BN, ReLU and
  // max-pool are one fused op, bnReluPool, which keeps neither the BN nor the ReLU output):
  const images = 4 * 16 * 8;            // conv2d input (the concatenated episode)
  const convOut = 4 * 2 * 16 * 8;       // bnReluPool input
  const bnStats = 2 * 2 * 8;            // its batch mean and invStd
  const pooled = 4 * 2 * 2 * 2 * 8;     // its output (the sign of which is ReLU's mask)
  const argmax = 4 * 2 * 2 * 2 * 4;     // its argmax (Int32)
  const supportLabels = 2 * 4;          // prototypes
  const p = 2 * 8 * 8;                  // sqEuclidean's prototypes (E = 2 x 2 x 2 = 8); its query embeddings are rows of the pooled output, already held
  const logp = 2 * 2 * 8;               // logSoftmax output = crossEntropy input (one array)
  const queryLabels = 2 * 4;
  assert.is(tape.bytesHeld(), images + convOut + bnStats + pooled + argmax + supportLabels + p + logp + queryLabels);
});

test('ES activations (every op output of one forward) are exact on the same hand-countable ProtoNet', () => {
  const { layout, params, ep, bn } = handCase();
  const m = meterOps(new DirectOps(dev));
  episodeLoss(m.ops, layout, params, bn, ep, { bn: 'batch' });
  const conv = 4 * 2 * 16 * 8;            // conv2d output
  const bnOut = 4 * 2 * 16 * 8 + 2 * 2 * 8; // BN y, mean, variance
  const relu = 4 * 2 * 16 * 8;
  const pool = 4 * 2 * 2 * 2 * 8;         // max-pool y (the reshape and the two row slices are views of it)
  const protos = 2 * 8 * 8;               // prototypes [way, E]
  const dist = 2 * 2 * 8, logits = 2 * 2 * 8, logp = 2 * 2 * 8, loss = 8;
  assert.is(m.allocated, conv + bnOut + relu + pool + protos + dist + logits + logp + loss);
});

test('MAML with every parameter adapted: a step record is exact (hand count), and second order keeps l of them', () => {
  const cfg = { model: { channels: 2, imageSize: 4, blocks: 1 }, way: 2, innerSteps: 3, innerLr: 0.2 };
  const layout = new MamlLayout(cfg.model, cfg.way);
  const phi = Float64Array.from(initMaml(layout, 2));
  const ep = syntheticEpisode({ way: 2, shot: 1, query: 1, imageSize: 4 }, 3, 0, 'float64');
  assert.is(layout.numParams, 18 + 2 + 2 + 2 + 2 * 8 + 2); // conv w, conv b, BN gamma, beta; head W [2, 8], b
  const rec = convnetForward(dev, layout, phi, ep.support, ep.supportLabels);
  convnetBackward(dev, layout, rec, new Float64Array(layout.numParams));
  // Support: 2 images [2,1,4,4]; float64. theta 42; conv out, ReLU out, BN-output and conv-output adjoints [2,2,4,4] each;
  // BN mean and invStd [2] each; argmax [2,2,2,2] Int32; embeddings [2, 8]; probabilities [2, 2]. The images are the episode's.
  const hand = 42 * 8 + 4 * (2 * 2 * 16 * 8) + 2 * 2 * 8 + 16 * 4 + 2 * 8 * 8 + 2 * 2 * 8;
  assert.is(hand, 2640);
  assert.is(recordBytes(rec), hand);
  assert.is(stepRecordBytes(layout, 2, 8), hand);
  const r = fullBackprop({ device: dev, layout, cfg }, phi, ep, 'second-order');
  assert.is(r.meter.maxOf(PART.innerTape), 3 * hand);
  assert.is(r.meter.maxOf(PART.parameters), 42 * 8);
  assert.is(r.meter.maxOf(PART.episode), 4 * 16 * 8);
  assert.ok(r.meter.peak >= 3 * hand + 2 * 42 * 8 + 4 * 16 * 8);
  const fo = fullBackprop({ device: dev, layout, cfg }, phi, ep, 'first-order');
  assert.is(fo.meter.maxOf(PART.innerTape), 0);
  assert.is(fo.meter.maxOf(PART.activations), hand - 42 * 8); // one step's record at a time (its theta is inner-loop state)
  assert.is(fullStepBytes({ method: 'maml-second-order', channels: 32, imageSize: 28, way: 5, shot: 5, query: 5, seed: 1, innerSteps: 1 }),
    stepRecordBytes(new MamlLayout({ channels: 32, imageSize: 28 }, 5), 25, 4));
});

test('head-only learner, second order: encoder tape, head tape l (K E + NS K) and parameter vectors, exact', () => {
  const cfg = { model: { channels: 2, imageSize: 4, blocks: 1 }, way: 2, innerSteps: 7, innerLr: 0.3 };
  const layout = new MamlLayout(cfg.model, cfg.way);
  const phi = Float64Array.from(initMaml(layout, 2));
  const ep = syntheticEpisode({ way: 2, shot: 1, query: 1, imageSize: 4 }, 3, 0, 'float64');
  const r = mamlBackprop({ device: dev, layout, cfg, bn: initialBnState(layout.encoder) }, phi, ep, 'second-order');
  const d = layout.numParams; // encoder 18 + 2 + 4 = 24, head 2 x 8 + 2 = 18
  assert.is(d, 42);
  const mx = r.meter.maxima;
  assert.is(mx[PART.parameters], 8 * d);
  assert.is(mx[PART.gradient], 8 * d);
  assert.is(mx[PART.episode], 4 * 16 * 8);
  assert.is(mx[PART.innerTape], 7 * (2 * 8 + 2 * 2) * 8); // l (K E + NS K) float64s
  // The encoder tape after embed (images, conv out, BN stats, BN out, argmax) and the embeddings [4, 8].
  const encoderAfterForward = 4 * 16 * 8 + 4 * 2 * 16 * 8 + 2 * 2 * 8 + 4 * 2 * 16 * 8 + 4 * 2 * 2 * 2 * 4;
  assert.ok(mx[PART.activations]! >= encoderAfterForward + 4 * 8 * 8);
  assert.ok(r.meter.peak >= encoderAfterForward + mx[PART.innerTape]! + 2 * 8 * d + mx[PART.episode]!);
});

const tiny: Omit<CaseSpec, 'method'> = { channels: 2, imageSize: 16, way: 3, shot: 2, query: 2, seed: 1, device: 'cpu-ts', reps: 0 };

test('ProtoNet: backprop and ES book the same categories; ES population is the same for every P but 16 bytes per member', async () => {
  const bp = await runCase({ ...tiny, method: 'backprop' });
  const a = await runCase({ ...tiny, method: 'es', pop: 8 });
  const b = await runCase({ ...tiny, method: 'es', pop: 64 });
  const d = a.dPhi;
  for (const r of [bp, a, b]) {
    assert.is(r.accounted.maxima[PART.parameters], 4 * d);
    assert.is(r.accounted.maxima[PART.optimizer], 8 * d, 'Adam charged to every method');
    assert.ok(r.accounted.maxima[PART.activations]! > 0 && r.accounted.maxima[PART.episode]! > 0);
  }
  assert.is(a.accounted.maxima[PART.gradient], 4 * d + 8 * d); // the descent direction and the float64 noise sum
  assert.is(a.accounted.maxima[PART.population], 4 * d + 4 * d + 16 * 8); // member theta, noise scratch, fitness and weights
  assert.is(b.accounted.maxima[PART.population]! - a.accounted.maxima[PART.population]!, 16 * 56);
  assert.is(b.accounted.peak - a.accounted.peak, 16 * 56);
  assert.is(a.accounted.maxima[PART.activations], b.accounted.maxima[PART.activations]);
  // Both whole peaks include their activations: backprop its tape, ES a member's whole forward.
  assert.ok(bp.accounted.atPeak[PART.activations]! > 0 && a.accounted.atPeak[PART.activations]! > 0);
  const m = await runCase({ ...tiny, method: 'es-matrix', pop: 64, maxMembers: 8 });
  assert.is(m.dominant.bytes, 64 * d * 4);
  assert.is(m.dominant.bytes, m.formula!.bytes);
  assert.is(m.accounted.peak - b.accounted.peak, 64 * d * 4);
  assert.match(m.timeNote, /extrapolated from 8 of 64 members/);
});

test('every method runs; the prediction used for the budget is at least the accounted peak', async () => {
  const maml = { ...tiny, innerLr: 0.1 };
  for (const spec of [
    { ...tiny, method: 'backprop' }, { ...tiny, method: 'forward', fmSample: 2, fmChunk: 2 }, { ...tiny, method: 'es', pop: 4 }, { ...tiny, method: 'es-matrix', pop: 4 },
    { ...tiny, method: 'head-second-order', innerSteps: 50 }, { ...tiny, method: 'head-first-order', innerSteps: 50 },
    { ...tiny, method: 'head-es', innerSteps: 50, pop: 4 }, { ...tiny, method: 'head-es-matrix', innerSteps: 50, pop: 4 },
    { ...maml, method: 'maml-second-order', innerSteps: 4 }, { ...maml, method: 'maml-first-order', innerSteps: 4 }, { ...maml, method: 'maml-es', innerSteps: 4, pop: 4, maxMembers: 2 },
  ] as CaseSpec[]) {
    const r = await runCase(spec);
    assert.is(r.status, 'ok');
    assert.ok(r.accounted.peak > 0 && r.dominant.bytes > 0, spec.method);
    assert.ok(predictBytes(spec) >= r.accounted.peak, `${spec.method}: predicted ${predictBytes(spec)} < accounted ${r.accounted.peak}`);
    // The paper gives a closed form for every method but backprop and first-order MAML (either learner); ES regenerates
    // its noise, so only the materialized-matrix variants hold the formula's bytes.
    const closedForm = !['backprop', 'maml-first-order', 'head-first-order'].includes(spec.method);
    assert.is(Boolean(r.formula), closedForm, `${spec.method}: has a closed form`);
    if (closedForm && !['es', 'head-es', 'maml-es'].includes(spec.method)) assert.is(r.dominant.bytes, r.formula!.bytes, `${spec.method}: accounted term equals the formula`);
  }
  assert.is(paperFormula({ ...tiny, method: 'forward' })!.bytes, 4 * (3 * 2) * (12 * 2 + 3 * (36 + 6))); // D_psi = way x E (E = C at 16 px), D_phi = 27 C^2 + 21 C
});

test('budget: cases predicted above it are recorded as "out of memory budget" without starting a process', async () => {
  const s = await runSweep('/nonexistent-worker.js', { quick: true, budgetBytes: 2 ** 20, studies: ['channels', 'task-length'] });
  assert.ok(s.cases.length >= 24);
  assert.is(s.idle, null);
  for (const c of s.cases) {
    assert.is(c.result.status, 'out of memory budget');
    assert.ok(c.result.predictedBytes > 2 ** 20);
  }
  assert.match(markdownReport(s, { device: 'cpu-ts', command: 'test' }), /not run \(predicted/);
});

test('sweeps: C 16/32/64, MAML over l = 1..1000 (every parameter, and head only), P = 64..4096, the paper 40x case', () => {
  const q = sweepCases({ quick: true }), full = sweepCases({ quick: false });
  const has = (list: typeof q, f: (s: CaseSpec) => boolean): boolean => list.some((c) => f(c.spec));
  for (const c of [16, 32, 64]) assert.ok(has(q, (s) => s.method === 'forward' && s.channels === c));
  for (const l of [1, 10, 100, 1000]) for (const m of ['maml-second-order', 'maml-first-order', 'maml-es']) assert.ok(has(q, (s) => s.method === m && s.innerSteps === l));
  for (const l of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]) for (const m of ['maml-second-order', 'maml-first-order', 'maml-es']) assert.ok(has(full, (s) => s.method === m && s.innerSteps === l && s.channels === 32));
  for (const p of [64, 256, 1024, 4096]) assert.ok(has(q, (s) => s.method === 'es' && s.pop === p));
  assert.ok(has(q, (s) => s.method === 'es-matrix' && s.channels === 64 && s.pop === 64 && s.way === 10 && s.imageSize === 32));
  assert.ok(has(full, (s) => s.method === 'head-second-order' && s.innerSteps === 1000));
  assert.is(new Set(q.map((c) => `${c.study}/${c.id}`)).size, q.length);
  // With a 4 GiB budget, second order through every parameter is predicted out of budget at l = 500 (C = 32), ES never.
  const over = (s: CaseSpec): boolean => predictBytes(s) > 4 * 2 ** 30;
  assert.ok(full.some((c) => c.spec.method === 'maml-second-order' && c.spec.innerSteps === 500 && over(c.spec)));
  assert.ok(full.every((c) => c.spec.method !== 'maml-es' || !over(c.spec)));
});

const worker = fileURLToPath(new URL('../bench/memory-worker.js', import.meta.url));
const haveMalloc = nativeMemStats() !== null;

test('a case in a fresh process carries its measurement: peak RSS, tracked heap, over an idle process', async () => {
  const idle = (await measureIdle(worker, undefined)).idle;
  assert.ok(idle.peakRss > 10 * 2 ** 20 && idle.peakRss >= idle.rss, `idle peak RSS ${idle.peakRss}`);
  assert.ok(idle.trackedAtRest > 0);
  assert.is(idle.atRest.malloc !== null, haveMalloc);
  // ProtoNet backprop, C = 16, 10-way 5-shot 5-query 32 x 32: about 26 MiB accounted.
  const r = await runInFreshProcess(worker, { method: 'backprop', channels: 16, imageSize: 32, way: 10, shot: 5, query: 5, seed: 1, reps: 0 }, 120_000);
  assert.is(r.status, 'ok', r.error);
  const m = r.measured!;
  assert.ok(m.peakRss >= m.rss && m.peakRss > idle.peakRss, 'the case raised the peak RSS above an idle process');
  assert.ok(m.peakRss - idle.peakRss >= 0.5 * r.accounted.peak, `RSS over idle ${m.peakRss - idle.peakRss} vs accounted ${r.accounted.peak}`);
  assert.ok(m.peak.tracked >= m.trackedAtRest && m.peak.heapUsed > 0 && m.peak.arrayBuffers >= r.accounted.maxima[PART.parameters]!);
  assert.ok(m.samples > 0);
  if (haveMalloc) {
    // Every accounted array is a malloc'ed ArrayBuffer alive at the accounted peak: malloc must have seen at least that.
    assert.ok(m.peak.malloc! - m.atRest.malloc! >= 0.95 * r.accounted.peak, `malloc peak over rest ${m.peak.malloc! - m.atRest.malloc!} vs accounted ${r.accounted.peak}`);
    assert.ok(m.nativeSamples > 0);
    assert.match(m.source, /mallinfo2/);
  }
  const bad = await runInFreshProcess(worker, { ...tiny, method: 'es', pop: 3 }, 60_000);
  assert.is(bad.status, 'error');
  assert.match(bad.error!, /pop must be an even integer/);
  assert.ok(bad.measured!.peakRss > 0);
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

test('report and chart: the 40x table compares whole-method peaks, the formula ratio labelled as formula; SVG with log axes', async () => {
  const results: SweepResult['cases'] = [];
  const meas = (peakRss: number, tracked: number) => ({
    rss: peakRss, peakRss, rssSource: 'test', atRest: { heapUsed: 1, arrayBuffers: 0, external: 0, v8Malloced: 0, malloc: 1 },
    peak: { malloc: tracked, heapUsed: 0, arrayBuffers: 0, external: 0, tracked }, trackedAtRest: 1, source: 'test', samples: 1, nativeSamples: 1,
  });
  const idle = meas(50 * 2 ** 20, 5 * 2 ** 20);
  idle.trackedAtRest = 5 * 2 ** 20;
  for (const [method, pop, peak] of [['forward', undefined, 1200], ['es', 64, 60], ['es-matrix', 64, 90]] as const) {
    const spec = { ...tiny, channels: 64, imageSize: 32, way: 10, method, pop } as CaseSpec;
    const f = paperFormula(spec)!;
    const mib = peak * 2 ** 20;
    results.push({ study: 'channels', id: method, spec, result: {
      spec, status: 'ok', device: 'cpu-ts', dPhi: 111936, dPsi: 2560, formula: f, dominant: { name: 'x', bytes: f.bytes },
      accounted: { peak: mib, atPeak: { [PART.parameters]: 4 * 111936, [PART.activations]: mib - 4 * 111936 }, maxima: {} }, predictedBytes: 0, seconds: 1, timeNote: 'measured',
      measured: meas(50 * 2 ** 20 + 2 * mib, 5 * 2 ** 20 + mib),
    } });
  }
  for (const l of [1, 10]) {
    const spec: CaseSpec = { ...tiny, method: 'maml-second-order', innerSteps: l };
    results.push({ study: 'task-length', id: `l${l}`, spec, result: { ...results[0]!.result, spec, dominant: { name: 'inner-loop tape', bytes: 100 * l } } });
  }
  const sweep: SweepResult = { quick: true, budgetBytes: 2 ** 34, startedAt: 'now', seconds: 1, idle, cases: results };
  const md = markdownReport(sweep, { device: 'cpu-ts', command: 'npm run bench:memory -- --quick' });
  assert.match(md, /The paper's 40x case/);
  assert.match(md, /\*\*40\.0x\*\* \(formula; paper: "approximately forty times"\)/);
  assert.match(md, /\| \*\*measured\*\*: peak RSS over idle \| 2\.34 GiB \| 180 MiB \| 120 MiB \|/); // 2 x the accounted peak each
  assert.match(md, /\*\*20\.0x\*\*/); // forward / our ES, whole-method peaks: 2400 MiB / 120 MiB
  assert.match(md, /parameters 437 KiB · activations/);
  assert.not.ok(/640x/.test(md));
  assert.is(taskLengthPoints(sweep).length, 6); // two l x (RSS, tracked, accounted)
  const svg = await renderSvg({ data: { values: taskLengthPoints(sweep) }, mark: 'line', encoding: { x: { field: 'x', type: 'quantitative', scale: { type: 'log' }, title: 'inner steps l' }, y: { field: 'bytes', type: 'quantitative', scale: { type: 'log' } } } });
  assert.match(svg, /^<svg/);
  assert.match(svg, /inner steps l/);
});

test.run();
