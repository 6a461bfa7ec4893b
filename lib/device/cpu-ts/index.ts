/** cpu-ts: the TypeScript reference device. Importing this module registers its kernels and the device. */
import './conv2d.js';
import './batchnorm2d.js';
import './relu.js';
import './maxpool2d.js';
import './bn-relu-pool.js';
import './prototypes.js';
import './distance.js';
import './softmax.js';
import './dense.js';
import './activation.js';
import './rotate.js';
import { KernelDevice, registerDevice } from '../registry.js';

registerDevice('cpu-ts', {
  priority: 0,
  create: () => new KernelDevice('cpu-ts', { isa: 'javascript', reason: 'the TypeScript reference device (always available)' }),
});
