/**
 * ES noise, regenerated and never stored: the member perturbations of the
 * population contract (lib/es/population.ts) and the weighted noise sum, as
 * plain TypeScript. This file is the spec that every population evaluator
 * matches bit for bit; it holds O(D) scratch, never a P x D matrix.
 *
 * Bit-exactness notes for other implementations: sigma and delta are float64;
 * eps_j = f32(sigma * z_j) is the float64 product rounded once to float32;
 * theta_j = f32(mu_j + s * eps_j) (float32 addition); the noise sum adds
 * (w_i * s_i) * eps_ij to a float64 accumulator with one rounding per add
 * (no fused multiply-add), members in increasing order.
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

/**
 * theta = the parameters of global member m. `z` is scratch of length D
 * (gaussian kind only). mu, theta and z must not alias.
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
    const s = p.sigmas;
    if (s.length !== d) throw new RangeError(`perturbMember: sigmas has ${s.length} elements, mu ${d}`);
    for (let j = 0; j < d; j++) theta[j] = mu[j]! + sign * Math.fround(s[j]! * z[j]!);
    return;
  }
  const sigma = p.sigma;
  for (let j = 0; j < d; j++) theta[j] = mu[j]! + sign * Math.fround(sigma * z[j]!);
}

/**
 * out = sum_i weights[i] * s_i * eps_i (float64, member order), per the
 * NoiseSumRequest contract. Antithetic partners reuse one noise draw (same
 * result: only the generation is shared, each member is still added on its own).
 */
export function noiseSumInto(out: Float64Array, req: NoiseSumRequest, z: Float32Array): void {
  const d = req.mu.length;
  if (out.length !== d || z.length !== d) throw new RangeError(`noiseSum: buffers of ${out.length} and ${z.length} elements for D = ${d}`);
  if (!(req.sigma > 0)) throw new RangeError(`noiseSum: sigma must be > 0, got ${req.sigma}`);
  const sg = req.sigmas;
  if (sg && sg.length !== d) throw new RangeError(`noiseSum: sigmas has ${sg.length} elements for D = ${d}`);
  out.fill(0);
  const sigma = req.sigma;
  const square = req.kind === 'square';
  let have = -1;
  for (let i = 0; i < req.weights.length; i++) {
    const { id, sign } = memberNoise(req.start + i, req.antithetic);
    if (id !== have) {
      fillMemberNoise(z, req.seed, req.step, id);
      have = id;
    }
    const w = req.weights[i]!;
    if (square) {
      for (let j = 0; j < d; j++) out[j] = out[j]! + w * (z[j]! * z[j]! - 1);
    } else if (sg) {
      const ws = w * sign;
      for (let j = 0; j < d; j++) out[j] = out[j]! + ws * Math.fround(sg[j]! * z[j]!);
    } else {
      const ws = w * sign;
      for (let j = 0; j < d; j++) out[j] = out[j]! + ws * Math.fround(sigma * z[j]!);
    }
  }
}
