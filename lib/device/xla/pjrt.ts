/**
 * The PJRT executor: the evometa_pjrt addon (native/pjrt) loading a PJRT
 * plugin (libtpu on TPU VMs, the CUDA plugin of jax's cuda packages, ...) by
 * path -- an option, or the environment variable PJRT_PLUGIN_LIBRARY_PATH.
 * libtpu is never loaded on a machine without TPU chips (PCI vendor 0x1ae0):
 * it contacts a cloud metadata server when loaded. Every failure has a reason.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import type { ElemType, Program } from './hlo.js';
import { checkInputs, fromBytes, type HostArray, type XlaExecutor } from './executor.js';
import { compileOptionsProto } from './compile-options.js';

/** PJRT_Buffer_Type values. */
const BUFFER_TYPE: Record<ElemType, number> = { i1: 1, i32: 4, i64: 5, ui32: 8, ui64: 9, f32: 11, f64: 12 };

interface AddonArray { type: number; dims: number[]; data: ArrayBuffer | ArrayBufferView }
export interface PjrtInfo { platform: string; platformVersion: string; apiVersion: string; devices: { id: number; kind: string }[] }
interface AddonClient {
  info(): PjrtInfo;
  compile(text: string, options: Uint8Array): Promise<number>;
  compileSync(text: string, options: Uint8Array): number;
  execute(id: number, inputs: AddonArray[][], numOutputs: number): Promise<{ type: number; dims: number[]; data: ArrayBuffer }[][]>;
  executeSync(id: number, inputs: AddonArray[][], numOutputs: number): { type: number; dims: number[]; data: ArrayBuffer }[][];
  destroyExecutable(id: number): void;
  close(): void;
}
export interface PjrtAddon { openPlugin(path: string): Promise<AddonClient>; openPluginSync(path: string): AddonClient; tpuChips(sysfs?: string): number }

/** Number of TPU chips: PCI devices whose vendor is 0x1ae0 (Google). */
export function tpuChips(sysfs = '/sys/bus/pci/devices'): number {
  let n = 0;
  let entries: string[];
  try { entries = readdirSync(sysfs); } catch { return 0; }
  for (const e of entries) {
    try { if (readFileSync(join(sysfs, e, 'vendor'), 'utf8').trim().toLowerCase() === '0x1ae0') n++; } catch { /* not a device */ }
  }
  return n;
}

export function namesLibtpu(path: string): boolean {
  return basename(path).includes('libtpu');
}

let addonCache: { addon?: PjrtAddon; reason: string } | undefined;

/** The evometa_pjrt addon, or the reason it is unavailable (candidates tried in order). */
export function loadPjrtAddon(): { addon?: PjrtAddon; reason: string } {
  if (addonCache) return addonCache;
  const require = createRequire(import.meta.url);
  let dir = dirname(fileURLToPath(import.meta.url));
  const tried: string[] = [];
  for (let i = 0; i < 6; i++) {
    for (const cand of [join(dir, 'build', 'Release', 'evometa_pjrt.node'), join(dir, 'build', 'Debug', 'evometa_pjrt.node')]) {
      if (!existsSync(cand)) continue;
      try {
        addonCache = { addon: require(cand) as PjrtAddon, reason: `loaded ${cand}` };
        return addonCache;
      } catch (e) {
        tried.push(`${cand}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
      }
    }
    dir = resolve(dir, '..');
  }
  addonCache = { reason: tried.length ? `the evometa_pjrt addon failed to load (${tried.join('; ')})` : 'the evometa_pjrt addon is not built (run `npx node-gyp rebuild` in the package directory)' };
  return addonCache;
}

/** Where the plugin comes from: the option, else PJRT_PLUGIN_LIBRARY_PATH. Throws the reason when there is none. */
export function pluginPath(option?: string): string {
  const p = option ?? process.env.PJRT_PLUGIN_LIBRARY_PATH;
  if (!p) throw new Error('no PJRT plugin: set PJRT_PLUGIN_LIBRARY_PATH to a PJRT plugin (.so), e.g. libtpu.so on a TPU VM or the CUDA plugin of jax-cuda12-pjrt');
  return p;
}

/** The checks made before anything is loaded; throws the reason (e.g. "no TPU found"). */
export function preflight(path: string, sysfs?: string): void {
  if (!existsSync(path)) throw new Error(`PJRT plugin not found: ${path}`);
  if (namesLibtpu(path)) {
    const chips = tpuChips(sysfs);
    if (chips === 0) throw new Error(`no TPU found: refusing to load ${path} without TPU chips (no PCI device with vendor 0x1ae0)`);
    process.env.TPU_SKIP_MDS_QUERY ??= '1';
  }
}

export class PjrtExecutor implements XlaExecutor {
  readonly platform: string;
  readonly deviceCount: number;
  private readonly cache = new Map<string, number>();

  private constructor(private readonly client: AddonClient, readonly info: PjrtInfo, readonly plugin: string) {
    this.platform = `${info.platform} (${info.platformVersion || 'PJRT'}, C API ${info.apiVersion})`;
    this.deviceCount = info.devices.length;
  }

  /** Load the plugin (option, else PJRT_PLUGIN_LIBRARY_PATH) and create its client, off the event loop. */
  static async open(plugin?: string, withAddon?: PjrtAddon): Promise<PjrtExecutor> {
    const path = pluginPath(plugin);
    preflight(path);
    const { addon, reason } = withAddon ? { addon: withAddon, reason: '' } : loadPjrtAddon();
    if (!addon) throw new Error(reason);
    const client = await addon.openPlugin(path);
    return new PjrtExecutor(client, client.info(), path);
  }

  /** The same, blocking (lazy device creation in the registry is synchronous). */
  static openSync(plugin?: string): PjrtExecutor {
    const path = pluginPath(plugin);
    preflight(path);
    const { addon, reason } = loadPjrtAddon();
    if (!addon) throw new Error(reason);
    const client = addon.openPluginSync(path);
    return new PjrtExecutor(client, client.info(), path);
  }

  private key(p: Program): string {
    return `${p.replicas}:${createHash('sha256').update(p.text).digest('hex')}`;
  }

  private options(p: Program): Uint8Array {
    return compileOptionsProto(p.replicas, this.info.devices.map((d) => d.id));
  }

  private static toAddon(perReplica: readonly (readonly HostArray[])[]): AddonArray[][] {
    return perReplica.map((ins) => ins.map((a) => ({ type: BUFFER_TYPE[a.dtype], dims: [...a.shape], data: a.data })));
  }

  private static fromAddon(p: Program, outs: { dims: number[]; data: ArrayBuffer }[][]): HostArray[][] {
    return outs.map((rep) => rep.map((o, k) => {
      const t = p.outputs[k]!;
      return { dtype: t.dtype, shape: t.shape, data: fromBytes(new Uint8Array(o.data), t) };
    }));
  }

  async run(p: Program, perReplica: readonly (readonly HostArray[])[]): Promise<HostArray[][]> {
    checkInputs(p, perReplica);
    const k = this.key(p);
    let id = this.cache.get(k);
    if (id === undefined) { id = await this.client.compile(p.text, this.options(p)); this.cache.set(k, id); }
    return PjrtExecutor.fromAddon(p, await this.client.execute(id, PjrtExecutor.toAddon(perReplica), p.outputs.length));
  }

  /** Synchronous run (per-op device calls). */
  runSync(p: Program, perReplica: readonly (readonly HostArray[])[]): HostArray[][] {
    checkInputs(p, perReplica);
    const k = this.key(p);
    let id = this.cache.get(k);
    if (id === undefined) { id = this.client.compileSync(p.text, this.options(p)); this.cache.set(k, id); }
    return PjrtExecutor.fromAddon(p, this.client.executeSync(id, PjrtExecutor.toAddon(perReplica), p.outputs.length));
  }

  async close(): Promise<void> {
    this.cache.clear();
    this.client.close();
  }
}
