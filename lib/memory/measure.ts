/**
 * MEASUREMENT (not accounting) of what a process holds, for the memory study:
 *  - the process's peak resident set (VmHWM in /proc/self/status; the kernel's
 *    high-water mark, so nothing between samples is missed) and its RSS now;
 *  - allocation tracking that sees every buffer: the malloc heap in use (glibc
 *    mallinfo2 through the addon's memStats, every arena: the addon's outputs
 *    and workspaces, Node's ArrayBuffer backing stores, V8's malloced memory),
 *    its peak kept by a sampler thread in the addon (every `periodUs`), and the
 *    V8 heap, ArrayBuffer and external bytes (process.memoryUsage,
 *    v8.getHeapStatistics) sampled whenever the case's accounting changes.
 * Where the addon or glibc is missing, the malloc fields are null and the
 * tracked total falls back to V8 heap + ArrayBuffers (said so in `source`).
 */
import { readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { loadAddon } from '../device/cpu-native/addon.js';

export interface NativeHeap {
  available: boolean;
  arena: number;
  mmapped: number;
  inUse: number;
  free: number;
  keepcost: number;
  peakInUse: number;
  samples: number;
  sampling: boolean;
}

type MemStatsFn = (a: { op: 'read' | 'start' | 'stop'; periodUs?: number }) => NativeHeap;

let memStatsFn: MemStatsFn | null | undefined;

/** The addon's memStats, or null (with the reason in `nativeHeapReason`) where it cannot be had. */
export function nativeMemStats(): MemStatsFn | null {
  if (memStatsFn !== undefined) return memStatsFn;
  try {
    const a = loadAddon().addon as unknown as { memStats?: MemStatsFn };
    const fn = a.memStats;
    if (typeof fn !== 'function') {
      nativeHeapReason = 'the loaded addon has no memStats (rebuild it: npx node-gyp rebuild)';
      memStatsFn = null;
    } else {
      const probe = fn({ op: 'read' });
      memStatsFn = probe.available ? fn : null;
      if (!probe.available) nativeHeapReason = 'mallinfo2 unavailable (not glibc >= 2.33)';
    }
  } catch (e) {
    nativeHeapReason = `native addon not loaded: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
    memStatsFn = null;
  }
  return memStatsFn;
}

export let nativeHeapReason = '';

/** VmRSS and VmHWM (bytes) from /proc/self/status; elsewhere process.memoryUsage().rss and resourceUsage().maxRSS. */
export function procRss(): { rss: number; hwm: number; source: string } {
  try {
    const s = readFileSync('/proc/self/status', 'utf8');
    const kb = (k: string): number => {
      const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s);
      if (!m) throw new Error(`no ${k}`);
      return Number(m[1]) * 1024;
    };
    return { rss: kb('VmRSS'), hwm: kb('VmHWM'), source: '/proc/self/status' };
  } catch {
    return { rss: process.memoryUsage().rss, hwm: process.resourceUsage().maxRSS * 1024, source: 'process.resourceUsage' };
  }
}

/** One sample of the allocation trackers. */
export interface TrackSample {
  heapUsed: number;
  arrayBuffers: number;
  external: number;
  /** V8's own malloc use (inside `malloc` below when that is available). */
  v8Malloced: number;
  /** malloc in use (mallinfo2 uordblks + hblkhd), or null. */
  malloc: number | null;
}

export function trackSample(): TrackSample {
  const mu = process.memoryUsage();
  const hs = getHeapStatistics();
  const fn = nativeMemStats();
  return { heapUsed: hs.used_heap_size, arrayBuffers: mu.arrayBuffers, external: mu.external, v8Malloced: hs.malloced_memory, malloc: fn ? fn({ op: 'read' }).inUse : null };
}

/** What a process held: at rest (idle, or before the case) and at its peak. */
export interface Measurement {
  /** VmRSS now, and VmHWM: the peak resident set over the process's life. */
  rss: number;
  peakRss: number;
  rssSource: string;
  /** The trackers at rest (before the case) and their maxima over the case. */
  atRest: TrackSample;
  peak: {
    /** malloc in use: the sampler thread's peak (null without the addon's memStats). */
    malloc: number | null;
    heapUsed: number;
    arrayBuffers: number;
    external: number;
    /** Tracked total at its peak: malloc peak + V8 heap peak (malloc counts every ArrayBuffer); without malloc, V8 heap + ArrayBuffers. */
    tracked: number;
  };
  /** Tracked total at rest, same definition. */
  trackedAtRest: number;
  source: string;
  samples: number;
  nativeSamples: number;
  /** The idle process this case is compared with (set by the sweep): its peak RSS and tracked total. */
  idle?: { peakRss: number; tracked: number };
}

function tracked(s: { malloc: number | null; heapUsed: number; arrayBuffers: number }): number {
  return s.malloc !== null ? s.malloc + s.heapUsed : s.heapUsed + s.arrayBuffers;
}

/** Samples the trackers over a case: start(), sample() at every accounting change, stop(). */
export class Tracker {
  private rest: TrackSample | null = null;
  private max = { heapUsed: 0, arrayBuffers: 0, external: 0, malloc: null as number | null };
  private readonly memStats = nativeMemStats();
  private n = 0;
  private nativeSamples = 0;

  constructor(private readonly periodUs = 1000) {}

  start(): void {
    this.rest = trackSample();
    this.max = { heapUsed: this.rest.heapUsed, arrayBuffers: this.rest.arrayBuffers, external: this.rest.external, malloc: this.rest.malloc };
    nativeMemStats()?.({ op: 'start', periodUs: this.periodUs });
  }

  /** Cheap enough to call at every accounting change (tens of microseconds); reads malloc too, so accounting moments are never missed. */
  readonly sample = (): void => {
    const mu = process.memoryUsage();
    const hs = getHeapStatistics();
    this.n++;
    if (this.memStats) {
      const m = this.memStats({ op: 'read' }).inUse;
      if (this.max.malloc === null || m > this.max.malloc) this.max.malloc = m;
    }
    if (hs.used_heap_size > this.max.heapUsed) this.max.heapUsed = hs.used_heap_size;
    if (mu.arrayBuffers > this.max.arrayBuffers) this.max.arrayBuffers = mu.arrayBuffers;
    if (mu.external > this.max.external) this.max.external = mu.external;
  };

  stop(): Measurement {
    if (!this.rest) throw new Error('Tracker.stop before start');
    this.sample();
    const fn = nativeMemStats();
    let malloc: number | null = null;
    if (fn) {
      const h = fn({ op: 'stop' });
      malloc = Math.max(h.peakInUse, this.max.malloc ?? 0);
      this.nativeSamples = h.samples;
    }
    const peak = { ...this.max, malloc, tracked: 0 };
    peak.tracked = tracked(peak);
    const p = procRss();
    return {
      rss: p.rss, peakRss: p.hwm, rssSource: p.source, atRest: this.rest, peak, trackedAtRest: tracked(this.rest),
      source: fn ? 'malloc in use (glibc mallinfo2, sampler thread) + V8 heap used' : `V8 heap used + ArrayBuffers (${nativeHeapReason})`,
      samples: this.n, nativeSamples: this.nativeSamples,
    };
  }
}

/** A process at rest: the same measurement with nothing run between start and stop. */
export function idleMeasurement(): Measurement {
  const t = new Tracker();
  t.start();
  return t.stop();
}
