/**
 * Command-line options of `evometa l2l` as a configuration input, for the
 * command to be wired onto the one training loop (lib/train/loop.ts): every
 * option optional (the preset fills the rest), each parsed with an error that
 * names it. `--cluster k` selects clustered meta-batches with k clusters;
 * `--cluster 0` (or `--batch-mode random`) random ones.
 */
import { parseChoice, parseNum, UserError } from '../errors.js';
import { L2L_TRAINERS, type L2lConfigInput } from './config.js';
import { META_LOSSES } from './unroll.js';
import { BATCH_MODES } from './cluster.js';
import { FAMILY_NAMES } from './tasks/families.js';

export interface L2lCliOptions {
  family?: string; trainer?: string; cluster?: string; batchMode?: string; metaBatch?: string; groupSize?: string; pool?: string;
  horizon?: string; unroll?: string; metaLoss?: string; metaLr?: string; pop?: string; sigma?: string; steps?: string; valTasks?: string; seed?: string;
  dims?: string; scales?: string; hidden?: string; channels?: string; imageSize?: string;
}

function list(name: string, v: string | undefined, int: boolean): number[] | undefined {
  if (v === undefined) return undefined;
  const xs = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (xs.length === 0) throw new UserError(`--${name}: expected a comma-separated list of numbers, got ${JSON.stringify(v)}`);
  return xs.map((x) => parseNum(name, x, { int, min: int ? 1 : Number.MIN_VALUE })!);
}

export function l2lConfigFromOptions(o: L2lCliOptions): L2lConfigInput {
  const family = parseChoice('family', o.family, FAMILY_NAMES);
  const k = parseNum('cluster', o.cluster, { int: true, min: 0 });
  let batchMode = parseChoice('batch-mode', o.batchMode, BATCH_MODES);
  if (k !== undefined) {
    if (batchMode === 'cluster' && k === 0) throw new UserError('--cluster 0 means random meta-batches, but --batch-mode cluster was given');
    if (k === 1) throw new UserError('--cluster: k must be 0 (random meta-batches) or >= 2, got 1');
    batchMode ??= k === 0 ? 'random' : 'cluster';
  }
  const fam: Record<string, unknown> = {};
  if (family !== undefined) fam['family'] = family;
  const dims = list('dims', o.dims, true), scales = list('scales', o.scales, false), hidden = list('hidden', o.hidden, true), channels = list('channels', o.channels, true);
  if (dims) fam['dims'] = dims;
  if (scales) fam['scales'] = scales;
  if (hidden) fam['hidden'] = hidden;
  if (channels) fam['channels'] = channels;
  const imageSize = parseNum('image-size', o.imageSize, { int: true, min: 4 });
  if (imageSize !== undefined) fam['imageSize'] = imageSize;
  const es: Record<string, number> = {};
  const pop = parseNum('pop', o.pop, { int: true, min: 2 }), sigma = parseNum('sigma', o.sigma, { min: Number.MIN_VALUE });
  if (pop !== undefined) es['pop'] = pop;
  if (sigma !== undefined) es['sigma'] = sigma;
  const out: L2lConfigInput = {
    ...(Object.keys(fam).length ? { family: fam as L2lConfigInput['family'] } : {}),
    ...(Object.keys(es).length ? { es } : {}),
    trainer: parseChoice('trainer', o.trainer, L2L_TRAINERS),
    batchMode,
    clusters: k !== undefined && k >= 2 ? k : undefined,
    metaBatch: parseNum('meta-batch', o.metaBatch, { int: true, min: 1 }),
    groupSize: parseNum('group-size', o.groupSize, { int: true, min: 1 }),
    poolSize: parseNum('pool', o.pool, { int: true, min: 1 }),
    horizon: parseNum('horizon', o.horizon, { int: true, min: 1 }),
    unroll: parseNum('unroll', o.unroll, { int: true, min: 1 }),
    metaLoss: parseChoice('meta-loss', o.metaLoss, META_LOSSES),
    metaLr: parseNum('meta-lr', o.metaLr, { min: Number.MIN_VALUE }),
    steps: parseNum('steps', o.steps, { int: true, min: 1 }),
    valTasks: parseNum('val-tasks', o.valTasks, { int: true, min: 0 }),
    seed: parseNum('seed', o.seed, { int: true, min: 0, max: 0xffffffff }),
  };
  return out;
}
