/**
 * The safetensors format: 8-byte little-endian header length N, N bytes of
 * JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__:
 * {string: string}}, then the raw little-endian tensor bytes.
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';

export type StDType = 'F32' | 'F64' | 'I64' | 'I32';
export type StData = Float32Array | Float64Array | BigInt64Array | Int32Array;

export interface StTensor { dtype: StDType; shape: number[]; data: StData }

const BYTES: Record<StDType, number> = { F32: 4, F64: 8, I64: 8, I32: 4 };

export class SafetensorsError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'SafetensorsError';
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

export function decodeSafetensors(buf: Uint8Array, file = '<buffer>'): SafetensorsFile {
  if (buf.length < 8) throw new SafetensorsError(file, `too short for a safetensors file (${buf.length} bytes)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hlen = Number(view.getBigUint64(0, true));
  if (hlen > buf.length - 8 || hlen > 100_000_000) throw new SafetensorsError(file, `header length ${hlen} exceeds the file size (${buf.length} bytes): not a safetensors file, or truncated`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, hlen).toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new SafetensorsError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new SafetensorsError(file, 'header is not a JSON object');
  const dataStart = 8 + hlen, dataLen = buf.length - dataStart;
  const tensors = new Map<string, StTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = e.dtype as StDType;
    if (!(dtype in BYTES)) throw new SafetensorsError(file, `tensor ${name}: unsupported dtype ${String(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new SafetensorsError(file, `tensor ${name}: invalid shape ${JSON.stringify(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isInteger(x))) throw new SafetensorsError(file, `tensor ${name}: invalid data_offsets ${JSON.stringify(off)}`);
    const [b, en] = off as [number, number];
    const shape = e.shape as number[];
    const n = shape.reduce((a, c) => a * c, 1);
    if (b < 0 || en > dataLen || en - b !== n * BYTES[dtype]) {
      throw new SafetensorsError(file, `tensor ${name}: data_offsets [${b}, ${en}] do not hold ${n} x ${dtype} inside ${dataLen} data bytes (truncated file?)`);
    }
    // Copy (Buffer.slice would alias a pooled ArrayBuffer) so the typed array owns aligned memory.
    const bytes = Uint8Array.prototype.slice.call(buf, dataStart + b, dataStart + en);
    const ab = bytes.buffer;
    const data = dtype === 'F32' ? new Float32Array(ab) : dtype === 'F64' ? new Float64Array(ab) : dtype === 'I64' ? new BigInt64Array(ab) : new Int32Array(ab);
    tensors.set(name, { dtype, shape, data });
  }
  return { tensors, metadata };
}

export function readSafetensors(path: string): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new SafetensorsError(path, `cannot read checkpoint (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return decodeSafetensors(buf, path);
}
