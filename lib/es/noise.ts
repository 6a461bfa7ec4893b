/**
 * ES noise, regenerated and never stored: the member perturbations of the
 * population contract (lib/es/population.ts) and the weighted noise sums, as
 * plain TypeScript. This file is the spec that every population evaluator
 * matches bit for bit; it holds O(D) scratch, never a P x D matrix.
 *
 * Bit-exactness notes for other implementations: sigma and delta are float64,
 * sigmas (per parameter) float32; eps_j = f32(sigma * z_j) is the float64
 * product rounded once to float32, and eps_j = f32(sigmas_j * z_j) the exact
 * product of two float32s rounded once (the float32 product);
 * theta_j = f32(mu_j + s * eps_j) (float32 addition); the linear noise sum adds
 * (w_i * s_i) * eps_ij to a float64 accumulator with one rounding per add, the
 * square sum adds w_i * (z_ij * z_ij - 1) (z_ij * z_ij exact in float64, then
 * one rounding per operation); no fused multiply-add, members in increasing order.
 */
import { gaussianFill, STREAM } from '../rng/philox.js';
import type { NoiseSumRequest, Perturbation } from './population.js';

/** The noise id and sign of member m: antithetic pairs (2k, 2k+1) share noise k with signs +1, -1. */
export function memberNoise(m: number, antithetic: boolean): { id: number; sign: 1 | -1 } {
  if (!antithetic) return { id: m, sign: 1 };
  return { id: Math.floor(m / 2), sign: m % 2 === 0 ? 1 : -1 };
}

/** Standard normal noise of noise id k at `step` (float32, length z.length). */
export function fillMemberNoise(z: Float32Array, seed: number, step: number, id: number): void {
  gaussianFill(z, seed, STREAM.esNoise, step, id, 0);
}

/** Throws a RangeError naming the field unless every per-parameter sigma is finite and > 0 (length d). */
export function checkSigmas(sigmas: Float32Array, d: number, what: string): void {
  if (!(sigmas instanceof Float32Array)) throw new TypeError(`${what}: sigmas must be a Float32Array`);
  if (sigmas.length !== d) throw new RangeError(`${what}: sigmas has ${sigmas.length} elements, mu ${d}`);
  for (let j = 0; j < d; j++) {
    const s = sigmas[j]!;
    if (!(Number.isFinite(s) && s > 0)) throw new RangeError(`${what}: sigmas[${j}] must be finite and > 0, got ${s}`);
  }
}

/**
 * Throws a RangeError naming the field when a perturbation is outside the contract:
 * sigma finite and > 0, sigmas of length d all finite and > 0, delta finite. Evaluators
 * call it once per request (perturbMember does not repeat the O(D) check per member).
 */
export function checkPerturbation(p: Perturbation, d: number, what = 'evaluate'): void {
  if (p.kind === 'gaussian') {
    if (!(Number.isFinite(p.sigma) && p.sigma > 0)) throw new RangeError(`${what}: perturbation.sigma must be finite and > 0, got ${p.sigma}`);
  } else if (p.kind === 'diagonal') {
    checkSigmas(p.sigmas, d, `${what}: perturbation`);
  } else if (p.kind === 'coordinate') {
    if (!Number.isFinite(p.delta)) throw new RangeError(`${what}: perturbation.delta must be finite, got ${p.delta}`);
  } else {
    throw new RangeError(`${what}: unknown perturbation kind '${(p as { kind: unknown }).kind}'`);
  }
}

/**
 * theta = the parameters of global member m. `z` is scratch of length D
 * (gaussian and diagonal kinds). mu, theta and z must not alias.
 */
export function perturbMember(
  theta: Float32Array, mu: Float32Array, p: Perturbation, seed: number, step: number, m: number, z: Float32Array,
): void {
  const d = mu.length;
  if (theta.length !== d) throw new RangeError(`perturbMember: theta has ${theta.length} elements, mu ${d}`);
  if (p.kind === 'coordinate') {
    theta.set(mu);
    if (m >= 1) {
      if (m - 1 >= d) throw new RangeError(`perturbMember: coordinate member ${m} is past the ${d} parameters (population is at most D + 1)`);
      theta[m - 1] = mu[m - 1]! + p.delta;
    }
    return;
  }
  if (z.length !== d) throw new RangeError(`perturbMember: noise scratch has ${z.length} elements, mu ${d}`);
  const { id, sign } = memberNoise(m, p.antithetic);
  fillMemberNoise(z, seed, step, id);
  if (p.kind === 'diagonal') {
    const sigmas = p.sigmas;
    if (sigmas.length !== d) throw new RangeError(`perturbMember: sigmas has ${sigmas.length} elements, mu ${d}`);
    for (let j = 0; j < d; j++) theta[j] = mu[j]! + sign * Math.fround(sigmas[j]! * z[j]!);
    return;
  }
  const sigma = p.sigma;
  for (let j = 0; j < d; j++) theta[j] = mu[j]! + sign * Math.fround(sigma * z[j]!);
}

/** Throws a RangeError naming the field unless `req` is a valid noise-sum request for D = req.mu.length. */
export function checkNoiseSumRequest(req: NoiseSumRequest, what = 'noiseSum'): void {
  const kind = req.kind ?? 'linear';
  if (kind !== 'linear' && kind !== 'square') throw new RangeError(`${what}: kind must be 'linear' or 'square', got '${String(kind)}'`);
  if (req.sigmas !== undefined) checkSigmas(req.sigmas, req.mu.length, what);
  else if (kind === 'linear' && !(Number.isFinite(req.sigma) && req.sigma > 0)) throw new RangeError(`${what}: sigma must be finite and > 0, got ${req.sigma}`);
}

/**
 * out = the noise sum of the NoiseSumRequest contract (float64, member order).
 * Antithetic partners reuse one noise draw (same result: only the generation is
 * shared, each member is still added on its own).
 */
export function noiseSumInto(out: Float64Array, req: NoiseSumRequest, z: Float32Array): void {
  const d = req.mu.length;
  if (out.length !== d || z.length !== d) throw new RangeError(`noiseSum: buffers of ${out.length} and ${z.length} elements for D = ${d}`);
  checkNoiseSumRequest(req);
  out.fill(0);
  const square = req.kind === 'square';
  const sigma = req.sigma, sigmas = req.sigmas;
  let have = -1;
  for (let i = 0; i < req.weights.length; i++) {
    const { id, sign } = memberNoise(req.start + i, req.antithetic);
    if (id !== have) {
      fillMemberNoise(z, req.seed, req.step, id);
      have = id;
    }
    if (square) {
      const w = req.weights[i]!;
      for (let j = 0; j < d; j++) {
        const zj = z[j]!;
        out[j] = out[j]! + w * (zj * zj - 1);
      }
      continue;
    }
    const ws = req.weights[i]! * sign;
    if (sigmas) for (let j = 0; j < d; j++) out[j] = out[j]! + ws * Math.fround(sigmas[j]! * z[j]!);
    else for (let j = 0; j < d; j++) out[j] = out[j]! + ws * Math.fround(sigma * z[j]!);
  }
}
