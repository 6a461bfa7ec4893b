/**
 * Does the rotation need a native kernel? Its share of a ProtoNet training step: the rotation
 * forward and backward (cpu-ts kernels, also registered for cpu-native) against the tape's
 * forward and backward of the ConvNet-4 episode loss on the same images, on cpu-native, in the
 * same run (warm-up, median of --reps).
 *
 *   node dist/bench/evograd-rotate.js [--channels 16] [--images 100] [--reps 7]
 */
import '../lib/device/cpu-ts/index.js';
import '../lib/device/cpu-native/index.js';
import { getDevice } from '../lib/device/registry.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { episodeGradient } from '../lib/autodiff/protonet.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { arg } from './common.js';

const device = getDevice(arg('device', 'cpu-native'));
const channels = Number(arg('channels', '16')), images = Number(arg('images', '100')), reps = Number(arg('reps', '7'));
const way = 10, shot = 5, query = images / way - shot;
const layout = new ProtoNetLayout({ channels, imageSize: 28 });
const params = initParams(layout, 1), bn = initialBnState(layout);
const ep = new SyntheticEpisodes({ classes: 20, way, shot, query, imageSize: 28, seed: 1 }).episode(0);
const x = new Tensor(new Float32Array([...ep.support.data, ...ep.query.data]), [images, 1, 28, 28]);
const angle = Tensor.from([0.4], [1], 'float32');

function median(f: () => void): number {
  f();
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) { const t0 = performance.now(); f(); ts.push(performance.now() - t0); }
  return ts.sort((a, b) => a - b)[Math.floor(reps / 2)]!;
}

const rot = median(() => {
  const y = device.run('rotate', { x, angle }, {});
  device.run('rotateBackward', { dy: y, x, angle }, {});
});
const step = median(() => { episodeGradient(device, layout, params, bn, ep, { bn: 'batch', distance: 'euclidean' }); });
console.log(`device ${device.name}, ${images} images 28x28, C = ${channels}: rotation forward + backward ${rot.toFixed(2)} ms, ` +
  `ProtoNet forward + backward ${step.toFixed(2)} ms (median of ${reps}); rotation = ${(100 * rot / (rot + step)).toFixed(1)}% of a step`);
