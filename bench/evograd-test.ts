/**
 * A rotation-task checkpoint (an `evometa evograd` run's best.safetensors or last.safetensors) on
 * rotated and upright test episodes with bench/evograd-rotation's protocol: 5-way 5-shot 15-query
 * episodes of the Vinyals test split, test seed 12345, rotated by `--angle` (30) and upright, the images
 * supersampled like the task's (`--supersample`, 3). For runs made with the CLI (e.g. a resumed one),
 * to compare with the bench's rows.
 *
 *   node dist/bench/evograd-test.js CHECKPOINT [--episodes 400] [--test-seed 12345] [--angle 30] [--supersample 3]
 */
import '../lib/device/cpu-ts/index.js';
import '../lib/device/cpu-native/index.js';
import { getDevice } from '../lib/device/registry.js';
import { loadCheckpoint } from '../lib/model/checkpoint.js';
import { loadOmniglot } from '../lib/data/omniglot.js';
import { ROTATION_TEST_SHAPE, rotationTest } from '../lib/evograd/data.js';
import { arg } from './common.js';

const path = process.argv[2];
if (!path || path.startsWith('--')) {
  console.error('usage: node dist/bench/evograd-test.js CHECKPOINT [--episodes 400] [--test-seed 12345] [--angle 30] [--supersample 3]');
  process.exit(2);
}
const episodes = Number(arg('episodes', '400')), seed = Number(arg('test-seed', '12345')), angle = Number(arg('angle', '30')), s = Number(arg('supersample', '3'));
const device = getDevice(arg('device', 'cpu-native'));
const ck = loadCheckpoint(path);
const dataset = loadOmniglot({ imageSize: ck.layout.config.imageSize * s });
const t = rotationTest(device, ck, dataset, { episodes, seed, angle, supersample: s });
const out = {
  checkpoint: path, angleDegrees: ck.meta['angle_degrees'] ?? null, step: ck.meta['step'] ?? null, episodes, testSeed: seed, ...ROTATION_TEST_SHAPE,
  rotated: { angle, acc: t.rotated.acc, ci95: t.rotated.ci95, loss: t.rotated.loss },
  upright: { angle: 0, acc: t.upright.acc, ci95: t.upright.ci95, loss: t.upright.loss },
};
console.log(JSON.stringify(out, null, 1));
