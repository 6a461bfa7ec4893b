/** The preprocessed-image cache: round trip, keys, corrupt files rebuilt (never trusted), default directory. */
import { readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultCacheDir, readCache } from '../lib/data/cache.js';
import { loadOmniglot, type OmniglotDataset } from '../lib/data/omniglot.js';
import { tempDir } from './data-fixtures.js';

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

test('default cache directory: $EVOMETA_CACHE, else $XDG_CACHE_HOME/evometa, else ~/.cache/evometa', () => {
  assert.is(defaultCacheDir({ EVOMETA_CACHE: '/a', XDG_CACHE_HOME: '/b' }), '/a');
  assert.is(defaultCacheDir({ XDG_CACHE_HOME: '/b' }), join('/b', 'evometa'));
  assert.ok(defaultCacheDir({}).endsWith(join('.cache', 'evometa')));
});

test.run();
