/**
 * The population loop's per-episode plan, shared by every thread of the process, and the mean
 * model's batch statistics (PopulationEvaluator.batchStats) on cpu-native: the statistics and
 * loss against the reference forward (cpu-ts), the running-statistics update against trackStats,
 * and the plan cache's correctness (content-keyed, one entry serving fp32 and bf16 callers,
 * prepare changing nothing but time); and the noise store (a noise sum after the evaluation of
 * its members reads their kept noise: bit for bit the regenerated sum of the TypeScript spec).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/index.js';
import { NativePopulationEvaluator, nativeInfo } from '../lib/device/cpu-native/index.js';
import { addon } from '../lib/device/cpu-native/addon.js';
import { DirectOpsPopulationEvaluator } from '../lib/es/population-ts.js';
import type { NoiseSumRequest, PopulationRequest } from '../lib/es/population.js';
import { noiseSumInto } from '../lib/es/noise.js';
import { initialBnState, ProtoNetLayout, type ModelConfig } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { applyBatchStats, episodeLoss, type Episode } from '../lib/model/protonet.js';
import { DirectOps } from '../lib/ops/api.js';
import { getDevice } from '../lib/device/registry.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { needs, nativeAddon } from './helpers/peers.js';

const native = await nativeAddon();
const withAddon = needs(native, 'native-plan: the addon');
const MODEL: ModelConfig = { channels: 8, imageSize: 20, inChannels: 1, blocks: 3, bnEps: 1e-5, bnMomentum: 0.1 };
const layout = new ProtoNetLayout(MODEL);
const source = new SyntheticEpisodes({ way: 4, shot: 3, query: 2, imageSize: MODEL.imageSize, seed: 5 });

/** Parameters with non-zero conv biases (the running means see them; the batch-mode loss does not). */
function params(seed: number): Float32Array {
  const mu = initParams(layout, seed);
  for (let i = 0; i < mu.length; i++) mu[i] = mu[i]! + 0.02 * Math.sin(0.37 * i + seed);
  return mu;
}

function copyEpisode(ep: Episode): Episode {
  return { ...ep, support: new Tensor(Float32Array.from(ep.support.data), ep.support.shape), query: new Tensor(Float32Array.from(ep.query.data), ep.query.shape) };
}

function request(mu: Float32Array, episode: Episode, step = 3): PopulationRequest {
  return { model: MODEL, mu, perturbation: { kind: 'gaussian', sigma: 0.05, antithetic: true }, seed: 9, step, start: 0, end: 6, episode, distance: 'euclidean' };
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, rel: number, what: string): void {
  assert.is(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!), scale = Math.max(1e-3, Math.abs(b[i]!));
    assert.ok(d <= rel * scale, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

withAddon('batchStats: cpu-native gives the reference forward\'s batch means (bias included), biased variances and loss, in fp32 whatever its precision', () => {
  const ref = new DirectOpsPopulationEvaluator('cpu-ts');
  const kernels = [undefined, ...nativeInfo().bf16.available];
  for (let k = 0; k < 3; k++) {
    const mu = params(k), ep = source.episode(k);
    const want = ref.batchStats({ model: MODEL, mu, episode: ep, distance: 'euclidean' });
    for (const kernel of kernels) {
      const got = new NativePopulationEvaluator({ threads: 1, ...(kernel ? { precision: 'bf16' as const, bf16Kernel: kernel } : {}) }).batchStats({ model: MODEL, mu, episode: ep, distance: 'euclidean' });
      close(got.mean, want.mean, 1e-5, `episode ${k} mean`);
      close(got.variance, want.variance, 1e-5, `episode ${k} variance`);
      assert.ok(Math.abs(got.loss - want.loss) <= 1e-5 * Math.abs(want.loss), `episode ${k} loss ${got.loss} vs ${want.loss}`);
    }
  }
});

test('applyBatchStats: the reference evaluator\'s statistics give exactly the trackStats update (PyTorch\'s, unbiased variance)', () => {
  const ops = new DirectOps(getDevice('cpu-ts'));
  const ref = new DirectOpsPopulationEvaluator('cpu-ts');
  const a = initialBnState(layout), b = initialBnState(layout);
  for (let k = 0; k < 3; k++) {
    const mu = params(k), ep = source.episode(k);
    episodeLoss(ops, layout, mu, a, ep, { bn: 'batch', trackStats: a, distance: 'euclidean' });
    applyBatchStats(layout, b, ref.batchStats({ model: MODEL, mu, episode: ep, distance: 'euclidean' }), ep.support.shape[0]! + ep.query.shape[0]!);
  }
  assert.equal(Array.from(b.buffers), Array.from(a.buffers));
  assert.is(b.numBatchesTracked, a.numBatchesTracked);
  assert.throws(() => applyBatchStats(layout, b, { mean: new Float64Array(3), variance: new Float64Array(3) }, 10), /blocks \* channels = 24/);
});

withAddon('the shared plan: keyed by the episode\'s content (an image changed in place is a new plan), so interleaved episodes give a fresh evaluator\'s fitness', async () => {
  const mu = params(1);
  const fresh = async (ep: Episode): Promise<number[]> => Array.from(await new NativePopulationEvaluator({ threads: 1 }).evaluate(request(mu, copyEpisode(ep))));
  const ev = new NativePopulationEvaluator({ threads: 1 });
  const eps = [0, 1, 2, 3, 4, 5].map((i) => copyEpisode(source.episode(i)));
  const first = await fresh(eps[0]!);
  // more episodes than the cache keeps, then the first again
  for (const ep of [...eps, eps[0]!, eps[3]!, eps[0]!]) assert.equal(Array.from(await ev.evaluate(request(mu, ep))), await fresh(ep));
  // the same array objects, one pixel changed
  eps[0]!.query.data[7] = 1 - eps[0]!.query.data[7]!;
  const changed = Array.from(await ev.evaluate(request(mu, eps[0]!)));
  assert.not.equal(changed, first);
  assert.equal(changed, await fresh(eps[0]!));
  // and across the pool (threads 2) too
  assert.equal(Array.from(await new NativePopulationEvaluator({ threads: 2 }).evaluate(request(mu, eps[0]!))), changed);
});

withAddon('the shared plan: fp32 and every bf16 kernel share an episode\'s entry without changing one another\'s fitness; prepare changes nothing', async () => {
  const mu = params(2), ep = copyEpisode(source.episode(11));
  const kernels = nativeInfo().bf16.available;
  const run = async (k?: (typeof kernels)[number], prepared = false): Promise<number[]> => {
    const ev = new NativePopulationEvaluator({ threads: 1, ...(k ? { precision: 'bf16' as const, bf16Kernel: k } : {}) });
    if (prepared) ev.prepare({ model: MODEL, episode: ep, ...(k ? { precision: 'bf16' as const } : {}) });
    return Array.from(await ev.evaluate(request(mu, ep)));
  };
  const fp32 = await run();
  const bf16 = [];
  for (const k of kernels) bf16.push(await run(k));
  assert.equal(await run(), fp32, 'fp32 after the bf16 callers');
  for (let i = 0; i < kernels.length; i++) assert.equal(await run(kernels[i]), bf16[i], `${kernels[i]} again`);
  const other = copyEpisode(source.episode(12));
  const ev = new NativePopulationEvaluator({ threads: 1 });
  ev.prepare({ model: MODEL, episode: other });
  assert.equal(Array.from(await ev.evaluate(request(mu, other))), Array.from(await new NativePopulationEvaluator({ threads: 2 }).evaluate(request(mu, copyEpisode(other)))));
  assert.equal(await run(undefined, true), fp32, 'fp32, prepared');
});

withAddon('the noise store: noise sums after the evaluation of their members (any range, antithetic or not, linear, per-parameter sigmas, square) equal the spec bit for bit', async () => {
  const mu = params(3), ep = source.episode(2);
  const d = mu.length;
  const sigmas = Float32Array.from({ length: d }, (_, j) => 0.01 + 0.001 * (j % 7));
  for (const antithetic of [true, false]) {
    for (const [start, end] of [[0, 8], [3, 10], [5, 6]] as const) {
      for (const threads of [1, 2]) {
        const ev = new NativePopulationEvaluator({ threads });
        for (const pert of [{ kind: 'gaussian' as const, sigma: 0.05, antithetic }, { kind: 'diagonal' as const, sigmas, antithetic }]) {
          const step = 40 + start + (antithetic ? 100 : 0) + threads * 1000 + (pert.kind === 'diagonal' ? 10000 : 0);
          await ev.evaluate({ model: MODEL, mu, perturbation: pert, seed: 21, step, start, end, episode: ep, distance: 'euclidean' });
          const weights = Float64Array.from({ length: end - start }, (_, i) => Math.sin(i + 1) / 3);
          for (const kind of ['linear', 'square'] as const) {
            // the whole range, and a part of it (a shard of the call)
            for (const [a, b] of [[start, end], [start + 1, end]] as const) {
              if (b <= a) continue;
              const req: NoiseSumRequest = { mu, seed: 21, step, antithetic, sigma: 0.05, ...(pert.kind === 'diagonal' ? { sigmas } : {}), kind, start: a, weights: weights.subarray(a - start, b - start) };
              const want = new Float64Array(d);
              noiseSumInto(want, req, new Float32Array(d));
              const got = await ev.noiseSum(req);
              assert.equal(Array.from(got), Array.from(want), `${pert.kind} ${kind} antithetic ${antithetic} [${a}, ${b}) of [${start}, ${end}), ${threads} thread(s)`);
            }
          }
        }
      }
    }
  }
});

withAddon('the boundary: populationBatchStats refuses wrong-sized outputs and populationPreparePlan bad episodes, naming the field', () => {
  const ep = source.episode(0);
  const base = {
    blocks: MODEL.blocks, inChannels: 1, imageSize: MODEL.imageSize, channels: MODEL.channels, bnEps: 1e-5, way: ep.way,
    supportCount: ep.support.shape[0], queryCount: ep.query.shape[0], support: ep.support.data, query: ep.query.data,
    supportLabels: ep.supportLabels, queryLabels: ep.queryLabels, distance: 'euclidean', cosineScale: 1,
  };
  const n = MODEL.blocks * MODEL.channels;
  assert.throws(() => addon().populationBatchStats({ ...base, mu: params(0), mean: new Float64Array(n - 1), variance: new Float64Array(n) }), /'mean' must have blocks \* channels = 24/);
  assert.throws(() => addon().populationBatchStats({ ...base, mu: params(0), mean: new Float64Array(n), variance: new Float32Array(n) }), /variance/);
  assert.throws(() => addon().populationBatchStats({ ...base, mu: new Float32Array(5), mean: new Float64Array(n), variance: new Float64Array(n) }), /mu/);
  assert.throws(() => addon().populationPreparePlan({ ...base, supportLabels: new Int32Array(ep.support.shape[0]!) }), /class 1 has no support example/);
  assert.throws(() => new NativePopulationEvaluator({ threads: 1 }).batchStats({ model: MODEL, mu: new Float32Array(3), episode: ep, distance: 'euclidean' }), /parameter vector has 3 elements/);
});

test.run();
