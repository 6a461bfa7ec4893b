/** What an exporter reads: a checkpoint file or a model state in memory, and evometa's own version. */
import { readFileSync } from 'node:fs';
import { loadCheckpoint, type ProtoNetState } from '../model/checkpoint.js';
import { UserError } from '../errors.js';

/** A model state to export, with the metadata to record beside it (a checkpoint's `meta`, or your own). */
export interface ExportState extends ProtoNetState {
  meta?: Record<string, unknown>;
}

export interface ResolvedSource {
  state: ProtoNetState;
  meta: Record<string, unknown>;
  /** The checkpoint file, when the source was one. */
  path?: string;
}

/** Load a checkpoint path (errors name the file) or check an in-memory state. */
export function resolveSource(src: string | ExportState): ResolvedSource {
  if (typeof src === 'string') {
    const ck = loadCheckpoint(src);
    return { state: ck, meta: ck.meta, path: src };
  }
  const { layout, params, bn } = src;
  if (params.length !== layout.numParams) throw new UserError(`export: parameter vector has ${params.length} elements, the model needs ${layout.numParams}`);
  if (bn.buffers.length !== layout.numBuffers) throw new UserError(`export: BN buffer vector has ${bn.buffers.length} elements, the model needs ${layout.numBuffers}`);
  return { state: { layout, params, bn }, meta: src.meta ?? {} };
}

let version: string | null = null;

/** evometa's version, from its package.json (the producer version written into exported files). */
export function evometaVersion(): string {
  if (version === null) {
    try {
      // dist/lib/export/source.js -> package.json at the package root.
      const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { name?: string; version?: string };
      version = pkg.name === 'evometa' && typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      version = 'unknown';
    }
  }
  return version;
}
