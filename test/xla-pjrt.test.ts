/**
 * The PJRT binding (evometa_pjrt addon) and the xla device's availability:
 * TPU detection, libtpu refused without chips BEFORE anything is loaded,
 * missing file / not-a-plugin / plugin errors as JS errors with the plugin's
 * message, and the whole call sequence (initialize, client, devices, compile
 * with our CompileOptionsProto, buffers, execute over 2 replicas, to host,
 * destroy) against a fixture plugin built from native/pjrt/testing (the
 * machines here have no real PJRT plugin: jaxlib 0.10.2 exports no
 * GetPjrtApi). The CompileOptionsProto bytes are parsed by jaxlib when it is
 * installed. Parts skip with the reason when the addon, a C++ compiler or
 * jax is missing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../lib/index.js';
import { PjrtExecutor, loadPjrtAddon, preflight, tpuChips, type PjrtAddon } from '../lib/device/xla/pjrt.js';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { compileOptionsProto } from '../lib/device/xla/compile-options.js';
import { FuncBuilder, moduleOf, ttype } from '../lib/device/xla/hlo.js';
import { hostArray } from '../lib/device/xla/executor.js';
import { PYTHON, command, jax, needs, peer } from './helpers/peers.js';

const tmp = mkdtempSync(join(tmpdir(), 'evometa-pjrt-'));
const cxxPeer = command('c++');
const cxx = cxxPeer.ok;

/**
 * The addon as the package builds it (build/Release), else -- when it was not built, e.g. a
 * prebuilt install -- compiled here from native/pjrt with the same flags as binding.gyp.
 */
function addonForTests(): { addon?: PjrtAddon; reason: string } {
  const built = loadPjrtAddon();
  if (built.addon || !cxx) return built;
  const nodeInclude = join(dirname(process.execPath), '..', 'include', 'node');
  const napiInclude = createRequire(import.meta.url)('node-addon-api').include_dir as string;
  const out = join(tmp, 'evometa_pjrt.node');
  const r = spawnSync('c++', ['-shared', '-fPIC', '-O1', '-std=c++17', '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DNODE_ADDON_API_CPP_EXCEPTIONS_ALL',
    '-I', 'native', '-I', napiInclude.replace(/^"|"$/g, ''), '-I', nodeInclude, 'native/pjrt/addon.cc', 'native/pjrt/runtime.cc', '-ldl', '-o', out], { encoding: 'utf8' });
  if (r.status !== 0) return { reason: `${built.reason}; building it here failed: ${r.stderr.trim().split('\n').slice(-3).join(' ')}` };
  return { addon: createRequire(import.meta.url)(out) as PjrtAddon, reason: `compiled for this test (${built.reason})` };
}
const { addon, reason: addonReason } = addonForTests();
console.log(`xla-pjrt: addon: ${addonReason}`);
/** Tests of the binding itself: skipped (counted, reason printed once) when there is no addon. */
const withAddon = needs(peer(addon !== undefined, addonReason, 'native'), 'xla-pjrt.test: the PJRT binding');
/** Tests on fixture libraries built here: skipped without a C++ compiler. */
const withCxx = needs(cxxPeer, 'xla-pjrt.test: fixture plugins (built with c++)');
const withCxxAddon = needs([cxxPeer, peer(addon !== undefined, addonReason, 'native')], 'xla-pjrt.test: the PJRT binding on fixture plugins');

function buildLib(src: string, out: string): void {
  const r = spawnSync('c++', ['-shared', '-fPIC', '-O1', '-I', 'native', '-o', out, src], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building ${src} failed: ${r.stderr}`);
}

/** A sysfs-like tree with two TPU chips (vendor 0x1ae0, either case) and one other PCI device. */
function sysTree(): string {
  const sys = join(tmp, 'sys');
  for (const [dev, vendor] of [['0000:00:04.0', '0x1ae0'], ['0000:00:05.0', '0x8086'], ['0000:00:06.0', '0x1AE0']]) {
    mkdirSync(join(sys, dev!), { recursive: true });
    writeFileSync(join(sys, dev!, 'vendor'), `${vendor}\n`);
  }
  return sys;
}

test('TPU detection: PCI vendor 0x1ae0 counted in a sysfs tree; this machine has none', () => {
  assert.is(tpuChips(sysTree()), 2);
  assert.is(tpuChips(join(tmp, 'missing')), 0);
  assert.is(tpuChips(), 0, 'no TPU on this machine');
});

withAddon('TPU detection in the addon counts the same sysfs tree the same way', () => {
  assert.is(addon!.tpuChips(sysTree()), 2);
  assert.is(addon!.tpuChips(join(tmp, 'missing')), 0);
});

/** `evometa devices` in a fresh process (the registry caches each device's first outcome per process). */
function devicesReport(env: NodeJS.ProcessEnv): { name: string; available: boolean | string; reason?: string }[] {
  const r = spawnSync(process.execPath, ['dist/lib/cli/main.js', 'devices'], { encoding: 'utf8', env });
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { name: string; available: boolean | string; reason?: string }[];
}

test('no plugin configured: the xla device is unavailable with a clear reason, never the default, no crash', () => {
  const env = { ...process.env };
  delete env.PJRT_PLUGIN_LIBRARY_PATH;
  delete env.EVOMETA_XLA_EXECUTOR;
  const report = devicesReport(env);
  const xla = report.find((d) => d.name === 'xla');
  assert.ok(xla, 'xla is registered');
  assert.is(xla!.available, false);
  assert.match(xla!.reason ?? '', /no PJRT plugin: set PJRT_PLUGIN_LIBRARY_PATH/);
  assert.is.not(report.find((d) => d.available === true)?.name, 'xla', 'the best available device is not xla');
  // A plugin path that does not exist is named in the reason.
  const missing = devicesReport({ ...env, PJRT_PLUGIN_LIBRARY_PATH: join(tmp, 'gone.so') }).find((d) => d.name === 'xla');
  assert.match(missing?.reason ?? '', /PJRT plugin not found: .*gone\.so/);
});

test('preflight: a missing plugin file is named', () => {
  assert.throws(() => preflight(join(tmp, 'nope.so')), /PJRT plugin not found: .*nope\.so/);
});

/** Fixture libraries, built on first use: a fake libtpu.so and a non-plugin (both write a marker when loaded), and a fixture PJRT plugin. */
let fixtures: { marker: string; fakeLibtpu: string; notPlugin: string; fixture: string } | undefined;
function built(): NonNullable<typeof fixtures> {
  if (fixtures) return fixtures;
  const marker = join(tmp, 'loaded.txt');
  const fakeTpuDir = join(tmp, 'tpu');
  mkdirSync(fakeTpuDir, { recursive: true });
  const f = { marker, fakeLibtpu: join(fakeTpuDir, 'libtpu.so'), notPlugin: join(tmp, 'libnotaplugin.so'), fixture: join(tmp, 'libfixture_pjrt.so') };
  buildLib('native/pjrt/testing/marker_lib.cc', f.fakeLibtpu);
  buildLib('native/pjrt/testing/marker_lib.cc', f.notPlugin);
  buildLib('native/pjrt/testing/fixture_plugin.cc', f.fixture);
  process.env.EVOMETA_MARKER = marker;
  return (fixtures = f);
}

withCxx('libtpu without TPU chips: "no TPU found" from the TS preflight and the device report, and the library is never loaded', async () => {
  const { marker, fakeLibtpu } = built();
  rmSync(marker, { force: true });
  let msg = '';
  try { await PjrtExecutor.open(fakeLibtpu); } catch (e) { msg = (e as Error).message; }
  assert.match(msg, /no TPU found: refusing to load .*libtpu\.so/);
  assert.not.ok(existsSync(marker), 'the fake libtpu.so constructor never ran');
  // The device reports the same reason.
  const xla = devicesReport({ ...process.env, PJRT_PLUGIN_LIBRARY_PATH: fakeLibtpu }).find((d) => d.name === 'xla');
  assert.match(xla?.reason ?? '', /no TPU found/);
  assert.not.ok(existsSync(marker), 'still never loaded');
});

withCxxAddon('libtpu without TPU chips: the addon refuses even when called directly, and never loads it', async () => {
  const { marker, fakeLibtpu } = built();
  rmSync(marker, { force: true });
  let msg = '';
  try { await addon!.openPlugin(fakeLibtpu); } catch (e) { msg = (e as Error).message; }
  assert.match(msg, /no TPU found/, 'the addon refuses even when called directly');
  assert.not.ok(existsSync(marker), 'the fake libtpu.so constructor never ran');
});

withCxxAddon('binding errors: missing file, not a plugin, short API table, client creation error -> JS errors with the message', async () => {
  const { notPlugin, fixture } = built();
  const msg = async (p: Promise<unknown>): Promise<string> => { try { await p; return ''; } catch (e) { return (e as Error).message; } };
  assert.match(await msg(addon!.openPlugin(join(tmp, 'absent.so'))), /cannot load PJRT plugin .*absent\.so/);
  assert.match(await msg(addon!.openPlugin(notPlugin)), /is not a PJRT plugin: it exports no GetPjrtApi/);
  process.env.EVOMETA_FIXTURE_SHORT_TABLE = '1';
  try { assert.match(await msg(PjrtExecutor.open(fixture, addon)), /API table is too short/); } finally { delete process.env.EVOMETA_FIXTURE_SHORT_TABLE; }
  process.env.EVOMETA_FIXTURE_CREATE_FAILS = '1';
  try { assert.match(await msg(PjrtExecutor.open(fixture, addon)), /PJRT_Client_Create: fixture: no devices here \(client creation refused\)/); } finally { delete process.env.EVOMETA_FIXTURE_CREATE_FAILS; }
});

withCxxAddon('binding call sequence on the fixture: devices, compile (mlir + CompileOptionsProto), 2 replicas, execute async and sync, errors carry the plugin message', async () => {
  const { fixture } = built();
  const ex = await PjrtExecutor.open(fixture, addon);
  assert.equal(ex.info.devices, [{ id: 10, kind: 'fixture-device' }, { id: 11, kind: 'fixture-device' }]);
  assert.is(ex.info.platform, 'fixture');
  assert.is(ex.deviceCount, 2);
  const fb = new FuncBuilder('main', [ttype([2, 3], 'f32'), ttype([2, 3], 'f32')]);
  fb.ret([fb.add(fb.params[0]!, fb.params[1]!)]);
  const prog = moduleOf(fb, 'add', 2);
  const a = Float32Array.of(1, 2, 3, 4, 5, 6), b = Float32Array.of(10, 20, 30, 40, 50, 60);
  const ins = [[hostArray(a, [2, 3]), hostArray(b, [2, 3])], [hostArray(b, [2, 3]), hostArray(b, [2, 3])]];
  const outs = await ex.run(prog, ins);
  // The fixture adds its f32 inputs and the replica index: the data crossed the boundary intact both ways.
  assert.equal(Array.from(outs[0]![0]!.data as Float32Array), [11, 22, 33, 44, 55, 66]);
  assert.equal(Array.from(outs[1]![0]!.data as Float32Array), [21, 41, 61, 81, 101, 121]);
  assert.equal(outs[1]![0]!.shape, [2, 3]);
  const sync = ex.runSync(prog, ins);
  assert.equal(Array.from(sync[0]![0]!.data as Float32Array), [11, 22, 33, 44, 55, 66]);
  const bad = { ...prog, text: prog.text.replace('module @add', 'module @FAIL') };
  let msg = '';
  try { await ex.run(bad, ins); } catch (e) { msg = (e as Error).message; }
  assert.match(msg, /PJRT_Client_Compile: fixture: compilation failed as asked/);
  assert.throws(() => ex.runSync({ ...prog, replicas: 3 }, ins), /program has 3 replicas, got inputs for 2/);
  await ex.close();
  msg = '';
  try { await ex.run(prog, ins); } catch (e) { msg = (e as Error).message; }
  assert.match(msg, /PJRT client is closed/);
});

test.after(() => { delete process.env.EVOMETA_MARKER; });

const withJax = needs(await jax(), 'xla-pjrt.test: CompileOptionsProto parsed by jaxlib');

withJax('CompileOptionsProto: our bytes parse in jaxlib to 4 replicas x 1 partition on the given devices', () => {
  const bytes = compileOptionsProto(4, [3, 1, 2, 0, 7]);
  const py = [
    'import sys', 'from jax._src.lib import xla_client as xc',
    'o = xc.CompileOptions.ParseFromString(bytes.fromhex(sys.argv[1]))',
    'print(o.num_replicas, o.num_partitions, repr(o.device_assignment))',
  ].join('\n');
  const r = spawnSync(PYTHON, ['-c', py, Buffer.from(bytes).toString('hex')], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout.trim(), '4 1 DeviceAssignment{replica_count=4, computation_count=1, Computation0{3 1 2 0}}');
});

test('CompileOptionsProto: more replicas than devices is refused, naming both counts', () => {
  assert.throws(() => compileOptionsProto(4, [0, 1]), /4 replicas need 4 devices, the plugin has 2/);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
