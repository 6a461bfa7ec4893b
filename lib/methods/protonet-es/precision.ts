/**
 * The population's precision as configured (fp32 | bf16 | auto) and as run. 'auto' picks bf16
 * where it is faster and keeps the fp32 curve (docs/native.md, "bf16"): cpu-native on a CPU whose
 * bf16 kernel is AMX; everywhere else (no AMX, only AVX512_BF16, which is slower than fp32 on the
 * machines measured; other devices) fp32. The resolved value is what the run records.
 */
import { getDevice } from '../../device/registry.js';
import { nativeInfo } from '../../device/cpu-native/index.js';
import type { EvaluatorPrecision } from '../../es/population.js';

/** EsConfig.precision: a precision, or 'auto' (bf16 on cpu-native with AMX, else fp32). */
export type EsPrecision = EvaluatorPrecision | 'auto';
export const ES_PRECISIONS: readonly EsPrecision[] = ['fp32', 'bf16', 'auto'];

/** The precision a run with `precision` on `device` (default: the best available) uses. */
export function resolvePrecision(precision: EsPrecision, device?: string): EvaluatorPrecision {
  if (precision !== 'auto') return precision;
  if (getDevice(device).name !== 'cpu-native') return 'fp32';
  return nativeInfo().bf16.kernel === 'amx' ? 'bf16' : 'fp32';
}
