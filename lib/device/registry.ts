/**
 * Device layer: kernels registered by (op, device), devices registered by a
 * factory with a priority. Initialization is lazy; the default device is the
 * highest-priority one that initializes, and every failure keeps its reason.
 */
import type { Kernel, OpAttrs, OpInputs, OpName, OpOutput } from '../ops/contract.js';

export interface DeviceInfo {
  name: string;
  /** e.g. the SIMD instruction set in use, or the PJRT platform. */
  isa?: string;
  /** Why this device was chosen, or why a fallback happened. */
  reason?: string;
  detail?: Record<string, unknown>;
}

export interface Device {
  readonly name: string;
  run<K extends OpName>(op: K, inputs: OpInputs<K>, attrs: OpAttrs<K>): OpOutput<K>;
  supportsOp(op: OpName): boolean;
  info(): DeviceInfo;
  /**
   * Optional: run `fn` with the device's large op outputs drawn from a pool that the next call
   * reuses (no allocation, and no garbage collection it would set off, per training step).
   * Every tensor the device returns inside `fn` is recycled when `fn` returns: none may be used
   * after it. Synchronous. (lib/autodiff/protonet.ts's episodeGradient uses it.)
   */
  outputScope?<T>(fn: () => T): T;
}

const kernels = new Map<string, Map<OpName, Kernel<OpName>>>();

export function registerKernel<K extends OpName>(op: K, device: string, kernel: Kernel<K>): void {
  let table = kernels.get(device);
  if (!table) {
    table = new Map();
    kernels.set(device, table);
  }
  if (table.has(op)) throw new Error(`kernel ${op} is already registered for device ${device}`);
  table.set(op, kernel as unknown as Kernel<OpName>);
}

export function kernelsFor(device: string): ReadonlyMap<OpName, Kernel<OpName>> {
  return kernels.get(device) ?? new Map();
}

/** A device whose ops are the kernels registered under its name. */
export class KernelDevice implements Device {
  constructor(readonly name: string, private readonly extraInfo: Omit<DeviceInfo, 'name'> = {}) {}

  run<K extends OpName>(op: K, inputs: OpInputs<K>, attrs: OpAttrs<K>): OpOutput<K> {
    const k = kernels.get(this.name)?.get(op);
    if (!k) throw new Error(`device ${this.name} has no kernel for op ${op}`);
    return (k as unknown as Kernel<K>)(inputs, attrs);
  }

  supportsOp(op: OpName): boolean {
    return kernels.get(this.name)?.has(op) ?? false;
  }

  info(): DeviceInfo {
    return { name: this.name, ...this.extraInfo };
  }
}

export interface DeviceFactory {
  /** Higher wins when no device is named. */
  priority: number;
  /** Returns the device, or throws an Error whose message says why it is unavailable. */
  create(): Device;
}

const factories = new Map<string, DeviceFactory>();
const instances = new Map<string, Device>();
const failures = new Map<string, string>();

export function registerDevice(name: string, factory: DeviceFactory): void {
  if (factories.has(name)) throw new Error(`device ${name} is already registered`);
  factories.set(name, factory);
}

/** A device that is unknown or cannot initialize (`reason` says why); the CLI prints it and exits 2. */
export class DeviceUnavailableError extends Error {
  constructor(readonly device: string, readonly reason: string) {
    super(`device ${device} is unavailable: ${reason}`);
    this.name = 'DeviceUnavailableError';
  }
}

function tryCreate(name: string): Device | undefined {
  const have = instances.get(name);
  if (have) return have;
  if (failures.has(name)) return undefined;
  const f = factories.get(name);
  if (!f) return undefined;
  try {
    const d = f.create();
    instances.set(name, d);
    return d;
  } catch (e) {
    failures.set(name, e instanceof Error ? e.message : String(e));
    return undefined;
  }
}

/** The named device, or the best available one. Throws DeviceUnavailableError with the reason. */
export function getDevice(name?: string): Device {
  if (name !== undefined) {
    if (!factories.has(name)) {
      throw new DeviceUnavailableError(name, `unknown device; known devices: ${[...factories.keys()].join(', ')}`);
    }
    const d = tryCreate(name);
    if (!d) throw new DeviceUnavailableError(name, failures.get(name) ?? 'failed to initialize');
    return d;
  }
  return defaultDevice().device;
}

/** The default device and the higher-priority devices passed over on the way to it, each with the reason it failed. */
export interface DeviceChoice {
  device: Device;
  /** Empty when the best registered device initialized; else e.g. [{ name: 'cpu-native', reason: 'addon not built ...' }]. */
  skipped: Array<{ name: string; reason: string }>;
}

/**
 * The device getDevice() returns when none is named (the highest-priority one that initializes) and
 * what was skipped to reach it: a fallback is silent in the library and visible here (the CLI prints it).
 */
export function defaultDevice(): DeviceChoice {
  const order = [...factories.entries()].sort((a, b) => b[1].priority - a[1].priority);
  const skipped: DeviceChoice['skipped'] = [];
  for (const [n] of order) {
    const d = tryCreate(n);
    if (d) return { device: d, skipped };
    skipped.push({ name: n, reason: failures.get(n) ?? 'failed to initialize' });
  }
  throw new DeviceUnavailableError('default', skipped.map((s) => `${s.name}: ${s.reason}`).join('; '));
}

export interface DeviceStatus { name: string; priority: number; available: boolean | 'untried'; reason?: string; info?: DeviceInfo }

/** Every registered device: whether it initialized, and if not, why. Probes each (lazily created). */
export function deviceReport(probe = true): DeviceStatus[] {
  return [...factories.entries()]
    .sort((a, b) => b[1].priority - a[1].priority)
    .map(([name, f]) => {
      const d = probe ? tryCreate(name) : instances.get(name);
      if (d) return { name, priority: f.priority, available: true, info: d.info() };
      const reason = failures.get(name);
      return { name, priority: f.priority, available: reason === undefined ? 'untried' : false, ...(reason !== undefined ? { reason } : {}) };
    });
}

/** Names of the registered devices (initialized or not). */
export function registeredDevices(): string[] {
  return [...factories.keys()];
}
