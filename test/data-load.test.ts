/** Omniglot facts from the embedded copy: counts, splits, preprocessing pixels against an independent float64 reference. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadEmbedded } from '../lib/data/embedded.js';
import { loadOmniglot, type OmniglotDataset } from '../lib/data/omniglot.js';
import { rotatedImageInto, ROTATIONS, type Rotation } from '../lib/data/preprocess.js';
import { DRAWINGS, rawPixel, type RawOmniglot } from '../lib/data/raw.js';
import { classKey, getSplit, PAPER_SPLIT_SIZES, type OmniglotSplit } from '../lib/data/splits.js';
import { referenceImage } from './data-fixtures.js';

let raw: RawOmniglot;
const ds: Record<number, OmniglotDataset> = {};
const get = (size: number): OmniglotDataset => (ds[size] ??= loadOmniglot({ imageSize: size, cacheDir: false }));
const keys = (s: OmniglotSplit): Set<string> => new Set(s.classes.map((c) => classKey(s.dataset, c)));

test.before(() => {
  raw = loadEmbedded();
});

test('embedded Omniglot: 1623 characters, 32460 images, 50 alphabets, 964 background + 659 evaluation', () => {
  const d = get(28);
  assert.is(d.numCharacters, 1623);
  assert.is(d.numImages, 32460);
  assert.is(d.sums.length, 32460 * 28 * 28);
  assert.is(new Set(d.characters.map((c) => c.alphabet)).size, 50);
  assert.is(d.characters.filter((c) => c.set === 'background').length, 964);
  assert.is(d.characters.filter((c) => c.set === 'evaluation').length, 659);
  assert.ok(d.characters.every((c) => c.drawings.length === DRAWINGS));
  assert.is(d.source.kind, 'embedded');
  assert.is(d.cache.status, 'disabled');
});

test('ink is the minority colour (black strokes on white): mean ink fraction between 2% and 20%', () => {
  let ink = 0;
  for (const b of raw.bits) for (let t = b; t; t >>= 1) ink += t & 1;
  const frac = ink / (32460 * 105 * 105);
  assert.ok(frac > 0.02 && frac < 0.2, `ink fraction ${frac}`);
});

test('vinyals split sizes 4112 / 688 / 1692 / 4800; trainval = train + val; test disjoint from trainval', () => {
  const d = get(28);
  const tr = getSplit(d, 'vinyals', 'train'), va = getSplit(d, 'vinyals', 'val');
  const te = getSplit(d, 'vinyals', 'test'), tv = getSplit(d, 'vinyals', 'trainval');
  assert.equal([tr.classes.length, va.classes.length, te.classes.length, tv.classes.length], [4112, 688, 1692, 4800]);
  const k = { tr: keys(tr), va: keys(va), te: keys(te), tv: keys(tv) };
  assert.is(k.tv.size, 4800);
  assert.ok([...k.tr, ...k.va].every((x) => k.tv.has(x)));
  assert.ok([...k.te].every((x) => !k.tv.has(x)));
  assert.is(classKey(d, tr.classes[0]!), 'Angelic/character01/rot000');
  // the file's own order is kept
  assert.is(classKey(d, te.classes[0]!), 'Gurmukhi/character42/rot000');
});

test('paper split: 4804 / 1012 / 676, a disjoint cover of all 6492 classes, seeded', () => {
  const d = get(32);
  const parts = (seed: number) => (['train', 'val', 'test'] as const).map((p) => getSplit(d, 'paper', p, { seed }));
  const [tr, va, te] = parts(0);
  assert.equal([tr!.classes.length, va!.classes.length, te!.classes.length], [PAPER_SPLIT_SIZES.train, PAPER_SPLIT_SIZES.val, PAPER_SPLIT_SIZES.test]);
  assert.equal([tr!.classes.length, va!.classes.length, te!.classes.length], [4804, 1012, 676]);
  const all = new Set([...keys(tr!), ...keys(va!), ...keys(te!)]);
  assert.is(all.size, 6492);
  assert.is(getSplit(d, 'paper', 'trainval', { seed: 0 }).classes.length, 4804 + 1012);
  const again = parts(0), other = parts(1);
  assert.equal([...keys(again[2]!)], [...keys(te!)]);
  assert.not.equal([...keys(other[2]!)], [...keys(te!)]);
  assert.is(getSplit(d, 'paper', 'test').name, 'paper(seed=0)/test');
});

function checkPixels(size: number, images: number[]): void {
  const d = get(size);
  for (const img of images) {
    const ch = Math.floor(img / DRAWINGS), dr = img % DRAWINGS;
    for (const rot of ROTATIONS) {
      const expect = referenceImage((y, x) => rawPixel(raw, img, y, x), rot, size);
      const got = d.image(ch, dr, rot);
      // exact: the area sums are integers over 225 (S=28) or 11025 (S=32), both sides divide in float64 and round to float32 once
      for (let p = 0; p < size * size; p++) {
        if (got[p] !== Math.fround(expect[p]!)) assert.unreachable(`image ${img} rot ${rot} size ${size} pixel ${p}: ${got[p]} vs ${expect[p]}`);
      }
      let s = 0;
      for (const v of got) s += v;
      assert.ok(s > 1, `image ${img} rot ${rot} has ink`);
    }
  }
}

test('pixels at 28x28 after rotation (0/90/180/270) and area averaging equal an independent float64 computation', () => {
  checkPixels(28, [0, 7, 12345, 19279, 19280, 32459]);
});

test('pixels at 32x32 likewise', () => {
  checkPixels(32, [1, 4321, 25000, 32459]);
});

test('28x28 values are multiples of 1/225 and 32x32 values multiples of 1/11025, within [0, 1]', () => {
  assert.is(get(28).denominator, 225);
  assert.is(get(32).denominator, 11025);
  for (const size of [28, 32]) {
    const d = get(size);
    let max = 0;
    for (const v of d.sums) if (v > max) max = v;
    assert.ok(max <= d.denominator && max > d.denominator / 2, `max area sum ${max} / ${d.denominator}`);
  }
});

test('rotation is counter-clockwise (PIL Image.rotate): a top-right mark moves to top-left at 90, bottom-left at 180, bottom-right at 270', () => {
  const n = 5;
  const sums = new Uint8Array(n * n);
  sums[0 * n + (n - 1)] = 9; // top-right
  const where = (rot: Rotation): [number, number] => {
    const out = new Float64Array(n * n);
    rotatedImageInto(sums, n, 9, 0, rot, out, 0);
    const p = out.indexOf(1);
    return [Math.floor(p / n), p % n];
  };
  assert.equal(where(0), [0, n - 1]);
  assert.equal(where(90), [0, 0]);
  assert.equal(where(180), [n - 1, 0]);
  assert.equal(where(270), [n - 1, n - 1]);
});

test.run();
