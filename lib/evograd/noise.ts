/**
 * EvoGrad's copy noise, regenerated from seeds and never stored (like the ES noise of
 * lib/es/noise.ts, on its own Philox stream STREAM.evograd).
 *
 * Copy k of hyper-step t perturbs parameter i by sigma * eps[t, k, i]:
 *  - 'gaussian': eps = gaussianFill(seed, STREAM.evograd, step t, member k) at index i (the ES
 *    noise's Box-Muller, float32 values);
 *  - 'sign': eps = +1 or -1 from one bit: Philox4x32-10 of counter [floor(i / 128), k, t, 1] under key
 *    (seed, STREAM.evograd), word w = floor((i mod 128) / 32), bit b = i mod 32; eps = +1 when bit b of
 *    word w is set. The counter's last word (1) keeps these bits apart from the Gaussian draws (0).
 * The authors' experiments use random signs, their 1-D illustration Gaussian noise.
 */
import { gaussianFill, philox4x32, STREAM } from '../rng/philox.js';

export type CopyNoise = 'sign' | 'gaussian';
export const COPY_NOISES: readonly CopyNoise[] = ['sign', 'gaussian'];

const scratch = new Uint32Array(4);

/** eps of copy `copy` at hyper-step `step`, written to out[0 .. out.length) (indices start .. start + length). */
export function fillCopyNoise(out: Float32Array, kind: CopyNoise, seed: number, step: number, copy: number, start = 0): void {
  if (!Number.isInteger(step) || step < 0 || step > 0xffffffff) throw new RangeError(`copy noise: step must be an integer in [0, 2^32), got ${step}`);
  if (!Number.isInteger(copy) || copy < 0 || copy > 0xffffffff) throw new RangeError(`copy noise: copy must be an integer in [0, 2^32), got ${copy}`);
  if (kind === 'gaussian') {
    gaussianFill(out, seed, STREAM.evograd, step, copy, start);
    return;
  }
  if (kind !== 'sign') throw new RangeError(`copy noise must be one of ${COPY_NOISES.join(', ')}, got ${JSON.stringify(kind)}`);
  let block = -1;
  for (let j = 0; j < out.length; j++) {
    const i = start + j, b = Math.floor(i / 128);
    if (b !== block) {
      philox4x32(b, copy, step, 1, seed, STREAM.evograd, scratch);
      block = b;
    }
    const r = i - b * 128;
    out[j] = (scratch[r >>> 5]! >>> (r & 31)) & 1 ? 1 : -1;
  }
}
