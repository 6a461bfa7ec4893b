/**
 * Class splits. A class is (character, rotation). 'vinyals': the standard split
 * files (lines `Alphabet/characterNN/rotDDD`; train 4112, val 688, test 1692,
 * trainval 4800 classes). 'paper': the ES-ProtoNet paper's own split, a seeded
 * random partition of all 6492 rotated classes into 4804 / 1012 / 676
 * (train / val / test; trainval = train + val), used at 32x32.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Rng, STREAM } from '../rng/philox.js';
import { OmniglotDataError } from './errors.js';
import type { OmniglotDataset } from './omniglot.js';
import { ROTATIONS, type Rotation } from './preprocess.js';
import { characterKey } from './raw.js';

export type SplitScheme = 'vinyals' | 'paper';
export type SplitPart = 'train' | 'val' | 'test' | 'trainval';
export const SPLIT_SCHEMES: readonly SplitScheme[] = ['vinyals', 'paper'];
export const SPLIT_PARTS: readonly SplitPart[] = ['train', 'val', 'test', 'trainval'];

/** Image side each scheme is used at by default. */
export const DEFAULT_IMAGE_SIZE: Readonly<Record<SplitScheme, number>> = { vinyals: 28, paper: 32 };
export const VINYALS_SPLIT_SIZES: Readonly<Record<SplitPart, number>> = { train: 4112, val: 688, test: 1692, trainval: 4800 };
export const PAPER_SPLIT_SIZES: Readonly<Record<SplitPart, number>> = { train: 4804, val: 1012, test: 676, trainval: 5816 };
/** Seed of the paper split when none is given. */
export const DEFAULT_PAPER_SPLIT_SEED = 0;

export interface OmniglotClass {
  /** Index into dataset.characters. */
  character: number;
  rotation: Rotation;
}

export interface OmniglotSplit {
  /** e.g. 'vinyals/train' or 'paper(seed=0)/test'. */
  name: string;
  dataset: OmniglotDataset;
  classes: readonly OmniglotClass[];
}

export interface GetSplitOptions {
  /** Seed of the 'paper' split (default 0); ignored by 'vinyals'. */
  seed?: number;
  /** Directory holding vinyals/{train,val,test,trainval}.txt (default: dataset.source.splitsDir). */
  splitsDir?: string;
}

const LINE = /^([^/]+)\/([^/]+)\/rot(\d{3})$/;

/** Largest split file read (the Vinyals trainval file is 155 KB). */
export const MAX_SPLIT_FILE_BYTES = 16 * 2 ** 20;

/** Parse a split file against a dataset; errors name the file and line. */
export function readSplitFile(dataset: OmniglotDataset, file: string): OmniglotClass[] {
  if (!existsSync(file)) throw new OmniglotDataError(`split file ${file} does not exist`, file);
  const st = statSync(file);
  if (!st.isFile()) throw new OmniglotDataError(`split file ${file} is not a file`, file);
  if (st.size > MAX_SPLIT_FILE_BYTES) throw new OmniglotDataError(`split file ${file} is ${st.size} bytes, more than the ${MAX_SPLIT_FILE_BYTES} accepted (one line per class)`, file);
  const lines = readFileSync(file, 'utf8').split('\n');
  const seen = new Set<string>();
  const out: OmniglotClass[] = [];
  lines.forEach((rawLine, i) => {
    const line = rawLine.replace(/\r$/, '').trim();
    if (line === '') return;
    const where = `${file}:${i + 1}`;
    const m = LINE.exec(line);
    if (!m) throw new OmniglotDataError(`${where}: bad line ${JSON.stringify(line)}, expected Alphabet/characterNN/rotDDD`, file);
    const rot = Number(m[3]);
    if (!(ROTATIONS as readonly number[]).includes(rot)) throw new OmniglotDataError(`${where}: rotation ${m[3]} is not one of 000, 090, 180, 270`, file);
    const key = `${m[1]}/${m[2]}`;
    const character = dataset.characterIndex(key);
    if (character < 0) {
      throw new OmniglotDataError(`${where}: unknown character ${JSON.stringify(key)}: not in the Omniglot data read from ${dataset.source.path}`, file);
    }
    if (seen.has(line)) throw new OmniglotDataError(`${where}: class ${line} is listed twice`, file);
    seen.add(line);
    out.push({ character, rotation: rot as Rotation });
  });
  if (out.length === 0) throw new OmniglotDataError(`split file ${file} lists no classes`, file);
  return out;
}

/** All characters x 4 rotations, character-major. */
export function allClasses(dataset: OmniglotDataset): OmniglotClass[] {
  const out: OmniglotClass[] = [];
  for (let c = 0; c < dataset.numCharacters; c++) for (const rotation of ROTATIONS) out.push({ character: c, rotation });
  return out;
}

/** The paper's split: shuffle the 6492 classes with Rng(seed, STREAM.split); the first 4804 train, next 1012 val, last 676 test (each kept in canonical order). */
export function paperSplit(dataset: OmniglotDataset, part: SplitPart, seed: number = DEFAULT_PAPER_SPLIT_SEED): OmniglotClass[] {
  const all = allClasses(dataset);
  const need = PAPER_SPLIT_SIZES.train + PAPER_SPLIT_SIZES.val + PAPER_SPLIT_SIZES.test;
  if (all.length !== need) {
    throw new OmniglotDataError(`the paper split needs all ${need} rotated classes of Omniglot (1623 characters x 4); the data from ${dataset.source.path} has ${all.length}`, dataset.source.path);
  }
  const order = new Int32Array(all.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  new Rng(seed, STREAM.split).shuffle(order);
  const a = PAPER_SPLIT_SIZES.train, b = a + PAPER_SPLIT_SIZES.val;
  const [lo, hi] = part === 'train' ? [0, a] : part === 'val' ? [a, b] : part === 'test' ? [b, need] : [0, b];
  return Array.from(order.subarray(lo, hi)).sort((x, y) => x - y).map((i) => all[i]!);
}

/** A split's classes. */
export function getSplit(dataset: OmniglotDataset, scheme: SplitScheme, part: SplitPart, opts: GetSplitOptions = {}): OmniglotSplit {
  if (!SPLIT_PARTS.includes(part)) throw new OmniglotDataError(`unknown split part ${JSON.stringify(part)}: expected one of ${SPLIT_PARTS.join(', ')}`);
  if (scheme === 'vinyals') {
    const file = join(opts.splitsDir ?? dataset.source.splitsDir, 'vinyals', `${part}.txt`);
    return { name: `vinyals/${part}`, dataset, classes: readSplitFile(dataset, file) };
  }
  if (scheme === 'paper') {
    const seed = opts.seed ?? DEFAULT_PAPER_SPLIT_SEED;
    return { name: `paper(seed=${seed})/${part}`, dataset, classes: paperSplit(dataset, part, seed) };
  }
  throw new OmniglotDataError(`unknown split scheme ${JSON.stringify(scheme)}: expected one of ${SPLIT_SCHEMES.join(', ')}`);
}

/** 'Alphabet/characterNN/rotDDD' of a class (the split-file form). */
export function classKey(dataset: OmniglotDataset, c: OmniglotClass): string {
  return `${characterKey(dataset.characters[c.character]!)}/rot${String(c.rotation).padStart(3, '0')}`;
}
