/**
 * Whether an optional peer is available, decided once at module load so a test
 * can register as uvu's test.skip (counted as skipped, with its reason) instead
 * of returning early (which uvu would count as passed).
 */
export interface Peer { ok: boolean; reason: string }

/** The cpu-native addon. */
export async function nativeAvailable(): Promise<Peer> {
  try {
    await import('../../lib/device/cpu-native/index.js');
    const { getDevice } = await import('../../lib/device/registry.js');
    getDevice('cpu-native');
    return { ok: true, reason: '' };
  } catch (e) {
    return { ok: false, reason: `cpu-native unavailable: ${(e as Error).message}` };
  }
}
