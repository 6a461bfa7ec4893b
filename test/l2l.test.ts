/**
 * The learned optimizer (lib/l2l): its meta-gradient by truncated backprop
 * against central finite differences in float64, the vectorized group against
 * per-task programs, and the gradient preprocessing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { Rng } from '../lib/rng/philox.js';
import { Tensor, allocLike, type FloatArray } from '../lib/tensor/tensor.js';
import { asDenseOps, type TensorOps } from '../lib/ops/api.js';
import { checkGradient, type GradProgram } from '../lib/autodiff/gradcheck.js';
import { LstmOptimizerLayout, initLstmOptimizer } from '../lib/l2l/layout.js';
import { lstmStep, lstmWeights, preprocessGradient, zeroState } from '../lib/l2l/lstm.js';
import { newSlot, rollout, rolloutMetaLoss, unrollGroup, type MetaLossKind, type Slot } from '../lib/l2l/unroll.js';
import { QuadraticFamily, DEFAULT_QUADRATIC } from '../lib/l2l/tasks/quadratic.js';
import type { OptimizeeTask, TaskEval } from '../lib/l2l/tasks/task.js';

const device = getDevice('cpu-ts');
const layout = new LstmOptimizerLayout({ hidden: 5 });

function phi64(seed: number): Float64Array {
  return Float64Array.from(initLstmOptimizer(layout, seed), (v) => 3 * v);
}

/** f(theta) = 4 + <c, theta>: its gradient c does not depend on theta, so the paper's first-order meta-gradient is exact. */
class LinearTask implements OptimizeeTask {
  readonly family = 'linear';
  readonly part = 'train';
  readonly shapeKey: string;
  readonly c: Float64Array;
  constructor(readonly index: number, readonly n: number) {
    const rng = new Rng(index, 9);
    this.c = Float64Array.from({ length: n }, () => (rng.uniform() < 0.5 ? -1 : 1) * (0.01 + rng.uniform()));
    this.shapeKey = `linear:${n}`;
  }
  initialParams(like: FloatArray): FloatArray { return allocLike(like, this.n); }
  lossGrad(theta: FloatArray, _s: number, grad: FloatArray): number { grad.set(this.c); return this.evaluate(theta).loss; }
  evaluate(theta: FloatArray): TaskEval {
    let f = 4;
    for (let i = 0; i < this.n; i++) f += this.c[i]! * theta[i]!;
    return { loss: f };
  }
}

function copySlot(s: Slot): Slot {
  return { ...s, theta: s.theta.slice(), h: s.h.map((a) => a.slice()), c: s.c.map((a) => a.slice()), grad: s.grad.slice() };
}

/** The meta-loss of a chunk that starts from the carried slots (the truncation: the carried state is a constant). */
function metaLossOf(phi: Float64Array, carried: Slot[], steps: number, kind: MetaLossKind): number {
  return rolloutMetaLoss(rollout(device, layout, phi, carried.map(copySlot), steps), kind);
}

for (const kind of ['sum', 'log'] as const) {
  test(`meta-gradient by truncated backprop = float64 central differences of the meta-loss (${kind}, 2 tasks stacked, after a warm chunk)`, () => {
    const phi = phi64(1), tasks = [new LinearTask(1, 3), new LinearTask(2, 4)], K = 4, warm = 3;
    const slots = tasks.map((t) => newSlot(t, layout, phi));
    rollout(device, layout, phi, slots, warm); // the second chunk starts from a carried state
    const carried = slots.map(copySlot);
    const g = new Float64Array(layout.numParams);
    const r = unrollGroup({ device, layout, phi, steps: K, metaLoss: kind, slotWeight: 1 / tasks.length }, slots, g);
    assert.ok(Math.abs(r.metaLoss - metaLossOf(phi, carried, K, kind)) < 1e-12, 'reported meta-loss is the rollout meta-loss');
    const rng = new Rng(5);
    const coords = [...rng.choose(layout.numParams, 60)];
    let worst = 0;
    for (const i of coords) {
      const keep = phi[i]!, h = 1e-6;
      phi[i] = keep + h;
      const p = metaLossOf(phi, carried, K, kind);
      phi[i] = keep - h;
      const m = metaLossOf(phi, carried, K, kind);
      phi[i] = keep;
      const fd = (p - m) / (2 * h);
      worst = Math.max(worst, Math.abs(fd - g[i]!) / (1e-8 + 1e-5 * Math.max(Math.abs(fd), Math.abs(g[i]!))));
    }
    assert.ok(worst <= 1, `worst ratio ${worst}`);
    assert.ok(g.some((v) => Math.abs(v) > 1e-6), 'gradient is not trivially zero');
  });
}

test('LSTM unroll on the tape vs finite differences (lib/autodiff checkGradient, float64): a quadratic task\'s recorded gradients as constant inputs', () => {
  const phi = phi64(2), task = new QuadraticFamily({ ...DEFAULT_QUADRATIC, dims: [4] }).task('train', 0);
  // Record the gradient inputs of a 3-step rollout, then differentiate sum_k <r_k, theta_k(phi)> with those inputs fixed.
  const slot = newSlot(task, layout, phi);
  const inputs: Float64Array[] = [], coefs: Float64Array[] = [];
  const rng = new Rng(11);
  for (let k = 0; k < 3; k++) {
    const x = new Float64Array(2 * task.n);
    preprocessGradient(slot.grad, layout.config.preprocessP, x);
    inputs.push(x);
    coefs.push(Float64Array.from({ length: task.n }, () => rng.normal()));
    rollout(device, layout, phi, [slot], 1);
  }
  const program: GradProgram = <V>(o: TensorOps<V>, leaf: (t: Tensor, off: number) => V, xs: Float64Array): V => {
    const ops = asDenseOps(o);
    const w = lstmWeights(ops, layout, xs, leaf);
    let theta = ops.constant(new Tensor(task.initialParams(xs), [task.n]));
    let state = zeroState(ops, layout, xs, task.n);
    let s: V | null = null;
    for (let k = 0; k < 3; k++) {
      const r = lstmStep(ops, w, ops.constant(new Tensor(inputs[k]!, [2, task.n])), state, layout);
      theta = ops.add(theta, r.update);
      state = r.state;
      const term = ops.sumTo(ops.mul(theta, ops.constant(new Tensor(coefs[k]!, [task.n]))), []);
      s = s ? ops.add(s, term) : term;
    }
    return s!;
  };
  const res = checkGradient({ device, x: phi, program, rtol: 1e-6, atol: 1e-9 });
  assert.ok(res.ok && res.checked === layout.numParams && res.forwardDiff === 0, `worst ratio ${res.worstRatio} at ${JSON.stringify(res.worst)}`);
});

test('one stacked group = the same tasks as separate programs (values and summed meta-gradient)', () => {
  const phi = Float32Array.from(initLstmOptimizer(layout, 3));
  const fam = new QuadraticFamily({ ...DEFAULT_QUADRATIC, dims: [3, 7] });
  const tasks = [0, 1, 2, 3].map((i) => fam.task('train', i));
  const together = tasks.map((t) => newSlot(t, layout, phi)), apart = tasks.map((t) => newSlot(t, layout, phi));
  const g1 = new Float32Array(layout.numParams), g2 = new Float32Array(layout.numParams);
  const r1 = unrollGroup({ device, layout, phi, steps: 5, metaLoss: 'sum', slotWeight: 0.25 }, together, g1);
  let meta = 0;
  for (const s of apart) meta += unrollGroup({ device, layout, phi, steps: 5, metaLoss: 'sum', slotWeight: 0.25 }, [s], g2).metaLoss;
  together.forEach((s, i) => {
    assert.equal(Array.from(s.theta), Array.from(apart[i]!.theta), `task ${i}: theta`);
    assert.is(s.t, 5);
    assert.is(s.loss, apart[i]!.loss);
  });
  assert.ok(Math.abs(r1.metaLoss - meta) <= 1e-9 * Math.abs(meta));
  let num = 0, den = 0;
  for (let i = 0; i < g1.length; i++) { num = Math.max(num, Math.abs(g1[i]! - g2[i]!)); den = Math.max(den, Math.abs(g2[i]!)); }
  assert.ok(num / den < 1e-5, `summed meta-gradients differ: ${num / den}`);
});

test('gradient preprocessing (Andrychowicz et al., p = 10)', () => {
  const out = new Float64Array(8);
  preprocessGradient([2, -1e-3, 1e-6, -1e-5], 10, out);
  assert.ok(Math.abs(out[0]! - Math.log(2) / 10) < 1e-15 && out[4] === 1);
  assert.ok(Math.abs(out[1]! - Math.log(1e-3) / 10) < 1e-15 && out[5] === -1);
  // e^-10 = 4.54e-5: smaller gradients become (-1, e^10 g)
  assert.ok(out[2] === -1 && Math.abs(out[6]! - Math.exp(10) * 1e-6) < 1e-15);
  assert.ok(out[3] === -1 && Math.abs(out[7]! + Math.exp(10) * 1e-5) < 1e-15);
});

test.run();
