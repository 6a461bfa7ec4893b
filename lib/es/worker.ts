/**
 * ES worker thread: owns one population evaluator (loaded from the spec the
 * main thread chose) and serves evaluate / noise / validate messages. See pool.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import '../index.js';
import { getDevice } from '../device/registry.js';
import { DirectOps } from '../ops/api.js';
import { ProtoNetLayout, type BnState, type ModelConfig } from '../model/layout.js';
import type { Distance, Episode } from '../model/protonet.js';
import { loadEvaluator, type EvaluatorSpec } from './evaluators.js';
import type { Perturbation, PopulationEvaluator } from './population.js';
import { accumulate, CTL_ABORT, CTL_TURN } from './pool.js';
import { episodeFromWire, scoreEpisode, type WireEpisode } from './validate.js';

const port = parentPort;
if (!port) throw new Error('lib/es/worker.js must run as a worker thread');
const { spec } = workerData as { spec: EvaluatorSpec; index: number };

let evaluator: PopulationEvaluator | null = null;
let shared: { mu: Float32Array; fit: Float64Array; acc: Float64Array; ctl: Int32Array } | null = null;
let mu = new Float32Array(0);
let valEpisodes: Episode[] = [];
let ops: DirectOps | null = null;

function localMu(): Float32Array {
  if (!shared) throw new Error('no shared buffers');
  if (mu.length !== shared.mu.length) mu = new Float32Array(shared.mu.length);
  mu.set(shared.mu);
  return mu;
}

function waitTurn(ctl: Int32Array, turn: number): void {
  for (;;) {
    if (Atomics.load(ctl, CTL_ABORT) !== 0) throw new Error('aborted: another worker failed');
    const t = Atomics.load(ctl, CTL_TURN);
    if (t === turn) return;
    Atomics.wait(ctl, CTL_TURN, t, 1000);
  }
}

type Msg =
  | { type: 'init'; id: number }
  | { type: 'buffers'; mu: Float32Array; fit: Float64Array; acc: Float64Array; ctl: Int32Array }
  | { type: 'evaluate'; id: number; model: ModelConfig; perturbation: Perturbation; seed: number; step: number; episode: WireEpisode; distance: Distance; start: number; end: number }
  | { type: 'noise'; id: number; seed: number; step: number; antithetic: boolean; sigma: number; shards: Array<{ index: number; start: number; weights: Float64Array }> }
  | { type: 'valset'; id: number; episodes: WireEpisode[] }
  | { type: 'validate'; id: number; model: ModelConfig; params: Float32Array; bn: BnState; distance: Distance };

async function handle(m: Msg): Promise<Record<string, unknown> | null> {
  switch (m.type) {
    case 'buffers':
      shared = { mu: m.mu, fit: m.fit, acc: m.acc, ctl: m.ctl };
      return null;
    case 'init':
      evaluator = await loadEvaluator(spec);
      return {};
    case 'evaluate': {
      const f = await evaluator!.evaluate({
        model: m.model, mu: localMu(), perturbation: m.perturbation, seed: m.seed, step: m.step,
        start: m.start, end: m.end, episode: episodeFromWire(m.episode), distance: m.distance,
      });
      shared!.fit.set(f, m.start);
      return {};
    }
    case 'noise': {
      const x = localMu();
      for (const s of m.shards) {
        const partial = await evaluator!.noiseSum({ mu: x, seed: m.seed, step: m.step, antithetic: m.antithetic, sigma: m.sigma, start: s.start, weights: s.weights });
        waitTurn(shared!.ctl, s.index);
        accumulate(shared!.acc, partial);
        Atomics.store(shared!.ctl, CTL_TURN, s.index + 1);
        Atomics.notify(shared!.ctl, CTL_TURN);
      }
      return {};
    }
    case 'valset':
      valEpisodes = m.episodes.map(episodeFromWire);
      return {};
    case 'validate': {
      ops ??= new DirectOps(getDevice(spec.device));
      const layout = new ProtoNetLayout(m.model);
      return { scores: valEpisodes.map((ep) => scoreEpisode(ops!, layout, m.params, m.bn, ep, m.distance)) };
    }
  }
}

// 'close' (from WorkerRunner.close) jumps the queue: the evaluator cancels its work in flight
// (native calls stop within one member), the handler in progress settles, then 'closed' tells
// the runner that no native work is left and the thread can be terminated.
async function closeWorker(): Promise<void> {
  try {
    await evaluator?.close?.();
  } catch {
    // closing is best effort; the runner terminates the thread either way
  }
  await chain;
  port!.postMessage({ type: 'closed' });
}

// Messages are handled one at a time, in order.
let chain = Promise.resolve();
port.on('message', (m: Msg | { type: 'close' }) => {
  if (m.type === 'close') {
    void closeWorker();
    return;
  }
  chain = chain.then(async () => {
    try {
      const r = await handle(m);
      if (r && 'id' in m) port.postMessage({ type: 'done', id: m.id, bytes: evaluator?.workingBytes?.() ?? 0, ...r });
    } catch (e) {
      const err = e as Error;
      if ('id' in m) port.postMessage({ type: 'error', id: m.id, message: err.message, stack: err.stack });
    }
  });
});
