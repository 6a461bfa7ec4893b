/**
 * A run's checkpoints. Each checkpoint is a pair written by the loop:
 *   NAME.state.safetensors  everything a resume needs: the method's state
 *                           tensors and JSON, its configuration, the loop's
 *                           state (step, best score, elapsed time, collapse
 *                           detector, work done) -- written FIRST, atomically;
 *   NAME.safetensors        the model for users (a PyTorch state_dict with
 *                           metadata), written second, atomically.
 * A resume reads only the state file, so a kill at any instant leaves a
 * resumable run: either the previous state or the new one is complete on disk
 * (the model file may then lag the state by one checkpoint).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, SafetensorsError, writeSafetensors, type StData } from '../io/safetensors.js';
import { UserError } from '../errors.js';
import type { CollapseState } from './collapse.js';
import type { MethodState, TrainMethod } from './method.js';

export const RUN_STATE_FORMAT = 'evometa-run-state-1';

export interface LoopState {
  /** Steps done. */
  step: number;
  bestScore: number | null;
  bestStep: number;
  /** Wall-clock seconds of training over every session of the run. */
  elapsedS: number;
  /** Cumulative work (the method's unit). */
  work: number;
  collapse: CollapseState | null;
}

export interface RunState {
  method: string;
  config: Record<string, unknown>;
  loop: LoopState;
  state: MethodState;
  /** Package version that wrote it. */
  version: string;
}

/** run/best.safetensors -> run/best.state.safetensors */
export function statePathOf(checkpoint: string): string {
  if (checkpoint.endsWith('.state.safetensors')) return checkpoint;
  return checkpoint.replace(/(\.safetensors)?$/, '.state.safetensors');
}

/** What --resume accepts: a run directory (its last checkpoint), a model checkpoint or its state file. */
export function resolveResumePath(p: string): string {
  if (!existsSync(p)) throw new UserError(`--resume: ${p} does not exist`);
  const target = statSync(p).isDirectory() ? join(p, 'last.safetensors') : p;
  const st = statePathOf(target);
  if (!existsSync(st)) throw new UserError(`--resume ${p}: its training state ${st} does not exist (every checkpoint of a run is written with one)`);
  return st;
}

export function writeRunCheckpoint(path: string, method: TrainMethod, loop: LoopState, version: string, meta: Record<string, unknown> = {}): void {
  const s = method.saveState();
  const tensors: Record<string, { shape: number[]; data: StData }> = {};
  for (const [k, v] of Object.entries(s.tensors)) tensors[k] = { shape: [v.length], data: v };
  const header = { format: RUN_STATE_FORMAT, method: method.name, config: method.config, loop, meta: s.meta, version };
  writeSafetensors(statePathOf(path), tensors, { state: JSON.stringify(header) });
  const model = method.exportModel?.();
  if (model) {
    writeSafetensors(path, model.tensors, { ...model.metadata, method: method.name, step: String(loop.step), ...Object.fromEntries(Object.entries(meta).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])) });
  }
}

/** A run's training state (NAME.state.safetensors): the method's state, its config and the loop's; resume with method.loadState(s.state) and runLoop(method, { resume: s.loop }). */
export function readRunState(statePath: string): RunState {
  const f = readSafetensors(statePath);
  let h: { format?: unknown; method?: unknown; config?: unknown; loop?: unknown; meta?: unknown; version?: unknown };
  try {
    h = JSON.parse(f.metadata['state'] ?? 'null') as typeof h;
  } catch {
    throw new SafetensorsError(statePath, 'metadata field "state" is not valid JSON');
  }
  if (!h || h.format !== RUN_STATE_FORMAT) {
    throw new SafetensorsError(statePath, `not a training state of this version (format ${JSON.stringify(h?.format)}, expected ${RUN_STATE_FORMAT})`);
  }
  if (typeof h.method !== 'string' || !h.config || typeof h.config !== 'object' || !h.loop || typeof h.loop !== 'object') {
    throw new SafetensorsError(statePath, 'training state lacks its method, config or loop state');
  }
  const loop = h.loop as LoopState;
  if (!(Number.isInteger(loop.step) && loop.step >= 0)) throw new SafetensorsError(statePath, `loop step ${String(loop.step)} is not a non-negative integer`);
  const tensors: Record<string, Float32Array | Float64Array> = {};
  for (const [k, t] of f.tensors) {
    if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) throw new SafetensorsError(statePath, `tensor ${k} has dtype ${t.dtype}, expected F32 or F64`);
    tensors[k] = t.data;
  }
  return {
    method: h.method, config: h.config as Record<string, unknown>, loop: { ...loop, collapse: loop.collapse ?? null },
    state: { tensors, meta: (h.meta ?? {}) as Record<string, unknown> }, version: String(h.version ?? ''),
  };
}

/**
 * Merge what a resumed run may change into its saved configuration; refuse
 * anything else that differs (it would change the training maths).
 */
export function resumeConfig<T extends object>(path: string, saved: T, given: Partial<T>, changeable: readonly string[], prefix = ''): T {
  const out = { ...saved } as Record<string, unknown>;
  for (const [k, v] of Object.entries(given)) {
    if (v === undefined) continue;
    const sv = (saved as Record<string, unknown>)[k];
    if (changeable.includes(prefix + k)) { out[k] = v; continue; }
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && sv && typeof sv === 'object') {
      out[k] = resumeConfig(path, sv, v as Record<string, unknown>, changeable, `${prefix}${k}.`);
    } else if (JSON.stringify(v) !== JSON.stringify(sv)) {
      throw new UserError(`--resume ${path}: ${prefix}${k} is ${JSON.stringify(sv)} in the saved run; cannot change it to ${JSON.stringify(v)} (it would change the training maths; changeable: ${changeable.join(', ') || 'none'})`);
    }
  }
  return out as T;
}
