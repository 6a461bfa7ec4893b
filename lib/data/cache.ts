/**
 * The preprocessed-image cache: one binary file per (source content, image size),
 * so a second load reads integer area sums instead of decoding and downsampling.
 *
 * File: 8 bytes magic 'EVOOCAC2', uint32 LE header length H, H bytes UTF-8 JSON
 * header (padded with spaces so the payload starts at a multiple of 8), payload
 * (uint8 or uint16 LE area sums, images * S * S), then 32 bytes: the SHA-256 of
 * everything before them (magic, header with the key and the character table,
 * payload). Anything that does not check out is reported as corrupt (the loader
 * rebuilds it), never trusted.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { sha256Hex } from './hash.js';
import type { AreaSums } from './preprocess.js';
import { DRAWINGS, type OmniglotSet, type RawCharacter } from './raw.js';

const MAGIC = 'EVOOCAC2';
export const CACHE_FORMAT = 'evometa-omniglot-cache-2';
/** Bytes of the trailing checksum. */
const SUM = 32;

/** $EVOMETA_CACHE, else $XDG_CACHE_HOME/evometa, else ~/.cache/evometa. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.EVOMETA_CACHE) return env.EVOMETA_CACHE;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'evometa');
  return join(homedir(), '.cache', 'evometa');
}

export interface CachedImages {
  characters: RawCharacter[];
  sums: AreaSums;
  denominator: number;
}

interface CacheHeader {
  format: string;
  key: string;
  size: number;
  denominator: number;
  dtype: 'uint8' | 'uint16';
  images: number;
  characters: [OmniglotSet, string, string, string[]][];
}

export function cacheFile(dir: string, size: number, key: string): string {
  return join(dir, `omniglot-${size}px-${key.slice(0, 16)}.bin`);
}

/** Read a cache file: { ok: images } or { ok: false, reason } (missing or corrupt). */
export function readCache(path: string, key: string, size: number): { ok: true; value: CachedImages } | { ok: false; reason: string } {
  if (!existsSync(path)) return { ok: false, reason: 'missing' };
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    return { ok: false, reason: `unreadable (${(e as Error).message})` };
  }
  const bad = (why: string) => ({ ok: false as const, reason: `corrupt: ${why}` });
  if (buf.length < 12 || buf.toString('latin1', 0, 8) !== MAGIC) return bad('bad magic');
  const hlen = buf.readUInt32LE(8);
  const start = 12 + hlen, end = buf.length - SUM;
  if (start > end || start % 8 !== 0) return bad('bad header length');
  let h: CacheHeader;
  try {
    h = JSON.parse(buf.toString('utf8', 12, start)) as CacheHeader;
  } catch {
    return bad('header is not JSON');
  }
  if (typeof h !== 'object' || h === null) return bad('header is not a JSON object');
  if (h.format !== CACHE_FORMAT || h.key !== key || h.size !== size) return bad('header does not match the source or image size');
  if (!Array.isArray(h.characters) || h.images !== h.characters.length * DRAWINGS) return bad('character table does not match the image count');
  const bytesPer = h.dtype === 'uint8' ? 1 : h.dtype === 'uint16' ? 2 : 0;
  if (!bytesPer) return bad(`unknown dtype ${JSON.stringify(h.dtype)}`);
  const n = h.images * size * size;
  if (end - start !== n * bytesPer) return bad(`payload has ${end - start} bytes, expected ${n * bytesPer}`);
  if (sha256Hex(buf.subarray(0, end)) !== buf.toString('hex', end)) return bad('checksum mismatch (the file was edited or damaged)');
  if (!(Number.isInteger(h.denominator) && h.denominator > 0)) return bad(`denominator ${JSON.stringify(h.denominator)}`);
  const characters: RawCharacter[] = [];
  for (const c of h.characters) {
    const ok = Array.isArray(c) && c.length === 4 && (c[0] === 'background' || c[0] === 'evaluation') && typeof c[1] === 'string' && typeof c[2] === 'string' &&
      Array.isArray(c[3]) && c[3].length === DRAWINGS && c[3].every((d) => typeof d === 'string');
    if (!ok) return bad(`character table entry ${JSON.stringify(c).slice(0, 80)}`);
    characters.push({ set: c[0], alphabet: c[1], character: c[2], drawings: c[3] });
  }
  const payload = new Uint8Array(buf.buffer, buf.byteOffset + start, n * bytesPer);
  let sums: AreaSums;
  if (bytesPer === 1) sums = payload;
  else if (payload.byteOffset % 2 === 0 && isLittleEndian()) sums = new Uint16Array(payload.buffer, payload.byteOffset, n);
  else {
    sums = new Uint16Array(n);
    const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    for (let i = 0; i < n; i++) sums[i] = dv.getUint16(2 * i, true);
  }
  let max = 0;
  for (let i = 0; i < n; i++) if (sums[i]! > max) max = sums[i]!;
  if (max > h.denominator) return bad(`an area sum ${max} exceeds the denominator ${h.denominator}`);
  return { ok: true, value: { characters, sums, denominator: h.denominator } };
}

function isLittleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

/** Write a cache file atomically. */
export function writeCache(path: string, key: string, size: number, v: CachedImages): void {
  let payload = new Uint8Array(v.sums.buffer, v.sums.byteOffset, v.sums.byteLength);
  if (v.sums instanceof Uint16Array && !isLittleEndian()) {
    payload = new Uint8Array(v.sums.length * 2);
    const dv = new DataView(payload.buffer);
    for (let i = 0; i < v.sums.length; i++) dv.setUint16(2 * i, v.sums[i]!, true);
  }
  const header: CacheHeader = {
    format: CACHE_FORMAT, key, size, denominator: v.denominator, dtype: v.sums instanceof Uint8Array ? 'uint8' : 'uint16',
    images: v.characters.length * DRAWINGS,
    characters: v.characters.map((c) => [c.set, c.alphabet, c.character, [...c.drawings]]),
  };
  let json = JSON.stringify(header);
  const jlen = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - ((12 + jlen) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const pre = Buffer.alloc(12);
  pre.write(MAGIC, 0, 'latin1');
  pre.writeUInt32LE(hb.length, 8);
  const sum = Buffer.from(sha256Hex(pre, hb, payload), 'hex');
  writeFileAtomic(path, [pre, hb, payload, sum]);
}
