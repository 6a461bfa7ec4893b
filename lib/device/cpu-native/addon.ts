/**
 * Loads the native addon (built by node-gyp from binding.gyp, or a prebuild from
 * prebuilds/<platform>-<arch>/ shipped in the package) on first use, and remembers
 * why it failed. Nothing is loaded at import.
 *
 * Candidates, in order: $EVOMETA_NATIVE_ADDON (an explicit .node path, e.g. the ASan
 * build), build/Release/evometa_native.node (a local build), then the prebuild
 * prebuilds/<platform>-<arch>/evometa_native.napi.node (made by native/tools/prebuild.mjs
 * before `npm pack`), then node-gyp-build's resolution as a last resort.
 * EVOMETA_NATIVE_ADDON=none loads nothing: the device is unavailable with that reason (to see
 * or test the cpu-ts fallback on a machine that has the addon).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

/**
 * What the native population loop supports (native/core/population.h). A request beyond one
 * of these is refused with a RangeError naming the field, before anything is allocated.
 */
export interface NativeLimits {
  /** Conv blocks of the model. */
  blocks: number;
  /** Input image channels. */
  inChannels: number;
  /** Image side. */
  imageSize: number;
  /** Channels per conv block. */
  channels: number;
  /** Classes per episode. */
  way: number;
  /** Support + query images per episode. */
  images: number;
  /** Members per call (end - start of an evaluation, weights of a noise sum). */
  members: number;
  /** Largest global member index (noise ids are uint32). */
  memberIndex: number;
  /** Parameters D (length of mu). */
  params: number;
  /** Working memory of one evaluation: the shared plan plus every thread's workspace (bytes). */
  workingBytes: number;
  /** Threads per call. */
  threads: number;
}

/** A kernel for the population loop's bf16 conv products (native/core/bf16.h). */
export type Bf16Kernel = 'amx' | 'avx512bf16' | 'emulated';

export interface NativeInfo {
  isa: 'avx512' | 'avx2' | 'scalar';
  detectedIsa: 'avx512' | 'avx2' | 'scalar';
  reason: string;
  threads: number;
  noise: 'avx512' | 'scalar';
  lanes: number;
  limits: NativeLimits;
  /**
   * Precision 'bf16': the kernel in use ('none': this CPU has no bf16 instructions, 'bf16' is
   * refused), the best one detected, every kernel this CPU can run (best first; 'emulated'
   * always), and the CPU flags / AMX permission seen.
   */
  bf16: { kernel: Bf16Kernel | 'none'; detected: Bf16Kernel | 'none'; available: Bf16Kernel[]; reason: string };
}

type Args = Record<string, unknown>;

/** The raw addon: every function takes ONE object, validated in C++ (native/napi/args.cc). */
export interface NativeAddon {
  conv2d(a: Args): void;
  conv2dBackwardInput(a: Args): void;
  conv2dBackwardWeight(a: Args): void;
  batchnorm2dTrain(a: Args): void;
  batchnorm2dEval(a: Args): void;
  batchnorm2dBackward(a: Args): void;
  relu(a: Args): void;
  reluBackward(a: Args): void;
  maxpool2d(a: Args): void;
  maxpool2dBackward(a: Args): void;
  bnReluPool(a: Args): void;
  bnReluPoolBackward(a: Args): void;
  prototypes(a: Args): void;
  prototypesBackward(a: Args): void;
  /** Rotation: the cpu-ts sampling (index, weight, dweight) applied to every plane; rotateBackward returns d angle. */
  rotate(a: Args): void;
  rotateBackward(a: Args): number;
  sqEuclidean(a: Args): void;
  sqEuclideanBackward(a: Args): void;
  cosine(a: Args): void;
  cosineBackward(a: Args): void;
  scale(a: Args): void;
  logSoftmax(a: Args): void;
  logSoftmaxBackward(a: Args): void;
  crossEntropy(a: Args): number;
  crossEntropyBackward(a: Args): void;
  accuracy(a: Args): number;
  evaluatePopulation(a: Args): Promise<Float64Array>;
  noiseSum(a: Args): Promise<Float64Array>;
  /** Synchronous: mu's batch statistics (written into mean and variance, [blocks * channels]) and loss, fp32, on this thread. */
  populationBatchStats(a: Args): number;
  /** Synchronous: builds the episode's plan for a precision, shared by every thread of the process. */
  populationPreparePlan(a: Args): void;
  gaussianFill(a: Args): void;
  /** Requests cancellation of this thread's pending jobs of `group` (all groups when absent); returns how many. */
  cancel(group?: number): number;
  /** Jobs started on this thread that have not settled yet. */
  pendingJobs(): number;
  limits(): NativeLimits;
  info(): NativeInfo;
  setIsa(isa: string): boolean;
  setThreads(n: number): number;
  workingBytes(): number;
  /**
   * A register-only FMA loop of the active ISA on `threads` threads (0 = the pool): wall-clock
   * GFLOP/s of all threads, and GFLOP per CPU-second of one thread (the per-core peak).
   */
  fmaPeak(a: { threads: number; seconds: number }): { wallGflops: number; perCoreGflops: number };
  /** Chooses the bf16 kernel ('auto': the best available); false when this CPU cannot run it. */
  setBf16Kernel(kernel: Bf16Kernel | 'auto'): boolean;
  /** Test driver: out = x rounded to bf16 by the scalar reference or a kernel's conversion. */
  bf16Round(a: { kernel: 'reference' | Bf16Kernel; x: Float32Array; out: Float32Array }): void;
  /**
   * Test driver: one block's 3x3 convolution (pad 1, no bias) as the population loop runs it, on
   * NHWC images act [images][side][side][channels], weights [channels][channels][3][3]: out
   * (NHWC) and the per-channel sum and sum of squares of the outputs.
   */
  /** GFLOP per CPU-second of a bf16 kernel's dot-product instruction from registers / tiles (the bf16 peak per core). */
  bf16Peak(a: { kernel: 'amx' | 'avx512bf16'; seconds: number }): number;
  bf16Conv(a: { kernel: 'fp32' | Bf16Kernel; images: number; side: number; channels: number; act: Float32Array; w: Float32Array; out: Float32Array; sum: Float64Array; sumsq: Float64Array }): void;
}

/** The package root (dist/lib/device/cpu-native/ is four levels below it). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

let loaded: { addon: NativeAddon; path: string } | undefined;
let failure: string | undefined;

function candidates(): string[] {
  const list: string[] = [];
  const env = process.env.EVOMETA_NATIVE_ADDON;
  if (env && env !== 'none') list.push(resolve(env));
  list.push(join(PACKAGE_ROOT, 'build', 'Release', 'evometa_native.node'));
  list.push(join(PACKAGE_ROOT, 'prebuilds', `${process.platform}-${process.arch}`, 'evometa_native.napi.node'));
  return list;
}

/** The addon and where it came from; throws an Error saying why it cannot be loaded. */
export function loadAddon(): { addon: NativeAddon; path: string } {
  if (loaded) return loaded;
  if (failure !== undefined) throw new Error(failure);
  if (process.env.EVOMETA_NATIVE_ADDON === 'none') {
    failure = 'disabled by EVOMETA_NATIVE_ADDON=none';
    throw new Error(failure);
  }
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  const tryPath = (p: string): boolean => {
    try {
      const a = require(p) as Partial<NativeAddon>;
      if (typeof a.evaluatePopulation !== 'function' || typeof a.info !== 'function') {
        tried.push(`${p}: not the evometa_native addon`);
        return false;
      }
      loaded = { addon: a as NativeAddon, path: p };
      return true;
    } catch (e) {
      tried.push(`${p}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
      return false;
    }
  };
  for (const p of candidates()) {
    if (existsSync(p)) {
      if (tryPath(p)) return loaded!;
    } else {
      tried.push(`${p}: not found`);
    }
  }
  try {
    const ngb = require('node-gyp-build') as { path(dir: string): string };
    const p = ngb.path(PACKAGE_ROOT);
    if (tryPath(p)) return loaded!;
  } catch (e) {
    tried.push(`node-gyp-build: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
  failure = `addon not built and no prebuild fits ${process.platform}-${process.arch}: run \`npm rebuild evometa\` ` +
    `(needs a C++ compiler and node-gyp) to build it; tried ${tried.join('; ')}`;
  throw new Error(failure);
}

/** The loaded addon (after the device initialized). */
export function addon(): NativeAddon {
  return loadAddon().addon;
}
