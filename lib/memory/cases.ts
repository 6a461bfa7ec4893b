/**
 * One configuration of the memory study, run in the current process: build
 * the model and a synthetic episode, compute one meta-gradient with the
 * chosen method, and report the bytes the library's accounting says it held
 * at its peak, the paper's formula for the method's dominant term, and the
 * time per meta-gradient. The sweep (sweep.ts) runs each case in a fresh
 * process and adds the process's peak RSS.
 *
 * Methods:
 *  ProtoNet (the paper's setting; its inner loop is building the prototypes)
 *   backprop   reverse mode on lib/autodiff's tape (Omega_BP = the tape)
 *   forward    forward mode (lib/forward): the state Jacobian D_psi x D_phi (Omega_FM)
 *   es         lib/es's population evaluator, noise regenerated (no P x D matrix)
 *   es-matrix  the same ES with the population matrix materialized (the paper's Omega_ES)
 *  MAML-style learner (tasks with a length l: lib/maml)
 *   maml-second-order, maml-first-order, maml-es, maml-es-matrix
 */
import { getDevice, type Device } from '../device/registry.js';
import { DirectOps } from '../ops/api.js';
import { ProtoNetLayout, initialBnState } from '../model/layout.js';
import { initParams } from '../model/init.js';
import { episodeLoss, type Episode } from '../model/protonet.js';
import { episodeGradient } from '../autodiff/protonet.js';
import { protoNetForwardGradient } from '../forward/protonet.js';
import { DirectOpsPopulationEvaluator } from '../es/population-ts.js';
import { groupWeights } from '../es/estimators.js';
import { memberNoise, fillMemberNoise } from '../es/noise.js';
import { MamlLayout, initMaml } from '../maml/layout.js';
import { mamlBackprop, mamlEs } from '../maml/metagrad.js';
import { headTapeBytes } from '../maml/head.js';
import { PeakMeter, meterOps, type Breakdown } from '../ops/accounting.js';
import { syntheticEpisode } from './episodes.js';

export const PROTO_METHODS = ['backprop', 'forward', 'es', 'es-matrix'] as const;
export const MAML_CASE_METHODS = ['maml-second-order', 'maml-first-order', 'maml-es', 'maml-es-matrix'] as const;
export type CaseMethod = (typeof PROTO_METHODS)[number] | (typeof MAML_CASE_METHODS)[number];

export interface CaseSpec {
  method: CaseMethod;
  channels: number;
  imageSize: number;
  way: number;
  shot: number;
  query: number;
  /** ES population. */
  pop?: number;
  /** MAML inner steps l and inner learning rate. */
  innerSteps?: number;
  innerLr?: number;
  /** forward: columns sampled per encoder block for timing (0 = every column). Memory is the same either way. */
  fmSample?: number;
  /** forward: tangents per pass K (default 8 for C <= 32, else 2). */
  fmChunk?: number;
  /** ES: evaluate at most this many members (time extrapolated linearly in P; every buffer is still sized for P). */
  maxMembers?: number;
  /** Device name; default the device layer's best. */
  device?: string;
  seed: number;
  /** Timed repetitions after the first (memory-measured) meta-gradient, when it was quick. */
  reps?: number;
}

export interface CaseResult {
  spec: CaseSpec;
  status: 'ok' | 'out of memory budget' | 'error';
  error?: string;
  device: string;
  dPhi: number;
  dPsi: number;
  /** The paper's dominant memory term for this method (float32 bytes), or null where the paper gives none. */
  formula: { name: string; expr: string; bytes: number } | null;
  /** The library's measured bytes of that term. */
  dominant: { name: string; bytes: number };
  /** Peak of all accounted parts together, the parts at that moment, and each part's own maximum. */
  accounted: { peak: number; atPeak: Breakdown; maxima: Breakdown };
  predictedBytes: number;
  /** Filled by the sweep from the child process: peak RSS and the RSS before the case ran (bytes). */
  rss?: { maxRss: number; baseline: number };
  seconds: number;
  timeNote: string;
  loss?: number;
}

export function isEs(m: CaseMethod): boolean { return m === 'es' || m === 'es-matrix' || m === 'maml-es' || m === 'maml-es-matrix'; }
export function isMaml(m: CaseMethod): boolean { return m.startsWith('maml-'); }

export function checkSpec(s: CaseSpec): void {
  if (![...PROTO_METHODS, ...MAML_CASE_METHODS].includes(s.method)) throw new RangeError(`memory case: unknown method ${String(s.method)}`);
  for (const k of ['channels', 'imageSize', 'way', 'shot', 'query'] as const) {
    if (!Number.isInteger(s[k]) || s[k] < 1) throw new RangeError(`memory case: ${k} must be a positive integer, got ${s[k]}`);
  }
  if (isEs(s.method) && !(Number.isInteger(s.pop) && s.pop! >= 2 && s.pop! % 2 === 0)) throw new RangeError(`memory case ${s.method}: pop must be an even integer >= 2, got ${s.pop}`);
  if (isMaml(s.method) && !(Number.isInteger(s.innerSteps) && s.innerSteps! >= 0)) throw new RangeError(`memory case ${s.method}: innerSteps must be an integer >= 0, got ${s.innerSteps}`);
}

export function caseId(s: CaseSpec): string {
  const parts = [s.method, `C${s.channels}`, `${s.imageSize}px`, `${s.way}w${s.shot}s${s.query}q`];
  if (s.pop !== undefined) parts.push(`P${s.pop}`);
  if (s.innerSteps !== undefined) parts.push(`l${s.innerSteps}`);
  return parts.join('-');
}

/** D_phi, D_psi (= way x E), the embedding size E and the images per episode of a case. */
export function caseSizes(s: CaseSpec): { dPhi: number; dPsi: number; e: number; n: number; layout: ProtoNetLayout } {
  const layout = new ProtoNetLayout({ channels: s.channels, imageSize: s.imageSize });
  const e = layout.embeddingSize;
  const head = isMaml(s.method) ? s.way * e + s.way : 0;
  return { dPhi: layout.numParams + head, dPsi: s.way * e, e, n: s.way * (s.shot + s.query), layout };
}

/** The paper's II-E terms (float32). */
export function paperFormula(s: CaseSpec): CaseResult['formula'] {
  const { dPhi, dPsi, e } = caseSizes(s);
  const ns = s.way * s.shot;
  switch (s.method) {
    case 'forward': return { name: 'Omega_FM', expr: `D_psi x D_phi = ${dPsi} x ${dPhi}`, bytes: 4 * dPsi * dPhi };
    case 'es': case 'es-matrix': case 'maml-es': case 'maml-es-matrix':
      return { name: 'Omega_ES', expr: `P x D_phi = ${s.pop} x ${dPhi}`, bytes: 4 * s.pop! * dPhi };
    case 'maml-second-order': {
      const g = headTapeBytes(s.way, e, ns, 1, 4);
      return { name: 'Omega_BP', expr: `g x l = ${g} B x ${s.innerSteps}`, bytes: g * s.innerSteps! };
    }
    case 'backprop': return null; // the paper gives g (the tape) no closed form: measured only
    case 'maml-first-order': return null;
  }
}

/**
 * Bytes a case will need, predicted before running it (for the budget): the
 * exact size of the method's large allocation (Jacobian, population matrix,
 * head tape) plus a generous estimate of activations (1.5 x: the encoder's
 * saved conv/BN/ReLU outputs and a pending gradient for backprop; K + 1 copies
 * of the largest op's inputs and outputs for forward mode; one op's for ES)
 * and parameter-sized vectors.
 */
export function predictBytes(s: CaseSpec): number {
  const { dPhi, dPsi, e, n, layout } = caseSizes(s);
  const images = 2 * n * s.imageSize * s.imageSize * 4;
  const largest = n * s.channels * s.imageSize * s.imageSize * 4;
  let side = s.imageSize, tape = images;
  for (let b = 0; b < layout.config.blocks; b++) {
    tape += 3 * n * s.channels * side * side * 4;
    side = Math.floor(side / 2);
  }
  const margin = 1.5, vectors = 6 * 4 * dPhi;
  const backprop = margin * (tape + largest) + vectors;
  const forwardOnly = margin * (images + 2 * largest) + vectors;
  switch (s.method) {
    case 'forward': {
      const k = s.fmChunk ?? (s.channels <= 32 ? 8 : 2);
      return 4 * dPsi * dPhi + margin * (images + 2 * (k + 1) * largest) + vectors;
    }
    case 'es-matrix': case 'maml-es-matrix': return 4 * s.pop! * dPhi + forwardOnly + 16 * s.pop!;
    case 'es': case 'maml-es': return forwardOnly + 16 * s.pop!;
    case 'backprop': case 'maml-first-order': return backprop;
    case 'maml-second-order': return backprop + headTapeBytes(s.way, e, s.way * s.shot, s.innerSteps!, 4);
  }
}

interface Timed { seconds: number; timeNote: string; loss?: number }

function timeIt(first: number, reps: number, again: () => void): number {
  if (first > 2 || reps <= 0) return first;
  const times = [first];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    again();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** Run one case in this process. Throws on bad specs; the caller records errors. */
export async function runCase(spec: CaseSpec): Promise<CaseResult> {
  checkSpec(spec);
  const device = getDevice(spec.device);
  const { dPhi, dPsi } = caseSizes(spec);
  const ep = syntheticEpisode({ way: spec.way, shot: spec.shot, query: spec.query, imageSize: spec.imageSize }, spec.seed);
  const meter = new PeakMeter();
  const t = isMaml(spec.method) ? runMaml(spec, device, ep, meter) : await runProto(spec, device, ep, meter);
  return {
    spec, status: 'ok', device: device.name, dPhi, dPsi,
    formula: paperFormula(spec), dominant: dominantOf(spec.method, meter),
    accounted: { peak: meter.peak, atPeak: meter.atPeak, maxima: meter.maxima },
    predictedBytes: predictBytes(spec), seconds: t.seconds, timeNote: t.timeNote, ...(t.loss !== undefined ? { loss: t.loss } : {}),
  };
}

function dominantOf(m: CaseMethod, meter: PeakMeter): { name: string; bytes: number } {
  switch (m) {
    case 'backprop': return { name: 'tape', bytes: meter.maxOf('tape') };
    case 'forward': return { name: 'Jacobian', bytes: meter.maxOf('jacobian') };
    case 'es': case 'maml-es': return { name: 'ES working set', bytes: meter.maxOf('es') };
    case 'es-matrix': case 'maml-es-matrix': return { name: 'population matrix', bytes: meter.maxOf('population matrix') };
    case 'maml-second-order': return { name: 'head tape (g x l)', bytes: meter.maxOf('head tape') };
    case 'maml-first-order': return { name: 'encoder tape', bytes: meter.maxOf('tape') };
  }
}

const ADAM_BYTES = 8; // per float32 parameter: exp_avg and exp_avg_sq

async function runProto(spec: CaseSpec, device: Device, ep: Episode, meter: PeakMeter): Promise<Timed> {
  const layout = new ProtoNetLayout({ channels: spec.channels, imageSize: spec.imageSize });
  const params = initParams(layout, spec.seed), bn = initialBnState(layout), d = layout.numParams;
  meter.set('params', params.byteLength);
  meter.set('episode', ep.support.data.byteLength + ep.query.data.byteLength);
  const reps = spec.reps ?? 2;
  if (spec.method === 'backprop') {
    meter.set('optimizer', ADAM_BYTES * d);
    const grad = new Float32Array(d);
    meter.set('gradient', grad.byteLength);
    const t0 = performance.now();
    const r = episodeGradient(device, layout, params, bn, ep, { bn: 'batch' }, grad);
    const first = (performance.now() - t0) / 1000;
    meter.reached('tape', r.peakBytes);
    const seconds = timeIt(first, reps, () => episodeGradient(device, layout, params, bn, ep, { bn: 'batch' }, grad));
    return { seconds, timeNote: 'measured', loss: r.loss };
  }
  if (spec.method === 'forward') {
    meter.set('optimizer', ADAM_BYTES * d);
    const chunk = spec.fmChunk ?? (spec.channels <= 32 ? 8 : 2);
    const sample = spec.fmSample ?? chunk;
    const blocks = layout.config.blocks;
    // Sampled columns: `sample` columns of each block's conv weight; a column's cost depends on the block where its tangent starts.
    const ranges: [number, number][] = [];
    const weights: number[] = [];
    if (sample > 0) {
      for (let b = 0; b < blocks; b++) {
        const w = layout.param(`encoder.${b}.0.weight`);
        const k = Math.min(sample, w.size);
        ranges.push([w.offset, w.offset + k]);
        const blockParams = layout.params.filter((e) => e.name.startsWith(`encoder.${b}.`)).reduce((s, e) => s + e.size, 0);
        weights.push(blockParams / k);
      }
    }
    const t0 = performance.now();
    const perPass: { start: number; end: number; seconds: number }[] = [];
    let last = t0;
    const r = protoNetForwardGradient(device, layout, params, bn, ep, {
      bn: 'batch', chunk, ...(sample > 0 ? { ranges } : {}),
      onJacobian: (j) => {
        j.data.fill(0); // touch every page so the peak RSS sees the whole Jacobian
        meter.set('jacobian', j.data.byteLength);
        last = performance.now();
      },
      onColumns: (start, end) => { const now = performance.now(); perPass.push({ start, end, seconds: (now - last) / 1000 }); last = now; },
    });
    const total = (performance.now() - t0) / 1000;
    meter.set('gradient', r.grad.byteLength);
    meter.reached('forward vectors', r.bytes.vectors);
    meter.reached('forward pass', r.bytes.passMax);
    if (sample === 0) return { seconds: total, timeNote: `measured (all ${d} columns, K = ${chunk})`, loss: r.loss };
    // Extrapolate: every column of block b costs what its sampled columns cost on average; the rest (Jacobian
    // allocation, dL/dpsi passes, the contraction over all columns) is measured as it is.
    let est = 0, columnsTime = 0;
    for (let b = 0; b < blocks; b++) {
      const [lo, hi] = ranges[b]!;
      const spent = perPass.filter((p) => p.start >= lo && p.end <= hi).reduce((x, p) => x + p.seconds, 0);
      est += spent * weights[b]!;
      columnsTime += spent;
    }
    const rest = Math.max(0, total - columnsTime);
    return { seconds: est + rest, timeNote: `extrapolated from ${r.columns} of ${d} columns, K = ${chunk}`, loss: r.loss };
  }
  // ES: the paper's plain step (no optimizer state).
  const pop = spec.pop!, cap = Math.min(pop, spec.maxMembers ?? pop);
  const sigma = 0.01, seed = spec.seed, step = 0;
  const fitness = new Float64Array(pop);
  meter.set('fitness', fitness.byteLength);
  let matrix: Float32Array | null = null;
  const t0 = performance.now();
  if (spec.method === 'es-matrix') {
    matrix = new Float32Array(pop * d);
    const z = new Float32Array(d), theta = new Float32Array(d);
    meter.set('population matrix', matrix.byteLength);
    meter.set('es', z.byteLength + theta.byteLength);
    for (let m = 0; m < pop; m++) {
      const { id, sign } = memberNoise(m, true);
      if (sign > 0) fillMemberNoise(z, seed, step, id);
      for (let j = 0; j < d; j++) matrix[m * d + j] = sign * Math.fround(sigma * z[j]!);
    }
    const tFill = performance.now();
    const metered = meterOps(new DirectOps(device));
    for (let m = 0; m < cap; m++) {
      for (let j = 0; j < d; j++) theta[j] = params[j]! + matrix[m * d + j]!;
      metered.reset();
      fitness[m] = -episodeLoss(metered.ops, layout, theta, bn, ep, { bn: 'batch' }).loss.data[0]!;
      meter.reached('forward', metered.opPeak);
    }
    const weights = new Float64Array(pop); // sized for P even when only `cap` members ran
    weights.set(groupWeights(fitness.subarray(0, cap), { estimator: 'wsr', sigma, baseline: false, nonFinite: 'worst' }).weights);
    const g = new Float64Array(d);
    meter.set('weights', weights.byteLength);
    meter.set('es', z.byteLength + theta.byteLength + g.byteLength);
    for (let m = 0; m < cap; m++) for (let j = 0; j < d; j++) g[j] = g[j]! + weights[m]! * matrix[m * d + j]!;
    const tEnd = performance.now();
    // The matrix is filled for all P members; evaluation and the weighted sum scale with the members used.
    const seconds = ((tFill - t0) + (tEnd - tFill) * (pop / cap)) / 1000;
    return { seconds, timeNote: cap === pop ? 'measured' : `extrapolated from ${cap} of ${pop} members` };
  }
  // lib/es's reference evaluator on this device's kernels: its working bytes are exactly its O(D) vectors
  // (theta, noise, noise sum); one member's forward activations are measured beside them. (The fused
  // cpu-native evaluator keeps per-thread workspaces that mix both; see docs/memory.md.)
  const ev = new DirectOpsPopulationEvaluator(device.name);
  const req = { model: layout.config, mu: params, perturbation: { kind: 'gaussian' as const, sigma, antithetic: true }, seed, step, episode: ep, distance: 'euclidean' as const };
  const f = await ev.evaluate({ ...req, start: 0, end: cap });
  fitness.set(f);
  const t1 = performance.now();
  meter.set('es', ev.workingBytes());
  // One member's forward activations (every member's pass has the same shapes): measured on mu's pass.
  const metered = meterOps(new DirectOps(device));
  episodeLoss(metered.ops, layout, params, bn, ep, { bn: 'batch' });
  meter.reached('forward', metered.opPeak);
  const { weights } = groupWeights(fitness.subarray(0, cap), { estimator: 'wsr', sigma, baseline: false, nonFinite: 'worst' });
  const w = new Float64Array(pop);
  w.set(weights);
  meter.set('weights', w.byteLength);
  const t2 = performance.now();
  const g = await ev.noiseSum({ mu: params, seed, step, antithetic: true, sigma, start: 0, weights: w.subarray(0, cap) });
  const t3 = performance.now();
  meter.set('es', ev.workingBytes());
  meter.set('gradient', g.byteLength);
  const scale = pop / cap;
  const seconds = ((t1 - t0) * scale + (t2 - t1) + (t3 - t2) * scale) / 1000;
  return { seconds, timeNote: cap === pop ? 'measured' : `extrapolated from ${cap} of ${pop} members` };
}

function runMaml(spec: CaseSpec, device: Device, ep: Episode, meter: PeakMeter): Timed {
  const cfg = { model: { channels: spec.channels, imageSize: spec.imageSize }, way: spec.way, innerSteps: spec.innerSteps!, innerLr: spec.innerLr ?? 0.1 };
  const layout = new MamlLayout(cfg.model, cfg.way);
  const phi = initMaml(layout, spec.seed);
  const ctx = { device, layout, cfg, bn: initialBnState(layout.encoder), meter };
  const reps = spec.reps ?? 2;
  if (spec.method === 'maml-second-order' || spec.method === 'maml-first-order') {
    meter.set('optimizer', ADAM_BYTES * phi.length);
    const order = spec.method === 'maml-second-order' ? 'second-order' : 'first-order';
    const t0 = performance.now();
    const r = mamlBackprop(ctx, phi, ep, order);
    const first = (performance.now() - t0) / 1000;
    const seconds = timeIt(first, reps, () => mamlBackprop({ ...ctx, meter: new PeakMeter() }, phi, ep, order));
    return { seconds, timeNote: 'measured', loss: r.loss };
  }
  const pop = spec.pop!, cap = Math.min(pop, spec.maxMembers ?? pop);
  const method = spec.method === 'maml-es' ? 'es' : 'es-matrix';
  const t0 = performance.now();
  const r = mamlEs(ctx, phi, ep, { pop, sigma: 0.01, antithetic: true, seed: spec.seed, step: 0, evaluate: cap }, method);
  const seconds = ((performance.now() - t0) / 1000) * (pop / cap);
  return { seconds, timeNote: cap === pop ? 'measured' : `extrapolated from ${cap} of ${pop} members`, loss: r.loss };
}
