/**
 * Task clustering (the seed's "training tasks in clusters"): each task of the
 * training pool is described by features known before training on it -- its
 * size and the statistics of its loss and gradient at initialization -- the
 * features are standardized and clustered by k-means (ml-kmeans, k-means++
 * seeding, seeded) within each task shape, and a meta-batch is drawn from ONE
 * cluster: homogeneous in shape (one program) and in scale. Random meta-batches of the same size are the control.
 */
import { kmeans } from 'ml-kmeans';
import { Rng, STREAM } from '../rng/philox.js';
import type { OptimizeeTask } from './tasks/task.js';

export const FEATURE_NAMES = ['log n', 'log f0', 'log rms grad0', 'log curvature along grad0'] as const;

/**
 * Features of a task at its initial parameters theta_0 (minibatch 0): its size,
 * its loss, the rms of its gradient g, and its curvature along g, measured by
 * one more gradient: (g(theta_0 - h d) - g(theta_0)) . (-d) / h with d = g / |g|
 * and h = 1e-3 |theta_0|_rms-scaled (a finite-difference Hessian-vector product).
 */
export function taskFeatures(task: OptimizeeTask): number[] {
  const theta = task.initialParams(new Float64Array(0)), g = new Float64Array(task.n), g2 = new Float64Array(task.n);
  const f = task.lossGrad(theta, 0, g);
  let ss = 0, ts = 0;
  for (let i = 0; i < task.n; i++) { ss += g[i]! * g[i]!; ts += theta[i]! * theta[i]!; }
  const norm = Math.sqrt(ss), tiny = 1e-30;
  const h = 1e-3 * Math.max(Math.sqrt(ts / task.n), 1e-2);
  const moved = theta.slice();
  for (let i = 0; i < task.n; i++) moved[i] = theta[i]! - (h * g[i]!) / Math.max(norm, tiny);
  task.lossGrad(moved, 0, g2);
  let curv = 0;
  for (let i = 0; i < task.n; i++) curv += ((g2[i]! - g[i]!) * -g[i]!) / Math.max(norm, tiny);
  curv /= h;
  return [Math.log(task.n), Math.log(Math.max(f, tiny)), Math.log(Math.max(norm / Math.sqrt(task.n), tiny)), Math.log(Math.max(curv, tiny))];
}

/** Columns scaled to zero mean and unit (population) variance; constant columns are dropped. */
export function standardize(rows: readonly number[][]): number[][] {
  const d = rows[0]?.length ?? 0, n = rows.length;
  const keep: { j: number; mean: number; std: number }[] = [];
  for (let j = 0; j < d; j++) {
    let s = 0;
    for (const r of rows) s += r[j]!;
    const mean = s / n;
    let v = 0;
    for (const r of rows) v += (r[j]! - mean) ** 2;
    const std = Math.sqrt(v / n);
    if (std > 1e-12 * Math.max(1, Math.abs(mean))) keep.push({ j, mean, std });
  }
  return rows.map((r) => keep.map(({ j, mean, std }) => (r[j]! - mean) / std));
}

export interface Clustering {
  k: number;
  /** Cluster of each pool task. */
  assignment: Int32Array;
  sizes: number[];
  /** k-means iterations and whether it converged. */
  iterations: number;
  converged: boolean;
}

/** k-means (k-means++ seeding, seeded) on standardized rows; returns raw labels. */
function kmeansLabels(rows: readonly number[][], k: number, seed: number): { labels: number[]; iterations: number; converged: boolean } {
  const x = standardize(rows);
  if (k === 1 || (x[0]?.length ?? 0) === 0) return { labels: new Array<number>(rows.length).fill(0), iterations: 0, converged: true };
  const distinct = new Set(x.map((r) => r.join(','))).size;
  const r = kmeans(x, Math.min(k, distinct), { seed, initialization: 'kmeans++', maxIterations: 300 });
  return { labels: r.clusters, iterations: r.iterations, converged: r.converged };
}

/**
 * Cluster tasks. With `shapeKeys`, tasks of different shapes never share a
 * cluster (a cluster is one program): the k clusters are shared out among the
 * shape groups in proportion to their sizes (at least one each) and k-means runs
 * on the statistics within each group. Cluster ids are renumbered densely in
 * order of first appearance (empty k-means clusters vanish), so they are
 * deterministic for a seed.
 */
export function clusterTasks(features: readonly number[][], k: number, seed: number, shapeKeys?: readonly string[]): Clustering {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`cluster: k must be a positive integer, got ${k}`);
  const n = features.length;
  if (n < k) throw new RangeError(`cluster: ${n} tasks cannot form ${k} clusters`);
  const keys = shapeKeys ?? new Array<string>(n).fill('');
  if (keys.length !== n) throw new RangeError(`cluster: ${keys.length} shape keys for ${n} tasks`);
  const groups = new Map<string, number[]>();
  keys.forEach((key, i) => { let g = groups.get(key); if (!g) groups.set(key, (g = [])); g.push(i); });
  if (groups.size > k) throw new RangeError(`cluster: the pool has ${groups.size} task shapes; k must be at least that, got ${k}`);
  // Share k out: one per group, the rest by largest remainder of k * size / n.
  const gs = [...groups.values()];
  const share = gs.map((g) => Math.max(1, Math.floor((k * g.length) / n)));
  let left = k - share.reduce((a, b) => a + b, 0);
  const order = gs.map((g, i) => ({ i, rem: (k * g.length) / n - Math.floor((k * g.length) / n) })).sort((a, b) => b.rem - a.rem || a.i - b.i);
  for (let j = 0; left > 0; j = (j + 1) % order.length) { share[order[j]!.i]!++; left--; }
  while (left < 0) { const i = share.indexOf(Math.max(...share)); share[i]!--; left++; }
  const raw = new Array<string>(n);
  let iterations = 0, converged = true;
  gs.forEach((g, gi) => {
    const r = kmeansLabels(g.map((i) => features[i]!), Math.min(share[gi]!, g.length), seed);
    iterations = Math.max(iterations, r.iterations);
    converged &&= r.converged;
    g.forEach((i, j) => { raw[i] = `${gi}:${r.labels[j]}`; });
  });
  const ids = new Map<string, number>();
  const assignment = new Int32Array(n);
  raw.forEach((c, i) => {
    if (!ids.has(c)) ids.set(c, ids.size);
    assignment[i] = ids.get(c)!;
  });
  const sizes = new Array<number>(ids.size).fill(0);
  for (const c of assignment) sizes[c]!++;
  return { k: ids.size, assignment, sizes, iterations, converged };
}

export type BatchMode = 'random' | 'cluster';
export const BATCH_MODES: readonly BatchMode[] = ['random', 'cluster'];

/**
 * Meta-batches of pool indices, random access: batch e depends only on (seed, e).
 * 'random': `size` distinct tasks uniformly from the pool. 'cluster': a cluster
 * with probability proportional to its size (so every task is as likely as under
 * 'random'), then `size` tasks of it (distinct while the cluster is large enough).
 */
export class MetaBatchSampler {
  private readonly members: number[][];
  constructor(readonly poolSize: number, readonly size: number, readonly mode: BatchMode, readonly seed: number, clustering?: Clustering) {
    if (!Number.isInteger(size) || size < 1 || size > poolSize) throw new RangeError(`meta-batch size must be an integer in [1, ${poolSize}] (the task pool), got ${size}`);
    if (mode === 'cluster' && !clustering) throw new RangeError('cluster meta-batches need a clustering of the pool');
    this.members = [];
    if (clustering) {
      if (clustering.assignment.length !== poolSize) throw new RangeError(`clustering covers ${clustering.assignment.length} tasks, the pool has ${poolSize}`);
      for (let c = 0; c < clustering.k; c++) this.members.push([]);
      clustering.assignment.forEach((c, i) => this.members[c]!.push(i));
    }
  }

  /** Pool indices of meta-batch e, and its cluster (-1 for random batches). */
  draw(e: number): { tasks: number[]; cluster: number } {
    const rng = new Rng(this.seed, STREAM.sampler, e);
    if (this.mode === 'random') return { tasks: Array.from(rng.choose(this.poolSize, this.size)), cluster: -1 };
    let u = rng.int(this.poolSize), c = 0;
    while (u >= this.members[c]!.length) u -= this.members[c++]!.length;
    const m = this.members[c]!;
    const tasks = m.length >= this.size ? Array.from(rng.choose(m.length, this.size), (i) => m[i]!) : Array.from({ length: this.size }, () => m[rng.int(m.length)]!);
    return { tasks, cluster: c };
  }
}
