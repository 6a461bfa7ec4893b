/** Errors that are the user's to fix, and option parsing that names the option: the bottom layer (no project imports). */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** Parse a CLI number option, naming the option on failure. */
export function parseNum(name: string, v: string | number | undefined, opts: { int?: boolean; min?: number; max?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n) || (opts.int && !Number.isInteger(n))) throw new UserError(`--${name}: expected ${opts.int ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`);
  if (opts.min !== undefined && n < opts.min) throw new UserError(`--${name}: must be >= ${opts.min}, got ${n}`);
  if (opts.max !== undefined && n > opts.max) throw new UserError(`--${name}: must be <= ${opts.max}, got ${n}`);
  return n;
}

export function parseChoice<T extends string>(name: string, v: string | undefined, choices: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(choices as readonly string[]).includes(v)) throw new UserError(`--${name}: expected one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}
