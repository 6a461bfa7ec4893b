/** Helpers shared by the memory study's case runners. */

/** Called once the first (measured) meta-gradient is done, before any timing repetition runs in the same process. */
export type AfterFirst = (() => void) | undefined;

/** What a method's runner reports back to runCase. */
export interface Timed { seconds: number; timeNote: string; loss?: number; dominant: { name: string; bytes: number } }

/** Median of the first time and `reps` more, unless the first took over 2 s (then it alone). */
export function timeIt(first: number, reps: number, again: () => void): number {
  if (first > 2 || reps <= 0) return first;
  const times = [first];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    again();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** Outer optimizer state charged to every method alike: Adam's two moment vectors (float32). */
export const OPTIMIZER_BYTES_PER_PARAM = 8;
