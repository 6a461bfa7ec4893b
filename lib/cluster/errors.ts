/** The cluster's errors (no Redis client here: importing them costs nothing). */

/** A worker reported that it could not compute a unit (bad data, a diverged replica, a refused run): the step is not applied. */
export class ClusterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClusterError';
  }
}

/** Redis went away for longer than the timeout, or refused the credentials. */
export class RedisUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisUnavailableError';
  }
}
