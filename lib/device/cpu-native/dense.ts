/**
 * cpu-native: the dense ops (matmul, add, mul, sumTo, sigmoid, tanh and backwards) run the
 * cpu-ts kernels, float32 and float64 alike: they serve the learned optimizer (lib/l2l), whose
 * time is dominated by many small ops rather than by any one of them. The device info says so.
 */
import '../cpu-ts/index.js';
import { kernelsFor, registerKernel } from '../registry.js';
import type { Kernel, OpName } from '../../ops/contract.js';

export const DENSE_OPS_FROM_CPU_TS: readonly OpName[] = ['matmul', 'add', 'mul', 'sumTo', 'sigmoid', 'sigmoidBackward', 'tanh', 'tanhBackward'];

for (const op of DENSE_OPS_FROM_CPU_TS) {
  const k = kernelsFor('cpu-ts').get(op);
  if (!k) throw new Error(`cpu-native: no cpu-ts kernel for ${op}`);
  registerKernel(op, 'cpu-native', k as Kernel<OpName>);
}
