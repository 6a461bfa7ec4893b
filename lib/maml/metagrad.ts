/**
 * One meta-gradient of the MAML-style learner on one episode, three ways:
 *  - 'second-order': backprop through the l inner steps (the head tape of
 *    head.ts, g x l bytes) and through the encoder (lib/autodiff's Tape);
 *  - 'first-order': FO-MAML, the query-loss gradient at the adapted head
 *    applied to the initial head, and to the encoder through the query path only;
 *  - 'es': evolution strategies (lib/es noise: regenerated from seeds, never
 *    stored), each member running the inner loop forward only; 'es-matrix'
 *    is the same estimate with the population matrix materialized (P x D, as
 *    the paper's implementation holds it), for the memory comparison.
 * Every method books the bytes it holds on a PeakMeter under the shared
 * categories (PART): the encoder tape, embeddings and seed as activations, the
 * head tape as the inner-loop tape, head state and adjoints as inner-loop state.
 */
import type { Device } from '../device/registry.js';
import { DirectOps, type TensorOps } from '../ops/api.js';
import type { BnState } from '../model/layout.js';
import { concatImages, embed, type Episode } from '../model/protonet.js';
import { Tensor, allocLike, type FloatArray } from '../tensor/tensor.js';
import { Tape, layoutLeaves } from '../autodiff/tape.js';
import { groupWeights } from '../es/estimators.js';
import { memberNoise, fillMemberNoise, noiseSumInto, perturbMember } from '../es/noise.js';
import { PART, PeakMeter, meterOps } from '../ops/accounting.js';
import { backwardInner, innerLoop, queryLoss, type HeadProblem } from './head.js';
import { checkMamlConfig, type MamlConfig, type MamlLayout } from './layout.js';

export type MamlMethod = 'second-order' | 'first-order' | 'es' | 'es-matrix';
export const MAML_METHODS: readonly MamlMethod[] = ['second-order', 'first-order', 'es', 'es-matrix'];

export interface EsSettings {
  pop: number;
  sigma: number;
  antithetic: boolean;
  seed: number;
  step: number;
  /** Evaluate only members [0, evaluate) (for timing a large population on a sample; every buffer is still sized for pop). Default pop. */
  evaluate?: number;
}

export interface MetaContext {
  device: Device;
  layout: MamlLayout;
  cfg: MamlConfig;
  /** BN state (shape only: BN runs in batch mode; running statistics are not tracked here). */
  bn: BnState;
  meter?: PeakMeter;
}

export interface MetaGradient {
  /** Query meta-loss at phi (backprop methods) or the mean over members (ES). */
  loss: number;
  accuracy: number;
  /** A descent direction for the loss: dL/dphi, or minus the ES ascent estimate. */
  grad: FloatArray;
  meter: PeakMeter;
}

function headProblem(ctx: MetaContext, z: FloatArray, ep: Episode): HeadProblem {
  const ns = ep.supportLabels.length, e = ctx.layout.embeddingSize;
  return { zs: z.subarray(0, ns * e), ys: ep.supportLabels, zq: z.subarray(ns * e), yq: ep.queryLabels, way: ctx.layout.way, e, alpha: ctx.cfg.innerLr };
}

function checkEpisode(ctx: MetaContext, ep: Episode): void {
  checkMamlConfig(ctx.cfg);
  if (ep.way !== ctx.layout.way) throw new RangeError(`maml: episode is ${ep.way}-way, the head has ${ctx.layout.way} outputs`);
}

/** Backprop meta-gradient (second order through the inner loop, or first order). `grad` is overwritten. */
export function mamlBackprop(ctx: MetaContext, phi: FloatArray, ep: Episode, order: 'second-order' | 'first-order', grad?: FloatArray): MetaGradient {
  checkEpisode(ctx, ep);
  const L = ctx.layout, enc = L.encoder, meter = ctx.meter ?? new PeakMeter();
  const g = grad ?? allocLike(phi, phi.length);
  L.check(g);
  g.fill(0);
  meter.set(PART.parameters, phi.byteLength);
  meter.set(PART.gradient, g.byteLength);
  meter.set(PART.episode, ep.support.data.byteLength + ep.query.data.byteLength);
  const tape = new Tape(ctx.device);
  const zVar = embed(tape, enc, L.encoderParams(phi), ctx.bn, concatImages(ep.support, ep.query), { bn: 'batch' }, layoutLeaves(tape, enc));
  const z = zVar.value;
  // Activations: the encoder tape (saved tensors, the image batch) and the embeddings it produced.
  meter.set(PART.activations, tape.bytesHeld() + z.data.byteLength);
  const h = headProblem(ctx, z.data, ep);
  const inner = innerLoop(h, L.headWeight(phi).data, L.headBias(phi).data, ctx.cfg.innerSteps, order === 'second-order');
  // The inner loop's peak is at its end: the head tape (g x l, grown monotonically) plus the head state and scratch.
  const tapeBytes = inner.tape?.bytes ?? 0, stateBytes = inner.w.byteLength + inner.b.byteLength;
  meter.set(PART.innerTape, tapeBytes);
  meter.reached(PART.innerState, inner.peakBytes - tapeBytes);
  const q = queryLoss(h, inner.w, inner.b);
  meter.reached(PART.innerState, stateBytes + q.bytes);
  let dzs: FloatArray, dw0: FloatArray, db0: FloatArray;
  if (order === 'second-order') {
    const back = backwardInner(h, inner.tape!, q.dw, q.db);
    // backwardInner's peak is at its start: the whole tape plus its adjoints.
    meter.reached(PART.innerState, back.peakBytes - tapeBytes + q.bytes + stateBytes);
    ({ dzs, dw0, db0 } = back);
  } else {
    dzs = allocLike(q.dw, h.zs.length);
    dw0 = q.dw;
    db0 = q.db;
  }
  meter.set(PART.innerTape, 0);
  // The embeddings' adjoint [NS + NQ, E] seeds the encoder backward.
  const seed = new Tensor(allocLike(z.data, z.size), z.shape);
  seed.data.set(dzs, 0);
  seed.data.set(q.dzq, dzs.length);
  meter.set(PART.innerState, dw0.byteLength + db0.byteLength);
  meter.set(PART.activations, tape.bytesHeld() + seed.data.byteLength);
  tape.backward(zVar, g, seed);
  meter.reached(PART.activations, tape.peakBytes + seed.data.byteLength);
  meter.set(PART.activations, 0);
  g.set(dw0, L.headWeightOffset);
  g.set(db0, L.headBiasOffset);
  meter.set(PART.innerState, 0);
  return { loss: q.loss, accuracy: q.accuracy, grad: g, meter };
}

/** The meta-loss of one parameter vector, forward only (no tape): embed, inner loop, query loss. */
export function mamlForwardLoss<V extends object>(ctx: MetaContext, ops: TensorOps<V>, theta: FloatArray, images: Tensor, ep: Episode): { loss: number; accuracy: number; headBytes: number } {
  // headBytes: the head's largest state (inner loop or query loss); the embeddings are the encoder's output.
  const L = ctx.layout;
  const z = ops.value(embed(ops, L.encoder, L.encoderParams(theta), ctx.bn, images, { bn: 'batch' }));
  const h = headProblem(ctx, z.data, ep);
  const inner = innerLoop(h, L.headWeight(theta).data, L.headBias(theta).data, ctx.cfg.innerSteps, false);
  const q = queryLoss(h, inner.w, inner.b);
  return { loss: q.loss, accuracy: q.accuracy, headBytes: Math.max(inner.peakBytes, inner.w.byteLength + inner.b.byteLength + q.bytes) };
}

/** ES meta-gradient (WSR, paper eq. 9) with noise regenerated from (seed, step, member); 'es-matrix' holds the P x D population matrix instead. */
export function mamlEs(ctx: MetaContext, mu: Float32Array, ep: Episode, es: EsSettings, method: 'es' | 'es-matrix' = 'es', grad?: Float32Array): MetaGradient {
  checkEpisode(ctx, ep);
  const L = ctx.layout, meter = ctx.meter ?? new PeakMeter(), d = mu.length;
  L.check(mu);
  if (!Number.isInteger(es.pop) || es.pop < 2) throw new RangeError(`maml es: population must be an integer >= 2, got ${es.pop}`);
  if (es.antithetic && es.pop % 2 !== 0) throw new RangeError(`maml es: antithetic sampling needs an even population, got ${es.pop}`);
  if (!(es.sigma > 0)) throw new RangeError(`maml es: sigma must be > 0, got ${es.sigma}`);
  const g = grad ?? new Float32Array(d);
  L.check(g);
  const sum = new Float64Array(d);
  meter.set(PART.parameters, mu.byteLength);
  meter.set(PART.gradient, g.byteLength + sum.byteLength);
  meter.set(PART.episode, ep.support.data.byteLength + ep.query.data.byteLength);
  const images = concatImages(ep.support, ep.query);
  const theta = new Float32Array(d), z = new Float32Array(d), fitness = new Float64Array(es.pop), weights = new Float64Array(es.pop);
  meter.set(PART.population, theta.byteLength + z.byteLength + fitness.byteLength + weights.byteLength);
  const pert = { kind: 'gaussian' as const, sigma: es.sigma, antithetic: es.antithetic };
  let matrix: Float32Array | null = null;
  if (method === 'es-matrix') {
    if (es.pop * d > 2 ** 31) throw new RangeError(`maml es-matrix: a ${es.pop} x ${d} population matrix is too large to allocate`);
    matrix = new Float32Array(es.pop * d);
    meter.set(PART.matrix, matrix.byteLength);
    for (let m = 0; m < es.pop; m++) {
      const { id, sign } = memberNoise(m, es.antithetic);
      fillMemberNoise(z, es.seed, es.step, id);
      for (let j = 0; j < d; j++) matrix[m * d + j] = sign * Math.fround(es.sigma * z[j]!);
    }
  }
  const metered = meterOps(new DirectOps(ctx.device));
  const used = es.evaluate ?? es.pop;
  if (!(Number.isInteger(used) && used >= 2 && used <= es.pop)) throw new RangeError(`maml es: evaluate must be an integer in [2, ${es.pop}], got ${used}`);
  let lossSum = 0, accSum = 0;
  for (let m = 0; m < used; m++) {
    if (matrix) for (let j = 0; j < d; j++) theta[j] = mu[j]! + matrix[m * d + j]!;
    else perturbMember(theta, mu, pert, es.seed, es.step, m, z);
    metered.reset();
    const r = mamlForwardLoss(ctx, metered.ops, theta, images, ep);
    // Every op output of the member's encoder forward, the image batch, and the head's inner-loop state.
    meter.set(PART.activations, metered.allocated + images.data.byteLength);
    meter.set(PART.innerState, r.headBytes);
    fitness[m] = -r.loss;
    lossSum += r.loss;
    accSum += r.accuracy;
  }
  weights.set(groupWeights(fitness.subarray(0, used), { estimator: 'wsr', sigma: es.sigma, baseline: false, nonFinite: 'worst' }).weights);
  if (matrix) {
    for (let m = 0; m < used; m++) {
      const w = weights[m]!;
      for (let j = 0; j < d; j++) sum[j] = sum[j]! + w * matrix[m * d + j]!;
    }
  } else {
    noiseSumInto(sum, { mu, seed: es.seed, step: es.step, antithetic: es.antithetic, sigma: es.sigma, start: 0, weights: weights.subarray(0, used) }, z);
  }
  for (let j = 0; j < d; j++) g[j] = -sum[j]!;
  meter.set(PART.activations, 0);
  meter.set(PART.innerState, 0);
  meter.set(PART.population, 0);
  meter.set(PART.matrix, 0);
  return { loss: lossSum / used, accuracy: accSum / used, grad: g, meter };
}

