/**
 * A worker process's compute thread: owns one population evaluator (built
 * from the spec the worker chose for the run's device, never from a module
 * named over the network) and runs whole units with the ES core's own
 * functions: shardEstimate (a shard's fitness, weights and noise sums),
 * evaluateMembers (a member range's fitness), and the evaluator's noiseSum.
 * One message at a time, in order. See lib/cluster/pool.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import '../index.js';
import { loadEvaluator, type EvaluatorSpec } from '../es/evaluators.js';
import type { PopulationEvaluator, NoiseSumRequest } from '../es/population.js';
import { evaluateMembers, shardEstimate, type EstimateJob, type EvaluateJob } from '../es/runner.js';
import { episodeFromWire, type WireEpisode } from '../es/validate.js';

const port = parentPort;
if (!port) throw new Error('lib/cluster/shard-thread.js must run as a worker thread');
const { spec } = workerData as { spec: EvaluatorSpec };

export type ThreadJob = Omit<EstimateJob, 'episodes'> & { episodes?: WireEpisode[] };

export type ThreadMsg =
  | { id: number; type: 'init' }
  | { id: number; type: 'estimate'; job: ThreadJob; shard: number }
  | { id: number; type: 'evaluate'; job: ThreadJob; start: number; end: number }
  | { id: number; type: 'noise'; req: NoiseSumRequest };

let evaluator: PopulationEvaluator | null = null;

function jobOf(j: ThreadJob): EstimateJob {
  const { episodes, ...rest } = j;
  return { ...rest, ...(episodes ? { episodes: episodes.map(episodeFromWire) } : {}) };
}

async function handle(m: ThreadMsg): Promise<{ reply: Record<string, unknown>; transfer: ArrayBuffer[] }> {
  if (m.type === 'init') {
    evaluator = await loadEvaluator(spec);
    return { reply: {}, transfer: [] };
  }
  if (!evaluator) throw new Error('compute thread used before init');
  if (m.type === 'estimate') {
    const p = await shardEstimate(evaluator, jobOf(m.job), m.shard);
    const transfer = [p.fitness.buffer, p.linear.buffer, ...(p.square ? [p.square.buffer] : [])] as ArrayBuffer[];
    return { reply: { ...p, degenerate: p.degenerate ? 1 : 0 }, transfer };
  }
  if (m.type === 'evaluate') {
    const t0 = performance.now();
    const fitness = await evaluateMembers(evaluator, jobOf(m.job) as EvaluateJob, m.start, m.end);
    return { reply: { fitness, evalSeconds: (performance.now() - t0) / 1000 }, transfer: [fitness.buffer as ArrayBuffer] };
  }
  const sum = await evaluator.noiseSum(m.req);
  return { reply: { sum }, transfer: [sum.buffer as ArrayBuffer] };
}

let chain = Promise.resolve();
port.on('message', (m: ThreadMsg) => {
  chain = chain.then(async () => {
    try {
      const { reply, transfer } = await handle(m);
      port.postMessage({ id: m.id, ok: true, ...reply }, transfer);
    } catch (e) {
      const err = e as Error;
      port.postMessage({ id: m.id, ok: false, message: err.message, name: err.name });
    }
  });
});
