/**
 * Directional derivatives (tangents) of training-mode BatchNorm and of its
 * backward, per channel over (N, H, W), written out by hand for the
 * Hessian-vector products of lib/maml/convnet.ts.
 *
 * With x̂ = (x - mean) s, s = 1/sqrt(var + eps), M = N H W and a tangent ẋ of x:
 *   q   = mean(x̂ ẋ),   ṡ = -s² q,   x̂̇ = s (ẋ - mean(ẋ)) - x̂ s q
 *   y = γ x̂ + β                      ->  ẏ = γ̇ x̂ + γ x̂̇ + β̇
 * Backward, given dy (with its tangent ḋy):
 *   A = mean(dy), B = mean(dy x̂), k = γ s
 *   dx = k (dy - A - x̂ B),  dγ = M B,  dβ = M A
 *   Ȧ = mean(ḋy), Ḃ = mean(ḋy x̂ + dy x̂̇), k̇ = γ̇ s + γ ṡ
 *   ḋx = k̇ (dy - A - x̂ B) + k (ḋy - Ȧ - x̂̇ B - x̂ Ḃ),  ḋγ = M Ḃ,  ḋβ = M Ȧ
 */
import { allocLike, type FloatArray } from '../tensor/tensor.js';

export interface BnSaved {
  /** BN input [N, C, H, W] (flat), batch mean and invStd [C]. */
  x: FloatArray;
  mean: FloatArray;
  invStd: FloatArray;
  gamma: FloatArray;
  n: number;
  c: number;
  hw: number;
}

/** Per-channel statistics of a tangent ẋ that both tangents below need: mean(ẋ) and q = mean(x̂ ẋ). */
export interface BnTangentStats { mdx: FloatArray; q: FloatArray }

export function bnTangentStats(s: BnSaved, dx: FloatArray): BnTangentStats {
  const { n, c, hw } = s, m = n * hw;
  const mdx = allocLike(dx, c), q = allocLike(dx, c);
  for (let ch = 0; ch < c; ch++) {
    const mu = s.mean[ch]!, is = s.invStd[ch]!;
    let a = 0, b = 0;
    for (let i = 0; i < n; i++) {
      const base = (i * c + ch) * hw;
      for (let k = 0; k < hw; k++) {
        const t = dx[base + k]!;
        a += t;
        b += (s.x[base + k]! - mu) * is * t;
      }
    }
    mdx[ch] = a / m;
    q[ch] = b / m;
  }
  return { mdx, q };
}

/** ẏ for the tangents ẋ (of the input), γ̇ and β̇. */
export function bnForwardTangent(s: BnSaved, dx: FloatArray, st: BnTangentStats, dGamma: FloatArray, dBeta: FloatArray): FloatArray {
  const { n, c, hw } = s;
  const out = allocLike(dx, dx.length);
  for (let ch = 0; ch < c; ch++) {
    const mu = s.mean[ch]!, is = s.invStd[ch]!, g = s.gamma[ch]!, gd = dGamma[ch]!, bd = dBeta[ch]!;
    const mdx = st.mdx[ch]!, q = st.q[ch]!;
    for (let i = 0; i < n; i++) {
      const base = (i * c + ch) * hw;
      for (let k = 0; k < hw; k++) {
        const xh = (s.x[base + k]! - mu) * is;
        const xhd = is * (dx[base + k]! - mdx) - xh * is * q;
        out[base + k] = gd * xh + g * xhd + bd;
      }
    }
  }
  return out;
}

/**
 * Tangent of BN's backward (dx, dγ, dβ) given the saved dy, its tangent ḋy,
 * the input tangent ẋ (with its stats) and γ̇.
 */
export function bnBackwardTangent(
  s: BnSaved, dy: FloatArray, ddy: FloatArray, dx: FloatArray, st: BnTangentStats, dGamma: FloatArray,
): { ddx: FloatArray; ddgamma: FloatArray; ddbeta: FloatArray } {
  const { n, c, hw } = s, m = n * hw;
  const ddx = allocLike(dy, dy.length), ddgamma = allocLike(dy, c), ddbeta = allocLike(dy, c);
  for (let ch = 0; ch < c; ch++) {
    const mu = s.mean[ch]!, is = s.invStd[ch]!, g = s.gamma[ch]!, gd = dGamma[ch]!;
    const mdx = st.mdx[ch]!, q = st.q[ch]!;
    let sa = 0, sb = 0, sad = 0, sbd = 0;
    for (let i = 0; i < n; i++) {
      const base = (i * c + ch) * hw;
      for (let k = 0; k < hw; k++) {
        const j = base + k;
        const xh = (s.x[j]! - mu) * is;
        const xhd = is * (dx[j]! - mdx) - xh * is * q;
        sa += dy[j]!;
        sb += dy[j]! * xh;
        sad += ddy[j]!;
        sbd += ddy[j]! * xh + dy[j]! * xhd;
      }
    }
    const A = sa / m, B = sb / m, Ad = sad / m, Bd = sbd / m;
    const k0 = g * is, kd = gd * is - g * is * is * q;
    for (let i = 0; i < n; i++) {
      const base = (i * c + ch) * hw;
      for (let k = 0; k < hw; k++) {
        const j = base + k;
        const xh = (s.x[j]! - mu) * is;
        const xhd = is * (dx[j]! - mdx) - xh * is * q;
        ddx[j] = kd * (dy[j]! - A - xh * B) + k0 * (ddy[j]! - Ad - xhd * B - xh * Bd);
      }
    }
    ddgamma[ch] = sbd;
    ddbeta[ch] = sad;
  }
  return { ddx, ddgamma, ddbeta };
}
