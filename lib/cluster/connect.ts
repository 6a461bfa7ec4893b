/**
 * Connections to Redis through ioredis: redis:// or rediss:// (TLS) URLs,
 * passwords from the URL or $EVOMETA_REDIS_PASSWORD (so they need not appear
 * in `ps`), an optional CA file for a private TLS CA. Two connections per
 * process: one for blocking stream reads, one for everything else (a blocking
 * read would hold up every command behind it on its connection).
 *
 * Outages: ioredis reconnects on its own; commands wait while it does. With
 * a timeout, a Redis that stays unreachable for that long ends the link: every
 * pending command rejects and failure() says why (RedisUnavailableError). A
 * refused password ends it at once (retrying cannot help). onReconnect tells
 * the owner that a connection came back, so it can check whether the server
 * kept its data (a restarted server without persistence has lost it).
 */
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { UserError } from '../errors.js';
import { RedisUnavailableError } from './errors.js';

export { RedisUnavailableError };

export type { RedisConnectOptions } from './options.js';
import type { RedisConnectOptions } from './options.js';

/** The URL with any password replaced by ***. */
export function redactUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/)([^@/]*)@/i, (_m, p: string, auth: string) => `${p}${auth.includes(':') ? `${auth.split(':')[0]}:***` : '***'}@`);
}

function check(url: string): void {
  if (!/^rediss?:\/\/[^\s]+$/i.test(url)) throw new UserError(`--redis: expected redis://host:port or rediss://host:port (TLS), got ${JSON.stringify(redactUrl(url))}`);
  try {
    new URL(url);
  } catch {
    throw new UserError(`--redis: ${redactUrl(url)} is not a valid URL`);
  }
}

const AUTH = /^(NOAUTH|WRONGPASS|ERR invalid password|ERR AUTH)/;

export class RedisLink {
  /** Commands. */
  readonly cmd: Redis;
  /** Blocking stream reads only. */
  readonly blk: Redis;
  private fail: Error | null = null;
  private downSince: number | null = null;
  private lastError = '';
  private everReady = new Set<Redis>();
  private reconnectHandlers: Array<() => void> = [];
  readonly where: string;

  constructor(private readonly o: RedisConnectOptions) {
    check(o.url);
    this.where = redactUrl(o.url);
    const url = new URL(o.url);
    const envPass = process.env['EVOMETA_REDIS_PASSWORD'];
    const opts: RedisOptions = {
      lazyConnect: true, protocol: 2, maxRetriesPerRequest: null, enableOfflineQueue: true, autoResendUnfulfilledCommands: true,
      retryStrategy: () => this.retry(),
      ...(o.password !== undefined ? { password: o.password } : !url.password && envPass ? { password: envPass } : {}),
    };
    if (o.caFile !== undefined) {
      if (url.protocol !== 'rediss:') throw new UserError(`--redis-ca applies to rediss:// URLs (TLS), not ${this.where}`);
      let ca: Buffer;
      try { ca = readFileSync(o.caFile); } catch (e) { throw new UserError(`--redis-ca ${o.caFile}: ${(e as Error).message}`); }
      opts.tls = { ca };
    }
    this.cmd = this.make(opts, `${o.name}`);
    this.blk = this.make(opts, `${o.name}-reads`);
  }

  private make(opts: RedisOptions, name: string): Redis {
    const r = new Redis(this.o.url, { ...opts, connectionName: name.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 100) });
    r.on('error', (e: Error) => {
      this.lastError = e.message;
      if (AUTH.test(e.message) && !this.fail) this.end(new RedisUnavailableError(`Redis at ${this.where} refused the credentials (${e.message.split('\n')[0]}): give the password in the URL (redis://:PASSWORD@host:port) or in $EVOMETA_REDIS_PASSWORD`));
    });
    r.on('close', () => {
      if (this.downSince === null && !this.fail) {
        this.downSince = Date.now();
        if (this.everReady.size > 0) this.o.onDown?.(this.lastError || 'connection closed');
      }
    });
    r.on('ready', () => {
      const again = this.everReady.has(r);
      this.everReady.add(r);
      this.downSince = null;
      if (again) for (const h of this.reconnectHandlers) h();
    });
    return r;
  }

  private retry(): number | null {
    if (this.fail) return null;
    const t = this.o.timeoutMs ?? 0;
    const since = this.downSince ?? Date.now();
    if (t > 0 && Date.now() - since > t) {
      this.end(new RedisUnavailableError(`Redis at ${this.where} has been unreachable for ${Math.round((Date.now() - since) / 1000)} s (${this.lastError || 'no connection'}); gave up after --redis-timeout ${t / 1000} s`));
      return null;
    }
    return 250;
  }

  private end(e: Error): void {
    if (this.fail) return;
    this.fail = e;
    // each connection ends at its next retry (retryStrategy returns null), which rejects its pending
    // commands; disconnect() here would strand the queue of a connection that is between retries
  }

  /** Why the link ended (null while it is usable or retrying). */
  failure(): Error | null { return this.fail; }

  /** The link's failure if it has one, else `e` (a command error seen after the link ended is reported as the cause). */
  explain(e: unknown): Error {
    return this.fail ?? (e instanceof Error ? e : new Error(String(e)));
  }

  onReconnect(h: () => void): void { this.reconnectHandlers.push(h); }

  /** Connect both connections; waits while Redis is unreachable (up to the timeout, if any). */
  async open(): Promise<void> {
    const ready = (r: Redis): Promise<void> => new Promise((resolve, reject) => {
      if (r.status === 'ready') { resolve(); return; }
      const done = (): void => { r.off('ready', ok); r.off('end', bad); };
      const ok = (): void => { done(); resolve(); };
      const bad = (): void => { done(); reject(this.fail ?? new RedisUnavailableError(`Redis at ${this.where}: ${this.lastError || 'connection ended'}`)); };
      r.on('ready', ok);
      r.on('end', bad);
      r.connect().catch(() => undefined); // failures are retried by retryStrategy; 'end' reports giving up
    });
    this.downSince = Date.now();
    try {
      await Promise.all([ready(this.cmd), ready(this.blk)]);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Close both connections at once (pending commands reject). */
  close(): void {
    if (!this.fail) this.fail = new Error('Redis link closed');
    this.cmd.disconnect();
    this.blk.disconnect();
  }
}
