/**
 * Episodes whose classes come from ONE cluster of classes (the seed's "tasks
 * in clusters" applied to few-shot episodes), beside EpisodeSampler's random
 * classes. Clusters of a split's classes:
 *  - 'alphabet': the classes of one Omniglot alphabet (every rotation of its
 *    characters) -- the names carry it;
 *  - 'embedding': k-means (ml-kmeans, k-means++ seeding, seeded) on a class
 *    embedding known before training: the class's mean image over its first
 *    `embedDrawings` drawings, area-averaged to `embedSize` x `embedSize`, or any
 *    embedding the caller passes (e.g. a trained encoder's prototypes).
 * Episode i (random access, Rng(seed, sampler stream, i)): a cluster with
 * probability proportional to its number of classes among clusters that have
 * at least `way` classes, then `way` distinct classes of it, then drawings as
 * EpisodeSampler (same layout, labels, images). episodeInCluster(c, i) fixes the cluster.
 */
import { kmeans } from 'ml-kmeans';
import { Rng, STREAM } from '../rng/philox.js';
import { OmniglotDataError } from './errors.js';
import { DRAWINGS } from './raw.js';
import { EpisodeSampler, type EpisodeDraw, type EpisodeSpec } from './sampler.js';
import type { OmniglotClass, OmniglotSplit } from './splits.js';
import type { Episode } from '../model/protonet.js';

export type ClassClustering = 'alphabet' | 'embedding';
export const CLASS_CLUSTERINGS: readonly ClassClustering[] = ['alphabet', 'embedding'];

export interface ClassClusterOptions {
  by: ClassClustering;
  /** k for 'embedding' (default 20). */
  k?: number;
  /** Seed of k-means (default 0). */
  seed?: number;
  embedSize?: number;
  embedDrawings?: number;
  /** Overrides the mean-image embedding: one vector per class of the split, in split order. */
  embeddings?: number[][];
}

/** Cluster id of each class of the split (dense ids 0..k-1 in order of first appearance). */
export function clusterClasses(split: OmniglotSplit, o: ClassClusterOptions): Int32Array {
  const classes = split.classes, ds = split.dataset, ids = new Map<string, number>(), out = new Int32Array(classes.length);
  let keys: string[];
  if (o.by === 'alphabet') keys = classes.map((c) => ds.characters[c.character]!.alphabet);
  else if (o.by === 'embedding') {
    const emb = o.embeddings ?? meanImageEmbeddings(split, o.embedSize ?? 7, o.embedDrawings ?? 5);
    if (emb.length !== classes.length) throw new OmniglotDataError(`class embeddings: ${emb.length} vectors for the ${classes.length} classes of ${split.name}`);
    const k = o.k ?? 20;
    if (!Number.isInteger(k) || k < 1 || k > classes.length) throw new OmniglotDataError(`class clusters: k must be an integer in [1, ${classes.length}], got ${k}`);
    keys = kmeans(emb, k, { seed: o.seed ?? 0, initialization: 'kmeans++', maxIterations: 300 }).clusters.map(String);
  } else throw new OmniglotDataError(`class clustering must be one of ${CLASS_CLUSTERINGS.join(', ')}, got ${JSON.stringify(o.by)}`);
  keys.forEach((key, i) => {
    if (!ids.has(key)) ids.set(key, ids.size);
    out[i] = ids.get(key)!;
  });
  return out;
}

/** Mean image (rotated as the class is) of the first `drawings` drawings, area-averaged to size x size. */
export function meanImageEmbeddings(split: OmniglotSplit, size: number, drawings: number): number[][] {
  const ds = split.dataset, s = ds.imageSize, img = new Float32Array(s * s);
  if (!(Number.isInteger(size) && size >= 1 && size <= s)) throw new OmniglotDataError(`embedding size must be an integer in [1, ${s}], got ${size}`);
  if (!(Number.isInteger(drawings) && drawings >= 1 && drawings <= DRAWINGS)) throw new OmniglotDataError(`embedding drawings must be an integer in [1, ${DRAWINGS}], got ${drawings}`);
  return split.classes.map((c: OmniglotClass) => {
    const e = new Array<number>(size * size).fill(0);
    for (let d = 0; d < drawings; d++) {
      ds.imageInto(c.character, d, c.rotation, img, 0);
      for (let y = 0; y < s; y++) for (let x = 0; x < s; x++) e[Math.floor((y * size) / s) * size + Math.floor((x * size) / s)]! += img[y * s + x]!;
    }
    const per = drawings * (s / size) ** 2;
    return e.map((v) => v / per);
  });
}

export class ClusteredEpisodeSampler extends EpisodeSampler {
  /** Classes (indices into split.classes) of each cluster. */
  readonly clusters: number[][];
  /** Clusters with at least `way` classes (those episodes can come from). */
  readonly usable: number[];
  private readonly usableClasses: number;

  constructor(split: OmniglotSplit, spec: EpisodeSpec, readonly assignment: Int32Array) {
    super(split, spec);
    if (assignment.length !== split.classes.length) throw new OmniglotDataError(`class clusters: ${assignment.length} ids for the ${split.classes.length} classes of ${split.name}`);
    const k = assignment.reduce((m, c) => Math.max(m, c + 1), 0);
    this.clusters = Array.from({ length: k }, () => []);
    assignment.forEach((c, i) => this.clusters[c]!.push(i));
    this.usable = this.clusters.map((m, c) => (m.length >= spec.way ? c : -1)).filter((c) => c >= 0);
    if (this.usable.length === 0) throw new OmniglotDataError(`no class cluster of ${split.name} has ${spec.way} classes for a ${spec.way}-way episode`);
    this.usableClasses = this.usable.reduce((s, c) => s + this.clusters[c]!.length, 0);
  }

  /** The cluster episode `index` draws from. */
  clusterOf(index: number): number {
    const rng = new Rng(this.seed, STREAM.sampler, index);
    let u = rng.int(this.usableClasses), j = 0;
    while (u >= this.clusters[this.usable[j]!]!.length) u -= this.clusters[this.usable[j++]!]!.length;
    return this.usable[j]!;
  }

  override draw(index: number): EpisodeDraw {
    return this.drawIn(this.clusterOf(index), index);
  }

  /** Episode `index` with its classes from cluster `cluster` (a meta-batch of episodes from one cluster). */
  drawIn(cluster: number, index: number): EpisodeDraw {
    if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) throw new RangeError(`episode index must be an integer in [0, 2^32), got ${index}`);
    const members = this.clusters[cluster];
    if (!members || members.length < this.way) throw new RangeError(`cluster ${cluster} has ${members?.length ?? 0} classes, a ${this.way}-way episode needs ${this.way}`);
    const rng = new Rng(this.seed, STREAM.sampler, index);
    rng.int(this.usableClasses); // the cluster draw of draw(index), so drawIn(clusterOf(i), i) = draw(i)
    const picked = rng.choose(members.length, this.way);
    const classes: OmniglotClass[] = [], support: number[][] = [], query: number[][] = [];
    for (let c = 0; c < this.way; c++) {
      classes.push(this.split.classes[members[picked[c]!]!]!);
      const d = rng.choose(DRAWINGS, this.shot + this.query);
      support.push(Array.from(d.subarray(0, this.shot)));
      query.push(Array.from(d.subarray(this.shot)));
    }
    return { classes, support, query };
  }

  episodeInCluster(cluster: number, index: number): Episode {
    const d = this.drawIn(cluster, index);
    return this.assemble(d);
  }

  /** EpisodeSampler.episode(i) assembles the pixels of draw(i): route a fixed draw through it (an own property shadows draw for one call). */
  private assemble(d: EpisodeDraw): Episode {
    Object.defineProperty(this, 'draw', { value: () => d, configurable: true });
    try {
      return super.episode(0);
    } finally {
      delete (this as { draw?: unknown }).draw;
    }
  }
}
