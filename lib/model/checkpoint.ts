/**
 * ProtoNet checkpoints in safetensors: the state_dict tensors (loadable by
 * PyTorch's load_state_dict unchanged) plus metadata (model config, training
 * config, step, seeds). Training state that PyTorch must not see (optimizer
 * moments, RNG counters) goes to a sidecar `<name>.state.safetensors`.
 */
import { existsSync } from 'node:fs';
import { readSafetensors, writeSafetensors, SafetensorsError, type SafetensorsHeader, type StData } from '../io/safetensors.js';
import { DEFAULT_MODEL, ProtoNetLayout, type BnState, type ModelConfig } from './layout.js';

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

/**
 * Bounds on a checkpoint's model config, checked (with every tensor's name,
 * shape and dtype) before any parameter memory is allocated. Snell et al. use
 * 64 channels, 4 blocks, 28x28 single-channel images.
 */
export const MODEL_LIMITS = { channels: 1024, imageSize: 512, inChannels: 64, blocks: 8 } as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validate a model config read from a file: known fields only, integers within MODEL_LIMITS, BN constants in range. */
function checkModelConfig(raw: unknown, file: string, from: string): Partial<ModelConfig> {
  if (!isObject(raw)) throw new SafetensorsError(file, `${from} is ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : typeof raw}, expected a JSON object`, { field: 'model' });
  for (const k of Object.keys(raw)) {
    if (!Object.prototype.hasOwnProperty.call(DEFAULT_MODEL, k)) {
      throw new SafetensorsError(file, `${from}: unknown field ${JSON.stringify(k)} (expected ${Object.keys(DEFAULT_MODEL).join(', ')})`, { field: k });
    }
  }
  for (const k of Object.keys(MODEL_LIMITS) as (keyof typeof MODEL_LIMITS)[]) {
    const v = raw[k];
    if (v !== undefined && !(Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= MODEL_LIMITS[k])) {
      throw new SafetensorsError(file, `${from}: ${k} is ${JSON.stringify(v)}, expected an integer in [1, ${MODEL_LIMITS[k]}]`, { field: k });
    }
  }
  const eps = raw['bnEps'], mom = raw['bnMomentum'];
  if (eps !== undefined && !(typeof eps === 'number' && eps > 0 && eps <= 1)) throw new SafetensorsError(file, `${from}: bnEps is ${JSON.stringify(eps)}, expected a number in (0, 1]`, { field: 'bnEps' });
  if (mom !== undefined && !(typeof mom === 'number' && mom >= 0 && mom <= 1)) throw new SafetensorsError(file, `${from}: bnMomentum is ${JSON.stringify(mom)}, expected a number in [0, 1]`, { field: 'bnMomentum' });
  return raw as Partial<ModelConfig>;
}

const nbtName = (i: number): string => `encoder.${i}.1.num_batches_tracked`;

/** The model layout a checkpoint header describes (metadata "model", else inferred from the tensors as PyTorch writes them), fully checked. */
function checkpointLayout(h: SafetensorsHeader, expect: Partial<ModelConfig> | undefined): ProtoNetLayout {
  const path = h.file;
  const format = h.metadata['format'];
  if (format !== undefined && format !== CHECKPOINT_FORMAT) {
    throw new SafetensorsError(path, `metadata format is ${JSON.stringify(format)}, expected ${CHECKPOINT_FORMAT} (not an evometa ProtoNet checkpoint)`, { field: 'format' });
  }
  let config: Partial<ModelConfig>;
  if (h.metadata['model'] !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(h.metadata['model']);
    } catch {
      throw new SafetensorsError(path, 'metadata field "model" is not valid JSON', { field: 'model' });
    }
    config = checkModelConfig(raw, path, 'metadata "model"');
  } else {
    // A checkpoint written elsewhere (e.g. by PyTorch): channels and input channels from the first conv, blocks from the names.
    const w = h.entries.get('encoder.0.0.weight');
    if (!w) throw new SafetensorsError(path, 'missing tensor encoder.0.0.weight', { tensor: 'encoder.0.0.weight' });
    if (w.shape.length !== 4) throw new SafetensorsError(path, `tensor encoder.0.0.weight has shape [${w.shape.join(', ')}], expected [channels, inChannels, 3, 3]`, { tensor: w.name });
    let blocks = 0;
    while (blocks <= MODEL_LIMITS.blocks && h.entries.has(`encoder.${blocks}.0.weight`)) blocks++;
    config = checkModelConfig({ channels: w.shape[0], inChannels: w.shape[1], blocks, ...(expect ?? {}) }, path, 'model inferred from the tensors');
  }
  if (expect) {
    for (const [k, v] of Object.entries(expect)) {
      if (v !== undefined && (config as Record<string, unknown>)[k] !== v) {
        throw new SafetensorsError(path, `model ${k} is ${String((config as Record<string, unknown>)[k])}, expected ${String(v)}`, { field: k });
      }
    }
  }
  const full = { ...DEFAULT_MODEL, ...config };
  let side = full.imageSize;
  for (let i = 0; i < full.blocks; i++) side = Math.floor(side / 2); // conv 3x3 pad 1 keeps the side, max-pool 2 halves it
  if (side < 1) throw new SafetensorsError(path, `model imageSize ${full.imageSize} is too small for ${full.blocks} blocks (each halves it; at least ${2 ** full.blocks} needed)`, { field: 'imageSize' });
  let layout: ProtoNetLayout;
  try {
    layout = new ProtoNetLayout(config);
  } catch (e) {
    throw new SafetensorsError(path, `invalid model config: ${(e as Error).message}`, { field: 'model' });
  }
  // Every tensor the model needs, with its shape and a float dtype; num_batches_tracked optional; nothing else.
  const expected = new Set<string>();
  for (const e of [...layout.params, ...layout.buffers]) {
    expected.add(e.name);
    const t = h.entries.get(e.name);
    if (!t) throw new SafetensorsError(path, `missing tensor ${e.name}`, { tensor: e.name });
    if (t.shape.join(',') !== e.shape.join(',')) throw new SafetensorsError(path, `tensor ${e.name} has shape [${t.shape.join(', ')}], expected [${e.shape.join(', ')}]`, { tensor: e.name });
    if (t.dtype !== 'F32' && t.dtype !== 'F64') throw new SafetensorsError(path, `tensor ${e.name} has dtype ${t.dtype}, expected F32`, { tensor: e.name });
  }
  for (let i = 0; i < layout.config.blocks; i++) {
    const name = nbtName(i);
    expected.add(name);
    const t = h.entries.get(name);
    if (t && ((t.dtype !== 'I64' && t.dtype !== 'I32') || t.shape.reduce((a, b) => a * b, 1) !== 1 || t.shape.length > 1)) {
      throw new SafetensorsError(path, `tensor ${name} is ${t.dtype} [${t.shape.join(', ')}], expected an I64 scalar`, { tensor: name });
    }
  }
  for (const name of h.entries.keys()) {
    if (!expected.has(name)) {
      throw new SafetensorsError(path, `unexpected tensor ${name}: not part of a ${layout.config.blocks}-block ConvNet-4 with ${layout.config.channels} channels`, { tensor: name });
    }
  }
  return layout;
}

/** Copy a checked tensor into `into` at e.offset (float32), refusing non-finite values (and negative ones where `nonNegative`). */
function copyFinite(path: string, name: string, src: StData, into: Float32Array, offset: number, nonNegative: boolean): void {
  into.set(src as Float32Array | Float64Array, offset);
  for (let i = 0; i < src.length; i++) {
    const v = into[offset + i]!;
    if (!Number.isFinite(v)) {
      const s = Number(src[i]);
      const what = Number.isFinite(s) ? `${s}, which overflows float32` : String(s);
      throw new SafetensorsError(path, `tensor ${name}: element ${i} is ${what} (every value must be finite)`, { tensor: name });
    }
    if (nonNegative && v < 0) throw new SafetensorsError(path, `tensor ${name}: element ${i} is ${v}, but a running variance must be >= 0`, { tensor: name });
  }
}

/**
 * Load a ProtoNet checkpoint (evometa's, or a PyTorch state_dict with the same names).
 * Validated before use, each failure a SafetensorsError naming the file and the tensor or field:
 * the safetensors structure (readSafetensors); metadata format and model config (MODEL_LIMITS)
 * before any allocation; every tensor present with its shape and a float dtype, no unknown tensor;
 * every value finite; running_var >= 0; num_batches_tracked a non-negative integer.
 */
export function loadCheckpoint(path: string, expect?: Partial<ModelConfig>): LoadedCheckpoint {
  let checked: ProtoNetLayout | null = null;
  const f = readSafetensors(path, { check: (h) => { checked = checkpointLayout(h, expect); } });
  const layout = checked as unknown as ProtoNetLayout;
  const params = new Float32Array(layout.numParams);
  const buffers = new Float32Array(layout.numBuffers);
  for (const e of layout.params) copyFinite(path, e.name, f.tensors.get(e.name)!.data, params, e.offset, false);
  for (const e of layout.buffers) copyFinite(path, e.name, f.tensors.get(e.name)!.data, buffers, e.offset, e.name.endsWith('running_var'));
  let numBatchesTracked = 0;
  for (let i = 0; i < layout.config.blocks; i++) {
    const t = f.tensors.get(nbtName(i));
    if (!t) continue;
    const v = typeof t.data[0] === 'bigint' ? t.data[0] : BigInt(t.data[0]!);
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new SafetensorsError(path, `tensor ${nbtName(i)} is ${v}, expected a non-negative count below 2^53`, { tensor: nbtName(i) });
    }
    if (i === 0) numBatchesTracked = Number(v); // one count for the model: block 0's (every block's is checked)
  }
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

/**
 * Load the training-state sidecar: the safetensors structure validated, every tensor F32 or F64 with
 * finite values, metadata "state" a JSON object; failures name the file and the tensor or field.
 */
export function loadTrainState(checkpointPath: string): TrainState {
  const p = trainStatePath(checkpointPath);
  if (!existsSync(p)) throw new SafetensorsError(p, 'training state file not found (needed for --resume; it is written beside each checkpoint)');
  const f = readSafetensors(p, {
    check: (h) => {
      for (const t of h.entries.values()) {
        if (t.dtype !== 'F32' && t.dtype !== 'F64') throw new SafetensorsError(p, `tensor ${t.name} has dtype ${t.dtype}, expected F32 or F64`, { tensor: t.name });
      }
    },
  });
  const tensors: Record<string, Float32Array | Float64Array> = {};
  for (const [k, t] of f.tensors) {
    const d = t.data as Float32Array | Float64Array;
    for (let i = 0; i < d.length; i++) {
      if (!Number.isFinite(d[i]!)) throw new SafetensorsError(p, `tensor ${k}: element ${i} is ${d[i]} (training state must be finite)`, { tensor: k });
    }
    tensors[k] = d;
  }
  let meta: unknown;
  try {
    meta = JSON.parse(f.metadata['state'] ?? '{}');
  } catch {
    throw new SafetensorsError(p, 'metadata field "state" is not valid JSON', { field: 'state' });
  }
  if (!isObject(meta)) throw new SafetensorsError(p, 'metadata field "state" is not a JSON object', { field: 'state' });
  return { tensors, meta };
}
