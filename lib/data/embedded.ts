/**
 * The Omniglot copy shipped in the repository (data/omniglot/), so the main
 * job runs on a fresh clone without network or ../shared. Lossless: the raw
 * 105x105 bits of all 32460 images, row-padded (14 bytes a row), compressed
 * with Brotli (node:zlib; no dependency).
 *
 * File layout (data/omniglot/omniglot-105.bin.br, after Brotli decompression):
 *   8 bytes  magic 'EVOOMNI1'
 *   4 bytes  header length H, uint32 little-endian
 *   H bytes  header, UTF-8 JSON: { format, size: 105, rowBytes: 14, drawings: 20,
 *            images, sha256 (hex, of the bitmap), characters: [[set, alphabet, character, [drawing file names]]] }
 *   rest     bitmap: images * 105 rows * 14 bytes, 1 = ink, MSB first (RawOmniglot.bits)
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, brotliDecompressSync, constants as zc } from 'node:zlib';
import { writeFileAtomic } from '../io/atomic.js';
import { OmniglotDataError } from './errors.js';
import { sha256Hex } from './hash.js';
import { readLakeZips, type ReadProgress } from './lake-zip.js';
import { DRAWINGS, RAW_BYTES, RAW_ROW_BYTES, RAW_SIZE, type OmniglotSet, type RawCharacter, type RawOmniglot } from './raw.js';

const MAGIC = 'EVOOMNI1';
const FORMAT = 'evometa-omniglot-raw-1';
export const EMBEDDED_FILE = 'omniglot-105.bin.br';
/** Most bytes decompressed from an embedded file (the real one: 48.2 MB), so a corrupt or hostile one cannot exhaust memory. */
export const MAX_EMBEDDED_BYTES = 128 * 2 ** 20;

/** data/omniglot/ of this package (dist/lib/data/ -> ../../../data/omniglot). */
export function embeddedDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'data', 'omniglot');
}

export function embeddedPath(): string {
  return join(embeddedDir(), EMBEDDED_FILE);
}

type CharTuple = [OmniglotSet, string, string, string[]];

interface Header {
  format: string;
  size: number;
  rowBytes: number;
  drawings: number;
  images: number;
  sha256: string;
  characters: CharTuple[];
}

/** Serialize and compress (Brotli quality 11, 16 MiB window): slow (about a minute), for the packer. */
export function encodeEmbedded(raw: RawOmniglot): Uint8Array {
  const header: Header = {
    format: FORMAT, size: RAW_SIZE, rowBytes: RAW_ROW_BYTES, drawings: DRAWINGS,
    images: raw.characters.length * DRAWINGS, sha256: sha256Hex(raw.bits),
    characters: raw.characters.map((c) => [c.set, c.alphabet, c.character, [...c.drawings]]),
  };
  const hb = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(hb.length, 0);
  const plain = Buffer.concat([Buffer.from(MAGIC, 'latin1'), len, hb, raw.bits]);
  return brotliCompressSync(plain, {
    params: { [zc.BROTLI_PARAM_QUALITY]: 11, [zc.BROTLI_PARAM_LGWIN]: 24, [zc.BROTLI_PARAM_SIZE_HINT]: plain.length },
  });
}

/** Decompress and validate; every failure names `where`. */
export function decodeEmbedded(bytes: Uint8Array, where: string): RawOmniglot {
  let plain: Buffer;
  try {
    plain = brotliDecompressSync(bytes, { maxOutputLength: MAX_EMBEDDED_BYTES });
  } catch (e) {
    throw new OmniglotDataError(`${where}: corrupt embedded Omniglot file (${(e as Error).message})`, where);
  }
  const bad = (why: string): never => { throw new OmniglotDataError(`${where}: corrupt embedded Omniglot file (${why})`, where); };
  if (plain.length < 12 || plain.toString('latin1', 0, 8) !== MAGIC) bad('bad magic');
  const hlen = plain.readUInt32LE(8);
  if (12 + hlen > plain.length) bad('truncated header');
  let h: Header;
  try {
    h = JSON.parse(plain.toString('utf8', 12, 12 + hlen)) as Header;
  } catch {
    return bad('header is not JSON');
  }
  if (h.format !== FORMAT || h.size !== RAW_SIZE || h.rowBytes !== RAW_ROW_BYTES || h.drawings !== DRAWINGS) bad(`unsupported format ${JSON.stringify(h.format)}`);
  if (!Array.isArray(h.characters) || h.images !== h.characters.length * DRAWINGS) bad('character table does not match the image count');
  const bits = new Uint8Array(plain.buffer, plain.byteOffset + 12 + hlen, plain.length - 12 - hlen);
  if (bits.length !== h.images * RAW_BYTES) bad(`bitmap has ${bits.length} bytes, expected ${h.images * RAW_BYTES}`);
  if (sha256Hex(bits) !== h.sha256) bad('bitmap checksum mismatch');
  const characters: RawCharacter[] = h.characters.map(([set, alphabet, character, drawings]) => {
    if (drawings.length !== DRAWINGS) bad(`${alphabet}/${character} lists ${drawings.length} drawings`);
    return { set, alphabet, character, drawings };
  });
  return { characters, bits };
}

/** Read the embedded copy (default: this package's data/omniglot/). */
export function loadEmbedded(path: string = embeddedPath()): RawOmniglot {
  if (!existsSync(path)) {
    throw new OmniglotDataError(`the embedded Omniglot copy is missing: ${path} (an incomplete checkout?); pass --data DIR with Lake's zips instead`, path);
  }
  return decodeEmbedded(readFileSync(path), path);
}

/** Bytes of the embedded copy on disk (0 when missing). */
export function embeddedSize(path: string = embeddedPath()): number {
  return existsSync(path) ? statSync(path).size : 0;
}

export interface PackResult {
  file: string;
  bytes: number;
  images: number;
  characters: number;
}

/**
 * Build data/omniglot/ from a directory with Lake's two zips (and splits/,
 * LICENSE.omniglot beside them, as in ../shared/data/omniglot): the embedded
 * file, verified to decode bit-identically, plus the licence and split files.
 */
export function packOmniglot(srcDir: string, outDir: string, onProgress?: ReadProgress): PackResult {
  const raw = readLakeZips(srcDir, onProgress);
  onProgress?.(0, 1, 'compressing');
  const enc = encodeEmbedded(raw);
  const back = decodeEmbedded(enc, 'freshly packed data');
  if (Buffer.compare(Buffer.from(back.bits), Buffer.from(raw.bits)) !== 0 || JSON.stringify(back.characters) !== JSON.stringify(raw.characters)) {
    throw new Error('packOmniglot: round trip mismatch (a bug)');
  }
  const file = join(outDir, EMBEDDED_FILE);
  writeFileAtomic(file, [enc]);
  const copies: [string, string][] = [
    ['LICENSE.omniglot', 'LICENSE.omniglot'],
    ['splits/LICENSE.prototypical-networks', 'splits/LICENSE.prototypical-networks'],
    ...(['train', 'val', 'test', 'trainval'] as const).map((s): [string, string] => [`splits/vinyals/${s}.txt`, `splits/vinyals/${s}.txt`]),
  ];
  for (const [from, to] of copies) {
    const src = join(srcDir, from);
    if (!existsSync(src)) throw new OmniglotDataError(`packOmniglot: missing ${src}`, src);
    writeFileAtomic(join(outDir, to), [readFileSync(src)]); // not copyFileSync: it would keep a read-only mode
  }
  return { file, bytes: enc.length, images: raw.characters.length * DRAWINGS, characters: raw.characters.length };
}
