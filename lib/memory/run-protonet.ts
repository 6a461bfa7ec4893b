/**
 * The ProtoNet cases of the memory study: one meta-gradient by backprop,
 * forward mode, or ES (noise regenerated, or the population matrix held),
 * each booking its arrays under the shared categories (PART).
 */
import type { Device } from '../device/registry.js';
import { DirectOps } from '../ops/api.js';
import { ProtoNetLayout, initialBnState } from '../model/layout.js';
import { initParams } from '../model/init.js';
import { episodeLoss, type Episode } from '../model/protonet.js';
import { episodeGradient } from '../autodiff/protonet.js';
import { protoNetForwardGradient } from '../forward/protonet.js';
import { DualOps, basisLeaf } from '../forward/dual.js';
import { groupWeights } from '../es/estimators.js';
import { fillMemberNoise, memberNoise, noiseSumInto, perturbMember } from '../es/noise.js';
import { PART, meterOps, type PeakMeter } from '../ops/accounting.js';
import type { CaseSpec } from './cases.js';
import { OPTIMIZER_BYTES_PER_PARAM, timeIt, type AfterFirst, type Timed } from './run-common.js';

export function runProto(spec: CaseSpec, device: Device, ep: Episode, meter: PeakMeter, afterFirst?: AfterFirst): Timed {
  const layout = new ProtoNetLayout({ channels: spec.channels, imageSize: spec.imageSize });
  const params = initParams(layout, spec.seed), d = layout.numParams;
  const images = ep.support.data.byteLength + ep.query.data.byteLength;
  meter.set(PART.parameters, params.byteLength);
  meter.set(PART.optimizer, OPTIMIZER_BYTES_PER_PARAM * d);
  meter.set(PART.episode, images);
  if (spec.method === 'backprop') return runBackprop(spec, device, layout, params, ep, meter, afterFirst);
  if (spec.method === 'forward') return runForward(spec, device, layout, params, ep, meter);
  return runEs(spec, device, layout, params, ep, meter);
}

function runBackprop(spec: CaseSpec, device: Device, layout: ProtoNetLayout, params: Float32Array, ep: Episode, meter: PeakMeter, afterFirst?: AfterFirst): Timed {
  const bn = initialBnState(layout), grad = new Float32Array(layout.numParams);
  meter.set(PART.gradient, grad.byteLength);
  const t0 = performance.now();
  const r = episodeGradient(device, layout, params, bn, ep, { bn: 'batch' }, grad);
  const first = (performance.now() - t0) / 1000;
  // The tape's peak: every saved activation (and the concatenated image batch) plus pending gradients during backward.
  meter.reached(PART.activations, r.peakBytes);
  afterFirst?.();
  const seconds = timeIt(first, spec.reps ?? 2, () => episodeGradient(device, layout, params, bn, ep, { bn: 'batch' }, grad));
  return { seconds, timeNote: 'measured', loss: r.loss, dominant: { name: 'tape', bytes: r.peakBytes } };
}

function runForward(spec: CaseSpec, device: Device, layout: ProtoNetLayout, params: Float32Array, ep: Episode, meter: PeakMeter): Timed {
  const bn = initialBnState(layout), d = layout.numParams;
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
      meter.set(PART.jacobian, j.data.byteLength);
      last = performance.now();
    },
    onColumns: (start, end) => { const now = performance.now(); perPass.push({ start, end, seconds: (now - last) / 1000 }); last = now; },
  });
  const total = (performance.now() - t0) / 1000;
  // The gradient, the direct term and dL/dpsi (float64) exist from before the first pass.
  meter.set(PART.gradient, r.bytes.vectors);
  // Activations of one pass: every op output (values and K tangents) of the pass whose tangents start at the
  // first parameter (the largest: nothing upstream is skipped), plus the concatenated image batch. Run once more
  // here, with the Jacobian alive, and metered.
  const m = meterOps(new DualOps(device, chunk));
  episodeLoss(m.ops, layout, params, bn, ep, { bn: 'batch' }, basisLeaf(layout.params, 0, chunk));
  meter.reached(PART.activations, m.allocated + ep.support.data.byteLength + ep.query.data.byteLength);
  const dominant = { name: 'Jacobian', bytes: r.bytes.jacobian };
  if (sample === 0) return { seconds: total, timeNote: `measured (all ${d} columns, K = ${chunk})`, loss: r.loss, dominant };
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
  return { seconds: est + rest, timeNote: `extrapolated from ${r.columns} of ${d} columns, K = ${chunk}`, loss: r.loss, dominant };
}

/**
 * ES (WSR, the paper's eq. 9): members evaluated one after another, each
 * forward only; with noise regenerated from (seed, step, member), or from the
 * P x D population matrix filled first (the paper's implementation).
 */
function runEs(spec: CaseSpec, device: Device, layout: ProtoNetLayout, params: Float32Array, ep: Episode, meter: PeakMeter): Timed {
  const bn = initialBnState(layout), d = layout.numParams;
  const pop = spec.pop!, cap = Math.min(pop, spec.maxMembers ?? pop);
  const sigma = 0.01, seed = spec.seed, step = 0, antithetic = true;
  const sum = new Float64Array(d), g = new Float32Array(d);
  meter.set(PART.gradient, sum.byteLength + g.byteLength);
  const theta = new Float32Array(d), z = new Float32Array(d), fitness = new Float64Array(pop), weights = new Float64Array(pop);
  meter.set(PART.population, theta.byteLength + z.byteLength + fitness.byteLength + weights.byteLength);
  const t0 = performance.now();
  let matrix: Float32Array | null = null;
  if (spec.method === 'es-matrix') {
    matrix = new Float32Array(pop * d);
    meter.set(PART.matrix, matrix.byteLength);
    for (let m = 0; m < pop; m++) {
      const { id, sign } = memberNoise(m, antithetic);
      if (sign > 0) fillMemberNoise(z, seed, step, id);
      for (let j = 0; j < d; j++) matrix[m * d + j] = sign * Math.fround(sigma * z[j]!);
    }
  }
  const tFill = performance.now();
  const metered = meterOps(new DirectOps(device));
  const batch = ep.support.data.byteLength + ep.query.data.byteLength; // episodeLoss concatenates the two
  for (let m = 0; m < cap; m++) {
    if (matrix) for (let j = 0; j < d; j++) theta[j] = params[j]! + matrix[m * d + j]!;
    else perturbMember(theta, params, { kind: 'gaussian', sigma, antithetic }, seed, step, m, z);
    metered.reset();
    fitness[m] = -episodeLoss(metered.ops, layout, theta, bn, ep, { bn: 'batch' }).loss.data[0]!;
    // Every op output of this member's forward, as if none were freed before the loss.
    meter.reached(PART.activations, metered.allocated + batch);
  }
  weights.set(groupWeights(fitness.subarray(0, cap), { estimator: 'wsr', sigma, baseline: false, nonFinite: 'worst' }).weights);
  const tEval = performance.now();
  if (matrix) {
    for (let m = 0; m < cap; m++) for (let j = 0; j < d; j++) sum[j] = sum[j]! + weights[m]! * matrix[m * d + j]!;
  } else {
    noiseSumInto(sum, { mu: params, seed, step, antithetic, sigma, start: 0, weights: weights.subarray(0, cap) }, z);
  }
  for (let j = 0; j < d; j++) g[j] = -sum[j]!;
  const tEnd = performance.now();
  // The matrix is filled for all P members; evaluation and the weighted sum scale with the members used.
  const seconds = ((tFill - t0) + (tEnd - tFill) * (pop / cap)) / 1000;
  const dominant = matrix ? { name: 'population matrix', bytes: matrix.byteLength } : { name: 'ES population', bytes: meter.maxOf(PART.population) };
  return { seconds, timeNote: cap === pop ? 'measured' : `extrapolated from ${cap} of ${pop} members`, dominant };
}
