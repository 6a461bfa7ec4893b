/**
 * The learned optimizer's meta-training as a TrainMethod: task clustering and
 * meta-batch sampling, the exact state round trip (save after k steps, load
 * into a fresh instance, continue: bitwise equal to the uninterrupted run),
 * and results that do not depend on the worker count.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/index.js';
import { L2lMethod } from '../lib/l2l/method.js';
import { clusterTasks, MetaBatchSampler, standardize, taskFeatures } from '../lib/l2l/cluster.js';
import { QuadraticFamily, DEFAULT_QUADRATIC } from '../lib/l2l/tasks/quadratic.js';
import { resolveL2lConfig, type L2lConfigInput } from '../lib/l2l/config.js';
import { Rng } from '../lib/rng/philox.js';
import { l2lConfigFromOptions } from '../lib/l2l/options.js';
import { viaFile } from './helpers/method-state.js';

const small: L2lConfigInput = {
  family: { family: 'quadratic', dims: [3, 5], scales: [0.5, 2] }, lstm: { hidden: 6 }, horizon: 6, unroll: 2,
  metaBatch: 4, groupSize: 2, poolSize: 16, valTasks: 4, steps: 100, seed: 3, batchMode: 'cluster', clusters: 4,
};

/** Share of tasks whose cluster's majority label is their own. */
function purity(assignment: ArrayLike<number>, labels: readonly string[]): number {
  const by = new Map<number, Map<string, number>>();
  labels.forEach((l, i) => {
    const c = assignment[i]!;
    let m = by.get(c);
    if (!m) by.set(c, (m = new Map()));
    m.set(l, (m.get(l) ?? 0) + 1);
  });
  let hit = 0;
  for (const m of by.values()) hit += Math.max(...m.values());
  return hit / labels.length;
}

test('clustering the quadratic mixture by features at init: shapes never mixed, scales mostly recovered', () => {
  const fam = new QuadraticFamily({ ...DEFAULT_QUADRATIC, dims: [5, 10, 20], scales: [0.5, 1, 2] });
  const tasks = Array.from({ length: 270 }, (_, i) => fam.task('train', i));
  const keys = tasks.map((t) => t.shapeKey);
  const c = clusterTasks(tasks.map(taskFeatures), 9, 1, keys);
  assert.is(c.k, 9);
  assert.is(c.sizes.reduce((a, b) => a + b), 270);
  for (let k = 0; k < c.k; k++) assert.is(new Set(tasks.filter((_, i) => c.assignment[i] === k).map((t) => t.n)).size, 1, `cluster ${k} mixes dimensions`);
  const labels = tasks.map((t) => `${t.n}/${t.scale}`);
  const p = purity(c.assignment, labels);
  // control: the same cluster sizes within each dimension, assigned at random
  const rng = new Rng(2);
  const shuffled = Int32Array.from(c.assignment);
  for (const n of [5, 10, 20]) {
    const idx = tasks.map((t, i) => (t.n === n ? i : -1)).filter((i) => i >= 0);
    const vals = idx.map((i) => shuffled[i]!);
    rng.shuffle(vals);
    idx.forEach((i, j) => { shuffled[i] = vals[j]!; });
  }
  const chance = purity(shuffled, labels);
  console.log(`  [l2l] purity of 9 clusters on the 9-component quadratic mixture: ${p.toFixed(3)} (random assignment within each dimension: ${chance.toFixed(3)})`);
  assert.ok(p > chance + 0.15, `purity ${p} vs chance ${chance}`);
  assert.equal(Array.from(clusterTasks(tasks.map(taskFeatures), 9, 1, keys).assignment), Array.from(c.assignment), 'deterministic for a seed');
  assert.throws(() => clusterTasks(tasks.map(taskFeatures), 2, 1, keys), /3 task shapes; k must be at least that/);
});

test('standardize drops constant columns; meta-batches: random distinct, clustered from one cluster, random access', () => {
  assert.equal(standardize([[1, 5, 0], [3, 5, 0]]), [[-1], [1]]);
  const assignment = Int32Array.from({ length: 40 }, (_, i) => i % 4);
  const clustering = { k: 4, assignment, sizes: [10, 10, 10, 10], iterations: 1, converged: true };
  const cs = new MetaBatchSampler(40, 6, 'cluster', 9, clustering), rs = new MetaBatchSampler(40, 6, 'random', 9);
  for (let e = 0; e < 20; e++) {
    const b = cs.draw(e);
    assert.ok(b.tasks.every((t) => assignment[t] === b.cluster), 'one cluster');
    assert.is(new Set(b.tasks).size, 6);
    assert.equal(cs.draw(e), b, 'random access');
    const r = rs.draw(e);
    assert.is(new Set(r.tasks).size, 6);
    assert.is(r.cluster, -1);
  }
  assert.throws(() => new MetaBatchSampler(4, 5, 'random', 0), /meta-batch size must be an integer in \[1, 4\]/);
});

test('config: presets, clear errors naming the option', () => {
  const c = resolveL2lConfig({}, 'quadratic');
  assert.is(c.family.family, 'quadratic');
  assert.equal((c.family as { dims: number[] }).dims, [10]);
  assert.is(resolveL2lConfig({}, 'quadratic-mix').batchMode, 'cluster');
  assert.throws(() => resolveL2lConfig({ metaBatch: 8, groupSize: 3 }), /groupSize \(--group-size\) must divide the meta-batch 8/);
  assert.throws(() => resolveL2lConfig({ batchMode: 'cluster', clusters: 1 }), /--cluster/);
  assert.throws(() => resolveL2lConfig({}, 'nope'), /--preset/);
  assert.throws(() => resolveL2lConfig({ family: { family: 'quadratic', dims: [0] } }), /dims must be a non-empty list/);
});

function bits(a: Float32Array): number[] { return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length)); }


for (const trainer of ['bptt', 'es'] as const) {
  test(`exact resume (${trainer}): save after 4 steps (mid-trajectory), load into a fresh instance, continue = uninterrupted`, async () => {
    const cfg: L2lConfigInput = { ...small, trainer, es: { pop: 4, sigma: 0.05, antithetic: true } };
    const a = await L2lMethod.create(cfg);
    for (let i = 0; i < 4; i++) await a.trainStep();
    const saved = viaFile(a.saveState());
    for (let i = 0; i < 3; i++) await a.trainStep();
    const b = await L2lMethod.create(cfg);
    b.loadState(saved);
    assert.is(b.step, 4);
    for (let i = 0; i < 3; i++) await b.trainStep();
    assert.equal(bits(b.phi), bits(a.phi));
    assert.equal(JSON.stringify(b.saveState().meta), JSON.stringify(a.saveState().meta));
    for (const [k, v] of Object.entries(a.saveState().tensors)) assert.equal(bits(b.saveState().tensors[k] as Float32Array), bits(v as Float32Array), k);
    const v = await a.validate();
    assert.ok(Number.isFinite(v.score));
    await a.close();
    await b.close();
  });
}

test('a state from another configuration is refused, naming what differs', async () => {
  const a = await L2lMethod.create(small);
  const b = await L2lMethod.create({ ...small, metaLr: 0.01 });
  assert.throws(() => b.loadState(a.saveState()), /another configuration/);
});

test('worker threads do not change the result (bptt groups and es members)', async () => {
  for (const trainer of ['bptt', 'es'] as const) {
    const cfg: L2lConfigInput = { ...small, trainer, es: { pop: 4, sigma: 0.05, antithetic: true } };
    const one = await L2lMethod.create(cfg), two = await L2lMethod.create(cfg, undefined, { workers: 2 });
    try {
      for (let i = 0; i < 3; i++) {
        const m1 = await one.trainStep(), m2 = await two.trainStep();
        assert.is(m1!.loss, m2!.loss, `${trainer} step ${i} loss`);
      }
      assert.equal(bits(two.phi), bits(one.phi), `${trainer}: phi`);
    } finally {
      await one.close();
      await two.close();
    }
  }
});

test('an aborted step leaves the state unchanged', async () => {
  const a = await L2lMethod.create(small);
  await a.trainStep();
  const before = JSON.stringify(a.saveState().meta);
  const ctl = new AbortController();
  ctl.abort();
  assert.is(await a.trainStep(ctl.signal), null);
  assert.is(JSON.stringify(a.saveState().meta), before);
});


test('every optimizee family runs meta-steps and validates (small MLP and ProtoNet on the embedded Omniglot)', async () => {
  for (const [family, extra] of [['mlp', { hidden: [4], imageSize: 14, classes: 3, batch: 8 }], ['protonet', { channels: [2], way: 3, shot: 1, query: 2, evalEpisodes: 2 }]] as const) {
    const m = await L2lMethod.create({ family: { family, ...extra } as never, lstm: { hidden: 4 }, horizon: 4, unroll: 2, metaBatch: 2, groupSize: 2, poolSize: 4, valTasks: 2, steps: 10, batchMode: 'cluster', clusters: 2 }, family);
    try {
      const before = m.phi.slice();
      for (let i = 0; i < 2; i++) assert.ok(Number.isFinite((await m.trainStep())!.loss), `${family}: finite meta-loss`);
      assert.ok(m.phi.some((v, i) => v !== before[i]), `${family}: phi moved`);
      const v = await m.validate();
      assert.ok(v.accuracy !== undefined && v.score === v.accuracy && v.score >= 0 && v.score <= 1, `${family}: score is held-out accuracy`);
    } finally {
      await m.close();
    }
  }
});


test('CLI options become a config input; --cluster k picks clustered batches; errors name the option', () => {
  const input = l2lConfigFromOptions({ family: 'quadratic', cluster: '9', metaBatch: '8', groupSize: '4', dims: '5,10,20', scales: '0.5,1,2', steps: '50' });
  const c = resolveL2lConfig(input, 'quadratic');
  assert.is(c.batchMode, 'cluster');
  assert.is(c.clusters, 9);
  assert.equal((c.family as { dims: number[] }).dims, [5, 10, 20]);
  assert.is(resolveL2lConfig(l2lConfigFromOptions({ cluster: '0' }), 'quadratic-mix').batchMode, 'random');
  assert.throws(() => l2lConfigFromOptions({ family: 'cnn' }), /--family: expected one of quadratic, mlp, protonet/);
  assert.throws(() => l2lConfigFromOptions({ cluster: '1' }), /--cluster: k must be 0/);
  assert.throws(() => l2lConfigFromOptions({ dims: '5,x' }), /--dims: expected an integer/);
  assert.throws(() => l2lConfigFromOptions({ metaLr: '-1' }), /--meta-lr/);
});

test.run();
