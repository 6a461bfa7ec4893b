/**
 * ProtoNet checkpoints in safetensors: the state_dict tensors (loadable by
 * PyTorch's load_state_dict unchanged) plus metadata (model config, training
 * config, step, seeds). Training state that PyTorch must not see (optimizer
 * moments, RNG counters) goes to a sidecar `<name>.state.safetensors`.
 */
import { existsSync } from 'node:fs';
import { readSafetensors, writeSafetensors, SafetensorsError, type StData } from '../io/safetensors.js';
import { ProtoNetLayout, type BnState, type ModelConfig } from './layout.js';

export const CHECKPOINT_FORMAT = 'evometa-protonet-1';

export interface ProtoNetState {
  layout: ProtoNetLayout;
  params: Float32Array;
  bn: BnState;
}

export interface LoadedCheckpoint extends ProtoNetState {
  /** Everything in __metadata__ besides the format and model config, JSON-decoded where possible. */
  meta: Record<string, unknown>;
}

/** The state_dict tensors (PyTorch names and shapes) and metadata of a ProtoNet, ready for writeSafetensors. */
export function checkpointTensors(state: ProtoNetState, meta: Record<string, unknown> = {}): { tensors: Record<string, { shape: number[]; data: StData }>; metadata: Record<string, string> } {
  const { layout, params, bn } = state;
  layout.checkParams(params);
  const tensors: Record<string, { shape: number[]; data: StData }> = {};
  for (let i = 0; i < layout.config.blocks; i++) {
    for (const s of ['0.weight', '0.bias', '1.weight', '1.bias']) {
      const e = layout.param(`encoder.${i}.${s}`);
      tensors[e.name] = { shape: e.shape, data: params.slice(e.offset, e.offset + e.size) };
    }
    for (const s of ['running_mean', 'running_var']) {
      const e = layout.buffer(`encoder.${i}.1.${s}`);
      tensors[e.name] = { shape: e.shape, data: bn.buffers.slice(e.offset, e.offset + e.size) };
    }
    tensors[`encoder.${i}.1.num_batches_tracked`] = { shape: [], data: BigInt64Array.of(BigInt(bn.numBatchesTracked)) };
  }
  const metadata: Record<string, string> = { format: CHECKPOINT_FORMAT, model: JSON.stringify(layout.config) };
  for (const [k, v] of Object.entries(meta)) metadata[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return { tensors, metadata };
}

export function saveCheckpoint(path: string, state: ProtoNetState, meta: Record<string, unknown> = {}): void {
  const { tensors, metadata } = checkpointTensors(state, meta);
  writeSafetensors(path, tensors, metadata);
}

export function loadCheckpoint(path: string, expect?: Partial<ModelConfig>): LoadedCheckpoint {
  const f = readSafetensors(path);
  let config: Partial<ModelConfig> = {};
  if (f.metadata['model']) {
    try {
      config = JSON.parse(f.metadata['model']) as Partial<ModelConfig>;
    } catch {
      throw new SafetensorsError(path, `metadata field "model" is not valid JSON`);
    }
  } else {
    // A checkpoint written elsewhere (e.g. by PyTorch): infer channels and input channels from the first conv.
    const w = f.tensors.get('encoder.0.0.weight');
    if (!w) throw new SafetensorsError(path, 'missing tensor encoder.0.0.weight');
    config = { channels: w.shape[0], inChannels: w.shape[1], ...(expect ?? {}) };
  }
  if (expect) {
    for (const [k, v] of Object.entries(expect)) {
      if (v !== undefined && (config as Record<string, unknown>)[k] !== v) {
        throw new SafetensorsError(path, `model ${k} is ${String((config as Record<string, unknown>)[k])}, expected ${String(v)}`);
      }
    }
  }
  let layout: ProtoNetLayout;
  try {
    layout = new ProtoNetLayout(config);
  } catch (e) {
    throw new SafetensorsError(path, `invalid model config: ${(e as Error).message}`);
  }
  const params = new Float32Array(layout.numParams);
  const buffers = new Float32Array(layout.numBuffers);
  const copy = (entries: typeof layout.params, into: Float32Array): void => {
    for (const e of entries) {
      const t = f.tensors.get(e.name);
      if (!t) throw new SafetensorsError(path, `missing tensor ${e.name}`);
      if (t.shape.join(',') !== e.shape.join(',')) throw new SafetensorsError(path, `tensor ${e.name} has shape [${t.shape.join(', ')}], expected [${e.shape.join(', ')}]`);
      if (t.dtype !== 'F32' && t.dtype !== 'F64') throw new SafetensorsError(path, `tensor ${e.name} has dtype ${t.dtype}, expected F32`);
      into.set(t.data as Float32Array | Float64Array, e.offset);
    }
  };
  copy(layout.params, params);
  copy(layout.buffers, buffers);
  const nbt = f.tensors.get('encoder.0.1.num_batches_tracked');
  const numBatchesTracked = nbt && nbt.data instanceof BigInt64Array ? Number(nbt.data[0]) : 0;
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(f.metadata)) {
    if (k === 'model') continue;
    try {
      meta[k] = JSON.parse(v);
    } catch {
      meta[k] = v;
    }
  }
  return { layout, params, bn: { buffers, numBatchesTracked }, meta };
}

/** Sidecar path for training state: run/best.safetensors -> run/best.state.safetensors. */
export function trainStatePath(checkpointPath: string): string {
  return checkpointPath.replace(/(\.safetensors)?$/, '.state.safetensors');
}

export interface TrainState { tensors: Record<string, Float32Array | Float64Array>; meta: Record<string, unknown> }

export function saveTrainState(checkpointPath: string, st: TrainState): void {
  const tensors: Record<string, { shape: number[]; data: StData }> = {};
  for (const [k, v] of Object.entries(st.tensors)) tensors[k] = { shape: [v.length], data: v };
  writeSafetensors(trainStatePath(checkpointPath), tensors, { state: JSON.stringify(st.meta) });
}

export function loadTrainState(checkpointPath: string): TrainState {
  const p = trainStatePath(checkpointPath);
  if (!existsSync(p)) throw new SafetensorsError(p, 'training state file not found (needed for --resume; it is written beside each checkpoint)');
  const f = readSafetensors(p);
  const tensors: Record<string, Float32Array | Float64Array> = {};
  for (const [k, t] of f.tensors) {
    if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) throw new SafetensorsError(p, `tensor ${k} has dtype ${t.dtype}, expected F32 or F64`);
    tensors[k] = t.data;
  }
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(f.metadata['state'] ?? '{}') as Record<string, unknown>;
  } catch {
    throw new SafetensorsError(p, 'metadata field "state" is not valid JSON');
  }
  return { tensors, meta };
}
