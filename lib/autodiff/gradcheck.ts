/**
 * Gradient checks: the tape's gradient against central finite differences in
 * float64. The function under test is written once against TensorOps and run
 * three ways: on the tape (analytic gradient), and on a probe of plain device
 * ops at x + h e_i and x - h e_i (numeric gradient). The probe records every
 * ReLU's sign pattern and every max-pool's argmax; where a step would cross a
 * kink (a pattern differs from the base point's), the step shrinks tenfold
 * until it does not, down to minH, below which the coordinate is reported as
 * skipped rather than compared.
 *
 * For an output that is not a scalar the check is on <r, f(x)> with a seeded
 * random cotangent r (the analytic side is backward with seed r).
 */
import type { Device } from '../device/registry.js';
import { DirectOps, type TensorOps } from '../ops/api.js';
import type { PoolAttrs } from '../ops/contract.js';
import { Rng, STREAM } from '../rng/philox.js';
import { Tensor } from '../tensor/tensor.js';
import { Tape } from './tape.js';

/** A function of the flat float64 vector x; `leaf(t, offset)` turns a view of x at offset into an op value. */
export interface GradProgram {
  <V>(ops: TensorOps<V>, leaf: (t: Tensor, offset: number) => V, x: Float64Array): V;
}

export interface GradCheckOptions {
  device: Device;
  /** The point; perturbed in place during the check and restored. */
  x: Float64Array;
  program: GradProgram;
  /** Finite-difference step (default 1e-6). */
  h?: number;
  /** Smallest step tried near a kink (default 1e-10). */
  minH?: number;
  /** Pass iff |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|) for every checked coordinate. */
  rtol: number;
  atol: number;
  /** Check at most this many coordinates (a seeded random subset); default all. */
  coords?: number;
  seed?: number;
}

export interface GradCheckResult {
  ok: boolean;
  checked: number;
  /** Coordinates whose step was shrunk to stay off a kink. */
  refined: number;
  /** Coordinates within minH of a kink (not compared). */
  skipped: number;
  /** max over coordinates of |a - n| / (atol + rtol * max(|a|, |n|)); ok iff <= 1. */
  worstRatio: number;
  worst: { index: number; analytic: number; numeric: number } | null;
  maxAbsErr: number;
  /** Largest |tape forward - plain forward| (the tape must not change values). */
  forwardDiff: number;
  analytic: Float64Array;
}

/** Plain device ops that also record the activation pattern (ReLU signs, max-pool argmax). */
export class KinkProbe extends DirectOps {
  readonly pattern: (Uint8Array | Int32Array)[] = [];

  override relu(x: Tensor): Tensor {
    const s = new Uint8Array(x.size);
    for (let i = 0; i < s.length; i++) s[i] = x.data[i]! > 0 ? 1 : 0;
    this.pattern.push(s);
    return super.relu(x);
  }

  override maxpool2d(x: Tensor, attrs: PoolAttrs): Tensor {
    const r = this.device.run('maxpool2d', { x }, attrs);
    this.pattern.push(r.argmax);
    return r.y;
  }
}

function samePattern(a: readonly (Uint8Array | Int32Array)[], b: readonly (Uint8Array | Int32Array)[]): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) {
    const x = a[k]!, y = b[k]!;
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}

function evaluate(device: Device, program: GradProgram, x: Float64Array): { out: Tensor; pattern: (Uint8Array | Int32Array)[] } {
  const probe = new KinkProbe(device);
  const out = probe.value(program(probe, (t) => probe.constant(t), x));
  return { out: out.clone(), pattern: probe.pattern };
}

export function checkGradient(opts: GradCheckOptions): GradCheckResult {
  const { device, x, program, rtol, atol } = opts;
  const h0 = opts.h ?? 1e-6, minH = opts.minH ?? 1e-10;
  const base = evaluate(device, program, x);
  if (!(base.out.data instanceof Float64Array)) throw new RangeError('checkGradient: the program must compute in float64');
  const rng = new Rng(opts.seed ?? 1, STREAM.general);
  const r = new Float64Array(base.out.size);
  if (r.length === 1) r[0] = 1;
  else for (let i = 0; i < r.length; i++) r[i] = rng.normal();

  const tape = new Tape(device);
  const y = program(tape, (t, off) => tape.leaf(t, off), x);
  let forwardDiff = 0;
  for (let i = 0; i < r.length; i++) forwardDiff = Math.max(forwardDiff, Math.abs(y.value.data[i]! - base.out.data[i]!));
  const analytic = new Float64Array(x.length);
  tape.backward(y, analytic, r.length === 1 ? undefined : new Tensor(r, y.shape));

  const n = x.length;
  const idx = opts.coords !== undefined && opts.coords < n ? [...rng.choose(n, opts.coords)].sort((a, b) => a - b) : [...Array(n).keys()];
  const res: GradCheckResult = { ok: true, checked: 0, refined: 0, skipped: 0, worstRatio: 0, worst: null, maxAbsErr: 0, forwardDiff, analytic };
  for (const i of idx) {
    const xi = x[i]!;
    let h = h0, numeric: number | undefined;
    while (h >= minH) {
      x[i] = xi + h;
      const hp = x[i]! - xi;
      const p = evaluate(device, program, x);
      x[i] = xi - h;
      const hm = xi - x[i]!;
      const m = evaluate(device, program, x);
      x[i] = xi;
      if (samePattern(p.pattern, base.pattern) && samePattern(m.pattern, base.pattern)) {
        let d = 0;
        for (let k = 0; k < r.length; k++) d += r[k]! * (p.out.data[k]! - m.out.data[k]!);
        numeric = d / (hp + hm);
        break;
      }
      h /= 10;
    }
    if (h < h0) res.refined++;
    if (numeric === undefined) { res.skipped++; continue; }
    const a = analytic[i]!, err = Math.abs(a - numeric);
    const ratio = err / (atol + rtol * Math.max(Math.abs(a), Math.abs(numeric)));
    res.checked++;
    res.maxAbsErr = Math.max(res.maxAbsErr, err);
    if (!(ratio <= res.worstRatio)) {
      res.worstRatio = ratio;
      res.worst = { index: i, analytic: a, numeric };
    }
  }
  res.ok = res.worstRatio <= 1 && res.checked > 0;
  return res;
}

/** Named float64 inputs packed into one flat vector, and a getter that makes each a leaf view of it. */
export function packInputs(inputs: Record<string, Tensor>): {
  x: Float64Array;
  get: <V>(leaf: (t: Tensor, offset: number) => V, x: Float64Array, name: string) => V;
} {
  const slots = new Map<string, { offset: number; shape: readonly number[]; size: number }>();
  let n = 0;
  for (const [name, t] of Object.entries(inputs)) {
    slots.set(name, { offset: n, shape: t.shape, size: t.size });
    n += t.size;
  }
  const x = new Float64Array(n);
  for (const [name, t] of Object.entries(inputs)) x.set(t.data, slots.get(name)!.offset);
  return {
    x,
    get: (leaf, xs, name) => {
      const s = slots.get(name);
      if (!s) throw new RangeError(`packInputs: no input named ${name}`);
      return leaf(new Tensor(xs.subarray(s.offset, s.offset + s.size), s.shape), s.offset);
    },
  };
}
