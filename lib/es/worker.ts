/**
 * ES worker thread: owns one population evaluator (loaded from the spec the
 * main thread chose) and serves evaluate / noise / estimate / validate
 * messages, one at a time, in order. See lib/es/worker-runner.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import '../index.js';
import { getDevice } from '../device/registry.js';
import { DirectOps } from '../ops/api.js';
import { ProtoNetLayout, type BnState, type ModelConfig } from '../model/layout.js';
import type { Distance, Episode } from '../model/protonet.js';
import { loadEvaluator, type EvaluatorSpec } from './evaluators.js';
import type { WeightRule } from './estimators.js';
import type { Perturbation, PopulationEvaluator } from './population.js';
import { accumulate, evaluateMembers, shardEstimate, type EvaluateJob } from './runner.js';
import { CTL_ABORT, CTL_TURN } from './worker-runner.js';
import { episodeFromWire, scoreEpisode, type WireEpisode } from './validate.js';

const port = parentPort;
if (!port) throw new Error('lib/es/worker.js must run as a worker thread');
const { spec } = workerData as { spec: EvaluatorSpec; index: number };

let evaluator: PopulationEvaluator | null = null;
let shared: { mu: Float32Array; fit: Float64Array; acc: Float64Array; acc2: Float64Array; ctl: Int32Array } | null = null;
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
    if (Atomics.load(ctl, CTL_ABORT) !== 0) throw new Error('aborted: another worker failed or the runner closed');
    const t = Atomics.load(ctl, CTL_TURN);
    if (t === turn) return;
    Atomics.wait(ctl, CTL_TURN, t, 1000);
  }
}

/** Waits for shard `turn`'s turn, adds its partial sums to the shared accumulators, passes the turn on: the sum is in shard order whatever the workers. */
function addInTurn(turn: number, linear: Float64Array, square?: Float64Array): void {
  waitTurn(shared!.ctl, turn);
  accumulate(shared!.acc, linear);
  if (square) accumulate(shared!.acc2, square);
  Atomics.store(shared!.ctl, CTL_TURN, turn + 1);
  Atomics.notify(shared!.ctl, CTL_TURN);
}

interface TaskWire {
  perturbation: Perturbation; seed: number; step: number; model?: ModelConfig; distance?: Distance; context?: unknown; episodes?: WireEpisode[];
}

function jobOf(m: TaskWire, population: number): EvaluateJob {
  return {
    mu: localMu(), perturbation: m.perturbation, seed: m.seed, step: m.step, population,
    ...(m.model ? { model: m.model } : {}), ...(m.distance ? { distance: m.distance } : {}), context: m.context,
    ...(m.episodes ? { episodes: m.episodes.map(episodeFromWire) } : {}),
  };
}

type Msg =
  | { type: 'init'; id: number }
  | { type: 'buffers'; mu: Float32Array; fit: Float64Array; acc: Float64Array; acc2: Float64Array; ctl: Int32Array }
  | ({ type: 'evaluate'; id: number; start: number; end: number } & TaskWire)
  | ({ type: 'estimate'; id: number; population: number; nshards: number; rule: WeightRule; square: boolean; shards: number[] } & TaskWire)
  | { type: 'noise'; id: number; seed: number; step: number; antithetic: boolean; sigma: number; sigmas?: Float32Array; kind?: 'linear' | 'square'; shards: Array<{ index: number; start: number; weights: Float64Array }> }
  | { type: 'valset'; id: number; episodes: WireEpisode[] }
  | { type: 'validate'; id: number; model: ModelConfig; params: Float32Array; bn: BnState; distance: Distance };

async function handle(m: Msg): Promise<Record<string, unknown> | null> {
  switch (m.type) {
    case 'buffers':
      shared = { mu: m.mu, fit: m.fit, acc: m.acc, acc2: m.acc2, ctl: m.ctl };
      return null;
    case 'init':
      evaluator = await loadEvaluator(spec);
      return {};
    case 'evaluate': {
      const f = await evaluateMembers(evaluator!, jobOf(m, m.end), m.start, m.end);
      shared!.fit.set(f, m.start);
      return {};
    }
    case 'estimate': {
      const job = { ...jobOf(m, m.population), shards: m.nshards, rule: m.rule, antithetic: m.perturbation.kind !== 'coordinate' && m.perturbation.antithetic, square: m.square };
      const per = m.population / m.nshards;
      let nonFinite = 0, degenerate = 0, evalSeconds = 0, sumSeconds = 0;
      // Compute every shard of this worker first, then add the partial sums in shard order: the
      // result is the same sum in the same order, but a worker no longer stalls after each shard
      // waiting for the other workers' earlier shards (only once, at the end of the step).
      const parts: Array<{ s: number; linear: Float64Array; square?: Float64Array }> = [];
      for (const s of m.shards) {
        const part = await shardEstimate(evaluator!, job, s);
        shared!.fit.set(part.fitness, s * per);
        parts.push({ s, linear: part.linear, ...(part.square ? { square: part.square } : {}) });
        nonFinite += part.nonFinite;
        if (part.degenerate) degenerate++;
        evalSeconds += part.evalSeconds;
        sumSeconds += part.sumSeconds;
      }
      for (const { s, linear, square } of parts) addInTurn(s, linear, square);
      return { nonFinite, degenerate, evalSeconds, sumSeconds };
    }
    case 'noise': {
      const x = localMu();
      const { shards, id: _id, type: _t, ...rest } = m;
      // As in 'estimate': all of this worker's shards first, then their sums in shard order.
      const parts: Array<{ index: number; partial: Float64Array }> = [];
      for (const s of shards) parts.push({ index: s.index, partial: await evaluator!.noiseSum({ ...rest, mu: x, start: s.start, weights: s.weights }) });
      for (const { index, partial } of parts) addInTurn(index, partial);
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
