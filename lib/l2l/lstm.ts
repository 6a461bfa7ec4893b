/**
 * The coordinatewise LSTM optimizer as a program on DenseOps values, so one
 * code path runs on the tape (meta-training by backprop through the unroll)
 * and on plain device ops (forward-only rollouts: validation, ES members).
 *
 * Layout is feature-major: the N coordinates being optimized (of one task, or
 * of several tasks stacked: the LSTM is shared by every coordinate, so any set
 * of tasks is one program) are the columns; the preprocessed gradient is
 * x [2, N], each layer's state h, c [H, N], the gates z = W_ih x + W_hh h + b
 * [4H, N] split by row slices. The update of every coordinate is
 *   u = outScale * (out.weight h_top + out.bias)   [N]
 * and the optimizee step is theta <- theta + u.
 */
import type { DenseOps } from '../ops/api.js';
import { Tensor, allocLike, type FloatArray } from '../tensor/tensor.js';
import type { LstmOptimizerLayout } from './layout.js';

export interface LstmWeights<V> {
  layers: { wih: V; whh: V; b: V }[];
  outW: V;
  outB: V;
}

/** phi's views as op values: tape leaves at their offsets (leaf given) or constants. */
export function lstmWeights<V>(ops: DenseOps<V>, layout: LstmOptimizerLayout, phi: FloatArray, leaf?: (t: Tensor, offset: number) => V): LstmWeights<V> {
  const get = (name: string): V => {
    const t = layout.view(phi, name);
    return leaf ? leaf(t, layout.param(name).offset) : ops.constant(t);
  };
  const h = layout.config.hidden;
  const layers = [];
  for (let k = 0; k < layout.config.layers; k++) {
    layers.push({ wih: get(`lstm.weight_ih_l${k}`), whh: get(`lstm.weight_hh_l${k}`), b: ops.reshape(get(`lstm.bias_l${k}`), [4 * h, 1]) });
  }
  return { layers, outW: get('out.weight'), outB: get('out.bias') };
}

export interface LstmState<V> { h: V[]; c: V[] }

/**
 * Andrychowicz et al.'s preprocessing of each gradient coordinate g into two inputs:
 * (log|g| / p, sign g) when |g| >= e^-p, else (-1, e^p g). out is [2, N] row-major.
 */
export function preprocessGradient(g: ArrayLike<number>, p: number, out: FloatArray): void {
  const n = g.length;
  if (out.length !== 2 * n) throw new RangeError(`preprocessGradient: output has ${out.length} elements, expected 2 x ${n}`);
  const small = Math.exp(-p), big = Math.exp(p);
  for (let j = 0; j < n; j++) {
    const v = g[j]!, a = Math.abs(v);
    if (a >= small) {
      out[j] = Math.log(a) / p;
      out[n + j] = v > 0 ? 1 : v < 0 ? -1 : 0;
    } else {
      out[j] = -1;
      out[n + j] = big * v;
    }
  }
}

/** One step of the LSTM on the inputs x [2, N]: the update u [N] and the new state. */
export function lstmStep<V>(ops: DenseOps<V>, w: LstmWeights<V>, x: V, s: LstmState<V>, layout: LstmOptimizerLayout): { update: V; state: LstmState<V> } {
  const h = layout.config.hidden;
  const next: LstmState<V> = { h: [], c: [] };
  let inp = x;
  w.layers.forEach((l, k) => {
    const z = ops.add(ops.add(ops.matmul(l.wih, inp), ops.matmul(l.whh, s.h[k]!)), l.b);
    const i = ops.sigmoid(ops.sliceRows(z, 0, h));
    const f = ops.sigmoid(ops.sliceRows(z, h, 2 * h));
    const g = ops.tanh(ops.sliceRows(z, 2 * h, 3 * h));
    const o = ops.sigmoid(ops.sliceRows(z, 3 * h, 4 * h));
    const c = ops.add(ops.mul(f, s.c[k]!), ops.mul(i, g));
    const hn = ops.mul(o, ops.tanh(c));
    next.h.push(hn);
    next.c.push(c);
    inp = hn;
  });
  const u = ops.scale(ops.add(ops.matmul(w.outW, inp), w.outB), layout.config.outScale);
  const n = ops.value(u).shape[1]!;
  return { update: ops.reshape(u, [n]), state: next };
}

/** A zero state for N coordinates as constants of phi's dtype. */
export function zeroState<V>(ops: DenseOps<V>, layout: LstmOptimizerLayout, like: FloatArray, n: number): LstmState<V> {
  const h = layout.config.hidden, s: LstmState<V> = { h: [], c: [] };
  for (let k = 0; k < layout.config.layers; k++) {
    s.h.push(ops.constant(new Tensor(allocLike(like, h * n), [h, n])));
    s.c.push(ops.constant(new Tensor(allocLike(like, h * n), [h, n])));
  }
  return s;
}
