/** SHA-256 (hex) of byte arrays, in order: the data module's checksums and cache keys (internal). */
import { createHash } from 'node:crypto';

export function sha256Hex(...parts: Uint8Array[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}
