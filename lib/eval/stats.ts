/** Summary of per-episode values: mean, sample standard deviation, and the 95% half-width 1.96 std / sqrt(n). */
export interface Summary { mean: number; std: number; ci95: number }

/** Summed in the given order (deterministic). One value: std and ci95 are 0; none: all NaN. */
export function summarize(xs: ArrayLike<number>): Summary {
  const n = xs.length;
  if (n === 0) return { mean: NaN, std: NaN, ci95: NaN };
  let s = 0;
  for (let i = 0; i < n; i++) s += xs[i]!;
  const mean = s / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (xs[i]! - mean) ** 2;
  const std = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  return { mean, std, ci95: (1.96 * std) / Math.sqrt(n) };
}
