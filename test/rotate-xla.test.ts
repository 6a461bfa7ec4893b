/**
 * The rotation's StableHLO lowering (a dense bilinear resampling matrix) compiled and run by
 * XLA's CPU compiler (jaxlib), against the cpu-ts reference kernel: forward and backward,
 * float64 and float32, odd and non-square shapes, at angles away from the derivative's kinks.
 * Skips with the reason when python/jax is unavailable.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import '../lib/device/xla/lower/index.js';
import { getDevice } from '../lib/device/registry.js';
import { lowerOp } from '../lib/device/xla/lowering.js';
import { JaxRunner, jaxAvailability } from '../lib/device/xla/jax-runner.js';
import { Rng } from '../lib/rng/philox.js';
import { Tensor, type DType } from '../lib/tensor/tensor.js';
import { randTensor } from './helpers/random.js';

function normErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num += (a[i]! - b[i]!) ** 2; den += b[i]! ** 2; }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

const cpu = getDevice('cpu-ts');
const av = jaxAvailability();
const rng = new Rng(30_2022);

if (!av.ok) {
  test.skip(`xla rotate (skipped: ${av.reason})`, () => {});
  console.log(`rotate-xla: SKIP: ${av.reason}`);
} else {
  let runner: JaxRunner | undefined;
  for (const dtype of ['float64', 'float32'] as DType[]) {
    test(`rotate and rotateBackward on XLA, ${dtype}`, async () => {
      runner ??= JaxRunner.start({ hostDevices: 1 });
      // Normalized error |a - b| / |b| as the spec suite; float32: XLA computes cos, sin and the
      // sample coordinates in float32, the reference in float64.
      const tol = dtype === 'float64' ? 1e-12 : 1e-5;
      for (const [shape, a] of [[[2, 3, 7, 5], 0.4137], [[1, 1, 28, 28], 0.5359], [[3, 2, 6, 9], -2.2]] as const) {
        const x = randTensor(rng, [...shape], dtype), dy = randTensor(rng, [...shape], dtype), angle = Tensor.from([a], [1], dtype);
        const run = async (op: 'rotate' | 'rotateBackward'): Promise<unknown> => {
          const l = op === 'rotate' ? lowerOp('rotate', { x, angle }, {}) : lowerOp('rotateBackward', { dy, x, angle }, {});
          return l.unpack((await runner!.run(l.program, [l.args]))[0]!);
        };
        const y = await run('rotate') as Tensor;
        const want = cpu.run('rotate', { x, angle }, {});
        assert.equal(y.shape, want.shape);
        assert.ok(normErr(y.data, want.data) <= tol, `rotate [${shape.join(', ')}] at ${a}: ${normErr(y.data, want.data)}`);
        const b = await run('rotateBackward') as { dx: Tensor; dangle: Tensor };
        const wb = cpu.run('rotateBackward', { dy, x, angle }, {});
        assert.ok(normErr(b.dx.data, wb.dx.data) <= tol, `dx: ${normErr(b.dx.data, wb.dx.data)}`);
        assert.equal(b.dangle.shape, [1]);
        assert.ok(normErr(b.dangle.data, wb.dangle.data) <= tol, `dangle ${b.dangle.data[0]} vs ${wb.dangle.data[0]}`);
      }
    });
  }
  test.after(async () => { await runner?.close(); });
}

test.run();
