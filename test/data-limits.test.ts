/**
 * Inputs that could exhaust memory are refused up front, naming the file and entry: a huge PNG in a
 * --data zip (from its IHDR, undecoded), zip entries declaring absurd uncompressed sizes (before
 * inflating), oversized zips, split files and embedded files, episodes too large for memory.
 * Every crafted file is small on disk (the oversized ones are sparse).
 */
import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync, brotliCompressSync, constants as zc } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { zipSync } from 'fflate';
import pngjs from 'pngjs';
import { decodeEmbedded, MAX_EMBEDDED_BYTES } from '../lib/data/embedded.js';
import { OmniglotDataError } from '../lib/data/errors.js';
import { decodeLakePng, pngDimensions, readLakeZips, ZIP_LIMITS } from '../lib/data/lake-zip.js';
import { loadOmniglot } from '../lib/data/omniglot.js';
import { EpisodeSampler, MAX_EPISODE_BYTES } from '../lib/data/sampler.js';
import { MAX_SPLIT_FILE_BYTES, readSplitFile, type OmniglotSplit } from '../lib/data/splits.js';
import { makePng, synthInk, tempDir, writeLakeZips, type SynthChar } from './data-fixtures.js';

const CHARS: SynthChar[] = [
  { set: 'background', alphabet: 'Alpha', character: 'character01' },
  { set: 'evaluation', alphabet: 'Beta', character: 'character01' },
];
const ENTRY = 'images_evaluation/Beta/character01/0002_04.png';

/** Expect an OmniglotDataError (a UserError) whose message contains every fragment. */
function throwsData(fn: () => unknown, ...fragments: string[]): string {
  try {
    fn();
  } catch (e) {
    assert.instance(e, OmniglotDataError, `expected OmniglotDataError, got ${String(e)}`);
    const m = (e as Error).message;
    for (const f of fragments) assert.ok(m.includes(f), `message ${JSON.stringify(m)} lacks ${JSON.stringify(f)}`);
    return m;
  }
  return assert.unreachable(`no error (expected one mentioning ${fragments.join(', ')})`) as never;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const len = Buffer.alloc(4), crc = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
/** A valid all-black 1-bit grayscale PNG of width x height (rows of zeros compress about 1000:1). */
function blankPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth
  const raw = Buffer.alloc(height * (1 + Math.ceil(width / 8)));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array(0))]);
}

/** Set the declared uncompressed size of central-directory entries (all, or those named) of a zip. */
function patchDeclaredSize(zip: Uint8Array, size: number, only?: string): Buffer {
  const b = Buffer.from(zip);
  const eocd = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  let p = b.readUInt32LE(eocd + 16);
  for (let i = b.readUInt16LE(eocd + 10); i > 0; i--) {
    assert.is(b.readUInt32LE(p), 0x02014b50, 'central directory record');
    const n = b.readUInt16LE(p + 28), e = b.readUInt16LE(p + 30), c = b.readUInt16LE(p + 32);
    if (only === undefined || b.toString('utf8', p + 46, p + 46 + n) === only) b.writeUInt32LE(size, p + 24);
    p += 46 + n + e + c;
  }
  return b;
}

test('a 20000x20000 PNG inside a --data zip is refused from its header, undecoded, naming the zip and the entry', () => {
  const small = blankPng(300, 200);
  const decoded = pngjs.PNG.sync.read(small); // the generator writes real PNGs
  assert.is(decoded.width, 300);
  assert.equal(pngDimensions(small, 'x'), { width: 300, height: 200 });
  const huge = blankPng(20000, 20000);
  assert.ok(huge.length < ZIP_LIMITS.entryBytes, `the crafted PNG is ${huge.length} bytes (must pass the entry bound)`);
  const t = tempDir('hugepng');
  try {
    writeLakeZips(t.dir, CHARS, (f) => { f.evaluation![ENTRY] = huge; });
    const t0 = performance.now();
    throwsData(() => readLakeZips(t.dir), join(t.dir, 'images_evaluation.zip'), ENTRY, 'image is 20000x20000 (from its PNG header; not decoded), expected 105x105');
    console.log(`  20000x20000 PNG refused in ${(performance.now() - t0).toFixed(0)} ms`);
    throwsData(() => loadOmniglot({ dataDir: t.dir, cacheDir: false }), ENTRY, '20000x20000');
    // truncated and non-PNG entries are named too
    throwsData(() => decodeLakePng(huge.subarray(0, 20), 'z.zip: e.png'), 'z.zip: e.png', 'cannot decode PNG', 'truncated');
    throwsData(() => decodeLakePng(Buffer.from('GIF89a........................'), 'z.zip: e.png'), 'bad signature');
    // a 105x105 image still decodes
    assert.is(decodeLakePng(makePng(105, 105, synthInk(0, 0)), 'ok').length, 105 * 105);
  } finally {
    t.cleanup();
  }
});

test('zip bombs: an entry declaring 4 GB, or entries declaring too much in all, are refused before inflating', () => {
  const t = tempDir('bomb');
  try {
    let files: Record<string, Record<string, Uint8Array>> = {};
    writeLakeZips(t.dir, CHARS, (f) => { files = f; });
    const ev = join(t.dir, 'images_evaluation.zip');
    // a deflated entry whose central directory claims 4 GB (fflate would allocate that much to inflate it)
    const deflated: Record<string, [Uint8Array, { level: 9 }]> = {};
    for (const [k, v] of Object.entries(files['evaluation']!)) deflated[k] = [v, { level: 9 }];
    writeFileSync(ev, patchDeclaredSize(zipSync(deflated), 0xfffffff0, ENTRY));
    throwsData(() => readLakeZips(t.dir), ev, `entry ${ENTRY} declares 4294967280 bytes uncompressed`, 'refused before inflating');
    throwsData(() => readLakeZips(t.dir), ev, `more than the ${ZIP_LIMITS.entryBytes}`);
    // many entries, each within the bound, that together declare more than the total bound
    const many: Record<string, Uint8Array> = {};
    const n = Math.floor(ZIP_LIMITS.totalBytes / ZIP_LIMITS.entryBytes) + 5;
    for (let i = 0; i < n; i++) many[`images_evaluation/Beta/character${String(i % 100).padStart(2, '0')}/${String(i).padStart(5, '0')}_01.png`] = Uint8Array.of(1);
    writeFileSync(ev, patchDeclaredSize(zipSync(many, { level: 0 }), ZIP_LIMITS.entryBytes));
    throwsData(() => readLakeZips(t.dir), ev, `declare more than ${ZIP_LIMITS.totalBytes} bytes uncompressed in all`, 'refused before inflating');
    // a zip file larger than the bound is refused from its size (sparse: nothing is written)
    writeLakeZips(t.dir, CHARS);
    truncateSync(ev, ZIP_LIMITS.fileBytes + 1);
    throwsData(() => loadOmniglot({ dataDir: t.dir, cacheDir: false }), ev, `is ${ZIP_LIMITS.fileBytes + 1} bytes, more than the ${ZIP_LIMITS.fileBytes}`);
  } finally {
    t.cleanup();
  }
});

test('oversized split files and embedded files that decompress beyond the bound are refused, naming the file', () => {
  const t = tempDir('splitsize');
  try {
    writeLakeZips(t.dir, CHARS);
    const ds = loadOmniglot({ dataDir: t.dir, cacheDir: false });
    const sd = join(t.dir, 'splits', 'vinyals');
    mkdirSync(sd, { recursive: true });
    const big = join(sd, 'train.txt');
    writeFileSync(big, 'Alpha/character01/rot000\n');
    assert.is(readSplitFile(ds, big).length, 1);
    truncateSync(big, MAX_SPLIT_FILE_BYTES + 1);
    throwsData(() => readSplitFile(ds, big), big, `more than the ${MAX_SPLIT_FILE_BYTES}`);
    throwsData(() => readSplitFile(ds, sd), sd, 'is not a file');
  } finally {
    t.cleanup();
  }
  const bomb = brotliCompressSync(Buffer.alloc(MAX_EMBEDDED_BYTES + 1024), { params: { [zc.BROTLI_PARAM_QUALITY]: 0 } });
  assert.ok(bomb.length < 1 << 20, `the crafted file is ${bomb.length} bytes`);
  throwsData(() => decodeEmbedded(bomb, '/x/omniglot-105.bin.br'), '/x/omniglot-105.bin.br', 'corrupt embedded Omniglot file');
});

test('image sizes beyond Omniglot\'s 105 and episodes beyond the pixel bound are refused up front', () => {
  throwsData(() => loadOmniglot({ imageSize: 200, cacheDir: false }), 'image size 200', '[1, 105]');
  throwsData(() => loadOmniglot({ imageSize: 0, cacheDir: false }), 'image size 0');
  // The sampler checks sizes before touching the data: a split of every class at 105x105.
  const fake = (imageSize: number): OmniglotSplit => ({ name: 'fake/all', dataset: { imageSize } as never, classes: new Array(6492).fill({ character: 0, rotation: 0 }) });
  throwsData(() => new EpisodeSampler(fake(105), { way: 6492, shot: 5, query: 15, seed: 0 }), 'way 6492 x (shot 5 + query 15)', `more than the ${MAX_EPISODE_BYTES}`);
  assert.is(new EpisodeSampler(fake(32), { way: 6492, shot: 5, query: 15, seed: 0 }).way, 6492, 'every class at 32x32 fits');
  throwsData(() => new EpisodeSampler(fake(28), { way: 6493, shot: 1, query: 1, seed: 0 }), 'way 6493 exceeds the 6492 classes of split fake/all');
  throwsData(() => new EpisodeSampler(fake(28), { way: 5, shot: 1e12, query: 1, seed: 0 }), 'exceeds the 20 drawings');
});

test.run();
