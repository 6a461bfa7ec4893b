/**
 * One configuration of the memory study, run in the current process: build
 * the model and a synthetic episode, compute one meta-gradient with the
 * chosen method, and report the library's exact ACCOUNTING of the bytes it
 * held (every method books its arrays under the same categories, PART in
 * lib/ops/accounting.ts), the paper's FORMULA for the method's dominant term,
 * and the time per meta-gradient. The sweep (sweep.ts) runs each case in a
 * fresh process and adds the MEASUREMENT (measure.ts: peak RSS, malloc heap,
 * V8 heap).
 *
 * Methods:
 *  ProtoNet (the paper's setting; its inner loop is building the prototypes)
 *   backprop   reverse mode on lib/autodiff's tape (Omega_BP = the tape)
 *   forward    forward mode (lib/forward): the state Jacobian D_psi x D_phi (Omega_FM)
 *   es         ES with noise regenerated from seeds (no P x D matrix)
 *   es-matrix  the same ES with the population matrix materialized (the paper's Omega_ES)
 *  MAML, every ConvNet-4 parameter adapted by l inner steps (lib/maml/full.ts)
 *   maml-second-order, maml-first-order, maml-es
 *  The head-only learner: ConvNet-4 + a linear head, only the head adapted (lib/maml/metagrad.ts)
 *   head-second-order, head-first-order, head-es, head-es-matrix
 */
import { getDevice } from '../device/registry.js';
import { ProtoNetLayout } from '../model/layout.js';
import { MamlLayout } from '../maml/layout.js';
import { headTapeBytes } from '../maml/head.js';
import { stepRecordBytes } from '../maml/convnet.js';
import { PeakMeter, type Breakdown } from '../ops/accounting.js';
import { syntheticEpisode } from './episodes.js';
import type { Measurement } from './measure.js';
import { runProto } from './run-protonet.js';
import { runFull, runHead } from './run-maml.js';
export { OPTIMIZER_BYTES_PER_PARAM } from './run-common.js';

export const PROTO_METHODS = ['backprop', 'forward', 'es', 'es-matrix'] as const;
export const FULL_CASE_METHODS = ['maml-second-order', 'maml-first-order', 'maml-es'] as const;
export const HEAD_CASE_METHODS = ['head-second-order', 'head-first-order', 'head-es', 'head-es-matrix'] as const;
export type CaseMethod = (typeof PROTO_METHODS)[number] | (typeof FULL_CASE_METHODS)[number] | (typeof HEAD_CASE_METHODS)[number];
const ALL_METHODS: readonly string[] = [...PROTO_METHODS, ...FULL_CASE_METHODS, ...HEAD_CASE_METHODS];

export interface CaseSpec {
  method: CaseMethod;
  channels: number;
  imageSize: number;
  way: number;
  shot: number;
  query: number;
  /** ES population. */
  pop?: number;
  /** MAML inner steps l and inner learning rate. */
  innerSteps?: number;
  innerLr?: number;
  /** forward: columns sampled per encoder block for timing (0 = every column). Memory is the same either way. */
  fmSample?: number;
  /** forward: tangents per pass K (default 8 for C <= 32, else 2). */
  fmChunk?: number;
  /** ES: evaluate at most this many members (time extrapolated linearly in P; every buffer is still sized for P). */
  maxMembers?: number;
  /** Device name; default the device layer's best. */
  device?: string;
  seed: number;
  /** Timed repetitions after the first (memory-measured) meta-gradient, when it was quick. */
  reps?: number;
}

export interface CaseResult {
  spec: CaseSpec;
  status: 'ok' | 'out of memory budget' | 'error';
  error?: string;
  device: string;
  dPhi: number;
  dPsi: number;
  /** FORMULA: the paper's dominant memory term for this method (float32 bytes), or null where the paper gives none. */
  formula: { name: string; expr: string; bytes: number } | null;
  /** ACCOUNTING: the library's exact bytes of that term. */
  dominant: { name: string; bytes: number };
  /** ACCOUNTING: peak of all categories together, the categories at that moment, and each category's own maximum. */
  accounted: { peak: number; atPeak: Breakdown; maxima: Breakdown };
  predictedBytes: number;
  /** MEASUREMENT, filled by the sweep from the case's fresh process. */
  measured?: Measurement;
  seconds: number;
  timeNote: string;
  loss?: number;
  /** Wall-clock seconds of the case's whole fresh process (start-up, the meta-gradient, its timing repetitions), set by the sweep. */
  wallSeconds?: number;
}


export function isEs(m: CaseMethod): boolean { return m === 'es' || m === 'es-matrix' || m === 'maml-es' || m === 'head-es' || m === 'head-es-matrix'; }
export function isFull(m: CaseMethod): boolean { return (FULL_CASE_METHODS as readonly string[]).includes(m); }
export function isHead(m: CaseMethod): boolean { return (HEAD_CASE_METHODS as readonly string[]).includes(m); }
export function isMaml(m: CaseMethod): boolean { return isFull(m) || isHead(m); }

export function checkSpec(s: CaseSpec): void {
  if (!ALL_METHODS.includes(s.method)) throw new RangeError(`memory case: unknown method ${String(s.method)} (expected one of ${ALL_METHODS.join(', ')})`);
  for (const k of ['channels', 'imageSize', 'way', 'shot', 'query'] as const) {
    if (!Number.isInteger(s[k]) || s[k] < 1) throw new RangeError(`memory case: ${k} must be a positive integer, got ${s[k]}`);
  }
  if (isEs(s.method) && !(Number.isInteger(s.pop) && s.pop! >= 2 && s.pop! % 2 === 0)) throw new RangeError(`memory case ${s.method}: pop must be an even integer >= 2, got ${s.pop}`);
  if (isMaml(s.method) && !(Number.isInteger(s.innerSteps) && s.innerSteps! >= 0)) throw new RangeError(`memory case ${s.method}: innerSteps must be an integer >= 0, got ${s.innerSteps}`);
  if (s.maxMembers !== undefined && !(Number.isInteger(s.maxMembers) && s.maxMembers >= 2)) throw new RangeError(`memory case ${s.method}: maxMembers must be an integer >= 2, got ${s.maxMembers}`);
}

export function caseId(s: CaseSpec): string {
  const parts = [s.method, `C${s.channels}`, `${s.imageSize}px`, `${s.way}w${s.shot}s${s.query}q`];
  if (s.pop !== undefined) parts.push(`P${s.pop}`);
  if (s.innerSteps !== undefined) parts.push(`l${s.innerSteps}`);
  return parts.join('-');
}

/**
 * D_phi; D_psi (ProtoNet and the head-only learner: the prototypes or head
 * state, way x E; full MAML: every parameter, D_psi = D_phi); the embedding
 * size E and the images per episode.
 */
export function caseSizes(s: CaseSpec): { dPhi: number; dPsi: number; e: number; n: number; layout: ProtoNetLayout } {
  const layout = new ProtoNetLayout({ channels: s.channels, imageSize: s.imageSize });
  const e = layout.embeddingSize, n = s.way * (s.shot + s.query);
  if (isFull(s.method)) {
    const d = new MamlLayout({ channels: s.channels, imageSize: s.imageSize }, s.way).numParams;
    return { dPhi: d, dPsi: d, e, n, layout };
  }
  const head = isHead(s.method) ? s.way * e + s.way : 0;
  return { dPhi: layout.numParams + head, dPsi: s.way * e, e, n, layout };
}

/** Bytes per inner step kept by second-order backprop through the full inner loop (g of Omega_BP = g x l). */
export function fullStepBytes(s: CaseSpec): number {
  return stepRecordBytes(new MamlLayout({ channels: s.channels, imageSize: s.imageSize }, s.way), s.way * s.shot, 4);
}

/** The paper's II-E terms (float32). */
export function paperFormula(s: CaseSpec): CaseResult['formula'] {
  const { dPhi, dPsi, e } = caseSizes(s);
  const ns = s.way * s.shot;
  switch (s.method) {
    case 'forward': return { name: 'Omega_FM', expr: `D_psi x D_phi = ${dPsi} x ${dPhi}`, bytes: 4 * dPsi * dPhi };
    case 'es': case 'es-matrix': case 'maml-es': case 'head-es': case 'head-es-matrix':
      return { name: 'Omega_ES', expr: `P x D_phi = ${s.pop} x ${dPhi}`, bytes: 4 * s.pop! * dPhi };
    case 'head-second-order': {
      const g = headTapeBytes(s.way, e, ns, 1, 4);
      return { name: 'Omega_BP', expr: `g x l = ${g} B x ${s.innerSteps}`, bytes: g * s.innerSteps! };
    }
    case 'maml-second-order': {
      const g = fullStepBytes(s);
      return { name: 'Omega_BP', expr: `g x l = ${g} B x ${s.innerSteps}`, bytes: g * s.innerSteps! };
    }
    case 'backprop': case 'maml-first-order': case 'head-first-order': return null; // the paper gives these no closed form
  }
}

/**
 * Bytes a case will need, predicted before running it (for the budget): the
 * exact size of the method's large allocation (Jacobian, population matrix,
 * inner-loop tape) plus a generous estimate of activations (1.5 x the
 * encoder's saved conv/BN/ReLU outputs and the largest op's output) and
 * parameter-sized vectors.
 */
export function predictBytes(s: CaseSpec): number {
  const { dPhi, dPsi, e, n, layout } = caseSizes(s);
  const images = 2 * n * s.imageSize * s.imageSize * 4;
  const largest = n * s.channels * s.imageSize * s.imageSize * 4;
  let side = s.imageSize, tape = images;
  for (let b = 0; b < layout.config.blocks; b++) {
    tape += 3 * n * s.channels * side * side * 4;
    side = Math.floor(side / 2);
  }
  const margin = 1.5, vectors = 8 * 4 * dPhi;
  const backprop = margin * (tape + largest) + vectors;
  switch (s.method) {
    case 'forward': {
      const k = s.fmChunk ?? (s.channels <= 32 ? 8 : 2);
      return 4 * dPsi * dPhi + margin * (images + (k + 1) * (tape + largest)) + vectors;
    }
    case 'es-matrix': case 'head-es-matrix': return 4 * s.pop! * dPhi + backprop + 16 * s.pop!;
    case 'es': case 'head-es': return backprop + 16 * s.pop!;
    case 'backprop': case 'head-first-order': return backprop;
    case 'head-second-order': return backprop + headTapeBytes(s.way, e, s.way * s.shot, s.innerSteps!, 4);
    case 'maml-first-order': case 'maml-es': return 3 * fullStepBytes(s) + backprop + 16 * (s.pop ?? 0);
    case 'maml-second-order': return fullStepBytes(s) * (s.innerSteps! + 3) + backprop;
  }
}

export interface CaseRunOptions {
  /** Called after every accounting change (the sweep's worker samples its measurements there). */
  probe?: () => void;
  /**
   * Called when the first meta-gradient (the one accounted) is done, before the timing repetitions run in the
   * same process (the worker ends its measurement there, so repetitions' garbage cannot inflate it).
   */
  afterFirst?: () => void;
}

/** Run one case in this process. Throws on bad specs; the caller records errors. */
export async function runCase(spec: CaseSpec, opts: CaseRunOptions = {}): Promise<CaseResult> {
  checkSpec(spec);
  const device = getDevice(spec.device);
  const { dPhi, dPsi } = caseSizes(spec);
  const ep = syntheticEpisode({ way: spec.way, shot: spec.shot, query: spec.query, imageSize: spec.imageSize }, spec.seed);
  const meter = new PeakMeter(opts.probe);
  const t = isFull(spec.method) ? runFull(spec, device, ep, meter, opts.afterFirst)
    : isHead(spec.method) ? runHead(spec, device, ep, meter, opts.afterFirst)
      : runProto(spec, device, ep, meter, opts.afterFirst);
  return {
    spec, status: 'ok', device: device.name, dPhi, dPsi,
    formula: paperFormula(spec), dominant: t.dominant,
    accounted: { peak: meter.peak, atPeak: meter.atPeak, maxima: meter.maxima },
    predictedBytes: predictBytes(spec), seconds: t.seconds, timeNote: t.timeNote, ...(t.loss !== undefined ? { loss: t.loss } : {}),
  };
}
