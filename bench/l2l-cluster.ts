/**
 * Item 4 of the seed study: the same clustering for our other meta-learners.
 * MAML-style learner (lib/maml: ConvNet-4 encoder + adapted linear head) with
 * meta-batches of episodes whose classes come from one cluster (by alphabet,
 * or by k-means on mean images) against random episodes; ES-ProtoNet (lib/es)
 * trained on clustered against random episodes. Same budget of training
 * wall-clock each, same validation episodes (random classes of the val split);
 * records accuracy against training time and CPU time.
 *
 *   node dist/bench/l2l-cluster.js [--budget 60] [--seeds 1]
 *
 * Writes bench/results/l2l/cluster-episodes.json, .md and .svg.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import '../lib/index.js';
import { arg } from './common.js';
import { lineChart, machine, renderSvg } from './l2l-common.js';
import { getDevice } from '../lib/device/registry.js';
import { loadOmniglot } from '../lib/data/omniglot.js';
import { getSplit } from '../lib/data/splits.js';
import { EpisodeSampler } from '../lib/data/sampler.js';
import { ClusteredEpisodeSampler, clusterClasses, type ClassClustering } from '../lib/data/clustered-sampler.js';
import { trainMamlBatched } from '../lib/maml/cluster.js';
import { ProtoNetEsMethod } from '../lib/methods/protonet-es/method.js';

const budget = Number(arg('budget', '60')), seeds = Number(arg('seeds', '1'));
const m0 = machine();
console.error(`clustered episodes: MAML and ES-ProtoNet, ${budget} s each; machine ${JSON.stringify(m0)}`);
const data = loadOmniglot({ imageSize: 28 });
const train = getSplit(data, 'vinyals', 'train'), valSplit = getSplit(data, 'vinyals', 'val');
const spec = { way: 5, shot: 1, query: 5 };
const assignments: Record<ClassClustering, Int32Array> = { alphabet: clusterClasses(train, { by: 'alphabet' }), embedding: clusterClasses(train, { by: 'embedding', k: 30, seed: 0 }) };
const modes: { name: string; by: ClassClustering | null }[] = [{ name: 'random', by: null }, { name: 'alphabet', by: 'alphabet' }, { name: 'embedding', by: 'embedding' }];
const rows: Record<string, unknown>[] = [];
const chart: Record<string, unknown>[] = [];

for (let seed = 0; seed < seeds; seed++) {
  // MAML-style learner: C = 8, 5-way 1-shot, 5 inner steps, meta-batch 4, Adam 1e-3.
  const val = Array.from({ length: 40 }, (_, i) => new EpisodeSampler(valSplit, { ...spec, seed: 1000 + seed }).episode(i));
  for (const m of modes) {
    const c0 = process.cpuUsage();
    const clustered = m.by ? new ClusteredEpisodeSampler(train, { ...spec, seed }, assignments[m.by]) : undefined;
    const r = trainMamlBatched({
      device: getDevice(), cfg: { model: { channels: 8, imageSize: 28 }, way: 5, innerSteps: 5, innerLr: 0.5 }, order: 'second-order', metaBatch: 4,
      mode: m.by ? 'cluster' : 'random', random: new EpisodeSampler(train, { ...spec, seed }), ...(clustered ? { clustered } : {}),
      seed, steps: 1e9, maxSeconds: budget, val, valEverySeconds: budget / 6,
    });
    const c = process.cpuUsage(c0);
    const last = r.vals[r.vals.length - 1]!;
    rows.push({ learner: 'MAML', episodes: m.name, seed, steps: r.steps, trainSeconds: r.trainSeconds, cpuSecondsTotal: (c.user + c.system) / 1e6, finalAccuracy: last.accuracy, bestAccuracy: Math.max(...r.vals.map((v) => v.accuracy)), vals: r.vals });
    for (const v of r.vals) if (seed === 0) chart.push({ series: `MAML ${m.name}`, 'training seconds': v.trainSeconds, accuracy: v.accuracy });
    console.error(`MAML ${m.name} seed ${seed}: ${r.steps} meta-steps, val accuracy ${last.accuracy.toFixed(3)}`);
  }
  // ES-ProtoNet: the quick preset's maths (WSR, pop 32, C = 16, SGD momentum 0.9 lr 0.1), 5-way 1-shot training episodes.
  for (const m of modes.filter((x) => x.by !== 'embedding')) {
    const trainSrc = m.by ? new ClusteredEpisodeSampler(train, { ...spec, seed }, assignments[m.by]) : new EpisodeSampler(train, { ...spec, seed });
    const t = await ProtoNetEsMethod.create({ model: { channels: 16, imageSize: 28 }, pop: 32, shards: 2, workers: 1, sigma: 0.01, lr: 0.1, optimizer: 'sgd', momentum: 0.9, train: spec, val: spec, seed, steps: 1e9, valEpisodes: 0 } as never, { train: trainSrc });
    try {
      const vals: { trainSeconds: number; accuracy: number; step: number }[] = [];
      const valSrc = { episode: (i: number) => val[i]! };
      let train_ = 0, lastVal = -Infinity, steps = 0;
      const c0 = process.cpuUsage();
      const doVal = async (): Promise<void> => { const v = await t.evaluateOn(valSrc, val.length); vals.push({ trainSeconds: train_, accuracy: v.acc, step: steps }); lastVal = train_; };
      await doVal();
      while (train_ < budget) {
        const t0 = performance.now();
        await t.trainStep();
        steps++;
        train_ += (performance.now() - t0) / 1000;
        if (train_ - lastVal >= budget / 6) await doVal();
      }
      if (lastVal < train_) await doVal();
      const c = process.cpuUsage(c0);
      const last = vals[vals.length - 1]!;
      rows.push({ learner: 'ES-ProtoNet', episodes: m.name, seed, steps, trainSeconds: train_, cpuSecondsTotal: (c.user + c.system) / 1e6, finalAccuracy: last.accuracy, bestAccuracy: Math.max(...vals.map((v) => v.accuracy)), vals });
      for (const v of vals) if (seed === 0) chart.push({ series: `ES-ProtoNet ${m.name}`, 'training seconds': v.trainSeconds, accuracy: v.accuracy });
      console.error(`ES-ProtoNet ${m.name} seed ${seed}: ${steps} steps, val accuracy ${last.accuracy.toFixed(3)}`);
    } finally {
      await t.close();
    }
  }
}

const m1 = machine();
const dir = 'bench/results/l2l';
mkdirSync(dir, { recursive: true });
const out = { bench: 'l2l-cluster-episodes', command: `node dist/bench/l2l-cluster.js ${process.argv.slice(2).join(' ')}`.trim(), budget, seeds, spec, clusters: { alphabet: new Set(assignments.alphabet).size, embedding: new Set(assignments.embedding).size }, machineStart: m0, machineEnd: m1, rows };
writeFileSync(`${dir}/cluster-episodes.json`, JSON.stringify(out, null, 1));
const md = [`# Clustered vs random episodes for MAML and ES-ProtoNet (${m0.time})`, '', `Command: \`${out.command}\`. 5-way 1-shot 5-query training episodes from the Vinyals train split; classes random, from one alphabet (${out.clusters.alphabet} clusters), or from one k-means cluster of mean images (${out.clusters.embedding} clusters); validation: the same 40 random-class episodes of the val split for every run. ${budget} s of training wall-clock per run; machine load average ${m0.loadavg.join('/')} at start, ${m1.loadavg.join('/')} at end (2 CPUs, shared).`, '', '| learner | episodes | seed | steps in budget | final val accuracy | best val accuracy |', '|---|---|---|---|---|---|'];
for (const r of rows) md.push(`| ${r['learner']} | ${r['episodes']} | ${r['seed']} | ${r['steps']} | ${((r['finalAccuracy'] as number) * 100).toFixed(1)}% | ${((r['bestAccuracy'] as number) * 100).toFixed(1)}% |`);
writeFileSync(`${dir}/cluster-episodes.md`, md.join('\n') + '\n');
writeFileSync(`${dir}/cluster-episodes.svg`, await renderSvg(lineChart('Validation accuracy (random-class val episodes) vs training seconds', 'training seconds', 'accuracy', chart)));
console.log(md.join('\n'));
