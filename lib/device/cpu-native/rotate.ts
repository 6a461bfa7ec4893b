/**
 * cpu-native: rotation. The per-pixel sampling (corners, weights, their angle derivatives) is the
 * cpu-ts spec's rotationSampling, computed once per call in TypeScript; the C++ kernels
 * (native/core/ops_rotate.cc) apply it to every plane. Float64 inputs run the cpu-ts kernels.
 * `node dist/bench/evograd-rotate.js` measures the rotation's share of a ProtoNet step.
 */
import '../cpu-ts/index.js';
import { kernelsFor, registerKernel } from '../registry.js';
import { rotationSampling } from '../cpu-ts/rotate.js';
import type { Kernel, OpName } from '../../ops/contract.js';
import { Tensor, assertShape } from '../../tensor/tensor.js';
import { addon, loadAddon } from './addon.js';

const DEVICE = 'cpu-native';

function planes(x: Tensor, angle: Tensor, what: string): [number, number, number] {
  if (x.rank !== 4) throw new RangeError(`${what}: images must be NCHW, got shape [${x.shape.join(', ')}]`);
  if (angle.size !== 1 || angle.rank !== 1) throw new RangeError(`${what}: angle must have shape [1], got [${angle.shape.join(', ')}]`);
  if (angle.dtype !== x.dtype) throw new RangeError(`${what}: angle is ${angle.dtype} but the images are ${x.dtype}`);
  const a = addon() as Partial<ReturnType<typeof addon>>;
  if (typeof a.rotate !== 'function' || typeof a.rotateBackward !== 'function') {
    throw new Error(`cpu-native: the addon at ${loadAddon().path} predates the rotation kernels; rebuild it (npm run build:native)`);
  }
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return [n * c, h, w];
}

function register<K extends OpName>(op: K, native: Kernel<K>): void {
  const ref = kernelsFor('cpu-ts').get(op) as Kernel<K> | undefined;
  if (!ref) throw new Error(`cpu-native: no cpu-ts kernel for ${op}`);
  registerKernel(op, DEVICE, ((inputs, attrs) => {
    const xs = Object.values(inputs as Record<string, unknown>);
    return xs.some((t) => t instanceof Tensor && t.data instanceof Float64Array) ? ref(inputs, attrs) : native(inputs, attrs);
  }) as Kernel<K>);
}

register('rotate', ({ x, angle }) => {
  const [np, h, w] = planes(x, angle, 'rotate');
  const s = rotationSampling(h, w, angle.data[0]!);
  const y = new Float32Array(x.size);
  addon().rotate({ planes: np, px: h * w, index: s.index, weight: s.weight, x: x.data, y });
  return new Tensor(y, x.shape);
});

register('rotateBackward', ({ dy, x, angle }) => {
  const [np, h, w] = planes(x, angle, 'rotateBackward');
  assertShape(dy, x.shape, 'rotateBackward dy');
  const s = rotationSampling(h, w, angle.data[0]!);
  const dx = new Float32Array(x.size);
  const da = addon().rotateBackward({ planes: np, px: h * w, index: s.index, weight: s.weight, dweight: s.dweight, dy: dy.data, x: x.data, dx });
  return { dx: new Tensor(dx, x.shape), dangle: Tensor.from([da], [1], 'float32') };
});
