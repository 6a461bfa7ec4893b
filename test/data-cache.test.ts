/** The preprocessed-image cache: round trip, keys, corrupt files rebuilt (never trusted), default directory. */
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultCacheDir, readCache } from '../lib/data/cache.js';
import { loadOmniglot, type OmniglotDataset } from '../lib/data/omniglot.js';
import { tempDir, writeLakeZips, type SynthChar } from './data-fixtures.js';

const sameSums = (a: OmniglotDataset, b: OmniglotDataset): boolean =>
  a.sums.constructor === b.sums.constructor && Buffer.compare(Buffer.from(a.sums.buffer, a.sums.byteOffset, a.sums.byteLength), Buffer.from(b.sums.buffer, b.sums.byteOffset, b.sums.byteLength)) === 0;

test('cache round trip at 28 and 32: built, then hit with identical data; one file per size; the cached load is fast', () => {
  const c = tempDir('cache');
  try {
    const ref = loadOmniglot({ imageSize: 32, cacheDir: false });
    const a = loadOmniglot({ imageSize: 32, cacheDir: c.dir });
    assert.is(a.cache.status, 'built');
    assert.is(a.cache.reason, 'missing');
    const t0 = performance.now();
    const b = loadOmniglot({ imageSize: 32, cacheDir: c.dir });
    const ms = performance.now() - t0;
    console.log(`cached 32x32 load: ${ms.toFixed(0)} ms`);
    assert.is(b.cache.status, 'hit');
    assert.is(b.cache.path, a.cache.path);
    assert.ok(sameSums(a, ref) && sameSums(b, ref), 'cached data differs from a fresh preprocessing');
    assert.equal(b.characters, ref.characters);
    assert.is(b.denominator, 11025);
    assert.instance(b.sums, Uint16Array);
    const c28 = loadOmniglot({ imageSize: 28, cacheDir: c.dir });
    assert.is(c28.cache.status, 'built');
    assert.instance(c28.sums, Uint8Array);
    assert.is(loadOmniglot({ imageSize: 28, cacheDir: c.dir }).cache.status, 'hit');
    assert.is(readdirSync(c.dir).filter((f) => f.endsWith('.bin')).length, 2);
  } finally {
    c.cleanup();
  }
});

test('corrupt cache files are detected and rebuilt: flipped payload byte, truncation, garbage, wrong header', () => {
  const c = tempDir('corrupt');
  try {
    const ref = loadOmniglot({ imageSize: 28, cacheDir: c.dir });
    const path = ref.cache.path!;
    const good = readFileSync(path);
    const corruptions: [string, (b: Buffer) => Buffer, string][] = [
      ['flipped payload byte', (b) => { const x = Buffer.from(b); x[x.length - 1000] ^= 0x01; return x; }, 'checksum'],
      ['truncated', (b) => b.subarray(0, b.length - 7), 'payload has'],
      ['garbage', () => Buffer.from('not a cache file'), 'bad magic'],
      ['header edited', (b) => { const x = Buffer.from(b); const i = x.indexOf('"size":28'); x.write('"size":29', i); return x; }, 'header'],
      ['header cut', (b) => b.subarray(0, 40), 'header'],
    ];
    for (const [what, corrupt, reason] of corruptions) {
      writeFileSync(path, corrupt(good));
      const r = readCache(path, readCacheKey(good), 28);
      assert.not.ok(r.ok, `${what}: accepted`);
      const d = loadOmniglot({ imageSize: 28, cacheDir: c.dir });
      assert.is(d.cache.status, 'rebuilt', what);
      assert.ok(d.cache.reason!.startsWith('corrupt') && d.cache.reason!.includes(reason), `${what}: reason ${d.cache.reason}`);
      assert.ok(sameSums(d, ref), `${what}: rebuilt data differs`);
      assert.is(statSync(path).size, good.length, `${what}: the cache file was rewritten`);
      assert.is(loadOmniglot({ imageSize: 28, cacheDir: c.dir }).cache.status, 'hit', what);
    }
  } finally {
    c.cleanup();
  }
});

/** The key stored in a good cache file's header. */
function readCacheKey(file: Buffer): string {
  const hlen = file.readUInt32LE(8);
  return (JSON.parse(file.toString('utf8', 12, 12 + hlen)) as { key: string }).key;
}

test('an unwritable cache directory does not fail the load', () => {
  const c = tempDir('ro');
  try {
    writeFileSync(join(c.dir, 'file'), 'x');
    const d = loadOmniglot({ imageSize: 28, cacheDir: join(c.dir, 'file') }); // a file where a directory is needed
    assert.is(d.cache.status, 'write-failed');
    assert.is(d.numImages, 32460);
  } finally {
    c.cleanup();
  }
});

const SYNTH: SynthChar[] = [
  { set: 'background', alphabet: 'Alpha', character: 'character01' },
  { set: 'evaluation', alphabet: 'Beta', character: 'character01' },
];

test('the checksum covers the whole file: an edited character name (same length, valid JSON) is corrupt and rebuilt', () => {
  const z = tempDir('zsum'), c = tempDir('csum');
  try {
    writeLakeZips(z.dir, SYNTH);
    const a = loadOmniglot({ dataDir: z.dir, imageSize: 28, cacheDir: c.dir });
    assert.is(a.cache.status, 'built');
    const path = a.cache.path!, good = readFileSync(path);
    const bad = Buffer.from(good);
    const at = bad.indexOf('"Beta"');
    assert.ok(at > 0 && at < bad.readUInt32LE(8) + 12, 'the name is in the header');
    bad.write('"Bete"', at);
    writeFileSync(path, bad);
    const r = readCache(path, readCacheKey(good), 28);
    assert.ok(!r.ok && r.reason.includes('checksum mismatch'), `edited name accepted: ${JSON.stringify(r)}`);
    const b = loadOmniglot({ dataDir: z.dir, imageSize: 28, cacheDir: c.dir });
    assert.is(b.cache.status, 'rebuilt');
    assert.equal(b.characters.map((x) => x.alphabet), ['Alpha', 'Beta']);
    assert.ok(Buffer.compare(readFileSync(path), good) === 0, 'the rebuilt file equals the original');
    // the trailing checksum itself edited
    const t = Buffer.from(good);
    t[t.length - 1] ^= 0x80;
    writeFileSync(path, t);
    assert.ok(!readCache(path, readCacheKey(good), 28).ok);
  } finally {
    z.cleanup();
    c.cleanup();
  }
});

test('an unwritable cache directory: the load works, onWarning is called once per directory per process, the library prints nothing', () => {
  const z = tempDir('zro'), c = tempDir('cro');
  const printed: string[] = [];
  const saved = { err: process.stderr.write, out: process.stdout.write, error: console.error, warn: console.warn, log: console.log };
  try {
    writeLakeZips(z.dir, SYNTH);
    writeFileSync(join(c.dir, 'file'), 'x');
    const dirA = join(c.dir, 'file', 'a'), dirB = join(c.dir, 'file', 'b'); // under a file: ENOTDIR, even for root
    const warnings: string[] = [];
    const capture = (chunk: unknown): boolean => { printed.push(String(chunk)); return true; };
    process.stderr.write = capture as typeof process.stderr.write;
    process.stdout.write = capture as typeof process.stdout.write;
    console.error = console.warn = console.log = (...a: unknown[]) => { printed.push(a.join(' ')); };
    const first = loadOmniglot({ dataDir: z.dir, imageSize: 28, cacheDir: dirA, onWarning: (m) => warnings.push(m) });
    const second = loadOmniglot({ dataDir: z.dir, imageSize: 28, cacheDir: dirA, onWarning: (m) => warnings.push(m) });
    const silent = loadOmniglot({ dataDir: z.dir, imageSize: 32, cacheDir: dirB });
    const other = loadOmniglot({ dataDir: z.dir, imageSize: 32, cacheDir: dirB, onWarning: (m) => warnings.push(m) });
    Object.assign(process.stderr, { write: saved.err });
    Object.assign(process.stdout, { write: saved.out });
    Object.assign(console, { error: saved.error, warn: saved.warn, log: saved.log });
    for (const d of [first, second, silent, other]) {
      assert.is(d.cache.status, 'write-failed');
      assert.is(d.numImages, 40);
    }
    assert.equal(first.sums, second.sums);
    assert.is(warnings.length, 2, `warnings: ${JSON.stringify(warnings)}`);
    assert.ok(warnings[0]!.includes(dirA) && warnings[0]!.includes('ENOTDIR') && warnings[0]!.includes('--cache'), warnings[0]);
    assert.ok(warnings[1]!.includes(dirB), warnings[1]);
    assert.equal(printed, [], 'the library printed');
  } finally {
    Object.assign(process.stderr, { write: saved.err });
    Object.assign(process.stdout, { write: saved.out });
    Object.assign(console, { error: saved.error, warn: saved.warn, log: saved.log });
    z.cleanup();
    c.cleanup();
  }
});

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (isRoot) console.log('skipping the chmod read-only cache test: running as root, which ignores directory permissions');
(isRoot ? test.skip : test)('a read-only (chmod 555) cache directory warns and keeps working', () => {
  const z = tempDir('zchmod'), c = tempDir('cchmod');
  const ro = join(c.dir, 'ro');
  try {
    writeLakeZips(z.dir, SYNTH);
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    const warnings: string[] = [];
    const d = loadOmniglot({ dataDir: z.dir, imageSize: 28, cacheDir: ro, onWarning: (m) => warnings.push(m) });
    assert.is(d.cache.status, 'write-failed');
    assert.is(warnings.length, 1);
    assert.ok(warnings[0]!.includes(ro) && warnings[0]!.includes('EACCES'), warnings[0]);
  } finally {
    chmodSync(ro, 0o755);
    z.cleanup();
    c.cleanup();
  }
});

test('default cache directory: $EVOMETA_CACHE, else $XDG_CACHE_HOME/evometa, else ~/.cache/evometa', () => {
  assert.is(defaultCacheDir({ EVOMETA_CACHE: '/a', XDG_CACHE_HOME: '/b' }), '/a');
  assert.is(defaultCacheDir({ XDG_CACHE_HOME: '/b' }), join('/b', 'evometa'));
  assert.ok(defaultCacheDir({}).endsWith(join('.cache', 'evometa')));
});

test.run();
