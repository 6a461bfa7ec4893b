/** `evometa worker --redis URL`: join distributed ES runs coordinated over Redis and compute their shards until stopped. */
import type { Command } from 'commander';
import { parseNum, UserError } from '../errors.js';

interface WorkerCli {
  redis?: string;
  workers?: string;
  device?: string;
  name?: string;
  redisPrefix?: string;
  claimTimeout: string;
  redisCa?: string;
  redisTimeout?: string;
  data?: string;
  cache?: string;
  unitDelay?: string;
}

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('serve distributed ES runs: take shards from Redis, compute them, push the results (until Ctrl-C / SIGTERM)')
    .option('--redis <url>', 'redis://[:PASSWORD@]host:port or rediss://... (TLS); the password may also come from $EVOMETA_REDIS_PASSWORD')
    .option('--workers <n>', 'compute threads: shards computed at once (default 1)')
    .option('--device <list>', 'devices to serve, comma-separated (default: the best available); runs of other devices are not taken')
    .option('--name <name>', 'this worker\'s name in Redis (default host-pid)')
    .option('--redis-prefix <p>', 'key prefix in Redis (default evometa): several clusters can share one server')
    .option('--claim-timeout <s>', 'take over a shard left unacknowledged this long by a stopped worker', '30')
    .option('--redis-ca <file>', 'PEM file of the CA that signed the server\'s TLS certificate (rediss://)')
    .option('--redis-timeout <s>', 'exit when Redis has been unreachable this long (default: keep retrying)')
    .option('--data <dir>', 'a directory with Lake\'s Omniglot zips (default: the embedded copy); must match the coordinator\'s')
    .option('--cache <dir>', 'preprocessed-image cache directory')
    .option('--unit-delay <ms>', 'testing aid: wait this long before computing each shard (a slow machine)')
    .action(async (o: WorkerCli) => {
      if (!o.redis) throw new UserError('worker: --redis URL is required (e.g. --redis redis://localhost:6379)');
      const threads = parseNum('workers', o.workers, { int: true, min: 1, max: 1024 }) ?? 1;
      const claim = parseNum('claim-timeout', o.claimTimeout, { min: 0.05, max: 86400 })!;
      const timeout = parseNum('redis-timeout', o.redisTimeout, { min: 0.1 });
      const delay = parseNum('unit-delay', o.unitDelay, { int: true, min: 0 });
      const devices = o.device?.split(',').map((d) => d.trim()).filter(Boolean);
      await import('../index.js'); // registers the devices
      const { getDevice } = await import('../device/registry.js');
      for (const d of devices ?? []) getDevice(d); // a clear error for a device this machine lacks
      const { runWorker } = await import('../cluster/worker.js');
      const { onInterrupt } = await import('../train/metrics.js');
      const abort = new AbortController();
      const off = onInterrupt((sig) => {
        abort.abort();
        process.stderr.write(`\n${sig}: finishing the shards in flight, then leaving; press Ctrl-C again to quit at once\n`);
      });
      try {
        const s = await runWorker({
          url: o.redis, threads, claimTimeoutMs: claim * 1000, signal: abort.signal, log: (l) => process.stderr.write(`${l}\n`),
          ...(devices ? { devices } : {}), ...(o.name !== undefined ? { name: o.name } : {}), ...(o.redisPrefix !== undefined ? { prefix: o.redisPrefix } : {}),
          ...(o.redisCa !== undefined ? { caFile: o.redisCa } : {}), ...(timeout !== undefined ? { timeoutMs: timeout * 1000 } : {}),
          ...(o.data !== undefined ? { dataDir: o.data } : {}), ...(o.cache !== undefined ? { cacheDir: o.cache } : {}), ...(delay !== undefined ? { unitDelayMs: delay } : {}),
        });
        process.stderr.write(`worker stopped: ${s.units} shard(s) computed (${s.claimed} taken over), ${s.dropped} dropped, ${s.failed} failed, ${s.runs} run(s)\n`);
      } finally {
        off();
      }
    });
}
