/** Episode sampler invariants on the real (embedded) data. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OmniglotDataError } from '../lib/data/errors.js';
import { loadOmniglot, type OmniglotDataset } from '../lib/data/omniglot.js';
import { EpisodeSampler } from '../lib/data/sampler.js';
import { classKey, getSplit, type OmniglotSplit } from '../lib/data/splits.js';

let d28: OmniglotDataset, d32: OmniglotDataset;
let train: OmniglotSplit;

test.before(() => {
  d28 = loadOmniglot({ imageSize: 28, cacheDir: false });
  d32 = loadOmniglot({ imageSize: 32, cacheDir: false });
  train = getSplit(d28, 'vinyals', 'train');
});

test('episode shapes, dtype, class-major labels 0..way-1, values in [0, 1]', () => {
  const s = new EpisodeSampler(train, { way: 5, shot: 3, query: 4, seed: 1 });
  const e = s.episode(0);
  assert.is(e.way, 5);
  assert.equal(e.support.shape, [15, 1, 28, 28]);
  assert.equal(e.query.shape, [20, 1, 28, 28]);
  assert.instance(e.support.data, Float32Array);
  assert.instance(e.query.data, Float32Array);
  assert.equal(Array.from(e.supportLabels), [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
  assert.equal(Array.from(e.queryLabels), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]);
  for (const v of [...e.support.data, ...e.query.data]) if (!(v >= 0 && v <= 1)) assert.unreachable(`pixel ${v}`);
  const p = new EpisodeSampler(getSplit(d32, 'paper', 'test'), { way: 20, shot: 1, query: 1, seed: 3 }).episode(9);
  assert.equal(p.support.shape, [20, 1, 32, 32]);
});

test('classes distinct and from the split; support and query drawings distinct; images are those drawn', () => {
  const members = new Set(train.classes.map((c) => classKey(d28, c)));
  const s = new EpisodeSampler(train, { way: 20, shot: 5, query: 15, seed: 42 });
  for (let i = 0; i < 30; i++) {
    const dr = s.draw(i);
    const keys = dr.classes.map((c) => classKey(d28, c));
    assert.is(new Set(keys).size, 20, `episode ${i}: repeated class`);
    assert.ok(keys.every((k) => members.has(k)), `episode ${i}: class outside the split`);
    for (let c = 0; c < 20; c++) {
      const all = [...dr.support[c]!, ...dr.query[c]!];
      assert.is(all.length, 20);
      assert.is(new Set(all).size, 20, `episode ${i} class ${c}: a drawing used twice`);
      assert.ok(all.every((x) => Number.isInteger(x) && x >= 0 && x < 20));
    }
  }
  const e = s.episode(7), dr = s.draw(7), plane = 28 * 28;
  for (const c of [0, 13, 19]) {
    const cls = dr.classes[c]!;
    const sup = d28.image(cls.character, dr.support[c]![4]!, cls.rotation);
    assert.equal(Array.from(e.support.data.subarray((c * 5 + 4) * plane, (c * 5 + 5) * plane)), Array.from(sup));
    const qry = d28.image(cls.character, dr.query[c]![14]!, cls.rotation);
    assert.equal(Array.from(e.query.data.subarray((c * 15 + 14) * plane, (c * 15 + 15) * plane)), Array.from(qry));
  }
});

test('deterministic for a seed, random access equals sequential, position restores; another seed differs', () => {
  const spec = { way: 5, shot: 5, query: 15, seed: 123 };
  const a = new EpisodeSampler(train, spec), b = new EpisodeSampler(train, spec);
  const seq = [a.next(), a.next(), a.next(), a.next()];
  assert.is(a.position, 4);
  assert.equal(Array.from(b.episode(3).query.data), Array.from(seq[3]!.query.data));
  assert.equal(Array.from(b.episode(0).support.data), Array.from(seq[0]!.support.data));
  b.position = 2;
  assert.equal(Array.from(b.next().support.data), Array.from(seq[2]!.support.data));
  assert.not.equal(Array.from(seq[0]!.support.data), Array.from(seq[1]!.support.data));
  const other = new EpisodeSampler(train, { ...spec, seed: 124 });
  assert.not.equal(other.draw(0).classes, a.draw(0).classes);
  // over many episodes the sampler reaches many classes and all drawings
  const seen = new Set<string>(), drawings = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const dr = a.draw(i);
    for (const c of dr.classes) seen.add(classKey(d28, c));
    for (const q of dr.query) for (const x of q) drawings.add(x);
  }
  assert.ok(seen.size > 700, `only ${seen.size} distinct classes in 1000 draws`);
  assert.is(drawings.size, 20);
});

test('errors: way larger than the split, shot + query > 20, bad numbers', () => {
  const msg = (fn: () => unknown): string => {
    try { fn(); } catch (e) { assert.instance(e, OmniglotDataError); return (e as Error).message; }
    return assert.unreachable('no error') as never;
  };
  const val = getSplit(d28, 'vinyals', 'val');
  const m1 = msg(() => new EpisodeSampler(val, { way: 689, shot: 1, query: 1, seed: 0 }));
  assert.ok(m1.includes('689') && m1.includes('688') && m1.includes('vinyals/val'), m1);
  const m2 = msg(() => new EpisodeSampler(val, { way: 5, shot: 6, query: 15, seed: 0 }));
  assert.ok(m2.includes('shot 6') && m2.includes('query 15') && m2.includes('20'), m2);
  assert.ok(msg(() => new EpisodeSampler(val, { way: 0, shot: 1, query: 1, seed: 0 })).includes('way'));
  assert.ok(msg(() => new EpisodeSampler(val, { way: 5, shot: 1.5, query: 1, seed: 0 })).includes('shot'));
  assert.ok(msg(() => new EpisodeSampler(val, { way: 5, shot: 1, query: 1, seed: -1 })).includes('seed'));
  // way = all classes and shot + query = 20 are allowed
  const e = new EpisodeSampler(val, { way: 688, shot: 10, query: 10, seed: 0 }).draw(0);
  assert.is(new Set(e.classes.map((c) => classKey(d28, c))).size, 688);
});

test.run();
