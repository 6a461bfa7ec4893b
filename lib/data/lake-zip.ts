/**
 * Reader for Lake's canonical Omniglot zips: images_background.zip and
 * images_evaluation.zip, entries `images_<set>/<Alphabet>/characterNN/XXXX_YY.png`,
 * 105x105 PNGs with white (1) background and black (0) ink. Zip via fflate, PNG via pngjs.
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
    out.push({ set, path, size: st.size, mtimeMs: st.mtimeMs });
  }
  return out;
}

const ENTRY = /^([^/]+)\/([^/]+)\/([^/]+)\/([^/]+\.png)$/i;

interface Entry { alphabet: string; character: string; drawing: string; name: string; bytes: Uint8Array }

/** Unzip one of Lake's zips and list its PNG entries (validating the folder layout). */
function readZipEntries(path: string, set: OmniglotSet): Entry[] {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(new Uint8Array(readFileSync(path)));
  } catch (e) {
    throw new OmniglotDataError(`${path}: not a readable zip file (${(e as Error).message})`, path);
  }
  const top = `images_${set}`;
  const entries: Entry[] = [];
  for (const name of Object.keys(files)) {
    if (name.endsWith('/')) continue; // directory entry
    const base = name.slice(name.lastIndexOf('/') + 1);
    if (name.startsWith('__MACOSX/') || base.startsWith('.') || base === 'Thumbs.db') continue;
    const m = ENTRY.exec(name);
    if (!m || m[1] !== top) {
      throw new OmniglotDataError(`${path}: unexpected entry ${JSON.stringify(name)}; expected ${top}/<Alphabet>/characterNN/XXXX_YY.png`, path);
    }
    entries.push({ alphabet: m[2]!, character: m[3]!, drawing: m[4]!, name, bytes: files[name]! });
  }
  if (entries.length === 0) throw new OmniglotDataError(`${path}: no ${top}/<Alphabet>/characterNN/*.png entries`, path);
  return entries;
}

/** Decode one PNG to 0/1 ink pixels (ink = dark: gray < 128 with alpha >= 128). */
export function decodeLakePng(bytes: Uint8Array, where: string, out: Uint8Array = new Uint8Array(RAW_PIXELS)): Uint8Array {
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
