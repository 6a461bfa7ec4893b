/**
 * Exact byte accounting for the tape: which typed arrays it keeps alive, and
 * how many bytes of array data they span.
 *
 * Bytes are counted per ArrayBuffer as the union of the byte ranges
 * [byteOffset, byteOffset + byteLength) of the held arrays, so two views of
 * the same data (a reshape, a row slice) are counted once and a view counts
 * only the bytes it spans. Arrays are held by reference count: an array saved
 * by two nodes is counted once and released when the last holder lets go.
 */
export type HeldArray = Float32Array | Float64Array | Int32Array;

/**
 * activation: data the tape computed (op outputs and kernel side outputs such
 * as BN's mean/invStd and max-pool's argmax); external: data handed in by the
 * caller (constants such as the image batch, label arrays); gradient: pending
 * gradient tensors during the backward walk.
 */
export type MemoryCategory = 'activation' | 'external' | 'gradient';
export const MEMORY_CATEGORIES: readonly MemoryCategory[] = ['activation', 'external', 'gradient'];

export type MemoryBreakdown = Record<MemoryCategory, number> & { total: number };

interface Held { arr: HeldArray; cat: MemoryCategory; refs: number }

/** The held arrays of one ArrayBuffer and their byte unions (total and per category). */
interface BufferGroup { arrays: Held[]; bytes: MemoryBreakdown }

/**
 * Incremental: holding or releasing an array recomputes only the unions of its
 * own ArrayBuffer (usually one or two views), so measure() is O(1) however
 * many arrays the tape holds; the numbers are those of unionBytes over all of them.
 */
export class MemoryLedger {
  private readonly held = new Map<HeldArray, Held>();
  private readonly groups = new Map<ArrayBufferLike, BufferGroup>();
  private readonly totals: MemoryBreakdown = zero();
  private current: MemoryBreakdown = zero();
  private peakTotal = 0;
  private peakAt: MemoryBreakdown = zero();

  hold(arr: HeldArray, cat: MemoryCategory): void {
    const h = this.held.get(arr);
    if (h) { h.refs++; return; }
    const e = { arr, cat, refs: 1 };
    this.held.set(arr, e);
    if (arr.byteLength === 0) return;
    let g = this.groups.get(arr.buffer);
    if (!g) this.groups.set(arr.buffer, (g = { arrays: [], bytes: zero() }));
    g.arrays.push(e);
    this.regroup(g);
  }

  release(arr: HeldArray): void {
    const h = this.held.get(arr);
    if (!h) throw new Error('memory ledger: releasing an array that is not held');
    if (--h.refs > 0) return;
    this.held.delete(arr);
    if (arr.byteLength === 0) return;
    const g = this.groups.get(arr.buffer)!;
    g.arrays.splice(g.arrays.indexOf(h), 1);
    this.regroup(g);
    if (g.arrays.length === 0) this.groups.delete(arr.buffer);
  }

  private regroup(g: BufferGroup): void {
    const b = zero();
    for (const cat of MEMORY_CATEGORIES) {
      const of = g.arrays.filter((h) => h.cat === cat);
      b[cat] = of.length === 0 ? 0 : of.length === 1 ? of[0]!.arr.byteLength : unionBytes(of.map((h) => h.arr));
    }
    b.total = g.arrays.length === 1 ? g.arrays[0]!.arr.byteLength : unionBytes(g.arrays.map((h) => h.arr));
    for (const k of [...MEMORY_CATEGORIES, 'total'] as const) this.totals[k] += b[k] - g.bytes[k];
    g.bytes = b;
  }

  has(arr: HeldArray): boolean {
    return this.held.has(arr);
  }

  /** The bytes held now (raising the peak if needed); returns the current breakdown. */
  measure(): MemoryBreakdown {
    const b = { ...this.totals };
    this.current = b;
    if (b.total > this.peakTotal) {
      this.peakTotal = b.total;
      this.peakAt = { ...b };
    }
    return b;
  }

  get bytes(): MemoryBreakdown { return { ...this.current }; }
  get peak(): number { return this.peakTotal; }
  /** The breakdown at the moment of the peak. */
  get peakBreakdown(): MemoryBreakdown { return { ...this.peakAt }; }
  get count(): number { return this.held.size; }
}

function zero(): MemoryBreakdown {
  return { activation: 0, external: 0, gradient: 0, total: 0 };
}

/** Bytes spanned by the arrays: per ArrayBuffer, the union of their byte ranges. */
export function unionBytes(arrs: readonly HeldArray[]): number {
  const byBuffer = new Map<ArrayBufferLike, [number, number][]>();
  for (const a of arrs) {
    if (a.byteLength === 0) continue;
    let r = byBuffer.get(a.buffer);
    if (!r) byBuffer.set(a.buffer, (r = []));
    r.push([a.byteOffset, a.byteOffset + a.byteLength]);
  }
  let total = 0;
  for (const ranges of byBuffer.values()) {
    ranges.sort((x, y) => x[0] - y[0]);
    let [s, e] = ranges[0]!;
    for (let i = 1; i < ranges.length; i++) {
      const [a, b] = ranges[i]!;
      if (a <= e) e = Math.max(e, b);
      else {
        total += e - s;
        s = a;
        e = b;
      }
    }
    total += e - s;
  }
  return total;
}
