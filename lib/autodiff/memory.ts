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

export class MemoryLedger {
  private readonly held = new Map<HeldArray, Held>();
  private current: MemoryBreakdown = zero();
  private peakTotal = 0;
  private peakAt: MemoryBreakdown = zero();

  hold(arr: HeldArray, cat: MemoryCategory): void {
    const h = this.held.get(arr);
    if (h) h.refs++;
    else this.held.set(arr, { arr, cat, refs: 1 });
  }

  release(arr: HeldArray): void {
    const h = this.held.get(arr);
    if (!h) throw new Error('memory ledger: releasing an array that is not held');
    if (--h.refs === 0) this.held.delete(arr);
  }

  has(arr: HeldArray): boolean {
    return this.held.has(arr);
  }

  /** Recompute the bytes held now and raise the peak if needed; returns the current breakdown. */
  measure(): MemoryBreakdown {
    const all = [...this.held.values()];
    const b = zero();
    for (const cat of MEMORY_CATEGORIES) b[cat] = unionBytes(all.filter((h) => h.cat === cat).map((h) => h.arr));
    b.total = unionBytes(all.map((h) => h.arr));
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
