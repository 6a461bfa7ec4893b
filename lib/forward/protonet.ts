/**
 * The ProtoNet meta-gradient by forward-mode differentiation (paper II-E).
 *
 * The inner-loop model state of a ProtoNet is its prototypes psi (way x E,
 * D_psi = way * E). Forward mode accumulates the state Jacobian
 * J = d psi / d phi (D_psi x D_phi) column by column, K basis directions per
 * pass, and the meta-gradient is
 *   dL/dphi = J^T dL/dpsi + (dL/dphi with psi held fixed)
 * where the second term (the query path, including batch-norm coupling) is the
 * loss tangent of the same passes with the prototypes' tangent cut, and
 * dL/dpsi comes from forward passes over the head only (psi as the input).
 * The J held here is the paper's Omega_FM = D_psi x D_phi.
 */
import type { Device } from '../device/registry.js';
import { DirectOps, type TensorOps } from '../ops/api.js';
import type { BnState, ProtoNetLayout } from '../model/layout.js';
import { concatImages, embed, episodeLoss, type Episode, type LossOptions } from '../model/protonet.js';
import { Tensor, type FloatArray } from '../tensor/tensor.js';
import { DualOps, basisLeaf, type Dual } from './dual.js';
import { meterOps } from '../ops/accounting.js';
import { allocJacobian, columnChunks, type StoredJacobian } from './jacobian.js';

export interface ForwardMetaOptions extends LossOptions {
  /** Tangents per pass (default 8). */
  chunk?: number;
  /** Only these column ranges of J (for timing a large model on a sample of columns); default all. */
  ranges?: readonly (readonly [number, number])[];
  /** Called once the Jacobian is allocated, before any pass (e.g. to touch its pages for RSS). */
  onJacobian?: (j: StoredJacobian) => void;
  /** Called after each pass over columns [start, end) (progress, timing). */
  onColumns?: (start: number, end: number) => void;
}

export interface ForwardMetaResult {
  loss: number;
  /** dL/dphi; complete only when every column was computed. */
  grad: Float64Array;
  /** d psi / d phi with psi = prototypes [way, E] row-major. */
  jacobian: StoredJacobian;
  dLdPsi: Float64Array;
  /** dL/dphi with psi fixed (the direct query path). */
  direct: Float64Array;
  columns: number;
  complete: boolean;
  bytes: {
    /** The stored Jacobian (exact). */
    jacobian: number;
    /** Gradient, direct term and dL/dpsi vectors (exact). */
    vectors: number;
    /** Largest (inputs + outputs) of one op call in any pass, values and tangents: what a pass must hold at once at least. */
    passMax: number;
  };
}

/** DualOps that hands the prototypes' tangent to `sink` and cuts it downstream. */
class StateTapOps extends DualOps {
  constructor(device: Device, k: number, private readonly sink: (t: Tensor | null) => void) {
    super(device, k);
  }

  override prototypes(support: Dual, labels: Int32Array, way: number): Dual {
    const d = super.prototypes(support, labels, way);
    this.sink(d.t);
    return { v: d.v, t: null };
  }
}

/** The episode head of episodeLoss: logits from query embeddings and prototypes, mean query cross-entropy. */
function headLoss<V>(ops: TensorOps<V>, zq: V, protos: V, labels: Int32Array, opts: LossOptions): V {
  const logits = (opts.distance ?? 'euclidean') === 'euclidean'
    ? ops.scale(ops.sqEuclidean(zq, protos), -1)
    : ops.scale(ops.cosine(zq, protos, 1e-8), opts.cosineScale ?? 1);
  return ops.crossEntropy(ops.logSoftmax(logits), labels);
}

export function protoNetForwardGradient(
  device: Device, layout: ProtoNetLayout, params: FloatArray, bn: BnState, ep: Episode, opts: ForwardMetaOptions,
): ForwardMetaResult {
  layout.checkParams(params);
  if (opts.trackStats) throw new RangeError('protoNetForwardGradient: trackStats is not supported (the passes must not update running statistics)');
  const d = layout.numParams, e = layout.embeddingSize, dPsi = ep.way * e;
  const dtype = params instanceof Float64Array ? 'float64' : 'float32';
  const chunk = opts.chunk ?? 8;
  const jac = allocJacobian(dPsi, d, dtype);
  opts.onJacobian?.(jac);
  const direct = new Float64Array(d), grad = new Float64Array(d), dLdPsi = new Float64Array(dPsi);
  let passMax = 0;
  let columns = 0;
  for (const [s, t] of columnChunks(d, chunk, opts.ranges)) {
    const k = t - s;
    const m = meterOps(new StateTapOps(device, k, (tan) => {
      if (tan) jac.data.set(tan.data, s * dPsi);
      else jac.data.fill(0, s * dPsi, t * dPsi);
    }));
    const r = episodeLoss(m.ops, layout, params, bn, ep, opts, basisLeaf(layout.params, s, k));
    if (r.loss.t) for (let j = 0; j < k; j++) direct[s + j] = r.loss.t.data[j]!;
    passMax = Math.max(passMax, m.opPeak);
    columns += k;
    opts.onColumns?.(s, t);
  }

  // Primal values, then dL/dpsi by forward passes over the head with psi as the input (E directions per pass).
  const direct0 = new DirectOps(device);
  const ns = ep.support.shape[0]!, nq = ep.query.shape[0]!;
  const z = embed(direct0, layout, params, bn, concatImages(ep.support, ep.query), { bn: opts.bn });
  const zq = direct0.sliceRows(z, ns, ns + nq);
  const psi = direct0.prototypes(direct0.sliceRows(z, 0, ns), ep.supportLabels, ep.way);
  const loss = headLoss(direct0, zq, psi, ep.queryLabels, opts).data[0]!;
  for (let s = 0; s < dPsi; s += e) {
    const k = Math.min(e, dPsi - s);
    const inner = new DualOps(device, k);
    const m = meterOps(inner);
    const tan = Tensor.zeros([k, ep.way, e], psi.dtype);
    for (let j = 0; j < k; j++) tan.data[j * dPsi + s + j] = 1;
    const l = headLoss(m.ops, m.ops.constant(zq), inner.dual(psi, tan), ep.queryLabels, opts);
    for (let j = 0; j < k; j++) dLdPsi[s + j] = l.t!.data[j]!;
    passMax = Math.max(passMax, m.opPeak);
  }

  for (let c = 0; c < d; c++) {
    let acc = direct[c]!;
    const col = c * dPsi;
    for (let r = 0; r < dPsi; r++) acc += jac.data[col + r]! * dLdPsi[r]!;
    grad[c] = acc;
  }
  return {
    loss, grad, jacobian: jac, dLdPsi, direct, columns, complete: columns === d,
    bytes: { jacobian: jac.data.byteLength, vectors: grad.byteLength + direct.byteLength + dLdPsi.byteLength, passMax },
  };
}
