/**
 * MAML proper on ConvNet-4: the inner loop adapts EVERY parameter (all conv
 * weights and biases, all BN gammas and betas, and the linear head) by l SGD
 * steps on the support set,
 *   theta_0 = phi,  theta_{t+1} = theta_t - alpha grad L_support(theta_t),
 * and the meta-loss is the query cross-entropy at theta_l (BN with each
 * batch's own statistics, as MAML). Meta-gradients, three ways:
 *  - 'second-order': backprop through the inner loop. Every inner step's
 *    record (forward activations, backward adjoints, theta_t: lib/maml/convnet.ts)
 *    is kept -- the tape grows by g bytes per step -- and the walk back runs
 *    a_t = a_{t+1} - alpha H_t a_{t+1} with exact Hessian-vector products on
 *    each record, releasing it as it goes.
 *  - 'first-order': FO-MAML, grad L_query(theta_l); nothing kept across steps.
 *  - 'es': evolution strategies (WSR, paper eq. 9) with noise regenerated from
 *    seeds; each member runs the inner loop forward and backward one step at
 *    a time, keeping nothing across steps: memory flat in l.
 * Every method books its arrays on a PeakMeter under the shared categories (PART).
 */
import type { Device } from '../device/registry.js';
import type { Episode } from '../model/protonet.js';
import { allocLike, type FloatArray } from '../tensor/tensor.js';
import { groupWeights } from '../es/estimators.js';
import { noiseSumInto, perturbMember } from '../es/noise.js';
import { PART, PeakMeter } from '../ops/accounting.js';
import { convnetBackward, convnetForward, convnetHvp, recordBytes, type InnerStepRecord } from './convnet.js';
import { checkMamlConfig, type MamlConfig, type MamlLayout } from './layout.js';
import type { EsSettings, MetaGradient } from './metagrad.js';

export type FullMethod = 'second-order' | 'first-order' | 'es';
export const FULL_METHODS: readonly FullMethod[] = ['second-order', 'first-order', 'es'];

export interface FullContext {
  device: Device;
  layout: MamlLayout;
  cfg: MamlConfig;
  meter?: PeakMeter;
}

function checkEpisode(ctx: FullContext, ep: Episode): void {
  checkMamlConfig(ctx.cfg);
  if (ep.way !== ctx.layout.way) throw new RangeError(`maml (all parameters): episode is ${ep.way}-way, the head has ${ctx.layout.way} outputs`);
}

function bookEpisode(meter: PeakMeter, ep: Episode): void {
  meter.set(PART.episode, ep.support.data.byteLength + ep.query.data.byteLength);
}

/** Record bytes without its parameter vector (booked as inner-loop state when the record is not kept). */
function activationBytes(rec: InnerStepRecord): number {
  return recordBytes(rec) - rec.theta.byteLength;
}

interface InnerResult { theta: FloatArray; records: InnerStepRecord[]; tapeBytes: number }

/**
 * l inner SGD steps from a copy of theta0 on the support set. With `keep`,
 * every step's record is kept (the second-order tape).
 */
function innerLoop(ctx: FullContext, theta0: FloatArray, ep: Episode, keep: boolean, meter: PeakMeter): InnerResult {
  const L = ctx.layout, d = L.numParams, alpha = ctx.cfg.innerLr;
  let theta = allocLike(theta0, d);
  theta.set(theta0);
  const g = allocLike(theta0, d);
  const records: InnerStepRecord[] = [];
  let tapeBytes = 0;
  meter.set(PART.innerState, theta.byteLength + g.byteLength);
  for (let t = 0; t < ctx.cfg.innerSteps; t++) {
    const rec = convnetForward(ctx.device, L, theta, ep.support, ep.supportLabels);
    meter.set(PART.activations, activationBytes(rec));
    const walk = convnetBackward(ctx.device, L, rec, g);
    meter.set(PART.activations, activationBytes(rec));
    meter.reached(PART.scratch, walk.scratch);
    const next = allocLike(theta, d);
    for (let j = 0; j < d; j++) next[j] = theta[j]! - alpha * g[j]!;
    // At this moment: theta_t (in the record if kept), g and theta_{t+1}.
    meter.reached(PART.innerState, 3 * g.byteLength);
    if (keep) {
      records.push(rec);
      tapeBytes += recordBytes(rec);
      meter.set(PART.innerTape, tapeBytes);
    }
    meter.set(PART.activations, 0);
    theta = next;
    meter.set(PART.innerState, theta.byteLength + g.byteLength);
  }
  return { theta, records, tapeBytes };
}

/** The query meta-loss at phi after the inner loop, forward only (no tape kept). */
export function fullForwardLoss(ctx: FullContext, phi: FloatArray, ep: Episode, meter = ctx.meter ?? new PeakMeter()): { loss: number; accuracy: number } {
  checkEpisode(ctx, ep);
  ctx.layout.check(phi);
  const inner = innerLoop(ctx, phi, ep, false, meter);
  const q = convnetForward(ctx.device, ctx.layout, inner.theta, ep.query, ep.queryLabels);
  meter.set(PART.activations, activationBytes(q));
  meter.set(PART.activations, 0);
  return { loss: q.loss, accuracy: q.accuracy };
}

/** Backprop meta-gradient: second order through the inner loop, or first order. `grad` is overwritten. */
export function fullBackprop(ctx: FullContext, phi: FloatArray, ep: Episode, order: 'second-order' | 'first-order', grad?: FloatArray): MetaGradient {
  checkEpisode(ctx, ep);
  const L = ctx.layout, meter = ctx.meter ?? new PeakMeter(), alpha = ctx.cfg.innerLr;
  L.check(phi);
  const a = grad ?? allocLike(phi, phi.length);
  L.check(a);
  meter.set(PART.parameters, phi.byteLength);
  meter.set(PART.gradient, a.byteLength);
  bookEpisode(meter, ep);
  const inner = innerLoop(ctx, phi, ep, order === 'second-order', meter);
  const q = convnetForward(ctx.device, L, inner.theta, ep.query, ep.queryLabels);
  meter.set(PART.activations, activationBytes(q));
  const walkQ = convnetBackward(ctx.device, L, q, a);
  meter.set(PART.activations, activationBytes(q));
  meter.reached(PART.scratch, walkQ.scratch);
  meter.set(PART.activations, 0);
  meter.set(PART.innerState, 0);
  if (order === 'second-order') {
    const hv = allocLike(phi, phi.length);
    meter.set(PART.innerState, hv.byteLength);
    let tape = inner.tapeBytes;
    for (let t = inner.records.length - 1; t >= 0; t--) {
      const rec = inner.records[t]!;
      const walk = convnetHvp(ctx.device, L, rec, a, hv);
      meter.reached(PART.scratch, walk.scratch);
      for (let j = 0; j < a.length; j++) a[j] = a[j]! - alpha * hv[j]!;
      tape -= recordBytes(rec);
      inner.records.pop();
      meter.set(PART.innerTape, tape);
    }
    meter.set(PART.innerState, 0);
  }
  return { loss: q.loss, accuracy: q.accuracy, grad: a, meter };
}

/** ES meta-gradient (WSR, paper eq. 9), noise regenerated from (seed, step, member); a descent direction in `grad`. */
export function fullEs(ctx: FullContext, mu: Float32Array, ep: Episode, es: EsSettings, grad?: Float32Array): MetaGradient {
  checkEpisode(ctx, ep);
  const L = ctx.layout, meter = ctx.meter ?? new PeakMeter(), d = mu.length;
  L.check(mu);
  if (!Number.isInteger(es.pop) || es.pop < 2) throw new RangeError(`maml es: population must be an integer >= 2, got ${es.pop}`);
  if (es.antithetic && es.pop % 2 !== 0) throw new RangeError(`maml es: antithetic sampling needs an even population, got ${es.pop}`);
  if (!(es.sigma > 0)) throw new RangeError(`maml es: sigma must be > 0, got ${es.sigma}`);
  const used = es.evaluate ?? es.pop;
  if (!(Number.isInteger(used) && used >= 2 && used <= es.pop)) throw new RangeError(`maml es: evaluate must be an integer in [2, ${es.pop}], got ${used}`);
  const g = grad ?? new Float32Array(d);
  L.check(g);
  const sum = new Float64Array(d);
  meter.set(PART.parameters, mu.byteLength);
  meter.set(PART.gradient, g.byteLength + sum.byteLength);
  bookEpisode(meter, ep);
  const theta = new Float32Array(d), z = new Float32Array(d), fitness = new Float64Array(es.pop), weights = new Float64Array(es.pop);
  meter.set(PART.population, theta.byteLength + z.byteLength + fitness.byteLength + weights.byteLength);
  const pert = { kind: 'gaussian' as const, sigma: es.sigma, antithetic: es.antithetic };
  let lossSum = 0, accSum = 0;
  for (let m = 0; m < used; m++) {
    perturbMember(theta, mu, pert, es.seed, es.step, m, z);
    const r = fullForwardLoss(ctx, theta, ep, meter);
    fitness[m] = -r.loss;
    lossSum += r.loss;
    accSum += r.accuracy;
  }
  meter.set(PART.innerState, 0);
  weights.set(groupWeights(fitness.subarray(0, used), { estimator: 'wsr', sigma: es.sigma, baseline: false, nonFinite: 'worst' }).weights);
  noiseSumInto(sum, { mu, seed: es.seed, step: es.step, antithetic: es.antithetic, sigma: es.sigma, start: 0, weights: weights.subarray(0, used) }, z);
  for (let j = 0; j < d; j++) g[j] = -sum[j]!;
  return { loss: lossSum / used, accuracy: accSum / used, grad: g, meter };
}
