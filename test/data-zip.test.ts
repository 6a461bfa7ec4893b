/** Lake's zips: the embedded copy equals them pixel for pixel; --data directories; each bad input gives a clear error. */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { zipSync } from 'fflate';
import { decodeEmbedded, embeddedPath, loadEmbedded } from '../lib/data/embedded.js';
import { OmniglotDataError } from '../lib/data/errors.js';
import { readLakeZips } from '../lib/data/lake-zip.js';
import { loadOmniglot } from '../lib/data/omniglot.js';
import { rawPixel, DRAWINGS } from '../lib/data/raw.js';
import { getSplit } from '../lib/data/splits.js';
import { makePng, referenceImage, sharedOmniglot, synthInk, tempDir, writeLakeZips, type SynthChar } from './data-fixtures.js';
import { needs, peer } from './helpers/peers.js';

const shared = sharedOmniglot();

const withShared = needs(peer(shared.dir !== null, shared.reason, 'shared-data'), 'data-zip.test: the embedded-vs-zips comparison');

withShared('embedded copy equals Lake\'s zips (../shared) pixel for pixel, same characters and drawing names', () => {
  const fromZips = readLakeZips(shared.dir!);
  const emb = loadEmbedded();
  assert.is(fromZips.characters.length, 1623);
  assert.equal(emb.characters, fromZips.characters);
  assert.is(emb.bits.length, fromZips.bits.length);
  assert.ok(Buffer.compare(Buffer.from(emb.bits.buffer, emb.bits.byteOffset, emb.bits.byteLength), Buffer.from(fromZips.bits)) === 0, 'bitmaps differ');
});

const CHARS: SynthChar[] = [
  { set: 'background', alphabet: 'Alpha', character: 'character01' },
  { set: 'background', alphabet: 'Alpha', character: 'character02' },
  { set: 'evaluation', alphabet: 'Beta', character: 'character01' },
];

/** Expect an OmniglotDataError whose message contains every fragment. */
function throwsData(fn: () => unknown, ...fragments: string[]): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, OmniglotDataError, `expected OmniglotDataError, got ${String(e)}`);
    const err = e as OmniglotDataError;
    assert.is(err.name, 'UserError');
    for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    return;
  }
  assert.unreachable(`no error (expected one mentioning ${fragments.join(', ')})`);
}

test('--data DIR with Lake-style zips: characters, drawings and pixels as written; cached second load equal', () => {
  const t = tempDir('zips'), c = tempDir('cache');
  try {
    writeLakeZips(t.dir, CHARS);
    const raw = readLakeZips(t.dir);
    assert.equal(raw.characters.map((c) => `${c.set}:${c.alphabet}/${c.character}`), ['background:Alpha/character01', 'background:Alpha/character02', 'evaluation:Beta/character01']);
    assert.equal(raw.characters[2]!.drawings.slice(0, 2), ['0003_01.png', '0003_02.png']);
    for (let ci = 0; ci < 3; ci++) {
      for (const d of [0, 19]) {
        const ink = synthInk(ci, d);
        for (let y = 0; y < 105; y += 3) for (let x = 0; x < 105; x++) assert.is(rawPixel(raw, ci * DRAWINGS + d, y, x), ink(y, x) ? 1 : 0);
      }
    }
    const phases = new Set<string>();
    let last = { done: 0, total: 0 };
    const a = loadOmniglot({ dataDir: t.dir, imageSize: 28, cacheDir: c.dir, onProgress: (p) => { phases.add(p.phase); if (p.phase === 'decoding PNGs') last = p; } });
    assert.equal([...phases], ['decoding PNGs', 'downsampling', 'writing cache']);
    assert.equal(last, { phase: 'decoding PNGs', done: 60, total: 60 });
    assert.is(a.source.kind, 'zips');
    assert.is(a.cache.status, 'built');
    assert.is(a.numImages, 60);
    const exp = referenceImage((y, x) => (synthInk(2, 5)(y, x) ? 1 : 0), 270, 28);
    assert.equal(Array.from(a.image(2, 5, 270)), Array.from(exp, Math.fround));
    let called = 0;
    const b = loadOmniglot({ dataDir: t.dir, imageSize: 28, cacheDir: c.dir, onProgress: () => called++ });
    assert.is(b.cache.status, 'hit');
    assert.is(called, 0);
    assert.equal(Array.from(b.sums), Array.from(a.sums));
    // a split naming a character the data lacks: error with the split file and line number
    const sd = join(t.dir, 'splits', 'vinyals');
    mkdirSync(sd, { recursive: true });
    writeFileSync(join(sd, 'train.txt'), 'Alpha/character01/rot000\nAlpha/character02/rot090\nBeta/character07/rot180\n');
    const b2 = loadOmniglot({ dataDir: t.dir, imageSize: 28, cacheDir: c.dir });
    assert.is(b2.source.splitsDir, join(t.dir, 'splits'));
    throwsData(() => getSplit(b2, 'vinyals', 'train'), join(sd, 'train.txt') + ':3', 'Beta/character07');
    writeFileSync(join(sd, 'val.txt'), 'Alpha/character01/rot045\n');
    throwsData(() => getSplit(b2, 'vinyals', 'val'), join(sd, 'val.txt') + ':1', 'rotation 045');
    writeFileSync(join(sd, 'test.txt'), 'Alpha/character01/rot000\nnot a class line\n');
    throwsData(() => getSplit(b2, 'vinyals', 'test'), join(sd, 'test.txt') + ':2', 'bad line');
    throwsData(() => getSplit(b2, 'paper', 'train'), '6492', '12');
  } finally {
    t.cleanup();
    c.cleanup();
  }
});

test('bad --data inputs: missing directory, missing zip, corrupt zip, wrong layout, wrong drawing count', () => {
  const t = tempDir('bad');
  try {
    throwsData(() => loadOmniglot({ dataDir: join(t.dir, 'nope'), cacheDir: false }), join(t.dir, 'nope'), 'does not exist');
    writeLakeZips(t.dir, CHARS);
    const ev = join(t.dir, 'images_evaluation.zip'), bg = join(t.dir, 'images_background.zip');
    const good = readFileSync(ev);
    writeFileSync(ev, good.subarray(0, 0));
    throwsData(() => readLakeZips(t.dir), ev, 'not a readable zip');
    writeFileSync(ev, Buffer.from('this is not a zip file at all, just text'));
    throwsData(() => readLakeZips(t.dir), ev, 'not a readable zip');
    writeFileSync(ev, good.subarray(0, Math.floor(good.length / 2)));
    throwsData(() => loadOmniglot({ dataDir: t.dir, cacheDir: false }), ev, 'not a readable zip');
    writeFileSync(ev, good);
    rmSync(bg);
    throwsData(() => loadOmniglot({ dataDir: t.dir, cacheDir: false }), bg, 'missing');
    writeLakeZips(t.dir, CHARS, (f) => { f.background!['images_background/Alpha/stray.png'] = makePng(105, 105, () => false); });
    throwsData(() => readLakeZips(t.dir), bg, 'images_background/Alpha/stray.png', 'unexpected entry');
    writeLakeZips(t.dir, CHARS, (f) => {
      const k = Object.keys(f.evaluation!)[0]!;
      f.evaluation![k.replace('images_evaluation', 'images_background')] = f.evaluation![k]!;
      delete f.evaluation![k];
    });
    throwsData(() => readLakeZips(t.dir), ev, 'unexpected entry');
    writeLakeZips(t.dir, CHARS, (f) => { delete f.background!['images_background/Alpha/character02/0002_07.png']; });
    throwsData(() => readLakeZips(t.dir), bg, 'Alpha/character02', '19 drawings');
  } finally {
    t.cleanup();
  }
});

test('bad PNGs: wrong size and undecodable, named by zip and entry', () => {
  const t = tempDir('png');
  try {
    const entry = 'images_evaluation/Beta/character01/0003_04.png';
    const ev = join(t.dir, 'images_evaluation.zip');
    writeLakeZips(t.dir, CHARS, (f) => { f.evaluation![entry] = makePng(100, 105, () => false); });
    throwsData(() => readLakeZips(t.dir), ev, entry, '100x105', '105x105');
    writeLakeZips(t.dir, CHARS, (f) => { f.evaluation![entry] = new Uint8Array([137, 80, 78, 71, 1, 2, 3, 4, 5]); });
    throwsData(() => readLakeZips(t.dir), ev, entry, 'cannot decode PNG');
    writeLakeZips(t.dir, CHARS, (f) => {
      const p = makePng(105, 105, synthInk(0, 0));
      p[40] = p[40]! ^ 0xff; // inside the IDAT data: CRC mismatch or bad deflate
      f.evaluation![entry] = p;
    });
    throwsData(() => readLakeZips(t.dir), ev, entry, 'cannot decode PNG');
  } finally {
    t.cleanup();
  }
});

test('deflated zips with directory entries (like Lake\'s originals) read the same as stored ones', () => {
  const a = tempDir('stored'), b = tempDir('deflated');
  try {
    writeLakeZips(a.dir, CHARS);
    let files: Record<string, Record<string, Uint8Array>> = {};
    writeLakeZips(b.dir, CHARS, (f) => { files = f; });
    for (const set of ['background', 'evaluation'] as const) {
      const withDirs: Record<string, Uint8Array | [Uint8Array, { level: 9 }]> = {};
      for (const [k, v] of Object.entries(files[set]!)) {
        const parts = k.split('/');
        for (let i = 1; i < parts.length; i++) withDirs[parts.slice(0, i).join('/') + '/'] = new Uint8Array(0);
        withDirs[k] = [v, { level: 9 }];
      }
      writeFileSync(join(b.dir, `images_${set}.zip`), zipSync(withDirs as never));
    }
    const ra = readLakeZips(a.dir), rb = readLakeZips(b.dir);
    assert.equal(rb.characters, ra.characters);
    assert.ok(Buffer.compare(Buffer.from(ra.bits), Buffer.from(rb.bits)) === 0);
  } finally {
    a.cleanup();
    b.cleanup();
  }
});

test('a corrupt embedded file is reported, naming it', () => {
  const bytes = new Uint8Array(readFileSync(embeddedPath()));
  throwsData(() => decodeEmbedded(bytes.subarray(0, 1000), '/x/omniglot-105.bin.br'), '/x/omniglot-105.bin.br', 'corrupt');
  throwsData(() => loadEmbedded('/nonexistent/omniglot-105.bin.br'), '/nonexistent/omniglot-105.bin.br', '--data');
});

test.run();
