/**
 * The rotation op: its convention (counter-clockwise about the centre, matching the data
 * pipeline's 90-degree rotations and PyTorch's grid_sample), float64 gradient checks with
 * respect to the images and the angle at angles away from the kinks, the JVP against the
 * tape's gradient, and clear errors for bad inputs.
 *
 * Kinks: bilinear weights are piecewise linear in the sample coordinates, so the derivative
 * with respect to the angle jumps where a sample coordinate crosses an integer. Every angle
 * checked here is asserted to keep all moving sample coordinates at least 1e-3 from an integer
 * (the centre pixel of an odd side does not move); the finite-difference step is 1e-6.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import '../lib/device/cpu-ts/index.js';
import '../lib/device/cpu-native/index.js';
import { nativeInfo } from '../lib/device/cpu-native/index.js';
import { addon } from '../lib/device/cpu-native/addon.js';
import { getDevice } from '../lib/device/registry.js';
import { DirectOps } from '../lib/ops/api.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { Rng } from '../lib/rng/philox.js';
import { Tape } from '../lib/autodiff/tape.js';
import { checkGradient, packInputs, type GradProgram } from '../lib/autodiff/gradcheck.js';
import { DualOps } from '../lib/forward/dual.js';
import { rotatedImageInto } from '../lib/data/preprocess.js';
import { rotationSampling } from '../lib/device/cpu-ts/rotate.js';
import { maxAbsErr, randTensor } from './helpers/random.js';
import { pythonMissing } from './helpers/python.js';

const dev = getDevice('cpu-ts');
const direct = new DirectOps(dev);
const rng = new Rng(30_2021);
const angleT = (a: number, dtype: 'float32' | 'float64' = 'float64'): Tensor => Tensor.from([a], [1], dtype);

/** Smallest distance of a moving sample coordinate to an integer (the centre pixel's are fixed). */
function kinkDistance(h: number, w: number, a: number): number {
  const cx = (w - 1) / 2, cy = (h - 1) / 2, c = Math.cos(a), s = Math.sin(a);
  let m = Infinity;
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
    if (i === cy && j === cx) continue;
    for (const z of [cx + (j - cx) * c - (i - cy) * s, cy + (j - cx) * s + (i - cy) * c]) m = Math.min(m, Math.abs(z - Math.round(z)));
  }
  return m;
}

test('angle 0 is the identity, bit for bit', () => {
  const x = randTensor(rng, [2, 3, 7, 6]);
  assert.equal(Array.from(direct.rotate(x, angleT(0)).data), Array.from(x.data));
});

test('pi/2, pi and 3pi/2 match the data pipeline\'s counter-clockwise 90, 180 and 270 degrees (lib/data/preprocess.ts)', () => {
  for (const size of [28, 7]) {
    const sums = new Uint8Array(size * size);
    for (let i = 0; i < sums.length; i++) sums[i] = rng.int(226);
    const up = new Float64Array(size * size);
    rotatedImageInto(sums, size, 225, 0, 0, up, 0);
    const x = new Tensor(up, [1, 1, size, size]);
    for (const [deg, a] of [[90, Math.PI / 2], [180, Math.PI], [270, 1.5 * Math.PI]] as const) {
      const want = new Float64Array(size * size);
      rotatedImageInto(sums, size, 225, 0, deg, want, 0);
      // cos(pi/2) is 6e-17, not 0: the samples sit within 1e-14 of the pixel centres.
      const err = maxAbsErr(direct.rotate(x, angleT(a)).data, want);
      assert.ok(err < 1e-12, `size ${size}, ${deg} degrees: max abs err ${err}`);
    }
  }
});

test('samples outside the image read zero; a small rotation moves ink counter-clockwise', () => {
  // One ink pixel to the right of the centre of a 9x9 image moves up (smaller row) under a small CCW rotation.
  const x = Tensor.zeros([1, 1, 9, 9], 'float64');
  x.data[4 * 9 + 8] = 1;
  const y = direct.rotate(x, angleT(0.2)).data;
  let rowMass = 0, mass = 0;
  for (let i = 0; i < 9; i++) for (let j = 0; j < 9; j++) { rowMass += i * y[i * 9 + j]!; mass += y[i * 9 + j]!; }
  assert.ok(mass > 0.3 && mass < 1, `ink kept inside the frame: ${mass}`);
  assert.ok(rowMass / mass < 4 - 0.5, `ink centroid row ${rowMass / mass} should move up from row 4`);
  const corner = direct.rotate(Tensor.from(new Float64Array(49).fill(1), [1, 1, 7, 7], 'float64'), angleT(Math.PI / 4)).data;
  assert.is(corner[0], 0, 'the corner of a 45-degree rotation samples outside the image');
});

const ANGLES = [0.4137, -1.2291, 2.9013, 0.5236 + 0.0123];
for (const [n, c, h, w] of [[2, 2, 7, 5], [1, 3, 6, 6], [3, 1, 9, 4]] as const) {
  test(`gradcheck float64: images [${n}, ${c}, ${h}, ${w}] and angle, through a conv (every input checked)`, () => {
    for (const a of ANGLES) {
      assert.ok(kinkDistance(h, w, a) > 1e-3, `angle ${a} puts a sample within ${kinkDistance(h, w, a)} of a kink`);
      const { x, get } = packInputs({ img: randTensor(rng, [n, c, h, w]), angle: angleT(a), w: randTensor(rng, [2, c, 3, 3]) });
      const program: GradProgram = (ops, leaf, xs) => ops.conv2d(ops.rotate(get(leaf, xs, 'img'), get(leaf, xs, 'angle')), get(leaf, xs, 'w'), undefined, { stride: 1, padding: 1 });
      const r = checkGradient({ device: dev, x, program, rtol: 1e-6, atol: 1e-9, seed: 3 });
      assert.ok(r.ok && r.skipped === 0 && r.checked === x.length, `angle ${a}: worst ratio ${r.worstRatio}, ${JSON.stringify(r.worst)}`);
    }
  });
}

test('the angle gradient reduces over every plane of the batch (a shared angle)', () => {
  const x = randTensor(rng, [3, 2, 6, 5]), dy = randTensor(rng, [3, 2, 6, 5]);
  const whole = dev.run('rotateBackward', { dy, x, angle: angleT(0.7) }, {}).dangle.data[0]!;
  let parts = 0;
  for (let p = 0; p < 6; p++) {
    const one = (t: Tensor): Tensor => new Tensor(t.data.slice(p * 30, (p + 1) * 30), [1, 1, 6, 5]);
    parts += dev.run('rotateBackward', { dy: one(dy), x: one(x), angle: angleT(0.7) }, {}).dangle.data[0]!;
  }
  assert.ok(Math.abs(whole - parts) < 1e-12 * Math.max(1, Math.abs(whole)), `${whole} vs ${parts}`);
});

test('forward mode: the JVP is the transpose of the tape\'s gradient, <r, J t> = <J^T r, t>', () => {
  const x = randTensor(rng, [2, 2, 7, 6]), a = 0.9137;
  const tx = randTensor(rng, [1, 2, 2, 7, 6]), ta = randTensor(rng, [1, 1]);
  const r = randTensor(rng, [2, 2, 7, 6]);
  const ops = new DualOps(dev, 1);
  const out = ops.rotate(ops.dual(x, tx), ops.dual(angleT(a), ta));
  let lhs = 0;
  for (let i = 0; i < r.size; i++) lhs += r.data[i]! * out.t!.data[i]!;
  const tape = new Tape(dev);
  const g = new Float64Array(x.size + 1);
  const y = tape.rotate(tape.leaf(x, 0), tape.leaf(angleT(a), x.size));
  tape.backward(y, g, r);
  let rhs = g[x.size]! * ta.data[0]!;
  for (let i = 0; i < x.size; i++) rhs += g[i]! * tx.data[i]!;
  assert.ok(Math.abs(lhs - rhs) < 1e-10 * Math.max(1, Math.abs(lhs)), `${lhs} vs ${rhs}`);
});

test('at angle 0 every coordinate is an integer: the gradient follows the floor convention (documented)', () => {
  const s = rotationSampling(6, 6, 0);
  for (let q = 0; q < 36; q++) {
    assert.is(s.weight[4 * q], 1, 'the sample is the pixel itself');
    for (let k = 1; k < 4; k++) assert.is(s.weight[4 * q + k]! === 0 || s.index[4 * q + k] === -1, true);
  }
  assert.ok(kinkDistance(6, 6, 0) === 0);
});

test('bad inputs are refused with the shape or value named', () => {
  const x = randTensor(rng, [1, 1, 4, 4]);
  assert.throws(() => direct.rotate(x, Tensor.from([0.1, 0.2], [2], 'float64')), /angle must have shape \[1\]/);
  assert.throws(() => direct.rotate(new Tensor(x.data, [16]), angleT(0.1)), /NCHW/);
  assert.throws(() => direct.rotate(x, angleT(0.1, 'float32')), /angle is float32 but the images are float64/);
  assert.throws(() => direct.rotate(x, angleT(Number.NaN)), /angle must be finite/);
  assert.throws(() => dev.run('rotateBackward', { dy: randTensor(rng, [1, 1, 4, 3]), x, angle: angleT(0.1) }, {}), /rotateBackward dy/);
});

let nativeMissing: string | null = null;
try { nativeInfo(); } catch (e) { nativeMissing = (e as Error).message; }
if (nativeMissing) console.log(`rotate.test: cpu-native checks skipped: ${nativeMissing}`);
const nativeTest = nativeMissing ? test.skip : test;

nativeTest('cpu-native: the C++ kernels match the spec in float32 and refuse wrong-sized buffers at the boundary', () => {
  const nat = getDevice('cpu-native');
  const x = randTensor(rng, [3, 2, 9, 7], 'float32'), dy = randTensor(rng, [3, 2, 9, 7], 'float32'), angle = angleT(0.6235, 'float32');
  const y = nat.run('rotate', { x, angle }, {}), want = dev.run('rotate', { x, angle }, {});
  assert.ok(maxAbsErr(y.data, want.data) < 1e-6, `forward ${maxAbsErr(y.data, want.data)}`);
  const b = nat.run('rotateBackward', { dy, x, angle }, {}), wb = dev.run('rotateBackward', { dy, x, angle }, {});
  assert.ok(maxAbsErr(b.dx.data, wb.dx.data) < 1e-6 && Math.abs(b.dangle.data[0]! - wb.dangle.data[0]!) < 1e-4 * Math.abs(wb.dangle.data[0]!));
  const s = rotationSampling(9, 7, 0.6235);
  const a = addon();
  assert.throws(() => a.rotate({ planes: 6, px: 63, index: s.index, weight: s.weight, x: x.data, y: new Float32Array(10) }), /y/);
  assert.throws(() => a.rotate({ planes: 6, px: 63, index: s.index.subarray(1), weight: s.weight, x: x.data, y: new Float32Array(378) }), /index/);
  const bad = s.index.slice();
  bad[5] = 63;
  assert.throws(() => a.rotate({ planes: 6, px: 63, index: bad, weight: s.weight, x: x.data, y: new Float32Array(378) }), /index/);
  assert.throws(() => a.rotateBackward({ planes: 6, px: 63, index: s.index, weight: s.weight, dweight: new Float64Array(3), dy: dy.data, x: x.data, dx: new Float32Array(378) }), /dweight/);
});

const noTorch = pythonMissing(['torch']);
if (noTorch) console.log(`rotate.test: PyTorch cross-check skipped: ${noTorch}`);
const torchTest = noTorch ? test.skip : test;

const TORCH = `
import json, sys, torch
import torch.nn.functional as F
torch.set_default_dtype(torch.float64)
out = []
for d in json.load(sys.stdin):
    x = torch.tensor(d['x']).reshape(d['shape']).requires_grad_()
    a = torch.tensor(d['angle']).requires_grad_()
    n, c, h, w = d['shape']
    cx, cy = (w - 1) / 2, (h - 1) / 2
    row0 = torch.stack([torch.cos(a), -(cy / cx) * torch.sin(a), torch.zeros(())])
    row1 = torch.stack([(cx / cy) * torch.sin(a), torch.cos(a), torch.zeros(())])
    theta = torch.stack([row0, row1]).expand(n, 2, 3)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=True)
    y = F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=True)
    (y * torch.tensor(d['r']).reshape(d['shape'])).sum().backward()
    out.append({'y': y.reshape(-1).tolist(), 'dx': x.grad.reshape(-1).tolist(), 'da': a.grad.item()})
print(json.dumps(out))
`;

torchTest('PyTorch grid_sample (align_corners=True, zeros padding) with the same affine map: values and both gradients', () => {
  const cases = ([[[2, 2, 7, 5], 0.4137], [[1, 1, 28, 28], 0.5236 + 0.0123], [[2, 1, 6, 9], -2.2]] as const).map(([shape, a]) => ({
    shape: [...shape], angle: a, x: randTensor(rng, [...shape]), r: randTensor(rng, [...shape]),
  }));
  const input = JSON.stringify(cases.map((c) => ({ shape: c.shape, angle: c.angle, x: Array.from(c.x.data), r: Array.from(c.r.data) })));
  const out = spawnSync('python3', ['-c', TORCH], { input, encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.is(out.status, 0, out.stderr);
  const wants = JSON.parse(out.stdout) as { y: number[]; dx: number[]; da: number }[];
  cases.forEach(({ shape, angle: a, x, r }, i) => {
    const want = wants[i]!;
    const tape = new Tape(dev);
    const g = new Float64Array(x.size + 1);
    const y = tape.rotate(tape.leaf(x, 0), tape.leaf(angleT(a), x.size));
    assert.ok(maxAbsErr(y.value.data, want.y) < 1e-12, `values [${shape.join(', ')}] at ${a}: ${maxAbsErr(y.value.data, want.y)}`);
    tape.backward(y, g, r);
    assert.ok(maxAbsErr(g.subarray(0, x.size), want.dx) < 1e-12, `image gradient: ${maxAbsErr(g.subarray(0, x.size), want.dx)}`);
    assert.ok(Math.abs(g[x.size]! - want.da) < 1e-9 * Math.max(1, Math.abs(want.da)), `angle gradient ${g[x.size]} vs torch ${want.da}`);
  });
});

test.run();
