/**
 * The safetensors format: 8-byte little-endian header length N, N bytes of
 * JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__:
 * {string: string}}, then the raw little-endian tensor bytes.
 *
 * Reading validates the whole header before any tensor is allocated, as the
 * format requires: N at most 100 MB and inside the file; the header valid UTF-8
 * JSON, an object whose entries are objects {dtype, shape, data_offsets}; dtype
 * one we decode; shape non-negative safe integers; data_offsets inside the data,
 * holding exactly product(shape) x dtype size bytes; the tensors contiguous and
 * non-overlapping, covering the data with no hole; __metadata__ strings only.
 * Every failure is a SafetensorsError naming the file (and the tensor).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { UserError } from '../errors.js';
import { writeFileAtomic } from './atomic.js';

export type StDType = 'F32' | 'F64' | 'I64' | 'I32';
export type StData = Float32Array | Float64Array | BigInt64Array | Int32Array;

export interface StTensor { dtype: StDType; shape: number[]; data: StData }

const BYTES: Record<StDType, number> = { F32: 4, F64: 8, I64: 8, I32: 4 };

/** The largest header accepted (the reference implementation's bound); a larger one is refused before it is read. */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * A bad safetensors file or checkpoint: the user's to fix (the CLI prints the message and exits 2).
 * The message starts with the file; `tensor` (or `field`) names what is wrong where there is one.
 */
export class SafetensorsError extends UserError {
  readonly tensor?: string;
  readonly field?: string;
  constructor(readonly file: string, message: string, where: { tensor?: string; field?: string } = {}) {
    super(`${file}: ${message}`);
    this.name = 'SafetensorsError';
    this.tensor = where.tensor;
    this.field = where.field;
  }
}

function dtypeOfData(d: StData): StDType {
  if (d instanceof Float32Array) return 'F32';
  if (d instanceof Float64Array) return 'F64';
  if (d instanceof BigInt64Array) return 'I64';
  return 'I32';
}

/** Serialize tensors (in the given order) and string metadata. */
export function encodeSafetensors(tensors: Record<string, { shape: number[]; data: StData }>, metadata: Record<string, string> = {}): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header['__metadata__'] = metadata;
  let off = 0;
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name]!;
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new RangeError(`safetensors: tensor ${name} has ${t.data.length} elements but shape [${t.shape.join(', ')}]`);
    const bytes = t.data.byteLength;
    header[name] = { dtype: dtypeOfData(t.data), shape: t.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned (allowed by the format).
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const hb = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  const chunks: Uint8Array[] = [len, hb];
  for (const name of names) {
    const d = tensors[name]!.data;
    chunks.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return chunks;
}

export function writeSafetensors(path: string, tensors: Record<string, { shape: number[]; data: StData }>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export interface SafetensorsFile { tensors: Map<string, StTensor>; metadata: Record<string, string> }

/** One validated header entry; begin/end are byte offsets into the data (after the header). */
export interface StEntry { name: string; dtype: StDType; shape: number[]; begin: number; end: number }

/** A validated header: entries in file order (by offset), metadata, and where the data starts. */
export interface SafetensorsHeader {
  file: string;
  entries: Map<string, StEntry>;
  metadata: Record<string, string>;
  /** 8 + header length. */
  dataStart: number;
  /** Bytes after the header (= the sum of every tensor's bytes). */
  dataBytes: number;
}

const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The header length from the first 8 bytes, refused when above MAX_HEADER_BYTES or beyond the file. */
function headerLength(first8: Uint8Array, fileBytes: number, file: string): number {
  if (fileBytes < 8) throw new SafetensorsError(file, `too short for a safetensors file (${fileBytes} bytes)`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit: not a safetensors file`);
  if (n > BigInt(fileBytes - 8)) throw new SafetensorsError(file, `header length ${n} exceeds the file size (${fileBytes} bytes): not a safetensors file, or truncated`);
  return Number(n);
}

/** Element count of a validated shape, refusing a count beyond 2^53. */
function elementCount(shape: number[], file: string, name: string): number {
  let n = 1;
  for (const d of shape) {
    if (d === 0) return 0;
    if (n > Number.MAX_SAFE_INTEGER / d) throw new SafetensorsError(file, `tensor ${name}: shape [${shape.join(', ')}] has more than 2^53 elements`, { tensor: name });
    n *= d;
  }
  return n;
}

function parseEntry(name: string, raw: unknown, dataBytes: number, file: string): StEntry {
  const bad = (why: string): never => { throw new SafetensorsError(file, `tensor ${name}: ${why}`, { tensor: name }); };
  if (!isObject(raw)) return bad(`header entry is ${describe(raw)}, expected an object {dtype, shape, data_offsets}`);
  const { dtype, shape, data_offsets: off } = raw;
  if (typeof dtype !== 'string') return bad(`dtype is ${describe(dtype)}, expected a string`);
  if (!Object.prototype.hasOwnProperty.call(BYTES, dtype)) bad(`unsupported dtype ${JSON.stringify(dtype)} (evometa reads ${Object.keys(BYTES).join(', ')})`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    bad(`invalid shape ${JSON.stringify(shape)}: expected an array of non-negative integers`);
  }
  if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)) {
    bad(`invalid data_offsets ${JSON.stringify(off)}: expected [begin, end], non-negative integers`);
  }
  const [begin, end] = off as [number, number];
  const dims = shape as number[];
  const n = elementCount(dims, file, name);
  const size = BYTES[dtype as StDType];
  if (end < begin) bad(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataBytes) bad(`data_offsets [${begin}, ${end}] run past the ${dataBytes} data bytes (truncated file?)`);
  if (end - begin !== n * size) bad(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but shape [${dims.join(', ')}] of ${dtype} needs ${n} x ${size} = ${n * size}`);
  return { name, dtype: dtype as StDType, shape: dims, begin, end };
}

/** Parse and validate the header JSON against the data size; entries come back sorted by offset. */
export function parseSafetensorsHeader(json: Uint8Array, dataStart: number, dataBytes: number, file: string): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    throw new SafetensorsError(file, 'header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(header)) throw new SafetensorsError(file, `header is ${describe(header)}, expected a JSON object`);
  let metadata: Record<string, string> = {};
  const list: StEntry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (raw === null) continue; // written by some tools for "no metadata"
      if (!isObject(raw)) throw new SafetensorsError(file, `__metadata__ is ${describe(raw)}, expected an object of strings`, { field: '__metadata__' });
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__ field ${JSON.stringify(k)} is ${describe(v)}, expected a string`, { field: k });
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    list.push(parseEntry(name, raw, dataBytes, file));
  }
  // The tensors must tile the data exactly: sorted by offset, each begins where the previous ends.
  list.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0, prev: StEntry | null = null;
  for (const e of list) {
    if (e.begin < at) {
      throw new SafetensorsError(file, `tensor ${e.name}: data_offsets [${e.begin}, ${e.end}] overlap tensor ${prev!.name} [${prev!.begin}, ${prev!.end}]`, { tensor: e.name });
    }
    if (e.begin > at) {
      throw new SafetensorsError(file, `tensor ${e.name}: data_offsets [${e.begin}, ${e.end}] leave bytes [${at}, ${e.begin}) ${prev ? `after tensor ${prev.name}` : 'at the start'} that belong to no tensor`, { tensor: e.name });
    }
    at = e.end;
    prev = e;
  }
  if (at !== dataBytes) {
    throw new SafetensorsError(file, `data bytes [${at}, ${dataBytes}) ${prev ? `after the last tensor (${prev.name})` : 'of a file with no tensors'} belong to no tensor`, prev ? { tensor: prev.name } : {});
  }
  return { file, entries: new Map(list.map((e) => [e.name, e])), metadata, dataStart, dataBytes };
}

function typed(dtype: StDType, ab: ArrayBuffer): StData {
  return dtype === 'F32' ? new Float32Array(ab) : dtype === 'F64' ? new Float64Array(ab) : dtype === 'I64' ? new BigInt64Array(ab) : new Int32Array(ab);
}

/** Decode a whole safetensors file held in memory (validated as readSafetensors does). */
export function decodeSafetensors(buf: Uint8Array, file = '<buffer>'): SafetensorsFile {
  const hlen = headerLength(buf.subarray(0, 8), buf.length, file);
  const h = parseSafetensorsHeader(buf.subarray(8, 8 + hlen), 8 + hlen, buf.length - 8 - hlen, file);
  const tensors = new Map<string, StTensor>();
  for (const e of h.entries.values()) {
    // Copy (Buffer.slice would alias a pooled ArrayBuffer) so the typed array owns aligned memory.
    const bytes = Uint8Array.prototype.slice.call(buf, h.dataStart + e.begin, h.dataStart + e.end);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: typed(e.dtype, bytes.buffer) });
  }
  return { tensors, metadata: h.metadata };
}

/** Read exactly into.length bytes at `position` (in chunks below 2 GiB). */
function readExactly(fd: number, into: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, Math.min(into.length - done, 1 << 30), position + done);
    if (n === 0) throw new SafetensorsError(file, `file ended at byte ${position + done} while reading (changed while being read?)`);
    done += n;
  }
}

function withFile<T>(path: string, fn: (fd: number, bytes: number) => T): T {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new SafetensorsError(path, `cannot read checkpoint (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new SafetensorsError(path, 'is not a regular file');
    return fn(fd, st.size);
  } finally {
    closeSync(fd);
  }
}

function readHeaderAt(fd: number, bytes: number, path: string): SafetensorsHeader {
  const first8 = new Uint8Array(8);
  if (bytes >= 8) readExactly(fd, first8, 0, path);
  const hlen = headerLength(first8, bytes, path);
  const json = new Uint8Array(hlen);
  readExactly(fd, json, 8, path);
  return parseSafetensorsHeader(json, 8 + hlen, bytes - 8 - hlen, path);
}

/** Read and validate a file's header only (no tensor data is read). */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  return withFile(path, (fd, bytes) => readHeaderAt(fd, bytes, path));
}

export interface ReadSafetensorsOptions {
  /** Called with the validated header before any tensor is read or allocated; throw to refuse the file. */
  check?: (header: SafetensorsHeader) => void;
}

/** Read a safetensors file: the header is validated (and `check`ed) before any tensor memory is allocated. */
export function readSafetensors(path: string, opts: ReadSafetensorsOptions = {}): SafetensorsFile {
  return withFile(path, (fd, bytes) => {
    const h = readHeaderAt(fd, bytes, path);
    opts.check?.(h);
    const tensors = new Map<string, StTensor>();
    for (const e of h.entries.values()) {
      const ab = new ArrayBuffer(e.end - e.begin);
      readExactly(fd, new Uint8Array(ab), h.dataStart + e.begin, path);
      tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: typed(e.dtype, ab) });
    }
    return { tensors, metadata: h.metadata };
  });
}
