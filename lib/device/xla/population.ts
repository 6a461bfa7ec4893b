/**
 * Whole-program lowering of the population evaluation (the ES hot loop) with
 * the members as a batch dimension, the way XLA wants it:
 *   block 0: one convolution of the shared images with P*C output channels;
 *   later blocks: grouped convolutions, feature_group_count = P;
 *   BN over P*C channels = each member's own batch statistics; ReLU; max-pool
 *   as reduce_window; embeddings [P, B, E]; per-member prototypes (one-hot
 *   matmul); squared Euclidean distances (or cosine); log-softmax; mean query
 *   cross-entropy -> loss per member.
 * Member perturbations follow lib/es/population.ts and lib/es/noise.ts exactly
 * (noise regenerated in-program, eps = f32(sigma z), theta = f32(mu + s eps)).
 */
import type { ModelConfig } from '../../model/layout.js';
import { ProtoNetLayout } from '../../model/layout.js';
import type { Distance } from '../../model/protonet.js';
import type { Perturbation } from '../../es/population.js';
import { FuncBuilder, moduleOf, ttype, type FloatType, type Program, type Value } from './hlo.js';
import { bnTrain } from './lower/batchnorm2d.js';
import { maxPool } from './lower/maxpool2d.js';
import { relu } from './lower/relu.js';
import { sqDist } from './lower/distance.js';
import { logSoftmaxLast, oneHotRows } from './lower/softmax.js';
import { oneHotT } from './lower/prototypes.js';
import { gaussianNoise } from './noise.js';

/** The episode geometry a program is specialized to. */
export interface EpisodeShape { way: number; support: number; query: number }

export interface PopulationShape {
  model: ModelConfig;
  episode: EpisodeShape;
  distance: Distance;
  /** Logit scale for cosine (default 1). */
  cosineScale?: number;
  /** Float type of the network arithmetic (default f32; f64 for tight cross-checks). */
  compute?: FloatType;
  /**
   * Member convolutions of blocks >= 1: 'grouped' (default; one convolution with
   * feature_group_count = P) or 'batched' (3x3 patches, then one dot_general batched
   * over members; the same function -- on XLA CPU it measured 2x slower than grouped, kept
   * as a knob for accelerators whose batched GEMMs beat their grouped convolutions).
   */
  memberConv?: 'grouped' | 'batched';
  /**
   * Noise, perturbation and (in the ES step) weights, estimate and update: 'exact' (default:
   * float64, bit-exact with lib/es/noise.ts) or 'fast' (float32 only and no 64-bit types, for
   * accelerators without float64 such as TPUs; the same Philox draws, normals within ~1e-6
   * relative of the reference, up to ~5e-5 absolute near 0).
   */
  precision?: Precision;
}

export type Precision = 'exact' | 'fast';

/** The float type of the host-side quantities (noise, eps, weights, g) for a precision. */
export function hostFloat(p: Precision | undefined): FloatType {
  return p === 'fast' ? 'f32' : 'f64';
}

/** Per-member 3x3 pad-1 convolution as patches + a dot batched over members: h [B, P*C, S, S], w [P*Co, C, 3, 3]. */
function batchedMemberConv(fb: FuncBuilder, h: Value, w: Value, p: number): Value {
  const [b, pc, s] = h.shape as [number, number, number, number];
  const c = pc / p, co = w.shape[0]! / p;
  // zero padding by one on each spatial side, via a convolution-free pad: concatenate zero borders.
  const zRow = fb.splat(0, h.dtype, [b, pc, 1, s]);
  const hv = fb.concatenate([zRow, h, zRow], 2);
  const zCol = fb.splat(0, h.dtype, [b, pc, s + 2, 1]);
  const hp = fb.reshape(fb.concatenate([zCol, hv, zCol], 3), [b, p, c, s + 2, s + 2]);
  const taps: Value[] = [];
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) taps.push(fb.reshape(fb.slice(hp, [0, 0, 0, i, j], [b, p, c, i + s, j + s]), [b, p, c, 1, s, s]));
  // patches [P, B, S, S, C, 9] -> [P, B*S*S, C*9] (C major, tap minor: the OIHW weight order)
  const patches = fb.reshape(fb.transpose(fb.concatenate(taps, 3), [1, 0, 4, 5, 2, 3]), [p, b * s * s, c * 9]);
  const wm = fb.reshape(w, [p, co, c * 9]);
  const y = fb.dotGeneral(patches, wm, { lhsBatch: [0], rhsBatch: [0], lhsContract: [2], rhsContract: [2] }); // [P, B*S*S, Co]
  return fb.reshape(fb.transpose(fb.reshape(y, [p, b, s, s, co]), [1, 0, 4, 2, 3]), [b, p * co, s, s]);
}

/** Embeddings [P, B, E] of images [B, cin, S, S] under member parameters thetas [P, D] (compute type). */
export function embedPopulation(fb: FuncBuilder, layout: ProtoNetLayout, thetas: Value, images: Value, memberConv: 'grouped' | 'batched' = 'grouped'): Value {
  const cfg = layout.config;
  const p = thetas.shape[0]!, c = cfg.channels;
  const b = images.shape[0]!;
  const param = (name: string, shape: number[]): Value => {
    const e = layout.param(name);
    return fb.reshape(fb.slice(thetas, [0, e.offset], [p, e.offset + e.size]), shape);
  };
  let h = images;
  for (let i = 0; i < cfg.blocks; i++) {
    const cin = i === 0 ? cfg.inChannels : c;
    const w = param(`encoder.${i}.0.weight`, [p * c, cin, 3, 3]);
    h = i > 0 && memberConv === 'batched' ? batchedMemberConv(fb, h, w, p) : fb.convolution(h, w, { pad: [[1, 1], [1, 1]], featureGroups: i === 0 ? 1 : p });
    h = fb.add(h, fb.broadcastInDim(param(`encoder.${i}.0.bias`, [p * c]), h.shape, [1]));
    h = bnTrain(fb, h, param(`encoder.${i}.1.weight`, [p * c]), param(`encoder.${i}.1.bias`, [p * c]), cfg.bnEps).y;
    h = relu(fb, h); // NaN-propagating, as the reference
    h = maxPool(fb, h, 2, 2);
  }
  const side = h.shape[2]!;
  const e = c * side * side;
  if (e !== layout.embeddingSize) throw new Error(`xla population: embedding size ${e}, layout says ${layout.embeddingSize}`);
  return fb.transpose(fb.reshape(h, [b, p, e]), [1, 0, 2]);
}

/** Loss per member [P]: the ProtoNet episode loss of lib/model/protonet.ts for every member at once. */
export function populationLoss(
  fb: FuncBuilder, layout: ProtoNetLayout, thetas: Value, images: Value, supportLabels: Value, queryLabels: Value,
  shape: PopulationShape,
): Value {
  const { way, support: ns, query: nq } = shape.episode;
  const ft = thetas.dtype as FloatType;
  const z = embedPopulation(fb, layout, thetas, images, shape.memberConv);
  const p = z.shape[0]!, e = z.shape[2]!;
  const zs = fb.slice(z, [0, 0, 0], [p, ns, e]);
  const zq = fb.slice(z, [0, ns, 0], [p, ns + nq, e]);
  const oh = oneHotT(fb, supportLabels, way, ft);
  const counts = fb.reduce(oh, 'add', [1]);
  const sums = fb.transpose(fb.dotGeneral(zs, oh, { lhsContract: [1], rhsContract: [1] }), [0, 2, 1]);
  const protos = fb.div(sums, fb.broadcastInDim(counts, sums.shape, [1]));
  let logits: Value;
  if (shape.distance === 'euclidean') {
    logits = fb.unary('negate', sqDist(fb, zq, protos));
  } else {
    const eps = fb.constant(1e-8, ft);
    const norm = (x: Value): Value => fb.max(fb.unary('sqrt', fb.reduce(fb.mul(x, x), 'add', [2])), fb.broadcastTo(eps, x.shape.slice(0, 2)));
    const dot = fb.dotGeneral(zq, protos, { lhsBatch: [0], rhsBatch: [0], lhsContract: [2], rhsContract: [2] });
    const den = fb.mul(fb.broadcastInDim(norm(zq), dot.shape, [0, 1]), fb.broadcastInDim(norm(protos), dot.shape, [0, 2]));
    logits = fb.mulC(fb.div(dot, den), shape.cosineScale ?? 1);
  }
  const logp = logSoftmaxLast(fb, logits);
  const picked = fb.reduce(fb.mul(fb.broadcastInDim(oneHotRows(fb, queryLabels, [nq, way], ft), logp.shape, [1, 2]), logp), 'add', [1, 2]);
  return fb.div(fb.unary('negate', picked), fb.constant(nq, ft));
}

/** Noise ids and signs (+-1 in `ht`) of global members `members` (ui32 [P]). */
export function memberNoiseIds(fb: FuncBuilder, members: Value, antithetic: boolean, ht: FloatType = 'f64'): { ids: Value; sign: Value } {
  const p = members.shape[0]!;
  if (!antithetic) return { ids: members, sign: fb.splat(1, ht, [p]) };
  const one = fb.splat(1, 'ui32', [p]);
  const ids = fb.binary('shift_right_logical', members, one);
  const odd = fb.compare('EQ', fb.binary('and', members, one), one);
  return { ids, sign: fb.select(odd, fb.splat(-1, ht, [p]), fb.splat(1, ht, [p])) };
}

/** Inputs of the perturbation: seed, step (ui32 scalars) and the barrier zero (i64 scalar). */
export interface NoiseKey { seed: Value; stream: Value; step: Value; zero: Value }

/**
 * eps[P, D] * s for global members `members`: exact: f32(sigma * z) (a float64 product rounded
 * once) held as float64, times s = +-1 (exact); fast: float32 throughout.
 */
export function signedEps(fb: FuncBuilder, members: Value, d: number, sigma: number, antithetic: boolean, key: NoiseKey, precision?: Precision): Value {
  const ht = hostFloat(precision);
  const { ids, sign } = memberNoiseIds(fb, members, antithetic, ht);
  const z = gaussianNoise(fb, ids, d, key.seed, key.stream, key.step, ht === 'f64' ? key.zero : undefined, ht);
  const eps = ht === 'f64'
    ? fb.convert(fb.convert(fb.mul(fb.convert(z, 'f64'), fb.splat(sigma, 'f64', z.shape)), 'f32'), 'f64')
    : fb.mul(z, fb.splat(sigma, 'f32', z.shape));
  return fb.mul(eps, fb.broadcastInDim(sign, eps.shape, [0]));
}

/** theta [P, D] float32 of global members `members` (ui32 [P]) around mu [D] float32. */
export function perturbedThetas(fb: FuncBuilder, mu: Value, members: Value, pert: Perturbation, key: NoiseKey, precision?: Precision): Value {
  const p = members.shape[0]!, d = mu.shape[0]!;
  const ht = hostFloat(precision);
  const muH = fb.broadcastInDim(fb.convert(mu, ht), [p, d], [1]);
  if (pert.kind === 'coordinate') {
    // member 0 is mu; member m >= 1 nudges parameter m - 1 by delta (D < 2^31: i32 indices).
    const target = fb.sub(fb.convert(members, 'i32'), fb.splat(1, 'i32', [p]));
    const mask = fb.compare('EQ', fb.iota([p, d], 1, 'i32'), fb.broadcastInDim(target, [p, d], [0]));
    const nudged = fb.convert(fb.add(muH, fb.splat(pert.delta, ht, [p, d])), 'f32');
    return fb.select(mask, nudged, fb.broadcastInDim(mu, [p, d], [1]));
  }
  if (pert.kind === 'diagonal') throw new Error("xla: per-parameter sigma (perturbation kind 'diagonal') is not implemented in the xla population programs");
  const eps = signedEps(fb, members, d, pert.sigma, pert.antithetic, key, precision);
  return fb.convert(fb.add(muH, eps), 'f32');
}

/** Global member indices start + [0, P) as ui32 [P]. */
export function memberRange(fb: FuncBuilder, start: Value, p: number): Value {
  return fb.add(fb.iota([p], 0, 'ui32'), fb.broadcastTo(start, [p]));
}

export const ES_NOISE_STREAM = 0;

function keyFrom(fb: FuncBuilder, seed: Value, step: Value, zero: Value): NoiseKey {
  return { seed, step, zero, stream: fb.constant(ES_NOISE_STREAM, 'ui32') };
}

/**
 * The evaluate program of the PopulationEvaluator contract for P members per replica:
 * (mu f32[D], seed ui32, step ui32, start ui32, images f32[B,cin,S,S], supportLabels i32[NS], queryLabels i32[NQ], zero i64)
 *   -> fitness [P] (minus the loss) in the compute type, of members start + replica_id * P + [0, P).
 */
export function evaluateProgram(shape: PopulationShape, members: number, pert: Perturbation, replicas = 1): Program {
  const layout = new ProtoNetLayout(shape.model);
  const { support: ns, query: nq } = shape.episode;
  const s = shape.model.imageSize;
  const fb = new FuncBuilder('main', [
    ttype([layout.numParams], 'f32'), ttype([], 'ui32'), ttype([], 'ui32'), ttype([], 'ui32'),
    ttype([ns + nq, shape.model.inChannels, s, s], 'f32'), ttype([ns], 'i32'), ttype([nq], 'i32'), ttype([], 'i64'),
  ]);
  const [mu, seed, step, start, images, sl, ql, zero] = fb.params as [Value, Value, Value, Value, Value, Value, Value, Value];
  const ft = shape.compute ?? 'f32';
  const first = replicas > 1 ? fb.add(start, fb.mul(fb.replicaId(), fb.constant(members, 'ui32'))) : start;
  const thetas = fb.convert(perturbedThetas(fb, mu, memberRange(fb, first, members), pert, keyFrom(fb, seed, step, zero), shape.precision), ft);
  const loss = populationLoss(fb, layout, thetas, fb.convert(images, ft), sl, ql, shape);
  fb.ret([fb.unary('negate', loss)]);
  return moduleOf(fb, 'evometa_population_evaluate', replicas);
}

/**
 * The noiseSum program: (weights [P], seed ui32, step ui32, start ui32, zero i64) -> [D],
 * out = sum_i w_i s_i eps_i (a dot over the member axis; XLA picks the summation order);
 * weights and out are f64 ('exact') or f32 ('fast').
 */
export function noiseSumProgram(d: number, members: number, sigma: number, antithetic: boolean, precision?: Precision): Program {
  const ht = hostFloat(precision);
  const fb = new FuncBuilder('main', [ttype([members], ht), ttype([], 'ui32'), ttype([], 'ui32'), ttype([], 'ui32'), ttype([], 'i64')]);
  const [w, seed, step, start, zero] = fb.params as [Value, Value, Value, Value, Value];
  const eps = signedEps(fb, memberRange(fb, start, members), d, sigma, antithetic, keyFrom(fb, seed, step, zero), precision);
  fb.ret([fb.dotGeneral(w, eps, { lhsContract: [0], rhsContract: [0] })]);
  return moduleOf(fb, 'evometa_noise_sum');
}
