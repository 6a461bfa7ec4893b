/**
 * cpu-native: rotation runs the cpu-ts kernels (both dtypes). A C++ kernel does not pay here: the
 * rotation touches each input pixel four times per call, once per episode, against the dozens of
 * multiply-adds per pixel and channel of every convolution after it (bench/evograd-rotate.ts
 * measures its share of a ProtoNet training step; docs/evograd.md quotes it).
 */
import '../cpu-ts/index.js';
import { kernelsFor, registerKernel } from '../registry.js';
import type { Kernel } from '../../ops/contract.js';

for (const op of ['rotate', 'rotateBackward'] as const) {
  const ref = kernelsFor('cpu-ts').get(op);
  if (!ref) throw new Error(`cpu-native: no cpu-ts kernel for ${op}`);
  registerKernel(op, 'cpu-native', ref as unknown as Kernel<typeof op>);
}
