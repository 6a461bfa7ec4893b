/**
 * cpu-native: the C++/SIMD device (native/, built by node-gyp or shipped as a prebuild).
 * Importing this module registers its kernels and the device (priority 10, above cpu-ts);
 * the addon is loaded only when the device is first created. When it cannot load, create()
 * throws with the reason, getDevice() falls back to cpu-ts and deviceReport() shows why.
 */
import { withOutputPool } from './kernels.js';
import './dense.js';
import './rotate.js';
import { KernelDevice, registerDevice } from '../registry.js';
import { populationEvaluatorDevices, registerPopulationEvaluator } from '../../es/evaluators.js';
import { loadAddon, type Bf16Kernel, type NativeInfo } from './addon.js';

/** The kernel device, plus a reuse pool for large outputs (Device.outputScope). */
class NativeDevice extends KernelDevice {
  outputScope<T>(fn: () => T): T {
    return withOutputPool(fn);
  }
}

registerDevice('cpu-native', {
  priority: 10,
  create: () => {
    const { addon, path } = loadAddon();
    const info: NativeInfo = addon.info();
    return new NativeDevice('cpu-native', {
      isa: info.isa,
      reason: `native addon ${path}; ${info.reason}; float32 kernels in C++, float64 inputs run the cpu-ts kernels`,
      detail: { path, threads: info.threads, detectedIsa: info.detectedIsa, noise: info.noise, lanes: info.lanes, float64: 'cpu-ts', limits: info.limits, denseOps: 'cpu-ts', bf16: info.bf16 },
    });
  },
});

// The ES trainer's evaluator registry: cpu-native evaluates populations in one native call.
if (!populationEvaluatorDevices().includes('cpu-native')) {
  registerPopulationEvaluator('cpu-native', { module: new URL('./population.js', import.meta.url).href, export: 'createNativePopulationEvaluator', precisions: ['fp32', 'bf16'] });
}

/** The addon's own report (instruction set, threads, noise implementation); throws when it is unavailable. */
export function nativeInfo(): NativeInfo & { path: string } {
  const { addon, path } = loadAddon();
  return { ...addon.info(), path };
}

/** Restrict the instruction set (for tests and benchmarks); false when the CPU lacks it. */
export function setNativeIsa(isa: 'avx512' | 'avx2' | 'scalar'): boolean {
  return loadAddon().addon.setIsa(isa);
}

/**
 * Choose the kernel of precision 'bf16' for this process ('auto': the best this CPU has: amx >
 * avx512bf16; 'emulated': bf16 rounding on the fp32 kernels, any CPU). False when the CPU
 * cannot run it. Evaluators created with an explicit bf16Kernel ignore it.
 */
export function setNativeBf16Kernel(kernel: Bf16Kernel | 'auto'): boolean {
  return loadAddon().addon.setBf16Kernel(kernel);
}

/** Resize the native thread pool (default: the machine's cores). */
export function setNativeThreads(n: number): number {
  return loadAddon().addon.setThreads(n);
}

export { NativePopulationEvaluator, createNativePopulationEvaluator, gaussianFillNative, nativeLimits, type NativePopulationOptions, type NativePopulationInfo } from './population.js';
export type { Bf16Kernel, NativeInfo, NativeLimits } from './addon.js';
