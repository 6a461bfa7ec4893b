/**
 * The adapted linear head, as explicit math on the embeddings with its
 * reverse mode written by hand (the inner gradient of softmax cross-entropy
 * for a linear head is closed-form, so differentiating through it is too).
 *
 * Inner step t on the support set (Zs [NS, E], one-hot Y [NS, K]):
 *   S_t = Zs W_t^T + 1 b_t^T,  P_t = softmax(S_t),  G_t = (P_t - Y) / NS
 *   W_{t+1} = W_t - alpha G_t^T Zs,   b_{t+1} = b_t - alpha G_t^T 1
 * Meta-loss on the query set: L = CE(Zq W_l^T + 1 b_l^T, yq) (mean over queries).
 *
 * Reverse through step t, given the adjoints (Wb, bb) of (W_{t+1}, b_{t+1}):
 *   Gb = -alpha (Zs Wb^T + 1 bb^T);  Zsb += -alpha G_t Wb
 *   Sb = P_t * (Gb/NS - rowsum(P_t * Gb/NS))
 *   W_t's adjoint = Wb + Sb^T Zs;  b_t's = bb + Sb^T 1;  Zsb += Sb W_t
 * so the tape of a step is exactly (W_t, P_t): g = (K E + NS K) elements per
 * step, g x l in all -- the paper's Omega_BP for this learner.
 */
import { allocLike, type FloatArray } from '../tensor/tensor.js';

export interface HeadProblem {
  /** Support embeddings [NS, E] (row-major) and labels. */
  zs: FloatArray;
  ys: Int32Array;
  /** Query embeddings [NQ, E] and labels. */
  zq: FloatArray;
  yq: Int32Array;
  way: number;
  e: number;
  alpha: number;
}

/** What the inner loop holds for the backward pass. */
export interface HeadTape {
  w: FloatArray[];
  p: FloatArray[];
  /** Bytes held now (exact: byteLength of every saved array). */
  bytes: number;
}

export interface InnerResult {
  w: FloatArray;
  b: FloatArray;
  tape: HeadTape | null;
  /** Largest bytes held by the inner loop at once: state (W, b), scratch (S/P) and, if recording, the tape. */
  peakBytes: number;
}

function checkProblem(h: HeadProblem, w0: FloatArray, b0: FloatArray): [number, number] {
  const ns = h.ys.length, nq = h.yq.length;
  if (h.zs.length !== ns * h.e) throw new RangeError(`head: support embeddings have ${h.zs.length} values, expected ${ns} x ${h.e}`);
  if (h.zq.length !== nq * h.e) throw new RangeError(`head: query embeddings have ${h.zq.length} values, expected ${nq} x ${h.e}`);
  if (w0.length !== h.way * h.e || b0.length !== h.way) throw new RangeError(`head: weight/bias have ${w0.length}/${b0.length} values, expected ${h.way * h.e}/${h.way}`);
  for (const [ls, what] of [[h.ys, 'support'], [h.yq, 'query']] as const) {
    for (const l of ls) if (!(l >= 0 && l < h.way)) throw new RangeError(`head: ${what} label ${l} outside [0, ${h.way})`);
  }
  return [ns, nq];
}

/** out[r, :] = softmax(z[r, :] W^T + b); returns out (rows x K). */
function softmaxLogits(z: FloatArray, rows: number, e: number, w: FloatArray, b: FloatArray, k: number, out: FloatArray): FloatArray {
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity;
    for (let c = 0; c < k; c++) {
      let s = b[c]!;
      for (let j = 0; j < e; j++) s += z[r * e + j]! * w[c * e + j]!;
      out[r * k + c] = s;
      if (s > mx) mx = s;
    }
    let sum = 0;
    for (let c = 0; c < k; c++) sum += (out[r * k + c] = Math.exp(out[r * k + c]! - mx));
    for (let c = 0; c < k; c++) out[r * k + c] = out[r * k + c]! / sum;
  }
  return out;
}

/** Run l inner steps from (w0, b0). With `record`, keep (W_t, P_t) of every step for the backward pass. */
export function innerLoop(h: HeadProblem, w0: FloatArray, b0: FloatArray, steps: number, record: boolean): InnerResult {
  const [ns] = checkProblem(h, w0, b0);
  const k = h.way, e = h.e;
  let w = allocLike(w0, k * e), b = allocLike(b0, k);
  w.set(w0);
  b.set(b0);
  const tape: HeadTape | null = record ? { w: [], p: [], bytes: 0 } : null;
  let scratch = allocLike(w0, ns * k);
  const base = w.byteLength + b.byteLength + scratch.byteLength;
  let peak = base;
  for (let t = 0; t < steps; t++) {
    const p = softmaxLogits(h.zs, ns, e, w, b, k, scratch);
    const wn = allocLike(w0, k * e), bn = allocLike(b0, k);
    wn.set(w);
    bn.set(b);
    for (let r = 0; r < ns; r++) {
      for (let c = 0; c < k; c++) {
        const g = (p[r * k + c]! - (h.ys[r] === c ? 1 : 0)) / ns;
        if (g === 0) continue;
        const ag = h.alpha * g;
        bn[c] -= ag;
        for (let j = 0; j < e; j++) wn[c * e + j] -= ag * h.zs[r * e + j]!;
      }
    }
    if (tape) {
      tape.w.push(w);
      tape.p.push(p);
      tape.bytes += w.byteLength + p.byteLength;
      scratch = allocLike(w0, ns * k);
    }
    // Held at the end of this step: the tape, the new state, the old state (if not on the tape), scratch.
    peak = Math.max(peak, (tape?.bytes ?? w.byteLength + b.byteLength) + wn.byteLength + bn.byteLength + (tape ? b.byteLength : 0) + scratch.byteLength);
    w = wn;
    b = bn;
  }
  return { w, b, tape, peakBytes: peak };
}

export interface QueryLoss {
  loss: number;
  accuracy: number;
  /** dL/dW_l [K, E], dL/db_l [K], dL/dZq [NQ, E]. */
  dw: FloatArray;
  db: FloatArray;
  dzq: FloatArray;
  bytes: number;
}

/** The meta-loss on the query set at the adapted head, with its gradients. */
export function queryLoss(h: HeadProblem, w: FloatArray, b: FloatArray): QueryLoss {
  const nq = h.yq.length, k = h.way, e = h.e;
  const p = softmaxLogits(h.zq, nq, e, w, b, k, allocLike(w, nq * k));
  let loss = 0, hit = 0;
  const dw = allocLike(w, k * e), db = allocLike(w, k), dzq = allocLike(w, nq * e);
  for (let r = 0; r < nq; r++) {
    const y = h.yq[r]!;
    loss -= Math.log(p[r * k + y]!);
    let best = 0;
    for (let c = 1; c < k; c++) if (p[r * k + c]! > p[r * k + best]!) best = c;
    if (best === y) hit++;
    for (let c = 0; c < k; c++) {
      const g = (p[r * k + c]! - (y === c ? 1 : 0)) / nq;
      db[c] += g;
      for (let j = 0; j < e; j++) {
        dw[c * e + j] += g * h.zq[r * e + j]!;
        dzq[r * e + j] += g * w[c * e + j]!;
      }
    }
  }
  return { loss: loss / nq, accuracy: hit / nq, dw, db, dzq, bytes: p.byteLength + dw.byteLength + db.byteLength + dzq.byteLength };
}

export interface HeadGradients {
  dw0: FloatArray;
  db0: FloatArray;
  dzs: FloatArray;
  /** Largest bytes held during the backward walk: the remaining tape plus adjoints and scratch. */
  peakBytes: number;
}

/** Second-order: reverse through the recorded inner steps. Consumes the tape (releases each step as it goes). */
export function backwardInner(h: HeadProblem, tape: HeadTape, dwl: FloatArray, dbl: FloatArray): HeadGradients {
  const ns = h.ys.length, k = h.way, e = h.e, a = h.alpha;
  const wb = allocLike(dwl, k * e), bb = allocLike(dbl, k);
  wb.set(dwl);
  bb.set(dbl);
  const dzs = allocLike(dwl, ns * e), gb = allocLike(dwl, ns * k);
  const adj = wb.byteLength + bb.byteLength + dzs.byteLength + gb.byteLength;
  let peak = tape.bytes + adj;
  for (let t = tape.w.length - 1; t >= 0; t--) {
    const wt = tape.w[t]!, pt = tape.p[t]!;
    // Gb = -alpha (Zs Wb^T + 1 bb^T); Zsb += -alpha G_t Wb.
    for (let r = 0; r < ns; r++) {
      for (let c = 0; c < k; c++) {
        let s = bb[c]!;
        for (let j = 0; j < e; j++) s += h.zs[r * e + j]! * wb[c * e + j]!;
        gb[r * k + c] = -a * s;
        const g = (pt[r * k + c]! - (h.ys[r] === c ? 1 : 0)) / ns;
        if (g !== 0) for (let j = 0; j < e; j++) dzs[r * e + j] += -a * g * wb[c * e + j]!;
      }
    }
    // Sb = P * (Pb - rowsum(P * Pb)), Pb = Gb / NS; then the adjoints of W_t, b_t and Zs.
    for (let r = 0; r < ns; r++) {
      let dot = 0;
      for (let c = 0; c < k; c++) dot += pt[r * k + c]! * gb[r * k + c]! / ns;
      for (let c = 0; c < k; c++) {
        const sb = pt[r * k + c]! * (gb[r * k + c]! / ns - dot);
        if (sb === 0) continue;
        bb[c] += sb;
        for (let j = 0; j < e; j++) {
          wb[c * e + j] += sb * h.zs[r * e + j]!;
          dzs[r * e + j] += sb * wt[c * e + j]!;
        }
      }
    }
    tape.bytes -= wt.byteLength + pt.byteLength;
    tape.w.pop();
    tape.p.pop();
  }
  return { dw0: wb, db0: bb, dzs, peakBytes: peak };
}

/** Bytes of the head tape for l steps, exactly: l (K E + NS K) elements. */
export function headTapeBytes(way: number, e: number, ns: number, steps: number, bytesPerElement: number): number {
  return steps * (way * e + ns * way) * bytesPerElement;
}
