/**
 * ConvNet-4 + a linear head as one differentiable function of ALL its
 * parameters (the MamlLayout vector: every conv weight and bias, every BN
 * gamma and beta, the head), with a recorded forward, a backward that keeps
 * its adjoints, and exact Hessian-vector products on that record
 * (forward-over-reverse: the tangent of the forward pass, then the tangent of
 * the backward pass). This is what backprop through an inner loop that adapts
 * every parameter needs: the record of each inner step (its "tape").
 *
 * Loss: mean cross-entropy of softmax(Z W^T + b) against the labels, Z the
 * flattened last block output; BN in training mode with the batch's own
 * statistics (as MAML does; running statistics are not used or updated).
 *
 * A record holds, per block: the block input (block 0: the images, which the
 * episode owns and are not counted), the conv output (BN input), BN mean and
 * invStd, the ReLU output (its sign is the mask), the max-pool argmax; after
 * backward also the adjoints at the BN output and at the conv output; and the
 * softmax probabilities and the parameter vector the step ran at.
 * recordBytes() counts exactly those arrays.
 */
import type { Device } from '../device/registry.js';
import { Tensor, allocLike, type FloatArray } from '../tensor/tensor.js';
import type { MamlLayout } from './layout.js';
import { bnBackwardTangent, bnForwardTangent, bnTangentStats, type BnSaved } from './bn-tangent.js';

const CONV = { stride: 1, padding: 1 } as const;
const POOL = { kernel: 2, stride: 2 } as const;

export interface BlockRecord {
  input: Tensor;
  conv: Tensor;
  mean: Tensor;
  invStd: Tensor;
  act: Tensor;
  argmax: Int32Array;
  /** Adjoint of the loss at the BN output (after the ReLU mask) and at the conv output; set by backward. */
  dBn?: Tensor;
  dConv?: Tensor;
}

export interface InnerStepRecord {
  /** The parameters this forward ran at (held by the record, not copied). */
  theta: FloatArray;
  blocks: BlockRecord[];
  /** Embeddings [N, E] (the last block's pooled output). */
  z: Tensor;
  probs: FloatArray;
  labels: Int32Array;
  loss: number;
  accuracy: number;
}

interface BlockParams { w: Tensor; b: Tensor; gamma: Tensor; beta: Tensor }

function blockParams(L: MamlLayout, theta: FloatArray, i: number): BlockParams {
  const enc = L.encoderParams(theta);
  const v = (s: string): Tensor => L.encoder.view(enc, `encoder.${i}.${s}`);
  return { w: v('0.weight'), b: v('0.bias'), gamma: v('1.weight'), beta: v('1.bias') };
}

function headParams(L: MamlLayout, theta: FloatArray): { w: FloatArray; b: FloatArray } {
  return { w: theta.subarray(L.headWeightOffset, L.headBiasOffset), b: theta.subarray(L.headBiasOffset, L.numParams) };
}

function checkImages(L: MamlLayout, images: Tensor, labels: Int32Array): void {
  const c = L.encoder.config;
  if (images.rank !== 4 || images.shape[1] !== c.inChannels || images.shape[2] !== c.imageSize || images.shape[3] !== c.imageSize) {
    throw new RangeError(`maml convnet: images must be [N, ${c.inChannels}, ${c.imageSize}, ${c.imageSize}], got [${images.shape.join(', ')}]`);
  }
  if (labels.length !== images.shape[0]) throw new RangeError(`maml convnet: ${labels.length} labels for ${images.shape[0]} images`);
  for (const y of labels) if (!(y >= 0 && y < L.way)) throw new RangeError(`maml convnet: label ${y} outside [0, ${L.way})`);
}

/** Forward at theta on (images, labels), recording what backward and hvp need. */
export function convnetForward(dev: Device, L: MamlLayout, theta: FloatArray, images: Tensor, labels: Int32Array): InnerStepRecord {
  L.check(theta);
  checkImages(L, images, labels);
  const eps = L.encoder.config.bnEps;
  const blocks: BlockRecord[] = [];
  let h = images;
  for (let i = 0; i < L.encoder.config.blocks; i++) {
    const p = blockParams(L, theta, i);
    const conv = dev.run('conv2d', { x: h, w: p.w, b: p.b }, CONV);
    const bn = dev.run('batchnorm2dTrain', { x: conv, gamma: p.gamma, beta: p.beta }, { eps });
    const act = dev.run('relu', { x: bn.y }, {});
    const mp = dev.run('maxpool2d', { x: act }, POOL);
    blocks.push({ input: h, conv, mean: bn.mean, invStd: bn.invStd, act, argmax: mp.argmax });
    h = mp.y;
  }
  const n = images.shape[0]!, e = L.embeddingSize, k = L.way;
  const z = h.reshape([n, e]);
  const { w, b } = headParams(L, theta);
  const probs = allocLike(theta, n * k);
  let loss = 0, hit = 0;
  for (let r = 0; r < n; r++) {
    let mx = -Infinity, best = 0;
    for (let c = 0; c < k; c++) {
      let s = b[c]!;
      for (let j = 0; j < e; j++) s += z.data[r * e + j]! * w[c * e + j]!;
      probs[r * k + c] = s;
      if (s > mx) { mx = s; best = c; }
    }
    let sum = 0;
    for (let c = 0; c < k; c++) sum += (probs[r * k + c] = Math.exp(probs[r * k + c]! - mx));
    for (let c = 0; c < k; c++) probs[r * k + c] = probs[r * k + c]! / sum;
    loss -= Math.log(probs[r * k + labels[r]!]!);
    if (best === labels[r]) hit++;
  }
  return { theta, blocks, z, probs, labels, loss: loss / n, accuracy: hit / n };
}

/** dL/dlogits = (P - Y) / N. */
function dLogits(rec: InnerStepRecord, k: number): FloatArray {
  const n = rec.labels.length, d = allocLike(rec.probs, rec.probs.length);
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) d[r * k + c] = (rec.probs[r * k + c]! - (rec.labels[r] === c ? 1 : 0)) / n;
  return d;
}

/** Head backward for dl [N, K]: adds dW = dl^T Z, db = colsum(dl) into out; returns dZ = dl W. */
function headBackward(dl: FloatArray, z: FloatArray, w: FloatArray, n: number, k: number, e: number, gw: FloatArray, gb: FloatArray): FloatArray {
  const dz = allocLike(dl, n * e);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) {
      const g = dl[r * k + c]!;
      if (g === 0) continue;
      gb[c] += g;
      for (let j = 0; j < e; j++) {
        gw[c * e + j] += g * z[r * e + j]!;
        dz[r * e + j] += g * w[c * e + j]!;
      }
    }
  }
  return dz;
}

function addInto(dst: FloatArray, src: FloatArray): void {
  for (let i = 0; i < src.length; i++) dst[i] += src[i]!;
}

/** Largest transient bytes a backward or hvp walk allocates beside the record (reported for the accounting). */
export interface WalkBytes { scratch: number }

/**
 * dL/dtheta into `grad` (overwritten). Keeps the adjoints at the BN and conv
 * outputs in the record (so hvp can run on it). Returns the largest bytes of
 * transient arrays held at once beside the record.
 */
export function convnetBackward(dev: Device, L: MamlLayout, rec: InnerStepRecord, grad: FloatArray): WalkBytes {
  L.check(grad);
  grad.fill(0);
  const n = rec.labels.length, k = L.way, e = L.embeddingSize;
  const { w } = headParams(L, rec.theta);
  const dl = dLogits(rec, k);
  const dz = headBackward(dl, rec.z.data, w, n, k, e, grad.subarray(L.headWeightOffset, L.headBiasOffset), grad.subarray(L.headBiasOffset, L.numParams));
  let scratch = dl.byteLength + dz.byteLength;
  let dOut = new Tensor(dz, rec.blocks[rec.blocks.length - 1]!.act.shape.map((s, i) => (i < 2 ? s : Math.floor(s / 2))));
  for (let i = rec.blocks.length - 1; i >= 0; i--) {
    const blk = rec.blocks[i]!, p = blockParams(L, rec.theta, i);
    const dAct = dev.run('maxpool2dBackward', { dy: dOut, argmax: blk.argmax }, { inputShape: blk.act.shape });
    const dBn = dev.run('reluBackward', { dy: dAct, x: blk.act }, {});
    const bb = dev.run('batchnorm2dBackward', { dy: dBn, x: blk.conv, gamma: p.gamma, mean: blk.mean, invStd: blk.invStd }, {});
    const cw = dev.run('conv2dBackwardWeight', { dy: bb.dx, x: blk.input }, { ...CONV, weightShape: p.w.shape });
    const off = (s: string): number => L.encoder.param(`encoder.${i}.${s}`).offset;
    grad.set(cw.dw.data, off('0.weight'));
    grad.set(cw.db.data, off('0.bias'));
    grad.set(bb.dgamma.data, off('1.weight'));
    grad.set(bb.dbeta.data, off('1.bias'));
    blk.dBn = dBn;
    blk.dConv = bb.dx;
    let next: Tensor | null = null;
    if (i > 0) next = dev.run('conv2dBackwardInput', { dy: bb.dx, w: p.w }, { ...CONV, inputShape: blk.input.shape });
    scratch = Math.max(scratch, dOut.data.byteLength + dAct.data.byteLength + (next?.data.byteLength ?? 0) + cw.dw.data.byteLength);
    if (next) dOut = next;
  }
  return { scratch };
}

/**
 * out = H v, H the Hessian of the loss at rec.theta (exact: forward-over-reverse
 * on the record; ReLU and max-pool are linear pieces, their masks/argmax held
 * fixed). The record must have been through convnetBackward.
 */
export function convnetHvp(dev: Device, L: MamlLayout, rec: InnerStepRecord, v: FloatArray, out: FloatArray): WalkBytes {
  L.check(v);
  L.check(out);
  out.fill(0);
  const n = rec.labels.length, k = L.way, e = L.embeddingSize, nb = rec.blocks.length;
  const tangents: { dConv: FloatArray; stats: ReturnType<typeof bnTangentStats>; dInput: Tensor | null }[] = [];
  // held: the forward tangents kept for the backward tangent (each block's conv-output tangent and pooled tangent).
  let held = 0, scratch = 0;
  // Forward tangent.
  let dIn: Tensor | null = null;
  for (let i = 0; i < nb; i++) {
    const blk = rec.blocks[i]!, p = blockParams(L, rec.theta, i), pv = blockParams(L, v, i);
    const c1 = dev.run('conv2d', { x: blk.input, w: pv.w, b: pv.b }, CONV);
    if (dIn) addInto(c1.data, dev.run('conv2d', { x: dIn, w: p.w }, CONV).data);
    const s = bnSaved(blk, p);
    const stats = bnTangentStats(s, c1.data);
    const dy = bnForwardTangent(s, c1.data, stats, pv.gamma.data, pv.beta.data);
    const act = blk.act.data;
    for (let j = 0; j < dy.length; j++) if (!(act[j]! > 0)) dy[j] = 0;
    const pooled = allocLike(dy, blk.argmax.length);
    for (let j = 0; j < pooled.length; j++) pooled[j] = dy[blk.argmax[j]!]!;
    tangents.push({ dConv: c1.data, stats, dInput: dIn });
    held += c1.data.byteLength + pooled.byteLength;
    scratch = Math.max(scratch, held + dy.byteLength);
    dIn = new Tensor(pooled, [blk.act.shape[0]!, blk.act.shape[1]!, Math.floor(blk.act.shape[2]! / 2), Math.floor(blk.act.shape[3]! / 2)]);
  }
  // Head: logits tangent, then the tangents of dl, dW, db, dZ.
  const { w } = headParams(L, rec.theta), hv = headParams(L, v);
  const z = rec.z.data, dz = dIn!.data, P = rec.probs;
  const ddl = allocLike(P, P.length);
  for (let r = 0; r < n; r++) {
    let dot = 0;
    for (let c = 0; c < k; c++) {
      let s = hv.b[c]!;
      for (let j = 0; j < e; j++) s += dz[r * e + j]! * w[c * e + j]! + z[r * e + j]! * hv.w[c * e + j]!;
      ddl[r * k + c] = s;
      dot += P[r * k + c]! * s;
    }
    for (let c = 0; c < k; c++) ddl[r * k + c] = (P[r * k + c]! * (ddl[r * k + c]! - dot)) / n;
  }
  const dl = dLogits(rec, k);
  const ogw = out.subarray(L.headWeightOffset, L.headBiasOffset), ogb = out.subarray(L.headBiasOffset, L.numParams);
  const dzT = headBackward(ddl, z, w, n, k, e, ogw, ogb);
  const dzT2 = headBackward(dl, dz, hv.w, n, k, e, ogw, new Float64Array(k)); // dl^T dZ into dW; dl v_W into dZ (its db is not a tangent)
  addInto(dzT, dzT2);
  // Backward tangent.
  let dOut = new Tensor(dzT, dIn!.shape);
  for (let i = nb - 1; i >= 0; i--) {
    const blk = rec.blocks[i]!, p = blockParams(L, rec.theta, i), pv = blockParams(L, v, i), t = tangents[i]!;
    if (!blk.dBn || !blk.dConv) throw new Error('maml convnet hvp: the record has no adjoints (run convnetBackward on it first)');
    const dAct = dev.run('maxpool2dBackward', { dy: dOut, argmax: blk.argmax }, { inputShape: blk.act.shape });
    const ddBn = dev.run('reluBackward', { dy: dAct, x: blk.act }, {});
    const bt = bnBackwardTangent(bnSaved(blk, p), blk.dBn.data, ddBn.data, t.dConv, t.stats, pv.gamma.data);
    const ddConv = new Tensor(bt.ddx, blk.conv.shape);
    const cw = dev.run('conv2dBackwardWeight', { dy: ddConv, x: blk.input }, { ...CONV, weightShape: p.w.shape });
    if (t.dInput) addInto(cw.dw.data, dev.run('conv2dBackwardWeight', { dy: blk.dConv, x: t.dInput }, { ...CONV, weightShape: p.w.shape }).dw.data);
    const off = (s: string): number => L.encoder.param(`encoder.${i}.${s}`).offset;
    out.set(cw.dw.data, off('0.weight'));
    out.set(cw.db.data, off('0.bias'));
    out.set(bt.ddgamma, off('1.weight'));
    out.set(bt.ddbeta, off('1.bias'));
    let next: Tensor | null = null;
    if (i > 0) {
      next = dev.run('conv2dBackwardInput', { dy: ddConv, w: p.w }, { ...CONV, inputShape: blk.input.shape });
      addInto(next.data, dev.run('conv2dBackwardInput', { dy: blk.dConv, w: pv.w }, { ...CONV, inputShape: blk.input.shape }).data);
    }
    scratch = Math.max(scratch, held + dOut.data.byteLength + dAct.data.byteLength + ddBn.data.byteLength + bt.ddx.byteLength + 2 * (next?.data.byteLength ?? 0));
    held -= t.dConv.byteLength + (t.dInput?.data.byteLength ?? 0); // this block's tangents are done
    if (next) dOut = next;
  }
  return { scratch };
}

function bnSaved(blk: BlockRecord, p: BlockParams): BnSaved {
  const [n, c, h, w] = blk.conv.shape as [number, number, number, number];
  return { x: blk.conv.data, mean: blk.mean.data, invStd: blk.invStd.data, gamma: p.gamma.data, n, c, hw: h * w };
}

/** Exact bytes a record holds (the block-0 input and the labels excluded: they are the episode's). */
export function recordBytes(rec: InnerStepRecord): number {
  let b = rec.theta.byteLength + rec.probs.byteLength;
  rec.blocks.forEach((blk, i) => {
    if (i > 0) b += blk.input.data.byteLength;
    b += blk.conv.data.byteLength + blk.mean.data.byteLength + blk.invStd.data.byteLength + blk.act.data.byteLength + blk.argmax.byteLength;
    b += (blk.dBn?.data.byteLength ?? 0) + (blk.dConv?.data.byteLength ?? 0);
  });
  // The embeddings z are a view of the last block's pooled output, which no block keeps as an input.
  b += rec.z.data.byteLength;
  return b;
}

/**
 * The same bytes from shapes alone (g, the bytes per inner step of the
 * second-order tape): n images, `bytesPerElement` 4 (float32) or 8.
 */
export function stepRecordBytes(L: MamlLayout, n: number, bytesPerElement: number, withAdjoints = true): number {
  const cfg = L.encoder.config, c = cfg.channels;
  let side = cfg.imageSize, b = L.numParams + n * L.way;
  let elems = 0, ints = 0;
  for (let i = 0; i < cfg.blocks; i++) {
    const convSize = n * c * side * side;
    const pooled = n * c * Math.floor(side / 2) * Math.floor(side / 2);
    if (i > 0) elems += n * c * side * side; // block input = previous pooled output
    elems += convSize * (withAdjoints ? 4 : 2) + 2 * c;
    ints += pooled;
    side = Math.floor(side / 2);
  }
  elems += n * L.embeddingSize; // z
  b += elems;
  return b * bytesPerElement + ints * 4;
}
