/**
 * The fused BN + ReLU + 2x2 max-pool (OpSpecs.bnReluPool) beyond the spec suite's small cases: on
 * cpu-native it is bit for bit the three ops in sequence (forward and backward, ConvNet-4 shapes,
 * 1 and 2 threads, odd planes, NaN), it refuses an argmax outside its window, and the tape that
 * uses it gives bit for bit the gradient of the tape that does not (cpu-native), and the float64
 * gradient matches central finite differences (cpu-ts, through the gradcheck of lib/autodiff).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/index.js';
import { getDevice, type Device } from '../lib/device/registry.js';
import { nativeInfo, setNativeIsa, setNativeThreads } from '../lib/device/cpu-native/index.js';
import { Tape, layoutLeaves } from '../lib/autodiff/tape.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { episodeLoss } from '../lib/model/protonet.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { Rng } from '../lib/rng/philox.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { randTensor } from './helpers/random.js';
import { needs, nativeAddon } from './helpers/peers.js';

const native = await nativeAddon();
const withAddon = needs(native, 'bn-relu-pool: the native addon');
// every instruction set this machine runs (the scalar and AVX2 variants pool without the AVX-512 kernels)
const ISAS = (['avx512', 'avx2', 'scalar'] as const).filter((isa) => native.ok && setNativeIsa(isa));
const best = native.ok ? nativeInfo().detectedIsa : 'scalar';
const threads0 = native.ok ? (nativeInfo().threads as number) : 1;
const rng = new Rng(77);

function unfused(d: Device, x: Tensor, gamma: Tensor, beta: Tensor, dy: Tensor) {
  const bn = d.run('batchnorm2dTrain', { x, gamma, beta }, { eps: 1e-5 });
  const r = d.run('relu', { x: bn.y }, {});
  const p = d.run('maxpool2d', { x: r }, { kernel: 2, stride: 2 });
  const g = d.run('maxpool2dBackward', { dy, argmax: p.argmax }, { inputShape: x.shape });
  const back = d.run('batchnorm2dBackward', { dy: d.run('reluBackward', { dy: g, x: bn.y }, {}), x, gamma, mean: bn.mean, invStd: bn.invStd }, {});
  return { y: p.y, argmax: p.argmax, mean: bn.mean, variance: bn.variance, invStd: bn.invStd, ...back };
}

function fused(d: Device, x: Tensor, gamma: Tensor, beta: Tensor, dy: Tensor) {
  const f = d.run('bnReluPool', { x, gamma, beta }, { eps: 1e-5 });
  const back = d.run('bnReluPoolBackward', { dy, y: f.y, argmax: f.argmax, x, gamma, mean: f.mean, invStd: f.invStd }, {});
  return { ...f, ...back };
}

const bits = (t: Tensor | Int32Array): number[] => Array.from(new Int32Array((t instanceof Tensor ? t.data : t).slice().buffer));

withAddon('cpu-native: bnReluPool and its backward are bit for bit BN, ReLU and max-pool in sequence (ConvNet-4 shapes, odd planes, NaN, every ISA, 1 and 2 threads)', () => {
  const d = getDevice('cpu-native');
  const shapes = [[6, 16, 28, 28], [6, 16, 7, 7], [5, 32, 3, 3], [3, 3, 5, 9], [4, 16, 14, 14]];
  assert.ok(ISAS.length > 0);
  try {
    for (const [isa, threads] of ISAS.flatMap((i) => [[i, 1], [i, 2]] as const)) {
      setNativeIsa(isa);
      setNativeThreads(threads);
      for (const [i, sh] of shapes.entries()) {
        const c = sh[1]!;
        const x = randTensor(rng, sh, 'float32', -2, 3), gamma = randTensor(rng, [c], 'float32', -1.5, 1.5), beta = randTensor(rng, [c], 'float32', -0.5, 0.5);
        if (i === 3) { x.data[7] = NaN; x.data[x.size - 1] = NaN; } // a NaN channel: NaN propagates through BN, ReLU and the pool
        const dy = randTensor(rng, [sh[0]!, c, Math.floor(sh[2]! / 2), Math.floor(sh[3]! / 2)], 'float32');
        const want = unfused(d, x, gamma, beta, dy), got = fused(d, x, gamma, beta, dy);
        for (const k of ['y', 'argmax', 'mean', 'variance', 'invStd', 'dx', 'dgamma', 'dbeta'] as const) {
          assert.equal(bits(got[k]), bits(want[k]), `${isa}, threads ${threads}, shape [${sh.join(', ')}]: ${k}`);
        }
      }
    }
  } finally {
    setNativeIsa(best);
    setNativeThreads(threads0);
  }
});

withAddon('cpu-native: bnReluPoolBackward refuses an argmax outside its own window, naming it', () => {
  const d = getDevice('cpu-native');
  const x = randTensor(rng, [2, 16, 6, 6], 'float32'), gamma = randTensor(rng, [16], 'float32', 0.5, 1), beta = randTensor(rng, [16], 'float32');
  const f = d.run('bnReluPool', { x, gamma, beta }, { eps: 1e-5 });
  const dy = randTensor(rng, [...f.y.shape], 'float32');
  const argmax = f.argmax.slice();
  argmax[5] = argmax[4]!; // in range, but another window's element
  assert.throws(() => d.run('bnReluPoolBackward', { dy, y: f.y, argmax, x, gamma, mean: f.mean, invStd: f.invStd }, {}), /argmax.*window/);
  argmax[5] = -1;
  assert.throws(() => d.run('bnReluPoolBackward', { dy, y: f.y, argmax, x, gamma, mean: f.mean, invStd: f.invStd }, {}), /argmax/);
});

function tapeGradient(d: Device, fuse: boolean, dtype: 'float32' | 'float64'): { loss: number; grad: Float32Array | Float64Array; nodes: number } {
  const layout = new ProtoNetLayout({ channels: 16, imageSize: 28 });
  const p32 = initParams(layout, 3);
  const params = dtype === 'float64' ? Float64Array.from(p32) : p32;
  const ep = new SyntheticEpisodes({ way: 5, shot: 2, query: 3, imageSize: 28, seed: 4 }).episode(1);
  const tape = new Tape(d);
  const out = episodeLoss(tape, layout, params, initialBnState(layout), ep, { bn: 'batch', fuse }, layoutLeaves(tape, layout));
  const grad = dtype === 'float64' ? new Float64Array(layout.numParams) : new Float32Array(layout.numParams);
  const nodes = tape.length;
  tape.backward(out.loss, grad);
  return { loss: out.loss.value.data[0]!, grad, nodes };
}

withAddon('tape on cpu-native: the fused block gives bit for bit the loss and gradient of BN, ReLU and max-pool recorded separately', () => {
  const d = getDevice('cpu-native');
  const a = tapeGradient(d, true, 'float32'), b = tapeGradient(d, false, 'float32');
  assert.is(b.nodes - a.nodes, 4 * 2, 'fuse: false records BN, ReLU and max-pool (3 nodes) where fuse records bnReluPool (1), in each of the 4 blocks');
  assert.is(a.loss, b.loss);
  assert.equal(Array.from(a.grad), Array.from(b.grad));
  assert.ok(a.grad.some((v) => v !== 0));
});

test('tape on cpu-ts, float64: the fused block\'s gradient equals the unfused one to 1e-12', () => {
  const d = getDevice('cpu-ts');
  const a = tapeGradient(d, true, 'float64'), b = tapeGradient(d, false, 'float64');
  assert.ok(Math.abs(a.loss - b.loss) <= 1e-12 * Math.abs(b.loss));
  let worst = 0, scale = 0;
  for (let i = 0; i < a.grad.length; i++) { worst = Math.max(worst, Math.abs(a.grad[i]! - b.grad[i]!)); scale = Math.max(scale, Math.abs(b.grad[i]!)); }
  assert.ok(worst <= 1e-12 * scale, `max difference ${worst} against max |grad| ${scale}`);
});

test.run();
