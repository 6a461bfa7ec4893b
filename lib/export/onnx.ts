/**
 * ONNX export of the ProtoNet ConvNet-4 encoder in eval mode (BN running statistics):
 * images [N, cin, S, S] float32 -> embeddings [N, E] float32, E = layout.embeddingSize.
 *
 * Per block: Conv(3x3, pads 1) [-> BatchNormalization] -> Relu -> MaxPool(2x2, stride 2); then
 * Flatten(axis 1), which keeps the NCHW order of PyTorch's `reshape(N, -1)` and of our `embed`.
 * With bn 'fold' each BatchNormalization is folded into the conv before it (computed in float64,
 * rounded once to float32):  s = gamma / sqrt(running_var + eps),  W' = W * s,  b' = (b - mean) * s + beta.
 * The protobuf is encoded by protobufjs from our schema (onnx-schema.ts).
 */
import { basename } from 'node:path';
import type { ProtoNetLayout } from '../model/layout.js';
import { UserError } from '../errors.js';
import { ONNX_ATTR, ONNX_DTYPE, onnxModelType } from './onnx-schema.js';
import { evometaVersion, resolveSource, type ExportState } from './source.js';

export type OnnxBnMode = 'fold' | 'keep';

export interface OnnxExportOptions {
  /** 'fold' (default): BN folded into the conv weights; 'keep': BatchNormalization nodes with the running statistics. */
  bn?: OnnxBnMode;
  /** ONNX operator set (default 17; 9 to 23). The IR version follows from it. */
  opset?: number;
  /** 'dynamic' (default: a symbolic batch dimension "N") or a fixed batch size. */
  batch?: 'dynamic' | number;
}

/** Operator sets evometa can write, and the default (PyTorch's torch.onnx default). */
export const ONNX_OPSETS = { min: 9, max: 23, default: 17 } as const;

/** Input and output names of the exported graph. */
export const ONNX_INPUT = 'images';
export const ONNX_OUTPUT = 'embeddings';

/** The IR version that ONNX releases paired with each operator set (the spec's versioning table). */
export function irVersionForOpset(opset: number): number {
  checkOpset(opset);
  if (opset <= 9) return 4;
  if (opset === 10) return 5;
  if (opset === 11) return 6;
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  return 11;
}

function checkOpset(opset: number): void {
  if (!Number.isInteger(opset) || opset < ONNX_OPSETS.min || opset > ONNX_OPSETS.max) {
    throw new UserError(`ONNX opset must be an integer from ${ONNX_OPSETS.min} to ${ONNX_OPSETS.max}, got ${opset}`);
  }
}

// ---- the plain objects protobufjs encodes (field names as in the schema) ----

export interface OnnxAttribute { name: string; type: number; f?: number; i?: number; s?: Uint8Array; ints?: number[]; floats?: number[] }
export interface OnnxNode { name?: string; op_type: string; input: string[]; output: string[]; attribute?: OnnxAttribute[]; domain?: string; doc_string?: string }
export interface OnnxTensor { name: string; dims: number[]; data_type: number; raw_data?: Uint8Array; float_data?: number[]; doc_string?: string }
export interface OnnxDim { dim_value?: number; dim_param?: string }
export interface OnnxValueInfo { name: string; type: { tensor_type: { elem_type: number; shape: { dim: OnnxDim[] } } }; doc_string?: string }
export interface OnnxGraph {
  name: string; doc_string?: string; node: OnnxNode[]; initializer: OnnxTensor[];
  input: OnnxValueInfo[]; output: OnnxValueInfo[]; value_info?: OnnxValueInfo[];
}
export interface OnnxModel {
  ir_version: number; producer_name: string; producer_version: string; domain?: string; model_version?: number;
  doc_string: string; graph: OnnxGraph; opset_import: { domain?: string; version: number }[];
  metadata_props: { key: string; value: string }[];
}

const ints = (name: string, v: number[]): OnnxAttribute => ({ name, type: ONNX_ATTR.INTS, ints: v });
const int = (name: string, v: number): OnnxAttribute => ({ name, type: ONNX_ATTR.INT, i: v });
const float = (name: string, v: number): OnnxAttribute => ({ name, type: ONNX_ATTR.FLOAT, f: v });

function floatTensor(name: string, dims: number[], data: ArrayLike<number>): OnnxTensor {
  const bytes = new Uint8Array(data.length * 4);
  const dv = new DataView(bytes.buffer);
  for (let i = 0; i < data.length; i++) dv.setFloat32(i * 4, data[i]!, true);
  return { name, dims, data_type: ONNX_DTYPE.FLOAT, raw_data: bytes };
}

function valueInfo(name: string, dims: (number | string)[], doc: string): OnnxValueInfo {
  return {
    name,
    doc_string: doc,
    type: { tensor_type: { elem_type: ONNX_DTYPE.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } },
  };
}

function checkFinite(name: string, a: ArrayLike<number>, where: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) throw new UserError(`${where}: tensor ${name} has a non-finite value (${a[i]}) at index ${i}; refusing to export`);
  }
}

/** Folded conv weight and bias of block i (float64 maths, float32 result). */
export function foldBatchNorm(layout: ProtoNetLayout, params: Float32Array, buffers: Float32Array, block: number): { weight: Float32Array; bias: Float32Array } {
  const v = (n: string): Float32Array => layout.view(params, `encoder.${block}.${n}`).data as Float32Array;
  const b = (n: string): Float32Array => layout.bufferView(buffers, `encoder.${block}.1.${n}`).data as Float32Array;
  const w = v('0.weight'), cb = v('0.bias'), gamma = v('1.weight'), beta = v('1.bias'), mean = b('running_mean'), variance = b('running_var');
  const c = cb.length, per = w.length / c, eps = layout.config.bnEps;
  const weight = new Float32Array(w.length), bias = new Float32Array(c);
  for (let o = 0; o < c; o++) {
    const s = gamma[o]! / Math.sqrt(variance[o]! + eps);
    for (let k = 0; k < per; k++) weight[o * per + k] = w[o * per + k]! * s;
    bias[o] = (cb[o]! - mean[o]!) * s + beta[o]!;
  }
  return { weight, bias };
}

/** The ONNX model as plain objects (what exportOnnx encodes); useful to inspect before writing. */
export function buildOnnxModel(src: string | ExportState, options: OnnxExportOptions = {}): OnnxModel {
  const bnMode = options.bn ?? 'fold';
  if (bnMode !== 'fold' && bnMode !== 'keep') throw new UserError(`ONNX export: bn must be "fold" or "keep", got ${JSON.stringify(bnMode)}`);
  const opset = options.opset ?? ONNX_OPSETS.default;
  const irVersion = irVersionForOpset(opset);
  const batch = options.batch ?? 'dynamic';
  if (batch !== 'dynamic' && !(Number.isInteger(batch) && batch >= 1)) throw new UserError(`ONNX export: batch must be "dynamic" or a positive integer, got ${JSON.stringify(batch)}`);

  const { state, meta, path } = resolveSource(src);
  const { layout, params, bn } = state;
  const where = path ?? 'export';
  for (const e of layout.params) checkFinite(e.name, params.subarray(e.offset, e.offset + e.size), where);
  for (const e of layout.buffers) checkFinite(e.name, bn.buffers.subarray(e.offset, e.offset + e.size), where);
  const eps = layout.config.bnEps;
  for (const e of layout.buffers) {
    if (!e.name.endsWith('running_var')) continue;
    for (let i = 0; i < e.size; i++) {
      if (!(bn.buffers[e.offset + i]! + eps > 0)) throw new UserError(`${where}: tensor ${e.name}[${i}] = ${bn.buffers[e.offset + i]} makes running_var + eps <= 0; refusing to export`);
    }
  }

  const cfg = layout.config;
  const nodes: OnnxNode[] = [];
  const inits: OnnxTensor[] = [];
  const raw = (name: string): Float32Array => {
    const e = layout.params.find((x) => x.name === name);
    if (e) return params.subarray(e.offset, e.offset + e.size);
    const b = layout.buffer(name);
    return bn.buffers.subarray(b.offset, b.offset + b.size);
  };
  const shapeOf = (name: string): number[] => (layout.params.find((x) => x.name === name) ?? layout.buffer(name)).shape;
  let h = ONNX_INPUT;
  for (let i = 0; i < cfg.blocks; i++) {
    const p = `encoder.${i}`;
    let wName = `${p}.0.weight`, bName = `${p}.0.bias`;
    if (bnMode === 'fold') {
      const f = foldBatchNorm(layout, params, bn.buffers, i);
      wName = `${p}.fused.weight`;
      bName = `${p}.fused.bias`;
      inits.push(floatTensor(wName, shapeOf(`${p}.0.weight`), f.weight), floatTensor(bName, [cfg.channels], f.bias));
    } else {
      inits.push(floatTensor(wName, shapeOf(wName), raw(wName)), floatTensor(bName, shapeOf(bName), raw(bName)));
    }
    nodes.push({
      name: `${p}.conv`, op_type: 'Conv', input: [h, wName, bName], output: [`${p}.conv`],
      attribute: [ints('kernel_shape', [3, 3]), ints('pads', [1, 1, 1, 1]), ints('strides', [1, 1]), ints('dilations', [1, 1]), int('group', 1)],
    });
    h = `${p}.conv`;
    if (bnMode === 'keep') {
      const names = [`${p}.1.weight`, `${p}.1.bias`, `${p}.1.running_mean`, `${p}.1.running_var`];
      for (const n of names) inits.push(floatTensor(n, shapeOf(n), raw(n)));
      nodes.push({ name: `${p}.bn`, op_type: 'BatchNormalization', input: [h, ...names], output: [`${p}.bn`], attribute: [float('epsilon', eps)] });
      h = `${p}.bn`;
    }
    nodes.push({ name: `${p}.relu`, op_type: 'Relu', input: [h], output: [`${p}.relu`] });
    nodes.push({ name: `${p}.pool`, op_type: 'MaxPool', input: [`${p}.relu`], output: [`${p}.pool`], attribute: [ints('kernel_shape', [2, 2]), ints('strides', [2, 2])] });
    h = `${p}.pool`;
  }
  nodes.push({ name: 'flatten', op_type: 'Flatten', input: [h], output: [ONNX_OUTPUT], attribute: [int('axis', 1)] });

  const n = batch === 'dynamic' ? 'N' : batch;
  const bnText = bnMode === 'fold' ? 'BN folded into the conv weights (eval mode: running statistics)' : 'BatchNormalization nodes in eval mode (running statistics)';
  const summary = `ProtoNet ConvNet-4 encoder (Snell et al.): ${cfg.blocks} blocks of 3x3 conv (C=${cfg.channels}, padding 1), BN, ReLU, 2x2 max-pool, then flatten. `
    + `Input "${ONNX_INPUT}" [N, ${cfg.inChannels}, ${cfg.imageSize}, ${cfg.imageSize}] float32, output "${ONNX_OUTPUT}" [N, ${layout.embeddingSize}] float32; ${bnText}.`;
  const metaJson = JSON.stringify(meta);
  const doc = `${summary}\nExported by evometa ${evometaVersion()}${path ? ` from ${basename(path)}` : ''}.\nModel config: ${JSON.stringify(cfg)}\nCheckpoint metadata: ${metaJson}`;
  const props: { key: string; value: string }[] = [
    { key: 'evometa.model', value: JSON.stringify(cfg) },
    { key: 'evometa.bn', value: bnMode },
    { key: 'evometa.embedding_size', value: String(layout.embeddingSize) },
  ];
  if (path) props.push({ key: 'evometa.source', value: basename(path) });
  for (const [k, v] of Object.entries(meta)) props.push({ key: `checkpoint.${k}`, value: typeof v === 'string' ? v : JSON.stringify(v) });

  return {
    ir_version: irVersion,
    producer_name: 'evometa',
    producer_version: evometaVersion(),
    model_version: 1,
    doc_string: doc,
    opset_import: [{ domain: '', version: opset }],
    metadata_props: props,
    graph: {
      name: 'protonet_convnet4_encoder',
      doc_string: summary,
      node: nodes,
      initializer: inits,
      input: [valueInfo(ONNX_INPUT, [n, cfg.inChannels, cfg.imageSize, cfg.imageSize], 'images, float32 NCHW')],
      output: [valueInfo(ONNX_OUTPUT, [n, layout.embeddingSize], 'embeddings (flattened NCHW features)')],
    },
  };
}

/**
 * The ConvNet-4 encoder of a checkpoint (a .safetensors path) or of a model state, as the bytes of
 * an ONNX model file: input "images" [N, 1, S, S] float32, output "embeddings" [N, E] float32,
 * eval-mode BN (folded into the convs by default, or kept as BatchNormalization nodes).
 * Throws UserError (or SafetensorsError naming the file) for bad input.
 */
export function exportOnnx(src: string | ExportState, options: OnnxExportOptions = {}): Uint8Array {
  const type = onnxModelType();
  const model = buildOnnxModel(src, options);
  const err = type.verify(model);
  if (err) throw new Error(`internal error: ONNX model does not fit the schema: ${err}`);
  return type.encode(type.fromObject(model)).finish();
}

/**
 * Decode an ONNX file written by exportOnnx back into plain objects (int64 as numbers, bytes fields as
 * Uint8Array/Buffer views that may share memory with `bytes` or a pool: copy before reinterpreting).
 */
export function decodeOnnx(bytes: Uint8Array): OnnxModel {
  const type = onnxModelType();
  let msg;
  try {
    msg = type.decode(bytes);
  } catch (e) {
    throw new UserError(`not an ONNX model: ${(e as Error).message}`);
  }
  return type.toObject(msg, { longs: Number, arrays: true }) as OnnxModel;
}
