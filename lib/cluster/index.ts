/**
 * Distributed ES over Redis: the public API. This module loads no Redis
 * client; createRedisRunner and runClusterWorker load ioredis on first use.
 *
 *   // coordinator: a PopulationRunner that the strategies and ES-ProtoNet use like the in-process ones
 *   const runner = await createRedisRunner({ url: 'redis://host:6379', config, data: { kind: 'omniglot' }, spec: evaluatorSpecFor('cpu-native') });
 *   const method = await ProtoNetEsMethod.create(config, sources, { runner });
 *   runner.attachStrategy(method.strategy);
 *   // workers (each machine): await runClusterWorker({ url: 'redis://host:6379', threads: 8, signal });
 */
import type { RedisRunner, RedisRunnerOptions } from './coordinator.js';
import type { WorkerOptions, WorkerSummary } from './worker.js';

export { ClusterError, RedisUnavailableError } from './errors.js';
export { DEFAULT_SYNC, type SyncMode } from './options.js';
export type { RedisRunner, RedisRunnerOptions, ClusterStats } from './coordinator.js';
export type { WorkerOptions, WorkerSummary } from './worker.js';
export type { RedisConnectOptions } from './options.js';
export type { DataDescriptor, RunMeta } from './protonet.js';

/** A population runner whose shards are computed by `evometa worker` processes connected to the same Redis. */
export async function createRedisRunner(o: RedisRunnerOptions): Promise<RedisRunner> {
  const { RedisRunner: R } = await import('./coordinator.js');
  return R.create(o);
}

/** Serve distributed ES runs (compute shards) until o.signal aborts. */
export async function runClusterWorker(o: WorkerOptions): Promise<WorkerSummary> {
  const { runWorker } = await import('./worker.js');
  return runWorker(o);
}
