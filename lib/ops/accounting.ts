/**
 * Memory ACCOUNTING (not measurement): named parts, each an exact byte count
 * of typed arrays a method holds, and the peak of their sum over a
 * meta-gradient. Every method books its arrays under the same categories
 * (PART), so two methods' accounted peaks compare like with like.
 */
import type { TensorOps } from '../ops/api.js';

export type Breakdown = Record<string, number>;

/**
 * The categories every method books its arrays under.
 *  parameters         the meta-parameters phi (mu for ES)
 *  optimizer state    the outer optimizer's state (the study charges Adam, 8 bytes per parameter, to every method)
 *  gradient           the meta-gradient and its accumulators (ES: the float64 weighted noise sum)
 *  episode            the images (support, query, and any concatenated copy)
 *  activations        what one differentiation or evaluation pass holds: backprop's whole tape; forward mode's
 *                     values and tangents of one pass; ES: every op output of one member's forward; an inner
 *                     step's record (forward activations and adjoints) for first-order MAML and ES
 *  inner-loop tape    backprop through l inner steps: what is kept from every step (grows with l)
 *  inner-loop state   the adapted parameters and the inner gradient (or the head state of the head-only learner)
 *  Jacobian           forward mode's D_psi x D_phi state Jacobian
 *  ES population      a member's parameters, the noise scratch, fitness and weights (O(D + P))
 *  population matrix  the P x D matrix of perturbations (the paper's ES implementation)
 *  scratch            transient buffers of one backward / Hessian-vector walk beside the above
 */
export const PART = {
  parameters: 'parameters',
  optimizer: 'optimizer state',
  gradient: 'gradient',
  episode: 'episode',
  activations: 'activations',
  innerTape: 'inner-loop tape',
  innerState: 'inner-loop state',
  jacobian: 'Jacobian',
  population: 'ES population',
  matrix: 'population matrix',
  scratch: 'scratch',
} as const;
export type PartName = (typeof PART)[keyof typeof PART];
export const PART_ORDER: readonly PartName[] = Object.values(PART);

export class PeakMeter {
  /** `probe`, if given, runs after every change (the memory study samples its measurements there). */
  constructor(private readonly probe?: () => void) {}

  private readonly parts = new Map<string, number>();
  private peakTotal = 0;
  private peakParts: Breakdown = {};
  private readonly maxParts = new Map<string, number>();

  /** Set part `name` to `bytes` now (and update the peak). */
  set(name: string, bytes: number): void {
    if (!(bytes >= 0) || !Number.isFinite(bytes)) throw new RangeError(`PeakMeter: bytes for ${name} must be a finite number >= 0, got ${bytes}`);
    this.parts.set(name, bytes);
    if (bytes > (this.maxParts.get(name) ?? 0)) this.maxParts.set(name, bytes);
    this.check();
    this.probe?.();
  }

  get(name: string): number { return this.parts.get(name) ?? 0; }

  /** The most part `name` has been on its own. */
  maxOf(name: string): number { return this.maxParts.get(name) ?? 0; }

  /** Each part's own maximum (not necessarily at the same moment). */
  get maxima(): Breakdown { return Object.fromEntries(this.maxParts); }

  /** Part `name` reached `bytes` at some moment while every other part was as it is now: count that moment, then restore. */
  reached(name: string, bytes: number): void {
    const had = this.parts.get(name);
    this.set(name, bytes);
    if (had === undefined) this.parts.delete(name);
    else this.parts.set(name, had);
  }

  get current(): number {
    let s = 0;
    for (const b of this.parts.values()) s += b;
    return s;
  }

  get peak(): number { return this.peakTotal; }
  /** The parts at the moment of the peak. */
  get atPeak(): Breakdown { return { ...this.peakParts }; }

  private check(): void {
    const total = this.current;
    if (total > this.peakTotal) {
      this.peakTotal = total;
      this.peakParts = Object.fromEntries(this.parts);
    }
  }
}

/** The typed arrays of tensor-like values: Tensors, Duals ({v, t}), BN results ({y, mean, variance}), typed arrays. */
export function arraysOf(x: unknown): ArrayBufferView[] {
  if (x === null || x === undefined || typeof x !== 'object') return [];
  if (ArrayBuffer.isView(x)) return [x];
  const o = x as Record<string, unknown>;
  if ('data' in o && 'shape' in o && ArrayBuffer.isView(o['data'])) return [o['data'] as ArrayBufferView];
  if ('v' in o && 't' in o) return [...arraysOf(o['v']), ...arraysOf(o['t'])];
  if ('y' in o && 'mean' in o) return [...arraysOf(o['y']), ...arraysOf(o['mean']), ...arraysOf(o['variance'])];
  if ('value' in o && 'id' in o) return arraysOf(o['value']);
  return [];
}

/** Bytes of tensor-like values (see arraysOf). */
export function bytesOf(x: unknown): number {
  let b = 0;
  for (const a of arraysOf(x)) b += a.byteLength;
  return b;
}

export interface MeteredOps<V> {
  ops: TensorOps<V>;
  /** Largest (inputs + outputs) bytes of one op call since the last reset: the least a forward-only evaluation in this order must hold at once. */
  readonly opPeak: number;
  /** Sum of the bytes of every array op calls returned since the last reset (views of those counted once): all activations of the pass, as if none were freed before its end. */
  readonly allocated: number;
  reset(): void;
}

const OP_METHODS = new Set([
  'conv2d', 'batchnorm2dTrain', 'batchnorm2dEval', 'relu', 'maxpool2d', 'sliceRows',
  'prototypes', 'sqEuclidean', 'cosine', 'scale', 'logSoftmax', 'crossEntropy', 'rotate',
]);

/**
 * Wrap any TensorOps so each op call's bytes (its intermediate inputs plus its
 * outputs) are measured. Values made by `constant` (images, parameter views)
 * are excluded: they are held by their owners and counted there. Views
 * (reshape) allocate nothing and are not op calls here.
 */
export function meterOps<V extends object>(inner: TensorOps<V>): MeteredOps<V> {
  const constants = new WeakSet<object>();
  let opPeak = 0, allocated = 0;
  let counted = new WeakSet<ArrayBufferLike>(); // buffers already in `allocated`: a view (slice, reshape) adds nothing
  const ops = new Proxy(inner, {
    get(target, prop, receiver) {
      const f = Reflect.get(target, prop, receiver) as unknown;
      if (typeof f !== 'function') return f;
      if (prop === 'constant') {
        return (t: unknown) => {
          const v = (f as (t: unknown) => V).call(target, t);
          constants.add(v);
          return v;
        };
      }
      if (typeof prop !== 'string' || !OP_METHODS.has(prop)) return (f as (...a: unknown[]) => unknown).bind(target);
      return (...args: unknown[]) => {
        const out = (f as (...a: unknown[]) => unknown).apply(target, args);
        let b = bytesOf(out);
        for (const a of arraysOf(out)) {
          if (counted.has(a.buffer)) continue;
          counted.add(a.buffer);
          allocated += a.byteLength;
        }
        for (const a of args) if (a && typeof a === 'object' && !ArrayBuffer.isView(a) && !constants.has(a)) b += bytesOf(a);
        if (b > opPeak) opPeak = b;
        return out;
      };
    },
  });
  return {
    ops,
    get opPeak() { return opPeak; },
    get allocated() { return allocated; },
    reset() { opPeak = 0; allocated = 0; counted = new WeakSet(); },
  };
}
