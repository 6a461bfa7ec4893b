/**
 * A reverse-mode graph that can differentiate its own backward pass (PyTorch's create_graph),
 * for the second-order baseline EvoGrad is compared with: the T1-T2 style hypergradient
 * d/dlambda L_val(theta - alpha grad_theta L_train(theta, lambda)) needs the derivative of a
 * gradient, which lib/autodiff's tape (first order: its backward runs kernels, not recorded ops)
 * cannot give.
 *
 * The graph implements TensorOps, so the model code runs on it unchanged. Every op records a
 * node holding its input and output values. backward(..., createGraph = true) runs each node's
 * vector-Jacobian product AS RECORDED OPS -- the backward kernels of the op contract
 * (conv2dBackwardInput, batchnorm2dBackward, ...) become nodes too, each with its own VJP
 * (rules.ts) -- so the gradients it returns are graph values that can be differentiated again.
 * A second backward (createGraph = false) runs the same rules as plain computations.
 *
 * Supported: the ops of ProtoNet's training-mode episode loss (conv2d, batchnorm2dTrain, relu,
 * maxpool2d, reshape, sliceRows, prototypes, sqEuclidean, scale, logSoftmax, crossEntropy) and
 * rotate (first order). Memory: an exact ledger (lib/autodiff/memory.ts) of every array the
 * graph holds -- node inputs, outputs and side data, and pending cotangents -- with its peak.
 */
import type { Device } from '../../device/registry.js';
import type { BnTrainResult, TensorOps } from '../../ops/api.js';
import type { Conv2dAttrs, PoolAttrs } from '../../ops/contract.js';
import { Tensor } from '../../tensor/tensor.js';
import { MemoryLedger, type HeldArray, type MemoryBreakdown } from '../../autodiff/memory.js';
import { RULES, type RuleContext } from './rules.js';

/** A value on the graph. */
export class GVar {
  constructor(readonly graph: Graph, readonly id: number, readonly value: Tensor, readonly requiresGrad: boolean) {}
  get shape(): readonly number[] { return this.value.shape; }
}

export interface GNode {
  op: string;
  inputs: (GVar | undefined)[];
  outputs: GVar[];
  /** Op-specific data (attributes, labels, argmax, BN statistics). */
  extra: Record<string, unknown>;
  held: HeldArray[];
}

export class Graph implements TensorOps<GVar> {
  private nextId = 0;
  readonly nodes: GNode[] = [];
  /** Whether ops on values that require gradients are recorded (false during a plain backward). */
  recording = true;
  private readonly ledger = new MemoryLedger();

  constructor(readonly device: Device) {}

  /** Bytes of the arrays the graph holds now, and the most it has held (exact; see the file comment). */
  bytesHeld(): number { return this.ledger.bytes.total; }
  get peakBytes(): number { return this.ledger.peak; }
  peakMemory(): MemoryBreakdown { return this.ledger.peakBreakdown; }

  constant(t: Tensor): GVar { return new GVar(this, this.nextId++, t, false); }
  /** A leaf whose gradient backward() can return. */
  leaf(t: Tensor): GVar { return new GVar(this, this.nextId++, t, true); }
  value(v: GVar): Tensor { return v.value; }

  /**
   * Record op `op` (if recording and an input requires a gradient): its outputs become graph
   * values; otherwise they are constants. Used by the ops below and by the rules.
   */
  emit(op: string, inputs: (GVar | undefined)[], outs: Tensor[], extra: Record<string, unknown> = {}): GVar[] {
    for (const v of inputs) if (v && v.graph !== this) throw new Error(`graph: value ${v.id} belongs to another graph`);
    const rec = this.recording && inputs.some((v) => v?.requiresGrad);
    const outputs = outs.map((t) => new GVar(this, this.nextId++, t, rec));
    if (!rec) return outputs;
    if (!RULES[op]) throw new Error(`graph: op ${op} has no differentiation rule`);
    const held: HeldArray[] = [];
    const hold = (a: HeldArray, cat: 'activation' | 'external'): void => { this.ledger.hold(a, cat); held.push(a); };
    for (const v of inputs) if (v) hold(v.value.data, v.requiresGrad ? 'activation' : 'external');
    for (const o of outputs) hold(o.value.data, 'activation');
    for (const x of Object.values(extra)) if (x instanceof Tensor) hold(x.data, 'activation'); else if (x instanceof Int32Array) hold(x, 'external');
    this.nodes.push({ op, inputs, outputs, extra, held });
    this.ledger.measure();
    return outputs;
  }

  private one(op: string, inputs: (GVar | undefined)[], out: Tensor, extra: Record<string, unknown> = {}): GVar {
    return this.emit(op, inputs, [out], extra)[0]!;
  }

  conv2d(x: GVar, w: GVar, b: GVar | undefined, attrs: Conv2dAttrs): GVar {
    const y = this.device.run('conv2d', b ? { x: x.value, w: w.value, b: b.value } : { x: x.value, w: w.value }, attrs);
    return this.one('conv2d', [x, w, b], y, { attrs: { stride: attrs.stride, padding: attrs.padding } });
  }

  batchnorm2dTrain(x: GVar, gamma: GVar, beta: GVar, eps: number): BnTrainResult<GVar> {
    const r = this.device.run('batchnorm2dTrain', { x: x.value, gamma: gamma.value, beta: beta.value }, { eps });
    return { y: this.one('batchnorm2dTrain', [x, gamma, beta], r.y, { mean: r.mean, invStd: r.invStd }), mean: r.mean, variance: r.variance };
  }

  batchnorm2dEval(): never {
    throw new Error('graph: batchnorm2dEval is not supported by the second-order graph (BN runs in training mode here)');
  }

  relu(x: GVar): GVar { return this.one('relu', [x], this.device.run('relu', { x: x.value }, {})); }

  maxpool2d(x: GVar, attrs: PoolAttrs): GVar {
    const r = this.device.run('maxpool2d', { x: x.value }, attrs);
    return this.one('maxpool2d', [x], r.y, { argmax: r.argmax });
  }

  reshape(x: GVar, shape: readonly number[]): GVar { return this.one('reshape', [x], x.value.reshape(shape)); }

  sliceRows(x: GVar, start: number, end: number): GVar {
    const rows = x.shape[0]!, inner = rows === 0 ? 0 : x.value.size / rows;
    if (!(start >= 0 && end <= rows && start <= end)) throw new RangeError(`sliceRows [${start}, ${end}) outside ${rows} rows`);
    return this.one('sliceRows', [x], new Tensor(x.value.data.subarray(start * inner, end * inner), [end - start, ...x.shape.slice(1)]), { start, end });
  }

  prototypes(support: GVar, labels: Int32Array, way: number): GVar {
    return this.one('prototypes', [support], this.device.run('prototypes', { support: support.value, labels }, { way }), { labels, way });
  }

  sqEuclidean(q: GVar, p: GVar): GVar { return this.one('sqEuclidean', [q, p], this.device.run('sqEuclidean', { q: q.value, p: p.value }, {})); }

  cosine(): never {
    throw new Error('graph: cosine distance is not supported by the second-order graph (use euclidean)');
  }

  scale(x: GVar, alpha: number): GVar { return this.one('scale', [x], this.device.run('scale', { x: x.value }, { alpha }), { alpha }); }

  logSoftmax(x: GVar): GVar { return this.one('logSoftmax', [x], this.device.run('logSoftmax', { x: x.value }, {})); }

  crossEntropy(logp: GVar, labels: Int32Array): GVar {
    return this.one('crossEntropy', [logp], this.device.run('crossEntropy', { logp: logp.value, labels }, {}), { labels });
  }

  rotate(x: GVar, angle: GVar): GVar {
    return this.one('rotate', [x, angle], this.device.run('rotate', { x: x.value, angle: angle.value }, {}));
  }

  /** <x, c> for a constant c of x's shape: a scalar [] (the dot product that starts a second backward). */
  dot(x: GVar, c: Tensor): GVar {
    if (c.size !== x.value.size) throw new RangeError(`graph dot: ${c.size} values against ${x.value.size}`);
    let s = 0;
    const a = x.value.data, b = c.data;
    for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
    const out = Tensor.zeros([], x.value.dtype);
    out.data[0] = s;
    return this.one('dot', [x], out, { c });
  }

  /**
   * Gradients of `output` (a scalar, seeded with 1) with respect to `wrt` (leaves or any graph
   * values). With createGraph the VJPs are recorded, so the returned gradients are graph values
   * that depend on everything they were computed from; without, they are constants and every
   * node processed is released (the graph cannot be differentiated again through them).
   * A `wrt` value the output does not depend on gets a zero gradient.
   */
  backward(output: GVar, wrt: readonly GVar[], createGraph: boolean): GVar[] {
    if (output.value.size !== 1) throw new RangeError(`graph backward: the output must be a scalar, got shape [${output.shape.join(', ')}]`);
    const n = this.nodes.length;
    // Forward reachability from wrt, then backward from the output: the nodes on a path.
    const fromWrt = new Set(wrt.map((v) => v.id));
    for (let k = 0; k < n; k++) {
      const node = this.nodes[k]!;
      if (node.inputs.some((v) => v && fromWrt.has(v.id))) for (const o of node.outputs) fromWrt.add(o.id);
    }
    const toOut = new Set([output.id]);
    for (let k = n - 1; k >= 0; k--) {
      const node = this.nodes[k]!;
      if (node.outputs.some((o) => toOut.has(o.id))) for (const v of node.inputs) if (v) toOut.add(v.id);
    }
    const prevRecording = this.recording;
    this.recording = createGraph;
    const pending = new Map<number, GVar>();
    const add = (v: GVar, g: GVar): void => {
      const have = pending.get(v.id);
      if (!have) {
        pending.set(v.id, g);
        if (!createGraph) this.ledger.hold(g.value.data, 'gradient');
        return;
      }
      const sum = this.addValues(have, g);
      if (!createGraph) { this.ledger.release(have.value.data); this.ledger.hold(sum.value.data, 'gradient'); }
      pending.set(v.id, sum);
    };
    try {
      const seed = Tensor.zeros(output.shape, output.value.dtype);
      seed.data[0] = 1;
      add(output, this.constant(seed));
      for (let k = n - 1; k >= 0; k--) {
        const node = this.nodes[k]!;
        if (!node.outputs.some((o) => toOut.has(o.id) && fromWrt.has(o.id))) continue;
        const gs = node.outputs.map((o) => pending.get(o.id));
        if (gs.every((g) => g === undefined)) continue;
        const needs = node.inputs.map((v) => !!v && fromWrt.has(v.id) && toOut.has(v.id));
        const ctx: RuleContext = { graph: this, node, needs };
        const grads = RULES[node.op]!.vjp(gs, ctx);
        node.inputs.forEach((v, i) => { if (v && needs[i] && grads[i]) add(v, grads[i]!); });
        if (!createGraph) {
          for (const o of node.outputs) { const g = pending.get(o.id); if (g && !wrt.some((w) => w.id === o.id)) { this.ledger.release(g.value.data); pending.delete(o.id); } }
          this.release(node);
        }
        this.ledger.measure();
      }
      return wrt.map((v) => pending.get(v.id) ?? this.constant(Tensor.zeros(v.shape, v.value.dtype)));
    } finally {
      this.recording = prevRecording;
      if (!createGraph) for (const g of pending.values()) if (this.ledger.has(g.value.data)) this.ledger.release(g.value.data);
      this.ledger.measure();
    }
  }

  /** a + b (recorded when recording). */
  addValues(a: GVar, b: GVar): GVar {
    if (a.value.size !== b.value.size) throw new RangeError(`graph add: ${a.value.size} vs ${b.value.size} values`);
    const out = new Tensor(a.value.data.slice(), a.shape);
    const d = b.value.data;
    for (let i = 0; i < d.length; i++) out.data[i] += d[i]!;
    return this.one('add', [a, b], out);
  }

  private release(node: GNode): void {
    for (const a of node.held) this.ledger.release(a);
    node.held = [];
  }

  /** Release every node (after the last backward). */
  clear(): void {
    for (const node of this.nodes) this.release(node);
    this.nodes.length = 0;
    this.ledger.measure();
  }
}
