/**
 * Reader for Lake's canonical Omniglot zips: images_background.zip and
 * images_evaluation.zip, entries `images_<set>/<Alphabet>/characterNN/XXXX_YY.png`,
 * 105x105 PNGs with white (1) background and black (0) ink. Zip via fflate, PNG via pngjs.
 *
 * Bounded before anything is inflated or decoded (ZIP_LIMITS): the zip's size on disk, its
 * entry count, every entry's declared uncompressed size and their total (read from the
 * central directory, so a zip bomb is refused unopened), and each PNG's width and height
 * (read from its IHDR chunk, so a huge image is refused undecoded).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import pngjs from 'pngjs';
import { OmniglotDataError } from './errors.js';
import {
  compareCharacters, DRAWINGS, RAW_BYTES, RAW_PIXELS, RAW_SIZE, packRaw,
  type OmniglotSet, type RawCharacter, type RawOmniglot,
} from './raw.js';

export const LAKE_ZIPS: Readonly<Record<OmniglotSet, string>> = {
  background: 'images_background.zip',
  evaluation: 'images_evaluation.zip',
};

/**
 * Bounds on a --data zip (Lake's: 8 MB and 5.5 MB on disk, 19,280 and 13,180 PNGs of at most
 * 466 bytes, 4.4 MB uncompressed in all). An entry bound of 128 KiB admits any encoding of a
 * 105x105 image (16-bit RGBA uncompressed is 88 KB).
 */
export const ZIP_LIMITS = {
  /** Size of a zip file on disk. */
  fileBytes: 256 * 2 ** 20,
  /** Entries (files and folders) in one zip. */
  entries: 200_000,
  /** Declared uncompressed size of one PNG entry. */
  entryBytes: 128 * 2 ** 10,
  /** Declared uncompressed size of all PNG entries of one zip. */
  totalBytes: 256 * 2 ** 20,
} as const;

export interface LakeZipInfo {
  set: OmniglotSet;
  path: string;
  size: number;
  mtimeMs: number;
}

/** The two zip files of a --data directory (existence and stat only; throws naming a missing one). */
export function lakeZipFiles(dir: string): LakeZipInfo[] {
  if (!existsSync(dir)) throw new OmniglotDataError(`data directory ${dir} does not exist`, dir);
  if (!statSync(dir).isDirectory()) throw new OmniglotDataError(`--data must be a directory holding ${LAKE_ZIPS.background} and ${LAKE_ZIPS.evaluation}; ${dir} is a file`, dir);
  const out: LakeZipInfo[] = [];
  for (const set of ['background', 'evaluation'] as const) {
    const path = join(dir, LAKE_ZIPS[set]);
    if (!existsSync(path)) {
      throw new OmniglotDataError(`missing ${path}: the data directory must hold Lake's ${LAKE_ZIPS.background} and ${LAKE_ZIPS.evaluation} (github.com/brendenlake/omniglot, python/)`, path);
    }
    const st = statSync(path);
    if (!st.isFile()) throw new OmniglotDataError(`${path} is not a file`, path);
    if (st.size > ZIP_LIMITS.fileBytes) {
      throw new OmniglotDataError(`${path} is ${st.size} bytes, more than the ${ZIP_LIMITS.fileBytes} accepted for an Omniglot zip (Lake's are under 10 MB)`, path);
    }
    out.push({ set, path, size: st.size, mtimeMs: st.mtimeMs });
  }
  return out;
}

const ENTRY = /^([^/]+)\/([^/]+)\/([^/]+)\/([^/]+\.png)$/i;

interface Entry { alphabet: string; character: string; drawing: string; name: string; bytes: Uint8Array }

/** Unzip one of Lake's zips and list its PNG entries: layout, count and declared sizes are checked before anything is inflated. */
function readZipEntries(path: string, set: OmniglotSet): Entry[] {
  const top = `images_${set}`;
  const data = new Uint8Array(readFileSync(path));
  // Pass 1: the central directory only (the filter inflates nothing): names, count, declared sizes.
  const keep = new Set<string>();
  let count = 0, total = 0;
  const survey = (f: { name: string; originalSize: number }): boolean => {
    const name = f.name;
    if (++count > ZIP_LIMITS.entries) throw new OmniglotDataError(`${path}: more than ${ZIP_LIMITS.entries} entries (Lake's have about 20,000)`, path);
    const base = name.slice(name.lastIndexOf('/') + 1);
    if (name.endsWith('/') || name.startsWith('__MACOSX/') || base.startsWith('.') || base === 'Thumbs.db') return false; // folders, OS litter
    const m = ENTRY.exec(name);
    if (!m || m[1] !== top) {
      throw new OmniglotDataError(`${path}: unexpected entry ${JSON.stringify(name)}; expected ${top}/<Alphabet>/characterNN/XXXX_YY.png`, path);
    }
    if (f.originalSize > ZIP_LIMITS.entryBytes) {
      throw new OmniglotDataError(`${path}: entry ${name} declares ${f.originalSize} bytes uncompressed, more than the ${ZIP_LIMITS.entryBytes} a 105x105 PNG can need; refused before inflating (a zip bomb?)`, path);
    }
    total += f.originalSize;
    if (total > ZIP_LIMITS.totalBytes) {
      throw new OmniglotDataError(`${path}: its PNG entries declare more than ${ZIP_LIMITS.totalBytes} bytes uncompressed in all (at entry ${name}); refused before inflating (a zip bomb?)`, path);
    }
    keep.add(name);
    return false;
  };
  let files: Record<string, Uint8Array>;
  try {
    unzipSync(data, { filter: survey });
    files = unzipSync(data, { filter: (f) => keep.has(f.name) });
  } catch (e) {
    if (e instanceof OmniglotDataError) throw e;
    throw new OmniglotDataError(`${path}: not a readable zip file (${(e as Error).message})`, path);
  }
  const entries: Entry[] = [];
  for (const name of keep) {
    const m = ENTRY.exec(name)!;
    entries.push({ alphabet: m[2]!, character: m[3]!, drawing: m[4]!, name, bytes: files[name]! });
  }
  if (entries.length === 0) throw new OmniglotDataError(`${path}: no ${top}/<Alphabet>/characterNN/*.png entries`, path);
  return entries;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Width and height from a PNG's IHDR chunk (the first chunk, right after the signature), without decoding. */
export function pngDimensions(bytes: Uint8Array, where: string): { width: number; height: number } {
  if (PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) throw new OmniglotDataError(`${where}: cannot decode PNG (not a PNG: bad signature)`, where);
  if (bytes.length < 24) throw new OmniglotDataError(`${where}: cannot decode PNG (${bytes.length} bytes: truncated before the IHDR chunk ends)`, where);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(8) !== 13 || String.fromCharCode(bytes[12]!, bytes[13]!, bytes[14]!, bytes[15]!) !== 'IHDR') {
    throw new OmniglotDataError(`${where}: cannot decode PNG (no IHDR chunk first)`, where);
  }
  return { width: dv.getUint32(16), height: dv.getUint32(20) };
}

/** Decode one PNG to 0/1 ink pixels (ink = dark: gray < 128 with alpha >= 128); any size but 105x105 is refused from the header, before decoding. */
export function decodeLakePng(bytes: Uint8Array, where: string, out: Uint8Array = new Uint8Array(RAW_PIXELS)): Uint8Array {
  const dims = pngDimensions(bytes, where);
  if (dims.width !== RAW_SIZE || dims.height !== RAW_SIZE) {
    throw new OmniglotDataError(`${where}: image is ${dims.width}x${dims.height} (from its PNG header; not decoded), expected ${RAW_SIZE}x${RAW_SIZE}`, where);
  }
  let png: { width: number; height: number; data: Uint8Array };
  try {
    png = pngjs.PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new OmniglotDataError(`${where}: cannot decode PNG (${(e as Error).message})`, where);
  }
  if (png.width !== RAW_SIZE || png.height !== RAW_SIZE) {
    throw new OmniglotDataError(`${where}: image is ${png.width}x${png.height}, expected ${RAW_SIZE}x${RAW_SIZE}`, where);
  }
  const d = png.data; // RGBA
  for (let p = 0, q = 0; p < RAW_PIXELS; p++, q += 4) {
    const gray = (d[q]! * 299 + d[q + 1]! * 587 + d[q + 2]! * 114) / 1000;
    out[p] = gray < 128 && d[q + 3]! >= 128 ? 1 : 0;
  }
  return out;
}

export interface ReadProgress {
  (done: number, total: number, phase: string): void;
}

/**
 * Read both zips of a directory into the raw form. Throws OmniglotDataError
 * naming the file for a missing or corrupt zip, an unexpected entry, a
 * character without exactly 20 drawings, or a PNG that is undecodable or not 105x105.
 */
export function readLakeZips(dir: string, onProgress?: ReadProgress): RawOmniglot {
  const zips = lakeZipFiles(dir);
  const perSet = zips.map((z) => ({ z, entries: readZipEntries(z.path, z.set) }));
  const chars: { c: RawCharacter; path: string; entries: Entry[] }[] = [];
  for (const { z, entries } of perSet) {
    const groups = new Map<string, Entry[]>();
    for (const e of entries) {
      const k = `${e.alphabet}/${e.character}`;
      let g = groups.get(k);
      if (!g) groups.set(k, (g = []));
      g.push(e);
    }
    for (const [k, g] of groups) {
      if (g.length !== DRAWINGS) {
        throw new OmniglotDataError(`${z.path}: character ${k} has ${g.length} drawings, expected ${DRAWINGS}`, z.path);
      }
      g.sort((a, b) => (a.drawing < b.drawing ? -1 : a.drawing > b.drawing ? 1 : 0));
      chars.push({ c: { set: z.set, alphabet: g[0]!.alphabet, character: g[0]!.character, drawings: g.map((e) => e.drawing) }, path: z.path, entries: g });
    }
  }
  chars.sort((a, b) => compareCharacters(a.c, b.c));
  const total = chars.length * DRAWINGS;
  const bits = new Uint8Array(total * RAW_BYTES);
  const px = new Uint8Array(RAW_PIXELS);
  let i = 0;
  for (const { path, entries } of chars) {
    for (const e of entries) {
      decodeLakePng(e.bytes, `${path}: ${e.name}`, px);
      packRaw(px, bits, i++);
      if (onProgress && (i % 500 === 0 || i === total)) onProgress(i, total, 'decoding PNGs');
    }
  }
  return { characters: chars.map((x) => x.c), bits };
}
