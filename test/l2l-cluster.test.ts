/**
 * Class-clustered episodes (lib/data/clustered-sampler.ts) and MAML meta-batches
 * from one cluster (lib/maml/cluster.ts), on the embedded Omniglot.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { loadOmniglot } from '../lib/data/omniglot.js';
import { getSplit } from '../lib/data/splits.js';
import { EpisodeSampler } from '../lib/data/sampler.js';
import { ClusteredEpisodeSampler, clusterClasses } from '../lib/data/clustered-sampler.js';
import { trainMamlBatched } from '../lib/maml/cluster.js';

const data = loadOmniglot({ imageSize: 28 });
const train = getSplit(data, 'vinyals', 'train');
const alphabetOf = (c: { character: number }): string => data.characters[c.character]!.alphabet;

test('alphabet clusters: every episode draws its classes from one alphabet; random access; same layout as EpisodeSampler', () => {
  const ids = clusterClasses(train, { by: 'alphabet' });
  const alphabets = new Set(train.classes.map(alphabetOf));
  assert.is(new Set(ids).size, alphabets.size);
  const s = new ClusteredEpisodeSampler(train, { way: 5, shot: 1, query: 2, seed: 4 }, ids);
  for (let i = 0; i < 30; i++) {
    const d = s.draw(i);
    assert.is(new Set(d.classes.map(alphabetOf)).size, 1, `episode ${i} mixes alphabets`);
    assert.equal(s.drawIn(s.clusterOf(i), i), d);
  }
  const ep = s.episode(3), ref = new EpisodeSampler(train, { way: 5, shot: 1, query: 2, seed: 4 }).episode(3);
  assert.equal(ep.support.shape, ref.support.shape);
  assert.equal(Array.from(ep.queryLabels), Array.from(ref.queryLabels));
  const c = s.clusterOf(7), e2 = s.episodeInCluster(c, 7);
  assert.equal(Array.from(e2.support.data), Array.from(s.episode(7).support.data), 'episodeInCluster(clusterOf(i), i) = episode(i)');
  // a 60-way episode cannot come from any alphabet of the train split smaller than 60 classes: such clusters are skipped
  const big = new ClusteredEpisodeSampler(train, { way: 60, shot: 1, query: 1, seed: 1 }, ids);
  assert.ok(big.usable.every((k) => big.clusters[k]!.length >= 60));
});

test('embedding clusters: k-means on mean images, k clusters, deterministic, clear errors', () => {
  const a = clusterClasses(train, { by: 'embedding', k: 12, seed: 3 });
  assert.is(new Set(a).size, 12);
  assert.equal(Array.from(clusterClasses(train, { by: 'embedding', k: 12, seed: 3 })), Array.from(a));
  assert.throws(() => clusterClasses(train, { by: 'embedding', k: 0 }), /k must be an integer/);
  assert.throws(() => new ClusteredEpisodeSampler(train, { way: 5, shot: 1, query: 1, seed: 0 }, a.subarray(1)), /ids for the 4112 classes/);
});

test('MAML meta-batches, random vs one cluster: both run the requested meta-steps and validate on held-out episodes', () => {
  const device = getDevice('cpu-ts');
  const cfg = { model: { channels: 4, imageSize: 28 }, way: 3, innerSteps: 2, innerLr: 0.5 };
  const spec = { way: 3, shot: 1, query: 2, seed: 1 };
  const val = Array.from({ length: 4 }, (_, i) => new EpisodeSampler(getSplit(data, 'vinyals', 'val'), { ...spec, seed: 9 }).episode(i));
  const clustered = new ClusteredEpisodeSampler(train, spec, clusterClasses(train, { by: 'alphabet' }));
  for (const mode of ['random', 'cluster'] as const) {
    const r = trainMamlBatched({ device, cfg, order: 'first-order', metaBatch: 2, mode, random: new EpisodeSampler(train, spec), clustered, seed: 0, steps: 6, val, optimizer: { name: 'adam', lr: 3e-3 } });
    assert.is(r.steps, 6);
    assert.is(r.vals.length, 2);
    assert.ok(r.vals.every((v) => Number.isFinite(v.loss)));
  }
});

test.run();
