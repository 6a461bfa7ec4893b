/**
 * The `xla` device: every op of the contract through its StableHLO lowering,
 * compiled and run by an XLA executor -- a PJRT plugin (the default; plugin
 * by option or PJRT_PLUGIN_LIBRARY_PATH) or, for verification on machines
 * without an accelerator, jaxlib's CPU compiler (executor 'jaxlib').
 * Whole programs (population evaluation, the ES step) live in population.ts
 * and esstep.ts; this device runs single ops, one small program each.
 */
import type { Device, DeviceInfo } from '../registry.js';
import type { OpAttrs, OpInputs, OpName, OpOutput } from '../../ops/contract.js';
import type { XlaExecutor } from './executor.js';
import { hasLowering, lowerOp } from './lowering.js';
import { PjrtExecutor, pluginPath } from './pjrt.js';
import { JaxRunner } from './jax-runner.js';
import type { Precision } from './population.js';
import './lower/index.js';

export type XlaExecutorKind = 'pjrt' | 'jaxlib';

export interface XlaOptions {
  /** 'pjrt' (default) or 'jaxlib' (python + jax on this machine; CPU only). */
  executor?: XlaExecutorKind;
  /** PJRT plugin path (default: PJRT_PLUGIN_LIBRARY_PATH). */
  plugin?: string;
  /** Noise/perturbation arithmetic of the population programs: 'exact' (float64, default) or 'fast' (float32; TPU). */
  precision?: Precision;
}

let options: XlaOptions = {};

/**
 * Options for the xla device, read when it is first created (getDevice('xla')).
 * EVOMETA_XLA_EXECUTOR=jaxlib selects the jaxlib executor where no code can pass options (the CLI).
 */
export function configureXla(o: XlaOptions): void {
  options = { ...o };
}

export function xlaOptions(): XlaOptions {
  const env = process.env.EVOMETA_XLA_EXECUTOR;
  if (env !== undefined && env !== 'pjrt' && env !== 'jaxlib') throw new Error(`EVOMETA_XLA_EXECUTOR must be pjrt or jaxlib, got ${env}`);
  return {
    executor: options.executor ?? (env as XlaExecutorKind | undefined) ?? 'pjrt',
    ...(options.plugin !== undefined ? { plugin: options.plugin } : {}),
    precision: options.precision ?? 'exact',
  };
}

export class XlaDevice implements Device {
  readonly name = 'xla';
  constructor(readonly executor: XlaExecutor, private readonly how: string, readonly precision: Precision = 'exact') {}

  run<K extends OpName>(op: K, inputs: OpInputs<K>, attrs: OpAttrs<K>): OpOutput<K> {
    if (!this.executor.runSync) throw new Error(`xla: the ${this.executor.platform} executor cannot run single ops synchronously`);
    const l = lowerOp(op, inputs, attrs);
    return l.unpack(this.executor.runSync(l.program, [l.args])[0]!) as OpOutput<K>;
  }

  supportsOp(op: OpName): boolean {
    return hasLowering(op);
  }

  info(): DeviceInfo {
    return { name: this.name, isa: this.executor.platform, reason: this.how, detail: { devices: this.executor.deviceCount, precision: this.precision } };
  }
}

/** Create the xla device from the current options; throws the reason it is unavailable. */
export function createXlaDevice(): XlaDevice {
  const o = xlaOptions();
  if (o.executor === 'jaxlib') {
    const r = JaxRunner.start();
    return new XlaDevice(r, `XLA CPU through jaxlib (${r.platform}): verification executor selected explicitly`, o.precision);
  }
  const path = pluginPath(o.plugin);
  const ex = PjrtExecutor.openSync(path);
  return new XlaDevice(ex, `PJRT plugin ${path}: ${ex.info.devices.length} device(s) of kind ${[...new Set(ex.info.devices.map((d) => d.kind))].join(', ')}`, o.precision);
}
