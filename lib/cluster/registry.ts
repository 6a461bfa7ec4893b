/**
 * Who is connected: each worker process heartbeats its name into the sorted
 * set P:workers (score: the time) and its description into P:worker:NAME
 * (expiring). The coordinator reads them to say how many workers serve its
 * run, and which ones cannot (another version, another device).
 */
import type { Redis } from 'ioredis';
import { keys, NAME } from './protocol.js';

export interface WorkerInfo {
  name: string;
  host: string;
  pid: number;
  version: string;
  devices: string[];
  threads: number;
}

/** A worker is listed while its heartbeat is younger than this. */
export const WORKER_TTL_MS = 15000;

export async function heartbeat(r: Redis, prefix: string, info: WorkerInfo): Promise<void> {
  const now = Date.now();
  await r.multi()
    .zadd(keys.workers(prefix), now, info.name)
    .set(keys.worker(prefix, info.name), JSON.stringify(info), 'PX', WORKER_TTL_MS)
    .zremrangebyscore(keys.workers(prefix), '-inf', now - 4 * WORKER_TTL_MS)
    .exec();
}

export async function unregister(r: Redis, prefix: string, name: string): Promise<void> {
  await r.multi().zrem(keys.workers(prefix), name).del(keys.worker(prefix, name)).exec();
}

function parseInfo(s: string | null): WorkerInfo | null {
  if (!s) return null;
  try {
    const o = JSON.parse(s) as Partial<WorkerInfo>;
    if (typeof o.name !== 'string' || !NAME.test(o.name) || typeof o.version !== 'string' || !Array.isArray(o.devices) || !o.devices.every((d) => typeof d === 'string')) return null;
    return { name: o.name, host: String(o.host ?? '').slice(0, 100), pid: Number(o.pid) || 0, version: o.version.slice(0, 64), devices: o.devices.slice(0, 16), threads: Number(o.threads) || 0 };
  } catch {
    return null;
  }
}

/** Workers with a recent heartbeat. */
export async function listWorkers(r: Redis, prefix: string): Promise<WorkerInfo[]> {
  const names = await r.zrangebyscore(keys.workers(prefix), Date.now() - WORKER_TTL_MS, '+inf');
  const valid = names.filter((n) => NAME.test(n)).slice(0, 10000);
  if (valid.length === 0) return [];
  const infos = await r.mget(...valid.map((n) => keys.worker(prefix, n)));
  return infos.map(parseInfo).filter((w): w is WorkerInfo => w !== null);
}
