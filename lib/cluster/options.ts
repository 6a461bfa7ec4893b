/**
 * The cluster's option types, free of Node and ioredis types so that the public declarations
 * (lib/index.ts) compile in a consumer project without @types/node.
 */

export interface RedisConnectOptions {
  /** redis://[user:password@]host:port[/db] or rediss://... (TLS). */
  url: string;
  /** Overrides the URL's password; default $EVOMETA_REDIS_PASSWORD when the URL has none. */
  password?: string;
  /** A PEM file of the CA that signed the server's certificate (rediss:// with a private CA). */
  caFile?: string;
  /** End the link when Redis has been unreachable this long (ms); 0 or absent: retry forever. */
  timeoutMs?: number;
  /** CLIENT SETNAME prefix (shows in CLIENT LIST). */
  name: string;
  /** Called once per outage, when it starts (for a log line). */
  onDown?: (reason: string) => void;
}

/** How the coordinator brings workers to the next step's mean: publish it ('mean'), or publish the fitness and let every worker apply the update ('fitness'). */
export type SyncMode = 'mean' | 'fitness';

/** The default sync mode (chosen from bench/results/cluster: see docs/distributed.md). */
export const DEFAULT_SYNC: SyncMode = 'mean';
