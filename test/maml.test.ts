/**
 * MAML adapting every ConvNet-4 parameter (lib/maml/full.ts): gradient, Hessian-vector products and the second-order
 * meta-gradient vs finite differences in float64; first order; ES. The head-only learner: hand-written second-order
 * reverse through the inner loop vs finite differences, first order, ES (regenerated vs matrix), training.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { DirectOps } from '../lib/ops/api.js';
import { Rng } from '../lib/rng/philox.js';
import { initialBnState } from '../lib/model/layout.js';
import { concatImages, embed } from '../lib/model/protonet.js';
import { backwardInner, headTapeBytes, innerLoop, queryLoss, type HeadProblem } from '../lib/maml/head.js';
import { MamlLayout, initMaml, type MamlConfig } from '../lib/maml/layout.js';
import { mamlBackprop, mamlEs, mamlForwardLoss, type MetaContext } from '../lib/maml/metagrad.js';
import { trainMaml, evaluateMaml } from '../lib/maml/train.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { syntheticEpisode } from '../lib/memory/episodes.js';
import { centralDiff, relErr } from './helpers/random.js';
import { PART } from '../lib/ops/accounting.js';
import { convnetBackward, convnetForward, convnetHvp } from '../lib/maml/convnet.js';
import { fullBackprop, fullEs, fullForwardLoss, type FullContext } from '../lib/maml/full.js';

const dev = getDevice('cpu-ts');
const direct = new DirectOps(dev);

function randArr(rng: Rng, n: number, scale = 1): Float64Array {
  return Float64Array.from({ length: n }, () => scale * (2 * rng.uniform() - 1));
}

/** A tiny ConvNet (2 blocks, C = 2, 8 x 8) in float64, parameters nudged off the initialization. */
function fullTiny(steps: number, seed = 3): { ctx: FullContext; phi: Float64Array } {
  const cfg: MamlConfig = { model: { channels: 2, imageSize: 8, blocks: 2 }, way: 3, innerSteps: steps, innerLr: 0.3 };
  const layout = new MamlLayout(cfg.model, cfg.way);
  const phi = Float64Array.from(initMaml(layout, seed));
  const rng = new Rng(seed + 1);
  for (let i = 0; i < phi.length; i++) phi[i] += 0.1 * (rng.uniform() - 0.5);
  return { ctx: { device: dev, layout, cfg }, phi };
}

test('every parameter: the ConvNet-4 + head gradient and its Hessian-vector products equal finite differences (float64)', () => {
  const { ctx, phi } = fullTiny(1);
  const L = ctx.layout, ep = syntheticEpisode({ way: 3, shot: 2, query: 2, imageSize: 8 }, 5, 0, 'float64');
  const lossAt = (t: Float64Array): number => convnetForward(dev, L, t, ep.support, ep.supportLabels).loss;
  const gradAt = (t: Float64Array): Float64Array => {
    const g = new Float64Array(L.numParams);
    convnetBackward(dev, L, convnetForward(dev, L, t, ep.support, ep.supportLabels), g);
    return g;
  };
  assert.is(L.numParams, (18 + 2 + 2 + 2) + (36 + 2 + 2 + 2) + 3 * 8 + 3); // every conv and BN parameter of both blocks, the head (E = 2 x 2 x 2)
  const g = gradAt(phi);
  assert.ok(relErr(g, centralDiff(phi, lossAt)) < 1e-7, 'gradient vs FD');
  const rec = convnetForward(dev, L, phi, ep.support, ep.supportLabels);
  convnetBackward(dev, L, rec, new Float64Array(L.numParams));
  const rng = new Rng(9);
  const v = Float64Array.from({ length: L.numParams }, () => rng.uniform() - 0.5);
  const hv = new Float64Array(L.numParams);
  convnetHvp(dev, L, rec, v, hv);
  const h = 1e-5;
  const gp = gradAt(phi.map((x, i) => x + h * v[i]!)), gm = gradAt(phi.map((x, i) => x - h * v[i]!));
  const fd = gp.map((x, i) => (x - gm[i]!) / (2 * h));
  assert.ok(relErr(hv, fd) < 1e-7, `H v vs FD of gradients: ${relErr(hv, fd)}`);
  const fresh = convnetForward(dev, L, phi, ep.support, ep.supportLabels);
  assert.throws(() => convnetHvp(dev, L, fresh, v, hv), /no adjoints/);
});

test('every parameter: the second-order meta-gradient through l = 3 inner steps equals finite differences (float64)', () => {
  const { ctx, phi } = fullTiny(3);
  const ep = syntheticEpisode({ way: 3, shot: 2, query: 2, imageSize: 8 }, 6, 0, 'float64');
  const r = fullBackprop(ctx, phi, ep, 'second-order');
  const f = (p: Float64Array): number => fullForwardLoss(ctx, p, ep).loss;
  assert.ok(Math.abs(r.loss - f(phi)) < 1e-12);
  const err = relErr(r.grad, centralDiff(phi, f));
  assert.ok(err < 1e-6, `second-order vs FD: ${err}`);
  // First order: the query gradient at the adapted parameters (FD of the query loss at theta_l), not the meta-gradient.
  const fo = fullBackprop(ctx, phi, ep, 'first-order');
  let thetaL = phi.slice();
  for (let t = 0; t < 3; t++) {
    const g = new Float64Array(phi.length);
    convnetBackward(dev, ctx.layout, convnetForward(dev, ctx.layout, thetaL, ep.support, ep.supportLabels), g);
    thetaL = thetaL.map((x, i) => x - 0.3 * g[i]!);
  }
  const q = (t: Float64Array): number => convnetForward(dev, ctx.layout, t, ep.query, ep.queryLabels).loss;
  assert.ok(relErr(fo.grad, centralDiff(thetaL, q)) < 1e-7, 'first order = grad of the query loss at theta_l');
  assert.ok(relErr(fo.grad, r.grad) > 1e-3, 'first and second order differ when l > 0');
  const zero = fullTiny(0);
  assert.ok(relErr(fullBackprop(zero.ctx, zero.phi, ep, 'first-order').grad, fullBackprop(zero.ctx, zero.phi, ep, 'second-order').grad) < 1e-14, 'with l = 0 they coincide');
});

test('every parameter: second order keeps g bytes per inner step; first order and ES are flat in l; ES agrees with the true meta-gradient', () => {
  const cfgOf = (l: number): MamlConfig => ({ model: { channels: 2, imageSize: 8, blocks: 2 }, way: 3, innerSteps: l, innerLr: 0.3 });
  const ep = syntheticEpisode({ way: 3, shot: 2, query: 2, imageSize: 8 }, 7);
  const layout = new MamlLayout(cfgOf(1).model, 3);
  const mu = initMaml(layout, 4);
  const ctx = (l: number): FullContext => ({ device: dev, layout, cfg: cfgOf(l) });
  const so = [1, 4, 16].map((l) => fullBackprop(ctx(l), mu, ep, 'second-order').meter);
  const g = so[0]!.maxOf(PART.innerTape);
  assert.ok(g > 0);
  assert.is(so[1]!.maxOf(PART.innerTape), 4 * g);
  assert.is(so[2]!.maxOf(PART.innerTape), 16 * g);
  assert.is(so[2]!.peak - so[1]!.peak, 12 * g, 'the whole peak grows by g per step');
  const fo = [1, 16].map((l) => fullBackprop(ctx(l), mu, ep, 'first-order').meter.peak);
  assert.is(fo[1], fo[0]);
  const es = [1, 16].map((l) => fullEs(ctx(l), mu, ep, { pop: 4, sigma: 0.01, antithetic: true, seed: 1, step: 0 }).meter);
  assert.is(es[1]!.peak, es[0]!.peak);
  assert.is(es[0]!.maxOf(PART.innerTape), 0);
  // ES points along the exact gradient where the meta-loss is smooth (l = 0). With l > 0 the inner gradient's ReLU and
  // max-pool kinks make theta_l, so the meta-loss, jump at scales of 1e-4 on a model this small: ES then estimates a
  // smoothed gradient, which need not match the local derivative.
  const exact = fullBackprop(ctx(0), mu, ep, 'second-order').grad;
  const est = fullEs(ctx(0), mu, ep, { pop: 400, sigma: 1e-3, antithetic: true, seed: 3, step: 0 }).grad;
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < mu.length; i++) { dot += exact[i]! * est[i]!; na += exact[i]! ** 2; nb += est[i]! ** 2; }
  assert.ok(dot / Math.sqrt(na * nb) > 0.5, `cosine ${dot / Math.sqrt(na * nb)} (D = ${mu.length})`);
  assert.throws(() => fullEs(ctx(2), mu, ep, { pop: 5, sigma: 0.01, antithetic: true, seed: 1, step: 0 }), /even population/);
});

test('head: second-order reverse through l inner steps equals finite differences (W0, b0, Zs, Zq)', () => {
  const rng = new Rng(1);
  const way = 3, e = 4, ns = 6, nq = 5, steps = 4;
  const h: HeadProblem = {
    zs: randArr(rng, ns * e, 1.5), ys: Int32Array.from([0, 1, 2, 0, 1, 2]), zq: randArr(rng, nq * e, 1.5), yq: Int32Array.from([2, 0, 1, 1, 0]),
    way, e, alpha: 0.7,
  };
  const w0 = randArr(rng, way * e, 0.5), b0 = randArr(rng, way, 0.5);
  const loss = (): number => { const r = innerLoop(h, w0, b0, steps, false); return queryLoss(h, r.w, r.b).loss; };
  const inner = innerLoop(h, w0, b0, steps, true);
  assert.is(inner.tape!.bytes, headTapeBytes(way, e, ns, steps, 8));
  assert.is(inner.tape!.bytes, steps * (3 * 4 + 6 * 3) * 8); // by hand: l (K E + NS K) float64s
  const q = queryLoss(h, inner.w, inner.b);
  const back = backwardInner(h, inner.tape!, q.dw, q.db);
  assert.is(inner.tape!.bytes, 0, 'the backward walk releases the tape');
  assert.ok(relErr(back.dw0, centralDiff(w0, loss)) < 1e-7, 'dW0');
  assert.ok(relErr(back.db0, centralDiff(b0, loss)) < 1e-7, 'db0');
  assert.ok(relErr(back.dzs, centralDiff(h.zs as Float64Array, loss)) < 1e-7, 'dZs');
  assert.ok(relErr(q.dzq, centralDiff(h.zq as Float64Array, loss)) < 1e-7, 'dZq');
  assert.throws(() => innerLoop({ ...h, ys: Int32Array.from([0, 1, 3, 0, 1, 2]) }, w0, b0, 1, false), /support label 3 outside \[0, 3\)/);
});

function tiny(steps: number): { ctx: MetaContext; phi: Float64Array } {
  const cfg: MamlConfig = { model: { channels: 2, imageSize: 12, blocks: 3 }, way: 3, innerSteps: steps, innerLr: 0.5 };
  const layout = new MamlLayout(cfg.model, cfg.way);
  const phi = Float64Array.from(initMaml(layout, 3));
  const rng = new Rng(4);
  for (let i = 0; i < phi.length; i++) phi[i] += 0.05 * (rng.uniform() - 0.5);
  return { ctx: { device: dev, layout, cfg, bn: initialBnState(layout.encoder) }, phi };
}

test('second-order MAML meta-gradient (tape through the encoder, hand reverse through the head) equals finite differences', () => {
  const { ctx, phi } = tiny(3);
  const ep = syntheticEpisode({ way: 3, shot: 2, query: 2, imageSize: 12 }, 5, 0, 'float64');
  const images = concatImages(ep.support, ep.query);
  const r = mamlBackprop(ctx, phi, ep, 'second-order');
  const f = (p: Float64Array): number => mamlForwardLoss(ctx, direct, p, images, ep).loss;
  assert.ok(Math.abs(r.loss - f(phi)) < 1e-12);
  const err = relErr(r.grad, centralDiff(phi, f));
  assert.ok(err < 1e-6, `second-order vs FD: ${err}`);
});

test('first-order MAML: head gradient at the adapted head, encoder through the query path only (vs finite differences)', () => {
  const { ctx, phi } = tiny(3);
  const ep = syntheticEpisode({ way: 3, shot: 2, query: 2, imageSize: 12 }, 6, 0, 'float64');
  const L = ctx.layout, images = concatImages(ep.support, ep.query), ns = ep.supportLabels.length, e = L.embeddingSize;
  const r = mamlBackprop(ctx, phi, ep, 'first-order');
  // The adapted head at phi, then held fixed.
  const z0 = embed(direct, L.encoder, L.encoderParams(phi), ctx.bn, images, { bn: 'batch' }).data;
  const hp = (z: Float64Array | Float32Array): HeadProblem => ({ zs: z.subarray(0, ns * e), ys: ep.supportLabels, zq: z.subarray(ns * e), yq: ep.queryLabels, way: 3, e, alpha: 0.5 });
  const adapted = innerLoop(hp(z0), L.headWeight(phi).data, L.headBias(phi).data, 3, false);
  const at = phi.slice(); // centralDiff() perturbs phi in place: shift the adapted head by p - at
  const f = (p: Float64Array): number => {
    const z = embed(direct, L.encoder, L.encoderParams(p), ctx.bn, images, { bn: 'batch' }).data;
    const shift = (off: number, n: number, base: ArrayLike<number>): Float64Array => Float64Array.from({ length: n }, (_, i) => base[i]! + p[off + i]! - at[off + i]!);
    return queryLoss(hp(z), shift(L.headWeightOffset, 3 * e, adapted.w), shift(L.headBiasOffset, 3, adapted.b)).loss;
  };
  const err = relErr(r.grad, centralDiff(phi, f));
  assert.ok(err < 1e-6, `first-order vs FD of the loss with the adaptation held fixed: ${err}`);
  const so = mamlBackprop(ctx, phi, ep, 'second-order');
  assert.ok(relErr(r.grad, so.grad) > 1e-3, 'first and second order differ when l > 0');
  const zero = tiny(0);
  const a = mamlBackprop(zero.ctx, zero.phi, ep, 'first-order'), b = mamlBackprop(zero.ctx, zero.phi, ep, 'second-order');
  assert.ok(relErr(a.grad, b.grad) < 1e-14, 'with l = 0 they coincide');
});

function esCtx(steps: number): { ctx: MetaContext; mu: Float32Array } {
  const cfg: MamlConfig = { model: { channels: 2, imageSize: 12, blocks: 3 }, way: 3, innerSteps: steps, innerLr: 0.5 };
  const layout = new MamlLayout(cfg.model, cfg.way);
  return { ctx: { device: dev, layout, cfg, bn: initialBnState(layout.encoder) }, mu: initMaml(layout, 7) };
}

test('ES: regenerated noise and the materialized population matrix give identical estimates; bytes differ by exactly P x D x 4', () => {
  const { ctx, mu } = esCtx(5);
  const ep = syntheticEpisode({ way: 3, shot: 2, query: 2, imageSize: 12 }, 8);
  const es = { pop: 8, sigma: 0.05, antithetic: true, seed: 11, step: 2 };
  const a = mamlEs(ctx, mu, ep, es, 'es'), b = mamlEs(ctx, mu, ep, es, 'es-matrix');
  assert.equal([...a.grad], [...b.grad]);
  const d = mu.length;
  assert.is(a.meter.maxOf(PART.population), 4 * d + 4 * d + 8 * es.pop + 8 * es.pop); // theta, noise, fitness, weights
  assert.is(a.meter.maxOf(PART.gradient), 4 * d + 8 * d); // the estimate and its float64 noise sum
  assert.is(b.meter.peak - a.meter.peak, es.pop * d * 4);
  assert.is(b.meter.maxOf(PART.matrix), es.pop * d * 4);
  assert.throws(() => mamlEs(ctx, mu, ep, { ...es, pop: 7 }), /even population/);
});

test('ES memory does not grow with the task length l; it grows with P by at most 16 bytes per member (fitness and weights)', () => {
  const ep = syntheticEpisode({ way: 3, shot: 2, query: 2, imageSize: 12 }, 9);
  const peaks = [1, 10, 100, 1000].map((l) => { const { ctx, mu } = esCtx(l); return mamlEs(ctx, mu, ep, { pop: 4, sigma: 0.05, antithetic: true, seed: 1, step: 0 }).meter.peak; });
  assert.equal(peaks, [peaks[0], peaks[0], peaks[0], peaks[0]]);
  const { ctx, mu } = esCtx(10);
  const run = (pop: number) => mamlEs(ctx, mu, ep, { pop, sigma: 0.05, antithetic: true, seed: 1, step: 0 }).meter;
  const p4 = run(4), p16 = run(16), d = mu.length;
  assert.is(p16.maxOf(PART.population) - p4.maxOf(PART.population), 12 * 16);
  assert.ok(p16.peak - p4.peak <= 12 * 16 && p16.peak >= p4.peak);
  // The stated bound: ES's population state is 8 D + 16 P bytes (member theta, noise scratch, fitness, weights).
  assert.is(p16.maxOf(PART.population), 8 * d + 16 * 16);
});

test('backprop memory grows by exactly g per inner step (g = K E + NS K elements), first order stays flat', () => {
  const ep = syntheticEpisode({ way: 3, shot: 2, query: 2, imageSize: 12 }, 10);
  const run = (l: number, order: 'second-order' | 'first-order') => {
    const { ctx, mu } = esCtx(l);
    return mamlBackprop(ctx, mu, ep, order).meter;
  };
  const g = (3 * 2 + 6 * 3) * 4; // float32: K E + NS K elements per step
  for (const l of [1, 20, 200]) assert.is(run(l, 'second-order').maxOf(PART.innerTape), l * g, `head tape at l = ${l}`);
  assert.is(run(40, 'second-order').maxOf(PART.innerState) - run(20, 'second-order').maxOf(PART.innerState), 0, 'state and adjoints do not grow with l');
  assert.is(run(200, 'first-order').maxOf(PART.innerTape), 0);
  // Once the head tape outgrows the encoder tape's backward, the whole peak grows by g per step.
  assert.is(run(3000, 'second-order').peak - run(2000, 'second-order').peak, 1000 * g);
  assert.is(run(2000, 'first-order').peak, run(20, 'first-order').peak);
});

test('ES estimate points along the true meta-gradient (cosine > 0.5 at P = 512, D = 117)', () => {
  const { ctx, mu } = esCtx(3);
  const ep = syntheticEpisode({ way: 3, shot: 2, query: 2, imageSize: 12 }, 12);
  const exact = mamlBackprop(ctx, mu, ep, 'second-order').grad;
  const est = mamlEs(ctx, mu, ep, { pop: 512, sigma: 1e-3, antithetic: true, seed: 3, step: 0 }).grad;
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < mu.length; i++) { dot += exact[i]! * est[i]!; na += exact[i]! ** 2; nb += est[i]! ** 2; }
  const cos = dot / Math.sqrt(na * nb);
  assert.is(mu.length, 117);
  assert.ok(cos > 0.5, `cosine ${cos}`);
});

test('meta-training lowers the validation meta-loss: second order, first order and ES', () => {
  const src = new SyntheticEpisodes({ way: 3, shot: 2, query: 3, imageSize: 12, classes: 6, seed: 2 });
  const val = [100, 101, 102].map((i) => src.episode(i));
  const cfg: MamlConfig = { model: { channels: 4, imageSize: 12, blocks: 3 }, way: 3, innerSteps: 5, innerLr: 0.5 };
  for (const [method, steps, opt] of [
    ['second-order', 30, { name: 'adam', lr: 0.01 }], ['first-order', 30, { name: 'adam', lr: 0.01 }], ['es', 30, { name: 'adam', lr: 0.01 }],
  ] as const) {
    const layout = new MamlLayout(cfg.model, cfg.way);
    const before = evaluateMaml({ device: dev, layout, cfg, bn: initialBnState(layout.encoder) }, initMaml(layout, 1), val).loss;
    const r = trainMaml({ device: dev, cfg, method, steps, seed: 1, train: src, val, optimizer: { ...opt }, es: { pop: 32, sigma: 0.02, antithetic: true } });
    const after = r.log[r.log.length - 1]!.valLoss!;
    assert.ok(after < before - 0.05, `${method}: val meta-loss ${before.toFixed(3)} -> ${after.toFixed(3)}`);
  }
});

test.run();
