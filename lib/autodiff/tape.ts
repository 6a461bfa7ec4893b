/**
 * Reverse-mode automatic differentiation: a tape that implements TensorOps,
 * so the model code (lib/model/protonet.ts) runs on it unchanged.
 *
 * Each op runs its forward kernel on the device and records a node: the op
 * name, its input ids, and exactly what its backward needs (SavedSpecs). A
 * node never holds its output value or its input values beyond that, so the
 * tape keeps alive only the saved tensors; the ledger counts their bytes.
 *
 * backward() walks the recorded nodes in reverse recording order (a reverse
 * topological order, since every input is recorded before its consumer),
 * iteratively, skipping nodes the loss does not depend on, and accumulates
 * the gradients of parameter leaves into one flat vector at the leaves'
 * offsets. Saved tensors are released as soon as their node is done.
 */
import type { Device } from '../device/registry.js';
import { sliceRowsTensor, type BnTrainResult, type DenseOps } from '../ops/api.js';
import type { Conv2dAttrs, PoolAttrs } from '../ops/contract.js';
import { Tensor, allocLike, type FloatArray } from '../tensor/tensor.js';
import type { ProtoNetLayout } from '../model/layout.js';
import { getGradient, type SavedSpecs, type TapeOp } from './gradients.js';
import { MemoryLedger, type HeldArray, type MemoryBreakdown } from './memory.js';
import './grads.js';
import './grads-dense.js';

export type VarKind = 'constant' | 'leaf' | 'op';

/** A value on a tape. */
export class Var {
  constructor(readonly tape: Tape, readonly id: number, readonly kind: VarKind, readonly value: Tensor) {}
  get shape(): readonly number[] { return this.value.shape; }
  get requiresGrad(): boolean { return this.kind !== 'constant'; }
}

interface Node {
  op: TapeOp;
  /** The output's var id. */
  id: number;
  /** Input var ids in argument order; -1 for an absent input or one that needs no gradient. */
  inputs: number[];
  inputShapes: (readonly number[] | undefined)[];
  /** Null once released. */
  saved: SavedSpecs[TapeOp] | null;
  held: HeldArray[];
}

export interface BackwardResult {
  /** Peak bytes held by the tape over its life (forward and backward); see Tape.peakBytes. */
  peakBytes: number;
  /** Nodes whose backward ran. */
  nodesRun: number;
}

export class Tape implements DenseOps<Var> {
  private nextId = 0;
  private readonly nodes: Node[] = [];
  private readonly leaves = new Map<number, { offset: number; size: number }>();
  private readonly ledger = new MemoryLedger();
  private readonly paramArrays = new WeakSet<HeldArray>();
  private readonly externalArrays = new WeakSet<HeldArray>();
  private consumed = false;

  constructor(readonly device: Device) {}

  /**
   * Bytes of array data the tape holds now: the union of the byte ranges of
   * every typed array it keeps alive (see memory.ts), i.e. the tensors saved
   * for backward (op outputs, BN mean/invStd, max-pool argmax Int32Arrays),
   * the caller's constants and label arrays that saved slots reference, and
   * during backward the pending gradient tensors. Parameter data (leaves and
   * views of them) is the model's and is not counted; nor is the flat
   * gradient vector (the caller's), nor scratch inside a kernel call.
   */
  bytesHeld(): number { return this.ledger.bytes.total; }
  memory(): MemoryBreakdown { return this.ledger.bytes; }
  /** The most bytesHeld() has been, sampled after every recorded op and, in backward, after each node's gradient kernels return (saved + pending + fresh gradients). */
  get peakBytes(): number { return this.ledger.peak; }
  peakMemory(): MemoryBreakdown { return this.ledger.peakBreakdown; }
  /** Nodes recorded so far. */
  get length(): number { return this.nodes.length; }
  /** Typed arrays held now (distinct objects). */
  get heldArrays(): number { return this.ledger.count; }

  constant(t: Tensor): Var {
    if (!this.paramArrays.has(t.data) && !this.ledger.has(t.data)) this.externalArrays.add(t.data);
    return new Var(this, this.nextId++, 'constant', t);
  }

  /** A parameter leaf: its gradient is added to grad[offset, offset + size) of the flat gradient vector. */
  leaf(t: Tensor, offset: number): Var {
    if (!Number.isInteger(offset) || offset < 0) throw new RangeError(`tape leaf: offset must be a non-negative integer, got ${offset}`);
    this.paramArrays.add(t.data);
    const v = new Var(this, this.nextId++, 'leaf', t);
    this.leaves.set(v.id, { offset, size: t.size });
    return v;
  }

  value(v: Var): Tensor { return this.own(v).value; }

  conv2d(x: Var, w: Var, b: Var | undefined, attrs: Conv2dAttrs): Var {
    const y = this.device.run('conv2d', b ? { x: x.value, w: w.value, b: b.value } : { x: x.value, w: w.value }, attrs);
    const needW = w.requiresGrad || (b?.requiresGrad ?? false);
    return this.record('conv2d', [x, w, b], y, {
      ...(needW ? { x: x.value } : {}), ...(x.requiresGrad ? { w: w.value } : {}),
      attrs: { stride: attrs.stride, padding: attrs.padding }, xShape: x.shape, wShape: w.shape,
    });
  }

  batchnorm2dTrain(x: Var, gamma: Var, beta: Var, eps: number): BnTrainResult<Var> {
    const r = this.device.run('batchnorm2dTrain', { x: x.value, gamma: gamma.value, beta: beta.value }, { eps });
    const y = this.record('batchnorm2dTrain', [x, gamma, beta], r.y, { x: x.value, gamma: gamma.value, mean: r.mean, invStd: r.invStd });
    return { y, mean: r.mean, variance: r.variance };
  }

  batchnorm2dEval(x: Var, gamma: Var, beta: Var, runningMean: Tensor, runningVar: Tensor, eps: number): Var {
    this.markExternal(runningMean.data);
    this.markExternal(runningVar.data);
    const y = this.device.run('batchnorm2dEval', { x: x.value, gamma: gamma.value, beta: beta.value, runningMean, runningVar }, { eps });
    return this.record('batchnorm2dEval', [x, gamma, beta], y, { x: x.value, gamma: gamma.value, runningMean, runningVar, eps });
  }

  relu(x: Var): Var {
    return this.record('relu', [x], this.device.run('relu', { x: x.value }, {}), { x: x.value });
  }

  maxpool2d(x: Var, attrs: PoolAttrs): Var {
    const r = this.device.run('maxpool2d', { x: x.value }, attrs);
    return this.record('maxpool2d', [x], r.y, { argmax: r.argmax, inputShape: x.shape });
  }

  bnReluPool(x: Var, gamma: Var, beta: Var, eps: number): BnTrainResult<Var> {
    const r = this.device.run('bnReluPool', { x: x.value, gamma: gamma.value, beta: beta.value }, { eps });
    const y = this.record('bnReluPool', [x, gamma, beta], r.y, { x: x.value, gamma: gamma.value, mean: r.mean, invStd: r.invStd, y: r.y, argmax: r.argmax });
    return { y, mean: r.mean, variance: r.variance };
  }

  reshape(x: Var, shape: readonly number[]): Var {
    return this.record('reshape', [x], this.inherit(x.value, x.value.reshape(shape)), { inputShape: x.shape });
  }

  sliceRows(x: Var, start: number, end: number): Var {
    return this.record('sliceRows', [x], this.inherit(x.value, sliceRowsTensor(x.value, start, end)), { inputShape: x.shape, start, end });
  }

  prototypes(support: Var, labels: Int32Array, way: number): Var {
    this.markExternal(labels);
    const y = this.device.run('prototypes', { support: support.value, labels }, { way });
    return this.record('prototypes', [support], y, { labels, way });
  }

  sqEuclidean(q: Var, p: Var): Var {
    return this.record('sqEuclidean', [q, p], this.device.run('sqEuclidean', { q: q.value, p: p.value }, {}), { q: q.value, p: p.value });
  }

  cosine(q: Var, p: Var, eps: number): Var {
    return this.record('cosine', [q, p], this.device.run('cosine', { q: q.value, p: p.value }, { eps }), { q: q.value, p: p.value, eps });
  }

  scale(x: Var, alpha: number): Var {
    return this.record('scale', [x], this.device.run('scale', { x: x.value }, { alpha }), { alpha });
  }

  logSoftmax(x: Var): Var {
    const y = this.device.run('logSoftmax', { x: x.value }, {});
    return this.record('logSoftmax', [x], y, { y });
  }

  crossEntropy(logp: Var, labels: Int32Array): Var {
    this.markExternal(labels);
    const y = this.device.run('crossEntropy', { logp: logp.value, labels }, {});
    return this.record('crossEntropy', [logp], y, { logp: logp.value, labels });
  }

  matmul(a: Var, b: Var, transA = false, transB = false): Var {
    const y = this.device.run('matmul', { a: a.value, b: b.value }, { transA, transB });
    return this.record('matmul', [a, b], y, { ...(b.requiresGrad ? { a: a.value } : {}), ...(a.requiresGrad ? { b: b.value } : {}), transA, transB });
  }

  add(a: Var, b: Var): Var {
    return this.record('add', [a, b], this.device.run('add', { a: a.value, b: b.value }, {}), { aShape: a.shape, bShape: b.shape });
  }

  mul(a: Var, b: Var): Var {
    const y = this.device.run('mul', { a: a.value, b: b.value }, {});
    return this.record('mul', [a, b], y, { ...(b.requiresGrad ? { a: a.value } : {}), ...(a.requiresGrad ? { b: b.value } : {}), bShape: b.shape });
  }

  sumTo(x: Var, shape: readonly number[]): Var {
    return this.record('sumTo', [x], this.device.run('sumTo', { x: x.value }, { shape }), { inputShape: x.shape });
  }

  sigmoid(x: Var): Var {
    const y = this.device.run('sigmoid', { x: x.value }, {});
    return this.record('sigmoid', [x], y, { y });
  }

  tanh(x: Var): Var {
    const y = this.device.run('tanh', { x: x.value }, {});
    return this.record('tanh', [x], y, { y });
  }

  rotate(x: Var, angle: Var): Var {
    const y = this.device.run('rotate', { x: x.value, angle: angle.value }, {});
    return this.record('rotate', [x, angle], y, { x: x.value, angle: angle.value });
  }

  /**
   * Back-propagate from `loss` (a scalar, or any shape with `seed` as its
   * gradient), adding the gradient of every leaf into `grad` at its offset.
   * Consumes the tape: every saved tensor is released.
   */
  backward(loss: Var, grad: FloatArray, seed?: Tensor): BackwardResult {
    this.own(loss);
    if (this.consumed) throw new Error('tape: backward was already run on this tape');
    for (const [id, l] of this.leaves) {
      if (l.offset + l.size > grad.length) throw new RangeError(`tape backward: leaf ${id} spans [${l.offset}, ${l.offset + l.size}) but the gradient vector has ${grad.length} elements`);
    }
    let dy: Tensor;
    if (seed) {
      if (seed.shape.join() !== loss.shape.join()) throw new RangeError(`tape backward: seed has shape [${seed.shape.join(', ')}], loss [${loss.shape.join(', ')}]`);
      dy = new Tensor(allocLike(loss.value.data, seed.size), seed.shape);
      dy.data.set(seed.data);
    } else {
      if (loss.value.size !== 1) throw new RangeError(`tape backward: loss must be a scalar, got shape [${loss.shape.join(', ')}] (pass a seed gradient for other shapes)`);
      dy = new Tensor(allocLike(loss.value.data, 1).fill(1), loss.shape);
    }
    this.consumed = true;
    // Which nodes the loss depends on: one reverse sweep (inputs precede consumers).
    const needed = new Set<number>([loss.id]);
    for (let k = this.nodes.length - 1; k >= 0; k--) {
      const n = this.nodes[k]!;
      if (needed.has(n.id)) for (const i of n.inputs) if (i >= 0) needed.add(i);
    }
    for (const n of this.nodes) if (!needed.has(n.id)) this.releaseNode(n);
    const pending = new Map<number, Tensor>();
    let nodesRun = 0;
    if (loss.kind !== 'constant') this.accumulate(loss.id, dy, grad, pending);
    this.ledger.measure();
    for (let k = this.nodes.length - 1; k >= 0; k--) {
      const n = this.nodes[k]!;
      if (!needed.has(n.id)) continue;
      const g = pending.get(n.id);
      if (!g || !n.saved) { this.releaseNode(n); continue; }
      const needs = n.inputs.map((i) => i >= 0);
      const outs = getGradient(n.op)(g, { device: this.device, saved: n.saved, needs });
      const fresh: HeldArray[] = [];
      n.inputs.forEach((id, i) => {
        if (id < 0) return;
        const o = outs[i];
        if (!o) throw new Error(`backward of ${n.op} returned no gradient for input ${i}`);
        const want = n.inputShapes[i]!;
        if (o.shape.join() !== want.join()) throw new RangeError(`backward of ${n.op}: gradient of input ${i} has shape [${o.shape.join(', ')}], expected [${want.join(', ')}]`);
        this.ledger.hold(o.data, 'gradient');
        fresh.push(o.data);
      });
      this.ledger.measure();
      for (const a of fresh) this.ledger.release(a);
      pending.delete(n.id);
      this.ledger.release(g.data);
      this.releaseNode(n);
      n.inputs.forEach((id, i) => { if (id >= 0) this.accumulate(id, outs[i]!, grad, pending); });
      nodesRun++;
    }
    for (const t of pending.values()) this.ledger.release(t.data);
    pending.clear();
    this.nodes.length = 0;
    this.ledger.measure();
    return { peakBytes: this.ledger.peak, nodesRun };
  }

  private accumulate(id: number, g: Tensor, grad: FloatArray, pending: Map<number, Tensor>): void {
    const leaf = this.leaves.get(id);
    if (leaf) {
      const d = g.data;
      for (let k = 0; k < leaf.size; k++) grad[leaf.offset + k] += d[k]!;
      return;
    }
    const have = pending.get(id);
    if (have) {
      const a = have.data, d = g.data;
      for (let k = 0; k < a.length; k++) a[k] += d[k]!;
      return;
    }
    // Adopt g unless its data is shared with something the tape or caller holds (then copy, so in-place sums stay safe).
    const shared = this.ledger.has(g.data) || this.paramArrays.has(g.data) || this.externalArrays.has(g.data);
    const own = shared ? new Tensor(g.data.slice(), g.shape) : g;
    pending.set(id, own);
    this.ledger.hold(own.data, 'gradient');
  }

  private record<K extends TapeOp>(op: K, inputs: readonly (Var | undefined)[], out: Tensor, saved: SavedSpecs[K]): Var {
    if (this.consumed) throw new Error(`tape: cannot record ${op} after backward (use a new tape per forward pass)`);
    for (const v of inputs) if (v) this.own(v);
    const id = this.nextId++;
    if (!inputs.some((v) => v?.requiresGrad)) return new Var(this, id, 'constant', out);
    const held: HeldArray[] = [];
    for (const v of Object.values(saved)) {
      const arr = v instanceof Tensor ? v.data : v instanceof Int32Array ? v : undefined;
      if (!arr || this.paramArrays.has(arr)) continue;
      this.ledger.hold(arr, this.externalArrays.has(arr) ? 'external' : 'activation');
      held.push(arr);
    }
    this.nodes.push({
      op, id, saved, held,
      inputs: inputs.map((v) => (v && v.requiresGrad ? v.id : -1)),
      inputShapes: inputs.map((v) => v?.shape),
    });
    this.ledger.measure();
    return new Var(this, id, 'op', out);
  }

  private releaseNode(n: Node): void {
    for (const a of n.held) this.ledger.release(a);
    n.held = [];
    n.saved = null;
  }

  /** A view shares its source's role: a view of a parameter is parameter data, of a constant external. */
  private inherit(src: Tensor, view: Tensor): Tensor {
    if (this.paramArrays.has(src.data)) this.paramArrays.add(view.data);
    else if (this.externalArrays.has(src.data)) this.externalArrays.add(view.data);
    return view;
  }

  private markExternal(a: HeldArray): void {
    if (!this.paramArrays.has(a) && !this.ledger.has(a)) this.externalArrays.add(a);
  }

  private own(v: Var): Var {
    if (v.tape !== this) throw new Error(`tape: value ${v.id} belongs to another tape`);
    return v;
  }
}

/** The `leaf` callback for embed/episodeLoss: each parameter view becomes a leaf at its layout offset. */
export function layoutLeaves(tape: Tape, layout: ProtoNetLayout): (name: string, t: Tensor) => Var {
  return (name, t) => {
    const e = layout.param(name);
    if (t.size !== e.size) throw new RangeError(`parameter ${name}: view has ${t.size} elements, layout says ${e.size}`);
    return tape.leaf(t, e.offset);
  };
}
