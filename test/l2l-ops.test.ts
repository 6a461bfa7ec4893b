/**
 * The dense tape ops (matmul with every transpose, broadcasting add/mul, sumTo,
 * sigmoid, tanh) against central finite differences in float64, alone and
 * composed (an LSTM-style gate), plus the same input used twice.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { Rng } from '../lib/rng/philox.js';
import { asDenseOps, DirectOps, type DenseOps, type TensorOps } from '../lib/ops/api.js';
import { checkGradient, packInputs, type GradCheckResult, type GradProgram } from '../lib/autodiff/gradcheck.js';
import { Tape } from '../lib/autodiff/tape.js';

const device = getDevice('cpu-ts');
const rng = new Rng(4242);

function randn(shape: number[], scale = 1): Tensor {
  const t = Tensor.zeros(shape, 'float64');
  for (let i = 0; i < t.size; i++) t.data[i] = scale * rng.normal();
  return t;
}

interface Case { name: string; inputs: Record<string, Tensor>; body: <V>(ops: DenseOps<V>, g: (n: string) => V) => V }

function run(c: Case): GradCheckResult {
  const { x, get } = packInputs(c.inputs);
  const program: GradProgram = <V>(ops: TensorOps<V>, leaf: (t: Tensor, o: number) => V, xs: Float64Array) => c.body(asDenseOps(ops), (n) => get(leaf, xs, n));
  return checkGradient({ device, x, program, rtol: 1e-6, atol: 1e-9, seed: 3 });
}

const cases: Case[] = [
  ...([[false, false], [true, false], [false, true], [true, true]] as const).map(([ta, tb]): Case => ({
    name: `matmul transA=${ta} transB=${tb}`,
    inputs: { a: randn(ta ? [4, 3] : [3, 4]), b: randn(tb ? [5, 4] : [4, 5]) },
    body: (ops, g) => ops.matmul(g('a'), g('b'), ta, tb),
  })),
  { name: 'add, b broadcast over columns', inputs: { a: randn([6, 5]), b: randn([6, 1]) }, body: (ops, g) => ops.add(g('a'), g('b')) },
  { name: 'add, b broadcast over leading dims', inputs: { a: randn([2, 3, 4]), b: randn([4]) }, body: (ops, g) => ops.add(g('a'), g('b')) },
  { name: 'mul, same shape', inputs: { a: randn([3, 7]), b: randn([3, 7]) }, body: (ops, g) => ops.mul(g('a'), g('b')) },
  { name: 'mul, scalar b', inputs: { a: randn([3, 7]), b: randn([]) }, body: (ops, g) => ops.mul(g('a'), g('b')) },
  { name: 'mul, b [3, 1, 5] into [2, 3, 4, 5]', inputs: { a: randn([2, 3, 4, 5]), b: randn([3, 1, 5]) }, body: (ops, g) => ops.mul(g('a'), g('b')) },
  { name: 'sumTo [4, 1] and []', inputs: { x: randn([4, 6]) }, body: (ops, g) => ops.add(ops.sumTo(g('x'), [4, 1]), ops.sumTo(g('x'), [])) },
  { name: 'sigmoid', inputs: { x: randn([5, 4], 2) }, body: (ops, g) => ops.sigmoid(g('x')) },
  { name: 'tanh', inputs: { x: randn([5, 4], 2) }, body: (ops, g) => ops.tanh(g('x')) },
  { name: 'x * x (one input twice)', inputs: { x: randn([3, 3]) }, body: (ops, g) => ops.mul(g('x'), g('x')) },
  {
    name: 'LSTM-style cell: c\' = sig(Wx + b) * c + tanh(Ux) * sig(Vx), h = tanh(c\') * sig(...)',
    inputs: { w: randn([8, 3], 0.5), u: randn([4, 3], 0.5), b: randn([8, 1]), x: randn([3, 6]), c: randn([4, 6]) },
    body: (ops, g) => {
      const z = ops.add(ops.matmul(g('w'), g('x')), g('b'));
      const f = ops.sigmoid(ops.sliceRows(z, 0, 4)), o = ops.sigmoid(ops.sliceRows(z, 4, 8));
      const c2 = ops.add(ops.mul(f, g('c')), ops.mul(ops.tanh(ops.matmul(g('u'), g('x'))), o));
      return ops.mul(ops.tanh(c2), o);
    },
  },
];

for (const c of cases) {
  test(`gradient (float64 central differences): ${c.name}`, () => {
    const r = run(c);
    assert.ok(r.checked > 0 && r.skipped === 0, `${c.name}: checked ${r.checked}, skipped ${r.skipped}`);
    assert.is(r.forwardDiff, 0, `${c.name}: tape forward differs from the plain forward by ${r.forwardDiff}`);
    assert.ok(r.ok, `${c.name}: worst ratio ${r.worstRatio} at ${JSON.stringify(r.worst)}`);
  });
}

test('matmul matches a naive triple loop; broadcasting errors name the shapes', () => {
  const ops = new DirectOps(device);
  const a = randn([3, 4]), b = randn([4, 2]);
  const y = ops.matmul(a, b);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 2; j++) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += a.data[i * 4 + k]! * b.data[k * 2 + j]!;
    assert.ok(Math.abs(y.data[i * 2 + j]! - s) < 1e-12);
  }
  assert.throws(() => ops.add(randn([3, 4]), randn([3])), /shape \[3\] does not broadcast to \[3, 4\]/);
  assert.throws(() => ops.matmul(randn([3, 4]), randn([3, 4])), /inner dimensions differ/);
  assert.throws(() => ops.add(randn([2]), Tensor.zeros([2], 'float32')), /float64 and float32/);
});

test('a constant operand gets no gradient and is not saved for backward', () => {
  const tape = new Tape(device);
  const w = tape.leaf(randn([2, 3]), 0), x = tape.constant(randn([3, 4]));
  const y = tape.sumTo(tape.matmul(w, x), []);
  const g = new Float64Array(6);
  tape.backward(y, g);
  // d sum(W X) / dW[i, k] = sum_j X[k, j]
  const xs = x.value.data;
  for (let k = 0; k < 3; k++) {
    let s = 0;
    for (let j = 0; j < 4; j++) s += xs[k * 4 + j]!;
    assert.ok(Math.abs(g[k]! - s) < 1e-12 && Math.abs(g[3 + k]! - s) < 1e-12);
  }
});

test.run();
