/**
 * An ES-ProtoNet run as the cluster describes it: the run's metadata (the
 * resolved config, where the episodes come from, the device, the sync mode,
 * the package version and a hash over what fixes the maths), and, on a
 * worker, what that metadata opens: the validated config, the model layout,
 * the train episodes rebuilt locally (episode(i) is a pure function of split,
 * seed and i), and a template strategy from which the worker derives every
 * step's population, sigma and weight rule itself to check the step blob.
 *
 * Nothing received is used before it passes the same validation as the CLI
 * (resolveEsConfig) and the hash check.
 */
import { UserError } from '../errors.js';
import { resolveEsConfig, type EsConfig } from '../methods/protonet-es/config.js';
import { strategyFor } from '../methods/protonet-es/method.js';
import { omniglotSources, type EpisodeSource } from '../methods/protonet/data.js';
import { ProtoNetLayout } from '../model/layout.js';
import type { Episode } from '../model/protonet.js';
import { SyntheticEpisodes, type SyntheticOptions } from '../data/synthetic.js';
import type { OmniglotDataset } from '../data/omniglot.js';
import type { EvolutionStrategy } from '../es/strategy.js';
import { canonicalJson, episodeDigest, HEX64, RUN_ID, sha256, WireError } from './wire.js';
import { NAME, PROTOCOL } from './protocol.js';
import type { SyncMode } from './options.js';

/** Where a run's training episodes come from: Omniglot (each worker loads its own copy) or synthetic episodes (tests, benchmarks). */
export type DataDescriptor = { kind: 'omniglot' } | { kind: 'synthetic'; train: SyntheticOptions };

export interface RunMeta {
  v: number;
  run: string;
  /** evometa package version of the coordinator (workers of another version never see the run). */
  version: string;
  method: 'protonet-es';
  config: EsConfig;
  data: DataDescriptor;
  device: string;
  sync: SyncMode;
  /** configHash(method, config, data, device). */
  hash: string;
  /** The coordinator's host name and pid (for messages). */
  coordinator: string;
}

/** SHA-256 over what fixes a run's maths: method, resolved config, data source, device. */
export function configHash(config: EsConfig, data: DataDescriptor, device: string): string {
  return sha256(canonicalJson({ method: 'protonet-es', config, data, device }));
}

const DEVICE = /^[a-z0-9][a-z0-9_-]{0,31}$/;

function checkSynthetic(o: unknown, cfg: EsConfig): SyntheticOptions {
  const bad = (m: string): never => { throw new WireError(`run data: synthetic ${m}`); };
  if (!o || typeof o !== 'object') bad('options missing');
  const s = o as Record<string, unknown>;
  for (const k of Object.keys(s)) if (!['way', 'shot', 'query', 'imageSize', 'classes', 'noise', 'seed'].includes(k)) bad(`has an unknown field ${k}`);
  const i = (k: string, min: number, max: number, opt = false): number | undefined => {
    const v = s[k];
    if (v === undefined && opt) return undefined;
    if (!(typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max)) bad(`${k} = ${JSON.stringify(v)} is not an integer in [${min}, ${max}]`);
    return v as number;
  };
  const r: SyntheticOptions = { way: i('way', 1, 1000)!, shot: i('shot', 1, 1000)!, query: i('query', 1, 1000)!, imageSize: i('imageSize', 1, 256)! };
  const classes = i('classes', 1, 4096, true), seed = i('seed', 0, 0xffffffff, true);
  if (classes !== undefined) r.classes = classes;
  if (seed !== undefined) r.seed = seed;
  const noise = s['noise'];
  if (noise !== undefined) {
    if (!(typeof noise === 'number' && Number.isFinite(noise) && noise >= 0)) bad('noise is not a finite number >= 0');
    r.noise = noise as number;
  }
  if (r.imageSize !== cfg.model.imageSize) bad(`imageSize ${r.imageSize} differs from the model's ${cfg.model.imageSize}`);
  if (r.way !== cfg.train.way || r.shot !== cfg.train.shot || r.query !== cfg.train.query) bad(`episodes ${r.way}-way ${r.shot}+${r.query} differ from the config's train shape`);
  return r;
}

/**
 * Validate run metadata received from Redis: the JSON shape, the config
 * through resolveEsConfig (which must leave it unchanged: the coordinator
 * sends it resolved), the data source, and the hash. Version and device are
 * checked by the caller (they decide which units a worker sees at all).
 */
export function parseRunMeta(json: string, expectRun: string): RunMeta {
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(json) as Record<string, unknown>;
  } catch {
    throw new WireError(`run ${expectRun}: metadata is not valid JSON`);
  }
  if (!m || typeof m !== 'object') throw new WireError(`run ${expectRun}: metadata is not an object`);
  if (m['v'] !== PROTOCOL) throw new WireError(`run ${expectRun}: metadata protocol ${JSON.stringify(m['v'])}, expected ${PROTOCOL}`);
  if (m['run'] !== expectRun || typeof m['run'] !== 'string' || !RUN_ID.test(m['run'])) throw new WireError(`run ${expectRun}: metadata names run ${JSON.stringify(m['run'])}`);
  if (m['method'] !== 'protonet-es') throw new WireError(`run ${expectRun}: method ${JSON.stringify(m['method'])} is not one this worker runs (protonet-es)`);
  const str = (k: string, re: RegExp): string => {
    const v = m[k];
    if (typeof v !== 'string' || !re.test(v)) throw new WireError(`run ${expectRun}: metadata ${k} = ${JSON.stringify(v)?.slice(0, 80)} is malformed`);
    return v;
  };
  const version = str('version', /^[0-9A-Za-z.+-]{1,64}$/), device = str('device', DEVICE), hash = str('hash', HEX64);
  const sync = str('sync', /^(mean|fitness)$/) as SyncMode;
  const coordinator = str('coordinator', NAME);
  let config: EsConfig;
  try {
    config = resolveEsConfig(m['config'] as Parameters<typeof resolveEsConfig>[0]);
  } catch (e) {
    throw new WireError(`run ${expectRun}: its config does not pass validation: ${(e as Error).message}`);
  }
  if (canonicalJson(config) !== canonicalJson(m['config'])) throw new WireError(`run ${expectRun}: its config is not a resolved configuration (validation changed it)`);
  const d = m['data'] as Record<string, unknown> | null;
  let data: DataDescriptor;
  if (d && d['kind'] === 'omniglot' && Object.keys(d).length === 1) data = { kind: 'omniglot' };
  else if (d && d['kind'] === 'synthetic' && Object.keys(d).length === 2) data = { kind: 'synthetic', train: checkSynthetic(d['train'], config) };
  else throw new WireError(`run ${expectRun}: data source ${JSON.stringify(d)?.slice(0, 80)} is not one this worker knows`);
  if (configHash(config, data, device) !== hash) throw new WireError(`run ${expectRun}: config hash mismatch (the metadata was altered or written by an incompatible coordinator)`);
  return { v: PROTOCOL, run: expectRun, version, method: 'protonet-es', config, data, device, sync, hash, coordinator };
}

export interface WorkerDataOptions {
  dataDir?: string;
  cacheDir?: string | false;
  onWarning?: (m: string) => void;
  /** Loaded Omniglot datasets by image size, shared by the runs a worker serves. */
  datasets?: Map<number, OmniglotDataset>;
}

/** What a worker holds for a run it serves. */
export class RunContext {
  readonly layout: ProtoNetLayout;
  readonly dim: number;
  readonly train: EpisodeSource;
  /** Derives population, sigma and weight rule of any step (its mean is never used). */
  readonly template: EvolutionStrategy;
  private epCache: { step: number; episodes: Episode[]; digest: string } | null = null;

  constructor(readonly meta: RunMeta, data: WorkerDataOptions) {
    const cfg = meta.config;
    this.layout = new ProtoNetLayout(cfg.model);
    this.dim = this.layout.numParams;
    this.template = strategyFor(cfg, new Float32Array(this.dim));
    if (meta.data.kind === 'synthetic') {
      this.train = new SyntheticEpisodes(meta.data.train);
    } else {
      try {
        const have = data.datasets?.get(cfg.model.imageSize);
        const s = omniglotSources(cfg, {
          ...(have ? { dataset: have } : {}), ...(data.dataDir !== undefined ? { dataDir: data.dataDir } : {}),
          ...(data.cacheDir !== undefined ? { cacheDir: data.cacheDir } : {}), ...(data.onWarning ? { onWarning: data.onWarning } : {}),
        });
        data.datasets?.set(cfg.model.imageSize, s.dataset);
        this.train = s.train;
      } catch (e) {
        throw new UserError(`run ${meta.run}: cannot load Omniglot for it: ${(e as Error).message}`);
      }
    }
  }

  get config(): EsConfig { return this.meta.config; }

  /** The train episodes of step t (the method's episodesOf), checked against the coordinator's digest. */
  episodes(step: number, first: number, count: number, digest: string): Episode[] {
    const e = this.config.episodesPerStep;
    if (first !== step * e || count !== e) throw new WireError(`step ${step}: episodes ${first}..${first + count - 1}, but the config's step uses ${step * e}..${step * e + e - 1}`);
    if (this.epCache?.step !== step) {
      const episodes = Array.from({ length: e }, (_, i) => this.train.episode(first + i));
      this.epCache = { step, episodes, digest: episodeDigest(episodes) };
    }
    if (this.epCache.digest !== digest) {
      throw new UserError(`run ${this.meta.run} step ${step}: this worker's episodes differ from the coordinator's (data digest ${this.epCache.digest.slice(0, 12)} vs ${digest.slice(0, 12)}): give the worker the same Omniglot data (--data) as the coordinator`);
    }
    return this.epCache.episodes;
  }
}
