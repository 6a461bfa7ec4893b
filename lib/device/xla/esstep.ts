/**
 * The whole ES step as one XLA program, sharded over replicas (num_replicas =
 * devices): each replica evaluates members [r*Pl, (r+1)*Pl) (noise keyed by
 * replica_id and member, regenerated in-program), then
 *   scheme 'paper'  (the paper's, II-F): each replica standardizes its own
 *                   rewards (WSR, eq. 9) and forms its estimate g_r scaled by
 *                   1/R; g = all_reduce(sum) of the g_r;
 *   scheme 'openai' (rewards only): all_gather of the rewards, one global
 *                   standardization, each replica regenerates every member's
 *                   noise and forms the same g.
 * and updates mu' = f32(mu + alpha g). Weights follow lib/es/estimators.ts
 * (groupWeights, estimator 'wsr'): population std, WSR_MIN_RELATIVE_STD, the
 * non-finite policy 'worst' or 'drop'.
 */
import { ProtoNetLayout } from '../../model/layout.js';
import { WSR_MIN_RELATIVE_STD } from '../../es/estimators.js';
import { FuncBuilder, moduleOf, ttype, type Program, type Value } from './hlo.js';
import { ES_NOISE_STREAM, hostFloat, memberRange, perturbedThetas, populationLoss, signedEps, type PopulationShape } from './population.js';

export type EsScheme = 'paper' | 'openai';

export interface EsStepSpec extends PopulationShape {
  /** Total population, split evenly over the replicas. */
  population: number;
  replicas: number;
  sigma: number;
  /** Step size: mu += alpha * g. */
  alpha: number;
  antithetic: boolean;
  scheme: EsScheme;
  nonFinite?: 'worst' | 'drop';
}

export function checkEsSpec(s: EsStepSpec): number {
  const bad = (f: string, why: string): never => { throw new RangeError(`xla ES step: ${f} ${why}`); };
  if (!Number.isInteger(s.replicas) || s.replicas < 1) bad('replicas', `must be a positive integer, got ${s.replicas}`);
  if (!Number.isInteger(s.population) || s.population < 1 || s.population % s.replicas !== 0) bad('population', `must be a positive multiple of replicas (${s.replicas}), got ${s.population}`);
  const per = s.population / s.replicas;
  if (s.antithetic && per % 2 !== 0) bad('population', `per replica (${per}) must be even with antithetic sampling`);
  if (s.scheme === 'paper' && per < 2) bad('population', `per replica (${per}) must be at least 2 for the paper scheme (each replica standardizes its own rewards)`);
  if (!(s.sigma > 0)) bad('sigma', `must be > 0, got ${s.sigma}`);
  if (!Number.isFinite(s.alpha)) bad('alpha', `must be finite, got ${s.alpha}`);
  return per;
}

/** WSR weights of a group's fitness f ([n], f64 or f32) times `scale`, as groupWeights() computes them. */
export function wsrWeights(fb: FuncBuilder, f: Value, scale: number, policy: 'worst' | 'drop'): Value {
  const n = f.shape[0]!;
  const ht = f.dtype;
  const inf = fb.splat(Infinity, ht, [n]);
  const zeros = fb.splat(0, ht, [n]);
  const finite = fb.binary('and', fb.compare('EQ', f, f), fb.compare('LT', fb.unary('abs', f), inf));
  let vals = f, used = finite;
  if (policy === 'worst') {
    const worst = fb.reduce(fb.select(finite, f, inf), 'minimum', [0]);
    const anyFinite = fb.compare('LT', worst, fb.constant(Infinity, ht));
    vals = fb.select(finite, f, fb.broadcastTo(worst, [n]));
    used = fb.binary('or', finite, fb.broadcastTo(anyFinite, [n]));
  }
  const cnt = fb.reduce(fb.convert(used, ht), 'add', [0]);
  const safeCnt = fb.max(cnt, fb.constant(1, ht));
  const mean = fb.div(fb.reduce(fb.select(used, vals, zeros), 'add', [0]), safeCnt);
  const dev = fb.sub(vals, fb.broadcastTo(mean, [n]));
  const ss = fb.reduce(fb.select(used, fb.mul(dev, dev), zeros), 'add', [0]);
  const std = fb.unary('sqrt', fb.div(ss, safeCnt));
  const floor = fb.mulC(fb.max(fb.constant(1, ht), fb.unary('abs', mean)), WSR_MIN_RELATIVE_STD);
  const spread = fb.binary('and', fb.compare('GT', std, floor), fb.compare('GT', cnt, fb.constant(0, ht)));
  const w = fb.mulC(fb.div(fb.div(dev, fb.broadcastTo(std, [n])), fb.broadcastTo(safeCnt, [n])), scale);
  return fb.select(fb.binary('and', used, fb.broadcastTo(spread, [n])), w, zeros);
}

/**
 * Per replica: (mu f32[D], seed ui32, step ui32, images f32[B,cin,S,S], supportLabels i32[NS], queryLabels i32[NQ], zero i64)
 *   -> (mu' f32[D], g [D] (f64 'exact', f32 'fast'), fitness [Pl] ('paper': this replica's members) or [P] ('openai': everyone's), compute type).
 */
export function esStepProgram(spec: EsStepSpec): Program {
  const per = checkEsSpec(spec);
  const layout = new ProtoNetLayout(spec.model);
  const d = layout.numParams, r = spec.replicas;
  const { support: ns, query: nq } = spec.episode;
  const s = spec.model.imageSize;
  const fb = new FuncBuilder('main', [
    ttype([d], 'f32'), ttype([], 'ui32'), ttype([], 'ui32'),
    ttype([ns + nq, spec.model.inChannels, s, s], 'f32'), ttype([ns], 'i32'), ttype([nq], 'i32'), ttype([], 'i64'),
  ]);
  const [mu, seed, step, images, sl, ql, zero] = fb.params as [Value, Value, Value, Value, Value, Value, Value];
  const key = { seed, step, zero, stream: fb.constant(ES_NOISE_STREAM, 'ui32') };
  const pert = { kind: 'gaussian' as const, sigma: spec.sigma, antithetic: spec.antithetic };
  const ft = spec.compute ?? 'f32';
  const start = fb.mul(fb.replicaId(), fb.constant(per, 'ui32'));
  const local = memberRange(fb, start, per);
  const ht = hostFloat(spec.precision);
  const thetas = fb.convert(perturbedThetas(fb, mu, local, pert, key, spec.precision), ft);
  const fitness = fb.unary('negate', populationLoss(fb, layout, thetas, fb.convert(images, ft), sl, ql, spec));
  const policy = spec.nonFinite ?? 'worst';
  let g: Value, reported: Value;
  if (spec.scheme === 'paper') {
    const w = wsrWeights(fb, fb.convert(fitness, ht), 1 / r, policy);
    const eps = signedEps(fb, local, d, spec.sigma, spec.antithetic, key, spec.precision);
    const gr = fb.dotGeneral(w, eps, { lhsContract: [0], rhsContract: [0] });
    g = r > 1 ? fb.allReduceSum(gr, r) : gr;
    reported = fitness;
  } else {
    const all = r > 1 ? fb.allGather(fitness, 0, r) : fitness;
    const w = wsrWeights(fb, fb.convert(all, ht), 1, policy);
    const eps = signedEps(fb, fb.iota([spec.population], 0, 'ui32'), d, spec.sigma, spec.antithetic, key, spec.precision);
    g = fb.dotGeneral(w, eps, { lhsContract: [0], rhsContract: [0] });
    reported = all;
  }
  const next = fb.convert(fb.add(fb.convert(mu, ht), fb.mulC(g, spec.alpha)), 'f32');
  fb.ret([next, g, reported]);
  return moduleOf(fb, `evometa_es_step_${spec.scheme}`, r);
}
