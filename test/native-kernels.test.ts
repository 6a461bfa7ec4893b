/**
 * cpu-native's single-op fast paths (native/isa/single_ops_impl.h), which the spec suite's small
 * odd shapes do not reach: "same" convolutions with channel counts that are multiples of 16 (the
 * implicit-GEMM forward / input gradient, the NHWC weight gradient), the pixels-in-lanes kernels
 * of the 1-channel first layer, the im2row forward of a few channels; the 2x2 max-pool forward and
 * window-writing backward (with the fallback when an argmax lies outside its window); BatchNorm's
 * vector passes. Each against cpu-ts (float64 accumulation) with the spec suite's tolerances, on
 * every ISA variant the CPU runs and on 1 and 2 threads; the weight gradient, the forward and the
 * input gradient are also bit-identical across thread counts.
 */
import * as assert from 'uvu/assert';
import { test } from 'uvu';
import '../lib/index.js';
import { getDevice } from '../lib/device/registry.js';
import { nativeInfo, setNativeIsa, setNativeThreads } from '../lib/device/cpu-native/index.js';
import { Rng } from '../lib/rng/philox.js';
import { episodeGradient } from '../lib/autodiff/protonet.js';
import { Tape, layoutLeaves } from '../lib/autodiff/tape.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { episodeLoss } from '../lib/model/protonet.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { needs, nativeAddon } from './helpers/peers.js';
import { distinctTensor, randTensor } from './helpers/random.js';

const native = await nativeAddon();
const withAddon = needs(native, 'native-kernels: the addon');
const ISAS = (['avx512', 'avx2', 'scalar'] as const).filter((isa) => native.ok && setNativeIsa(isa));
const best = native.ok ? nativeInfo().detectedIsa : 'scalar';
const threads0 = native.ok ? (nativeInfo().threads as number) : 1;
const restore = (): void => {
  if (!native.ok) return;
  setNativeIsa(best);
  setNativeThreads(threads0);
};

const rng = new Rng(41);
const f32 = (shape: number[], lo = -1, hi = 1): Tensor => randTensor(rng, shape, 'float32', lo, hi);

/** ||a - b|| / ||b||, as the spec suite measures. */
function normErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

function bitsEqual(a: Tensor, b: Tensor, what: string): void {
  assert.is(a.size, b.size, `${what}: size`);
  for (let i = 0; i < a.size; i++) if (!Object.is(a.data[i], b.data[i])) assert.unreachable(`${what}[${i}]: ${a.data[i]} vs ${b.data[i]}`);
}

// [n, cin, side, cout, k]: which path each takes (AVX-512; the other variants take the same ones)
const CONV: [number, number, number, number, number, string][] = [
  [3, 64, 14, 64, 3, 'direct forward / NHWC weight, plane not a multiple of 16'],
  [40, 64, 3, 64, 3, 'tiny planes: chunks of many images, groups'],
  [2, 32, 9, 128, 3, 'two 64-wide panels'],
  [3, 16, 6, 48, 5, '5x5, 16-wide panels'],
  [2, 16, 4, 32, 1, '1x1'],
  [3, 1, 28, 64, 3, '1-channel first layer: pixels in lanes'],
  [2, 1, 17, 16, 3, 'pixels in lanes, ragged last block'],
  [2, 1, 5, 16, 3, 'narrower than a vector: im2row forward, masked weight gradient'],
  [2, 3, 10, 16, 3, 'a few channels: im2row forward, planes weight gradient'],
  [300, 16, 3, 16, 3, 'more than 16 chunks: fixed groups of chunks'],
];

withAddon('same convolutions: forward, input and weight gradients vs cpu-ts on every ISA, bit-identical on 1 and 2 threads', () => {
  const nat = getDevice('cpu-native'), ref = getDevice('cpu-ts');
  try {
    for (const [n, cin, s, cout, k, what] of CONV) {
      const x = f32([n, cin, s, s]), w = f32([cout, cin, k, k]), b = f32([cout]), dy = f32([n, cout, s, s]);
      const attrs = { stride: 1, padding: (k - 1) / 2 };
      const want = {
        y: ref.run('conv2d', { x, w, b }, attrs),
        dx: ref.run('conv2dBackwardInput', { dy, w }, { ...attrs, inputShape: x.shape }),
        dw: ref.run('conv2dBackwardWeight', { dy, x }, { ...attrs, weightShape: w.shape }),
      };
      for (const isa of ISAS) {
        setNativeIsa(isa);
        const got: Record<number, { y: Tensor; dx: Tensor; dw: Tensor; db: Tensor }> = {};
        for (const t of [1, 2]) {
          setNativeThreads(t);
          const r = nat.run('conv2dBackwardWeight', { dy, x }, { ...attrs, weightShape: w.shape });
          got[t] = { y: nat.run('conv2d', { x, w, b }, attrs), dx: nat.run('conv2dBackwardInput', { dy, w }, { ...attrs, inputShape: x.shape }), dw: r.dw, db: r.db };
          const at = `${what} [${n}, ${cin}, ${s}, ${s}] -> ${cout}, k ${k}, ${isa}, ${t} thread${t > 1 ? 's' : ''}`;
          const e = {
            y: normErr(got[t]!.y.data, want.y.data), dx: normErr(got[t]!.dx.data, want.dx.data),
            dw: normErr(got[t]!.dw.data, want.dw.dw.data), db: normErr(got[t]!.db.data, want.dw.db.data),
          };
          for (const [key, v] of Object.entries(e)) assert.ok(v <= 2e-6, `${at}: ${key} normalized error ${v.toExponential(2)} > 2e-6`);
        }
        for (const key of ['y', 'dx', 'dw', 'db'] as const) bitsEqual(got[1]![key], got[2]![key], `${what}, ${isa}: ${key} on 1 vs 2 threads`);
      }
    }
  } finally {
    restore();
  }
});

withAddon('2x2 max-pool: forward and the window-writing backward equal cpu-ts bit for bit (odd sizes, NaN, -0), and a stray argmax falls back to the scatter', () => {
  const nat = getDevice('cpu-native'), ref = getDevice('cpu-ts');
  try {
    for (const shape of [[3, 5, 28, 28], [2, 3, 7, 7], [2, 2, 3, 35], [1, 2, 2, 2]]) {
      const x = distinctTensor(rng, shape, 'float32');
      x.data[3] = NaN;
      x.data[x.size - 2] = NaN;
      const want = ref.run('maxpool2d', { x }, { kernel: 2, stride: 2 });
      const dy = f32([...want.y.shape]);
      dy.data[0] = -0;
      dy.data[1] = NaN;
      for (const isa of ISAS) {
        setNativeIsa(isa);
        for (const t of [1, 2]) {
          setNativeThreads(t);
          const at = `[${shape.join(', ')}] ${isa} ${t} thread${t > 1 ? 's' : ''}`;
          const got = nat.run('maxpool2d', { x }, { kernel: 2, stride: 2 });
          bitsEqual(got.y, want.y, `${at}: y`);
          assert.equal([...got.argmax], [...want.argmax], `${at}: argmax`);
          const dx = nat.run('maxpool2dBackward', { dy, argmax: got.argmax }, { inputShape: x.shape });
          bitsEqual(dx, ref.run('maxpool2dBackward', { dy, argmax: want.argmax }, { inputShape: x.shape }), `${at}: dx`);
          // an argmax in another window (of another plane): the scatter, which adds both gradients there
          const stray = got.argmax.slice();
          stray[stray.length - 1] = stray[0]!;
          bitsEqual(nat.run('maxpool2dBackward', { dy, argmax: stray }, { inputShape: x.shape }),
            ref.run('maxpool2dBackward', { dy, argmax: stray }, { inputShape: x.shape }), `${at}: dx with a stray argmax`);
        }
      }
    }
  } finally {
    restore();
  }
});

withAddon('BatchNorm train and backward (vector passes, shifted sums) vs cpu-ts on every ISA, far from zero mean too', () => {
  const nat = getDevice('cpu-native'), ref = getDevice('cpu-ts');
  try {
    for (const [shape, offset] of [[[6, 16, 28, 28], 0], [[5, 3, 7, 9], 1000], [[2, 4, 3, 3], -3]] as const) {
      const x = f32([...shape], -2, 3);
      for (let i = 0; i < x.size; i++) x.data[i] += offset;
      const c = shape[1], gamma = f32([c], 0.5, 1.5), beta = f32([c]), dy = f32([...shape]);
      const fw = ref.run('batchnorm2dTrain', { x, gamma, beta }, { eps: 1e-5 });
      const bw = ref.run('batchnorm2dBackward', { dy, x, gamma, mean: fw.mean, invStd: fw.invStd }, {});
      for (const isa of ISAS) {
        setNativeIsa(isa);
        const at = `[${shape.join(', ')}] + ${offset} ${isa}`;
        const f = nat.run('batchnorm2dTrain', { x, gamma, beta }, { eps: 1e-5 });
        for (const k of ['y', 'mean', 'variance', 'invStd'] as const) {
          const e = normErr(f[k].data, fw[k].data);
          assert.ok(e <= 2e-6, `${at}: ${k} normalized error ${e.toExponential(2)} > 2e-6`);
        }
        const b = nat.run('batchnorm2dBackward', { dy, x, gamma, mean: fw.mean, invStd: fw.invStd }, {});
        for (const k of ['dx', 'dgamma', 'dbeta'] as const) {
          const e = normErr(b[k].data, bw[k].data);
          assert.ok(e <= 5e-6, `${at}: ${k} normalized error ${e.toExponential(2)} > 5e-6`);
        }
      }
    }
  } finally {
    restore();
  }
});

withAddon('outputScope: training steps reuse pooled outputs and match a step without the pool bit for bit', () => {
  const dev = getDevice('cpu-native');
  assert.type(dev.outputScope, 'function');
  const layout = new ProtoNetLayout({ channels: 16, imageSize: 28 });
  const params = initParams(layout, 3);
  const img = (n: number): Tensor => f32([n, 1, 28, 28], 0, 1);
  const lab = (k: number): Int32Array => Int32Array.from({ length: 5 * k }, (_, i) => i % 5);
  const ep = { way: 5, support: img(10), supportLabels: lab(2), query: img(15), queryLabels: lab(3) };
  const opts = { bn: 'batch' as const };
  // the same step without the pool: the tape by hand
  const plain = new Float32Array(params.length);
  const tape = new Tape(dev);
  const out = episodeLoss(tape, layout, params, initialBnState(layout), ep, opts, layoutLeaves(tape, layout));
  const loss = out.loss.value.data[0]!;
  tape.backward(out.loss, plain);
  for (let rep = 0; rep < 3; rep++) {
    const g = episodeGradient(dev, layout, params, initialBnState(layout), ep, opts);
    assert.is(g.loss, loss, `step ${rep}: loss`);
    for (let i = 0; i < plain.length; i++) if (!Object.is(g.grad[i], plain[i])) assert.unreachable(`step ${rep}: grad[${i}] ${g.grad[i]} vs ${plain[i]}`);
  }
});

test.run();
