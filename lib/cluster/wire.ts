/**
 * What crosses Redis, as bytes: binary blobs (a JSON header and float
 * sections), stream fields, hashes. Everything here is a parser that
 * validates: a field of the wrong type, a section of the wrong length or a
 * header that does not parse is a WireError naming the field, never a value
 * used as is. Float arrays travel as little-endian IEEE bytes (the machine's
 * own order: evometa refuses big-endian hosts, see assertLittleEndian).
 *
 * Blob layout: 8 bytes magic, uint32 LE header length H, H bytes UTF-8 JSON
 * header { ...fields, sections: [{ name, dtype: 'f32' | 'f64', length }] },
 * then the sections' bytes back to back, in header order, nothing after.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import type { Episode } from '../model/protonet.js';

/** Malformed data received from Redis (or about to be sent): names what was wrong. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

export function assertLittleEndian(): void {
  if (endianness() !== 'LE') throw new Error('evometa cluster: float arrays travel as little-endian bytes; this host is big-endian');
}

/** Largest blob header (JSON) accepted. */
export const MAX_HEADER_BYTES = 1 << 20;
/** Largest float section accepted (elements). */
export const MAX_SECTION_LENGTH = 1 << 28;

export type FloatArray = Float32Array | Float64Array;
export interface SectionSpec { name: string; dtype: 'f32' | 'f64'; length: number }

export function toBytes(a: FloatArray): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** A fresh, aligned float array from bytes (length-checked). */
export function floatsFrom(b: Buffer, dtype: 'f32' | 'f64', what: string, expect?: number): FloatArray {
  const size = dtype === 'f32' ? 4 : 8;
  if (b.length % size !== 0) throw new WireError(`${what}: ${b.length} bytes is not a whole number of ${dtype} values`);
  const n = b.length / size;
  if (expect !== undefined && n !== expect) throw new WireError(`${what}: ${n} values, expected ${expect}`);
  const out = dtype === 'f32' ? new Float32Array(n) : new Float64Array(n);
  new Uint8Array(out.buffer).set(b);
  return out;
}

export function f64From(b: Buffer, what: string, expect?: number): Float64Array {
  return floatsFrom(b, 'f64', what, expect) as Float64Array;
}

export function packBlob(magic: string, header: Record<string, unknown>, sections: Record<string, FloatArray>): Buffer {
  if (Buffer.byteLength(magic) !== 8) throw new Error(`blob magic must be 8 bytes: ${magic}`);
  const specs: SectionSpec[] = Object.entries(sections).map(([name, a]) => ({ name, dtype: a instanceof Float32Array ? 'f32' : 'f64', length: a.length }));
  const h = Buffer.from(JSON.stringify({ ...header, sections: specs }), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(h.length, 0);
  return Buffer.concat([Buffer.from(magic, 'latin1'), len, h, ...Object.values(sections).map(toBytes)]);
}

export interface Blob { header: Record<string, unknown>; sections: Map<string, FloatArray> }

export function unpackBlob(b: Buffer, magic: string, what: string): Blob {
  if (b.length < 12 || b.toString('latin1', 0, 8) !== magic) throw new WireError(`${what}: not a ${magic} blob`);
  const hl = b.readUInt32LE(8);
  if (hl > MAX_HEADER_BYTES || 12 + hl > b.length) throw new WireError(`${what}: header length ${hl} out of bounds (blob of ${b.length} bytes)`);
  let header: unknown;
  try {
    header = JSON.parse(b.toString('utf8', 12, 12 + hl));
  } catch {
    throw new WireError(`${what}: header is not valid JSON`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw new WireError(`${what}: header is not an object`);
  const h = header as Record<string, unknown>;
  const specs = h['sections'];
  if (!Array.isArray(specs)) throw new WireError(`${what}: header has no sections list`);
  const sections = new Map<string, FloatArray>();
  let at = 12 + hl;
  for (const s of specs as unknown[]) {
    const sp = s as Partial<SectionSpec>;
    if (!sp || typeof sp.name !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(sp.name)) throw new WireError(`${what}: a section has an invalid name`);
    if (sp.dtype !== 'f32' && sp.dtype !== 'f64') throw new WireError(`${what}: section ${sp.name} has dtype ${JSON.stringify(sp.dtype)}`);
    if (!(Number.isInteger(sp.length) && sp.length! >= 0 && sp.length! <= MAX_SECTION_LENGTH)) throw new WireError(`${what}: section ${sp.name} has length ${String(sp.length)}`);
    if (sections.has(sp.name)) throw new WireError(`${what}: section ${sp.name} appears twice`);
    const bytes = sp.length! * (sp.dtype === 'f32' ? 4 : 8);
    if (at + bytes > b.length) throw new WireError(`${what}: section ${sp.name} runs past the end of the blob`);
    sections.set(sp.name, floatsFrom(b.subarray(at, at + bytes), sp.dtype, `${what} section ${sp.name}`));
    at += bytes;
  }
  if (at !== b.length) throw new WireError(`${what}: ${b.length - at} bytes after the last section`);
  delete h['sections'];
  return { header: h, sections };
}

/** A section that must be there with this dtype and length. */
export function section(blob: Blob, name: string, dtype: 'f32' | 'f64', length: number, what: string): FloatArray {
  const s = blob.sections.get(name);
  if (!s) throw new WireError(`${what}: section ${name} is missing`);
  if ((dtype === 'f32') !== (s instanceof Float32Array)) throw new WireError(`${what}: section ${name} is not ${dtype}`);
  if (s.length !== length) throw new WireError(`${what}: section ${name} has ${s.length} values, expected ${length}`);
  return s;
}

// ---- fields of stream entries and JSON headers -------------------------------------------------

/** Stream entry fields [k1, v1, k2, v2, ...] (Buffers) as a map; duplicate or odd lists refused. */
export function fieldMap(raw: unknown, what: string): Map<string, Buffer> {
  if (!Array.isArray(raw) || raw.length % 2 !== 0 || raw.length > 64) throw new WireError(`${what}: fields are not a key/value list`);
  const m = new Map<string, Buffer>();
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i], v = raw[i + 1];
    if (!Buffer.isBuffer(k) || !Buffer.isBuffer(v)) throw new WireError(`${what}: field ${i / 2} is not binary`);
    const key = k.toString('latin1');
    if (m.has(key)) throw new WireError(`${what}: field ${key} appears twice`);
    m.set(key, v);
  }
  return m;
}

export function str(m: Map<string, Buffer>, key: string, what: string, re = /^[\x20-\x7e]{0,4096}$/): string {
  const v = m.get(key);
  if (!v) throw new WireError(`${what}: field ${key} is missing`);
  const s = v.toString('utf8');
  if (!re.test(s)) throw new WireError(`${what}: field ${key} is malformed`);
  return s;
}

export function int(m: Map<string, Buffer>, key: string, what: string, min: number, max: number): number {
  const s = str(m, key, what, /^-?\d{1,16}$/);
  const n = Number(s);
  if (!(Number.isSafeInteger(n) && n >= min && n <= max)) throw new WireError(`${what}: field ${key} = ${s} is not an integer in [${min}, ${max}]`);
  return n;
}

export function num(m: Map<string, Buffer>, key: string, what: string): number {
  const s = str(m, key, what, /^[-+0-9.eE]{1,32}$/);
  const n = Number(s);
  if (!Number.isFinite(n)) throw new WireError(`${what}: field ${key} = ${s} is not a finite number`);
  return n;
}

export function bin(m: Map<string, Buffer>, key: string, what: string): Buffer {
  const v = m.get(key);
  if (!v) throw new WireError(`${what}: field ${key} is missing`);
  return v;
}

export function jsonInt(h: Record<string, unknown>, key: string, what: string, min: number, max: number): number {
  const v = h[key];
  if (!(typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max)) throw new WireError(`${what}: ${key} = ${JSON.stringify(v)} is not an integer in [${min}, ${max}]`);
  return v;
}

export function jsonStr(h: Record<string, unknown>, key: string, what: string, re = /^[\x20-\x7e]{0,4096}$/): string {
  const v = h[key];
  if (typeof v !== 'string' || !re.test(v)) throw new WireError(`${what}: ${key} = ${JSON.stringify(v)?.slice(0, 80)} is malformed`);
  return v;
}

// ---- hashes ------------------------------------------------------------------------------------

/** JSON with object keys sorted at every level (for hashing configurations). */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

export function sha256(...parts: Array<Uint8Array | string>): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/** The hash of a generation's state: the mean's bytes, then the per-parameter sigmas' when there are any. */
export function stateHash(mu: Float32Array, sigmas?: Float32Array): string {
  return sigmas ? sha256(toBytes(mu), toBytes(sigmas)) : sha256(toBytes(mu));
}

/** SHA-256 of episodes' pixels and labels, in order: a worker's rebuilt episodes must match the coordinator's. */
export function episodeDigest(eps: Episode[]): string {
  const h = createHash('sha256');
  for (const e of eps) {
    h.update(`${e.way};${e.support.shape.join('x')};${e.query.shape.join('x')};`);
    for (const a of [e.support.data, e.supportLabels, e.query.data, e.queryLabels]) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  return h.digest('hex');
}

export const HEX64 = /^[0-9a-f]{64}$/;
export const RUN_ID = /^[A-Za-z0-9_-]{1,64}$/;
