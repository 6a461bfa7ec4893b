/**
 * Differentiation rules of the second-order graph (graph.ts), by op name.
 *
 * First-order ops (the model's) have VJPs written as graph ops -- the backward kernels of the op
 * contract emitted as nodes -- so a backward with createGraph records a differentiable gradient.
 * The backward ops have VJPs of their own (second derivatives), computed here as plain tensors:
 * enough for a second backward, and an explicit error for a third.
 *
 *  conv2dBackwardInput(dy, w) = convT(dy, w):  <u, convT(dy, w)> = <conv(u, w), dy>
 *     d/d dy = conv(u, w),  d/d w = conv2dBackwardWeight(dy, x = u)
 *  conv2dBackwardWeight(dy, x) = dW:  <U, dW> = <dy, conv(x, U)>
 *     d/d dy = conv(x, U),  d/d x = conv2dBackwardInput(dy, U)
 *  batchnorm2dBackward(dy, x, gamma) -> (dx, dgamma), per channel with N elements, xh = (x - mu) s:
 *     dx = gamma s (dy - A/N - xh B/N), dgamma = B, with A = sum dy, B = sum dy xh.
 *     With cotangents U (dx), Ug (dgamma): SU = sum U, SUx = sum U xh, P = sum U dy - A SU / N,
 *     d/d dy = gamma s (U - SU/N - xh SUx/N) + Ug xh,   d/d gamma = s (P - B SUx / N),
 *     G = -(gamma s / N)(dy SUx + B U) + Ug dy,  Gs = gamma P - (gamma / N) B SUx,
 *     d/d x = s (G - sum G / N - xh sum(G xh) / N) - Gs (s^2 / N) xh.
 *  sqEuclideanBackward(dd, q, p) -> (dq, dp) = (2 sum_k dd (q - p_k), -2 sum_m dd (q_m - p)):
 *     d/d dd[m,k] = 2 (q_m - p_k).(Uq_m - Up_k), d/d q_m = 2 sum_k dd[m,k](Uq_m - Up_k), d/d p_k = -2 sum_m dd[m,k](Uq_m - Up_k)
 *  logSoftmaxBackward(dy, y) = dy - e^y S (S = row sum of dy), T = row sum of U e^y:
 *     d/d dy = U - T,  d/d y = -S U e^y
 *  reluBackward, maxpool2dBackward, prototypesBackward, row scatter, scale, reshape, add: linear.
 */
import { Tensor, allocLike, sizeOf } from '../../tensor/tensor.js';
import type { Conv2dAttrs } from '../../ops/contract.js';
import type { GNode, GVar, Graph } from './graph.js';

export interface RuleContext { graph: Graph; node: GNode; needs: readonly boolean[] }

export interface Rule {
  /** Cotangents of the node's inputs (undefined where not needed) given those of its outputs (undefined = zero). */
  vjp(gs: readonly (GVar | undefined)[], ctx: RuleContext): (GVar | undefined)[];
}

function plainOnly(ctx: RuleContext, op: string): void {
  if (ctx.graph.recording) throw new Error(`graph: the derivative of ${op} is computed as plain values (second order at most); it cannot be recorded for a third`);
}

function zerosLike(g: Graph, v: GVar): GVar {
  return g.constant(Tensor.zeros(v.shape, v.value.dtype));
}

const attrsOf = (n: GNode): Conv2dAttrs => n.extra['attrs'] as Conv2dAttrs;

// ---- backward ops emitted as graph nodes -------------------------------------------------

export function convBackInput(g: Graph, dy: GVar, w: GVar, attrs: Conv2dAttrs, xShape: readonly number[]): GVar {
  const v = g.device.run('conv2dBackwardInput', { dy: dy.value, w: w.value }, { ...attrs, inputShape: xShape });
  return g.emit('convBackInput', [dy, w], [v], { attrs, xShape })[0]!;
}

export function convBackWeight(g: Graph, dy: GVar, x: GVar, attrs: Conv2dAttrs, wShape: readonly number[]): GVar {
  const v = g.device.run('conv2dBackwardWeight', { dy: dy.value, x: x.value }, { ...attrs, weightShape: wShape }).dw;
  return g.emit('convBackWeight', [dy, x], [v], { attrs, wShape })[0]!;
}

/** Sum over (N, H, W) per channel: the bias gradient of conv2d and BN's beta gradient. */
export function channelSum(g: Graph, dy: GVar): GVar {
  const [n, c, h, w] = dy.shape as [number, number, number, number];
  const out = allocLike(dy.value.data, c), d = dy.value.data;
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) {
    let s = 0;
    const o = (b * c + ch) * h * w;
    for (let k = 0; k < h * w; k++) s += d[o + k]!;
    out[ch] += s;
  }
  return g.emit('channelSum', [dy], [new Tensor(out, [c])], { shape: dy.shape })[0]!;
}

function channelBroadcast(u: Tensor, shape: readonly number[]): Tensor {
  const [n, c, h, w] = shape as [number, number, number, number];
  const out = new Tensor(allocLike(u.data, sizeOf(shape)), shape);
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) out.data.fill(u.data[ch]!, (b * c + ch) * h * w, (b * c + ch + 1) * h * w);
  return out;
}

function reluBackward(g: Graph, dy: GVar, x: GVar): GVar {
  return g.emit('reluBackward', [dy, x], [g.device.run('reluBackward', { dy: dy.value, x: x.value }, {})])[0]!;
}

const cot = (g: Graph, gs: readonly (GVar | undefined)[], i: number, like: GVar): Tensor => (gs[i] ?? zerosLike(g, like)).value;

// ---- the rules ---------------------------------------------------------------------------

export const RULES: Record<string, Rule> = {
  conv2d: {
    vjp([gy], { graph: g, node, needs }) {
      const [x, w] = node.inputs as [GVar, GVar];
      const attrs = attrsOf(node);
      return [
        needs[0] ? convBackInput(g, gy!, w, attrs, x.shape) : undefined,
        needs[1] ? convBackWeight(g, gy!, x, attrs, w.shape) : undefined,
        needs[2] ? channelSum(g, gy!) : undefined,
      ];
    },
  },
  batchnorm2dTrain: {
    vjp([gy], { graph: g, node, needs }) {
      const [x, gamma] = node.inputs as [GVar, GVar];
      const mean = node.extra['mean'] as Tensor, invStd = node.extra['invStd'] as Tensor;
      let dx: GVar | undefined, dgamma: GVar | undefined;
      if (needs[0] || needs[1]) {
        const r = g.device.run('batchnorm2dBackward', { dy: gy!.value, x: x.value, gamma: gamma.value, mean, invStd }, {});
        [dx, dgamma] = g.emit('bnBackward', [gy!, x, gamma], [r.dx, r.dgamma], { mean, invStd });
      }
      return [needs[0] ? dx : undefined, needs[1] ? dgamma : undefined, needs[2] ? channelSum(g, gy!) : undefined];
    },
  },
  relu: { vjp([gy], { graph: g, node }) { return [reluBackward(g, gy!, node.inputs[0]!)]; } },
  maxpool2d: {
    vjp([gy], { graph: g, node }) {
      const x = node.inputs[0]!, argmax = node.extra['argmax'] as Int32Array;
      const v = g.device.run('maxpool2dBackward', { dy: gy!.value, argmax }, { inputShape: x.shape });
      return [g.emit('maxpoolBackward', [gy!], [v], { argmax, inputShape: x.shape })[0]!];
    },
  },
  reshape: { vjp([gy], { graph: g, node }) { return [g.reshape(gy!, node.inputs[0]!.shape)]; } },
  sliceRows: {
    vjp([gy], { graph: g, node }) {
      const x = node.inputs[0]!, start = node.extra['start'] as number;
      const full = new Tensor(allocLike(gy!.value.data, x.value.size), x.shape);
      const inner = x.shape[0] === 0 ? 0 : x.value.size / x.shape[0]!;
      full.data.set(gy!.value.data, start * inner);
      return [g.emit('scatterRows', [gy!], [full], { start, end: node.extra['end'], inputShape: x.shape })[0]!];
    },
  },
  prototypes: {
    vjp([gy], { graph: g, node }) {
      const labels = node.extra['labels'] as Int32Array, way = node.extra['way'] as number;
      const v = g.device.run('prototypesBackward', { dproto: gy!.value, labels }, { way });
      return [g.emit('prototypesBackward', [gy!], [v], { labels, way })[0]!];
    },
  },
  sqEuclidean: {
    vjp([gy], { graph: g, node }) {
      const [q, p] = node.inputs as [GVar, GVar];
      const r = g.device.run('sqEuclideanBackward', { dd: gy!.value, q: q.value, p: p.value }, {});
      return g.emit('sqEuclideanBackward', [gy!, q, p], [r.dq, r.dp]);
    },
  },
  scale: { vjp([gy], { graph: g, node }) { return [g.scale(gy!, node.extra['alpha'] as number)]; } },
  logSoftmax: {
    vjp([gy], { graph: g, node }) {
      const y = node.outputs[0]!;
      return [g.emit('logSoftmaxBackward', [gy!, y], [g.device.run('logSoftmaxBackward', { dy: gy!.value, y: y.value }, {})])[0]!];
    },
  },
  crossEntropy: {
    vjp([gy], { graph: g, node }) {
      // d loss / d logp = -(dloss / M) onehot does not depend on logp: a constant unless dloss itself is a graph value.
      if (gy!.requiresGrad) throw new Error('graph: crossEntropy with a differentiable output cotangent is not supported');
      return [g.constant(g.device.run('crossEntropyBackward', { dloss: gy!.value.data[0]!, logp: node.inputs[0]!.value, labels: node.extra['labels'] as Int32Array }, {}))];
    },
  },
  rotate: {
    vjp([gy], ctx) {
      if (ctx.graph.recording) throw new Error('graph: second derivatives through rotate are not supported (the baseline differentiates the network\'s weights first)');
      const [x, angle] = ctx.node.inputs as [GVar, GVar];
      const r = ctx.graph.device.run('rotateBackward', { dy: gy!.value, x: x.value, angle: angle.value }, {});
      return [ctx.graph.constant(r.dx), ctx.graph.constant(r.dangle)];
    },
  },
  add: { vjp([gy]) { return [gy, gy]; } },
  dot: {
    vjp([gy], ctx) {
      plainOnly(ctx, 'dot');
      const c = ctx.node.extra['c'] as Tensor, s = gy!.value.data[0]!;
      const out = new Tensor(allocLike(ctx.node.inputs[0]!.value.data, c.size), ctx.node.inputs[0]!.shape);
      for (let i = 0; i < c.size; i++) out.data[i] = s * c.data[i]!;
      return [ctx.graph.constant(out)];
    },
  },

  // ---- second derivatives (the VJPs of the backward ops) --------------------------------
  convBackInput: {
    vjp([gu], ctx) {
      const { graph: g, node, needs } = ctx;
      const [dy, w] = node.inputs as [GVar, GVar];
      const attrs = attrsOf(node);
      return [needs[0] ? g.conv2d(gu!, w, undefined, attrs) : undefined, needs[1] ? convBackWeight(g, dy, gu!, attrs, w.shape) : undefined];
    },
  },
  convBackWeight: {
    vjp([gu], ctx) {
      const { graph: g, node, needs } = ctx;
      const [dy, x] = node.inputs as [GVar, GVar];
      const attrs = attrsOf(node);
      return [needs[0] ? g.conv2d(x, gu!, undefined, attrs) : undefined, needs[1] ? convBackInput(g, dy, gu!, attrs, x.shape) : undefined];
    },
  },
  channelSum: {
    vjp([gu], ctx) {
      plainOnly(ctx, 'channelSum');
      return [ctx.graph.constant(channelBroadcast(gu!.value, ctx.node.extra['shape'] as number[]))];
    },
  },
  reluBackward: { vjp([gu], { graph: g, node }) { return [reluBackward(g, gu!, node.inputs[1]!), undefined]; } },
  maxpoolBackward: {
    vjp([gu], ctx) {
      plainOnly(ctx, 'maxpool2dBackward');
      const argmax = ctx.node.extra['argmax'] as Int32Array, u = gu!.value.data;
      const out = allocLike(u, argmax.length);
      for (let o = 0; o < argmax.length; o++) out[o] = u[argmax[o]!]!;
      return [ctx.graph.constant(new Tensor(out, ctx.node.inputs[0]!.shape))];
    },
  },
  scatterRows: {
    vjp([gu], { graph: g, node }) { return [g.sliceRows(gu!, node.extra['start'] as number, node.extra['end'] as number)]; },
  },
  prototypesBackward: {
    vjp([gu], { graph: g, node }) { return [g.prototypes(gu!, node.extra['labels'] as Int32Array, node.extra['way'] as number)]; },
  },
  bnBackward: { vjp: bnBackwardVjp },
  sqEuclideanBackward: { vjp: sqEuclideanBackwardVjp },
  logSoftmaxBackward: {
    vjp(gs, ctx) {
      plainOnly(ctx, 'logSoftmaxBackward');
      const [dy, y] = ctx.node.inputs as [GVar, GVar];
      const [m, k] = y.shape as [number, number];
      const u = gs[0]!.value.data, dyd = dy.value.data, yd = y.value.data;
      const gdy = allocLike(u, m * k), gyv = allocLike(u, m * k);
      for (let i = 0; i < m; i++) {
        let s = 0, t = 0;
        for (let j = 0; j < k; j++) { s += dyd[i * k + j]!; t += u[i * k + j]! * Math.exp(yd[i * k + j]!); }
        for (let j = 0; j < k; j++) {
          gdy[i * k + j] = u[i * k + j]! - t;
          gyv[i * k + j] = -s * u[i * k + j]! * Math.exp(yd[i * k + j]!);
        }
      }
      return [ctx.graph.constant(new Tensor(gdy, [m, k])), ctx.graph.constant(new Tensor(gyv, [m, k]))];
    },
  },
};

function bnBackwardVjp(gs: readonly (GVar | undefined)[], ctx: RuleContext): (GVar | undefined)[] {
  plainOnly(ctx, 'batchnorm2dBackward');
  const { graph: g, node } = ctx;
  const [dyv, xv, gammav] = node.inputs as [GVar, GVar, GVar];
  const mean = (node.extra['mean'] as Tensor).data, invStd = (node.extra['invStd'] as Tensor).data;
  const U = cot(g, gs, 0, node.outputs[0]!).data, Ug = cot(g, gs, 1, node.outputs[1]!).data;
  const dy = dyv.value.data, x = xv.value.data, gamma = gammav.value.data;
  const [n, c, h, w] = xv.shape as [number, number, number, number];
  const hw = h * w, N = n * hw;
  const gdy = allocLike(dy, dy.length), gx = allocLike(dy, dy.length), ggamma = allocLike(dy, c);
  const G = new Float64Array(N), xh = new Float64Array(N);
  for (let ch = 0; ch < c; ch++) {
    const mu = mean[ch]!, s = invStd[ch]!, ga = gamma[ch]!, ug = Ug[ch]!;
    const at = (i: number): number => (Math.floor(i / hw) * c + ch) * hw + (i % hw);
    let A = 0, B = 0, SU = 0, SUx = 0, UD = 0;
    for (let i = 0; i < N; i++) {
      const j = at(i);
      xh[i] = (x[j]! - mu) * s;
      A += dy[j]!; B += dy[j]! * xh[i]!; SU += U[j]!; SUx += U[j]! * xh[i]!; UD += U[j]! * dy[j]!;
    }
    const P = UD - (A * SU) / N;
    ggamma[ch] = s * (P - (B * SUx) / N);
    const Gs = ga * P - (ga / N) * B * SUx;
    let SG = 0, SGx = 0;
    for (let i = 0; i < N; i++) {
      const j = at(i);
      gdy[j] = ga * s * (U[j]! - SU / N - (xh[i]! * SUx) / N) + ug * xh[i]!;
      G[i] = -((ga * s) / N) * (dy[j]! * SUx + B * U[j]!) + ug * dy[j]!;
      SG += G[i]!; SGx += G[i]! * xh[i]!;
    }
    for (let i = 0; i < N; i++) gx[at(i)] = s * (G[i]! - SG / N - (xh[i]! * SGx) / N) - Gs * ((s * s) / N) * xh[i]!;
  }
  return [g.constant(new Tensor(gdy, dyv.shape)), g.constant(new Tensor(gx, xv.shape)), g.constant(new Tensor(ggamma, [c]))];
}

function sqEuclideanBackwardVjp(gs: readonly (GVar | undefined)[], ctx: RuleContext): (GVar | undefined)[] {
  plainOnly(ctx, 'sqEuclideanBackward');
  const { graph: g, node } = ctx;
  const [ddv, qv, pv] = node.inputs as [GVar, GVar, GVar];
  const Uq = cot(g, gs, 0, node.outputs[0]!).data, Up = cot(g, gs, 1, node.outputs[1]!).data;
  const dd = ddv.value.data, q = qv.value.data, p = pv.value.data;
  const [m, e] = qv.shape as [number, number], k = pv.shape[0]!;
  const gdd = allocLike(dd, m * k), gq = allocLike(dd, m * e), gp = allocLike(dd, k * e);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < k; j++) {
      const a = 2 * dd[i * k + j]!;
      let s = 0;
      for (let t = 0; t < e; t++) {
        const du = Uq[i * e + t]! - Up[j * e + t]!;
        s += (q[i * e + t]! - p[j * e + t]!) * du;
        gq[i * e + t] += a * du;
        gp[j * e + t] -= a * du;
      }
      gdd[i * k + j] = 2 * s;
    }
  }
  return [g.constant(new Tensor(gdd, [m, k])), g.constant(new Tensor(gq, qv.shape)), g.constant(new Tensor(gp, pv.shape))];
}
