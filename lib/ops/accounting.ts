/**
 * Memory accounting for the study: named parts, each an exact byte count of
 * arrays a method holds (tape, Jacobian, parameters, optimizer state, ES
 * working set, ...), and the peak of their sum over a meta-gradient.
 */
import type { TensorOps } from '../ops/api.js';

export type Breakdown = Record<string, number>;

export class PeakMeter {
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

/** Bytes of tensor-like values: Tensors, Duals ({v, t}), BN results ({y, mean, variance}), typed arrays. */
export function bytesOf(x: unknown): number {
  if (x === null || x === undefined || typeof x !== 'object') return 0;
  if (ArrayBuffer.isView(x)) return x.byteLength;
  const o = x as Record<string, unknown>;
  if ('data' in o && 'shape' in o && ArrayBuffer.isView(o['data'])) return (o['data'] as ArrayBufferView).byteLength;
  if ('v' in o && 't' in o) return bytesOf(o['v']) + bytesOf(o['t']);
  if ('y' in o && 'mean' in o) return bytesOf(o['y']) + bytesOf(o['mean']) + bytesOf(o['variance']);
  if ('value' in o && 'id' in o) return bytesOf(o['value']);
  return 0;
}

export interface MeteredOps<V> {
  ops: TensorOps<V>;
  /** Largest (inputs + outputs) bytes of one op call since the last reset: the least a forward-only evaluation in this order must hold at once. */
  readonly opPeak: number;
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
  let opPeak = 0;
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
        for (const a of args) if (a && typeof a === 'object' && !ArrayBuffer.isView(a) && !constants.has(a)) b += bytesOf(a);
        if (b > opPeak) opPeak = b;
        return out;
      };
    },
  });
  return {
    ops,
    get opPeak() { return opPeak; },
    reset() { opPeak = 0; },
  };
}
