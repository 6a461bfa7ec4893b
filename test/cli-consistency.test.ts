/**
 * The CLI says the same things the same way: --version from package.json; `devices` as a table
 * with the default marked and as JSON; one fallback line on stderr when cpu-native cannot load
 * (forced with EVOMETA_NATIVE_ADDON=none), none otherwise; eval's summary in train's percent
 * format beside its JSON line; train --show-config equal to the library's esConfig() and
 * backpropConfig(); every preset in train --help and in the README.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { needs, nativeAddon } from './helpers/peers.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { saveCheckpoint } from '../lib/model/checkpoint.js';
import { esConfig, ES_PRESETS } from '../lib/methods/protonet-es/presets.js';
import { backpropConfig, BACKPROP_PRESETS } from '../lib/methods/backprop/config.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'lib', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'evometa-cli-consistency-'));
const baseEnv: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: '0' };
delete baseEnv.EVOMETA_NATIVE_ADDON;
const NO_NATIVE = { EVOMETA_NATIVE_ADDON: 'none' };
const withNative = needs(await nativeAddon(), 'cli: no fallback line when cpu-native loads');

function run(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: dir, encoding: 'utf8', env: { ...baseEnv, ...env }, timeout: 180_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const FALLBACK = /^evometa: warning: device cpu-native is unavailable, running on cpu-ts \(the TypeScript reference device, about 100 times slower than cpu-native\): disabled by EVOMETA_NATIVE_ADDON=none$/;
const fallbackLines = (err: string): string[] => err.split('\n').filter((l) => l.includes('is unavailable, running on'));

test('--version and -V print package.json\'s version', () => {
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  for (const flag of ['--version', '-V']) {
    const r = run([flag]);
    assert.is(r.code, 0, r.err);
    assert.is(r.out.trim(), version);
  }
});

test('devices: a table with the default marked, and --json with "default" on exactly the same device', () => {
  for (const env of [{}, NO_NATIVE]) {
    const t = run(['devices'], env), j = run(['devices', '--json'], env);
    assert.is(t.code, 0, t.err);
    assert.is(j.code, 0, j.err);
    const rows = JSON.parse(j.out) as Array<{ name: string; available: boolean | string; default: boolean; reason?: string }>;
    const defaults = rows.filter((r) => r.default);
    assert.is(defaults.length, 1);
    const lines = t.out.trimEnd().split('\n');
    assert.match(lines[0]!, /^\s+DEVICE\s+PRIORITY\s+STATUS\s+DETAIL$/);
    const marked = lines.filter((l) => l.startsWith('* '));
    assert.is(marked.length, 1, t.out);
    assert.match(marked[0]!, new RegExp(`^\\* ${defaults[0]!.name} .* available `));
    assert.is(lines[lines.length - 1], `default device (marked *, used when --device is not given): ${defaults[0]!.name}`);
    for (const r of rows) assert.ok(lines.some((l) => l.slice(2).startsWith(`${r.name} `)), `a row for ${r.name}`);
    if (env === NO_NATIVE) {
      assert.is(defaults[0]!.name, 'cpu-ts');
      const native = rows.find((r) => r.name === 'cpu-native')!;
      assert.is(native.available, false);
      assert.is(native.reason, 'disabled by EVOMETA_NATIVE_ADDON=none');
      assert.match(t.out, /\n {2}cpu-native +10 {2}unavailable {2}disabled by EVOMETA_NATIVE_ADDON=none\n/);
    }
  }
});

const trainArgs = (out: string): string[] => ['train', '--steps', '1', '--pop', '4', '--channels', '2', '--val-episodes', '1', '--val-every', '1', '--no-progress', '--no-report', '--out', join(dir, out)];

test('train and eval without --device say once on stderr that cpu-native is unavailable, with the reason', () => {
  const t = run(trainArgs('fallback'), NO_NATIVE);
  assert.is(t.code, 0, t.err);
  assert.equal(fallbackLines(t.err).length, 1, t.err);
  assert.match(t.err.split('\n')[0]!, FALLBACK);
  assert.match(t.err, /population on best available device cpu-ts/);
  const ck = join(dir, 'fresh.safetensors');
  const layout = new ProtoNetLayout({ channels: 4, imageSize: 28 });
  saveCheckpoint(ck, { layout, params: initParams(layout, 3), bn: initialBnState(layout) });
  const e = run(['eval', '--checkpoint', ck, '--episodes', '2', '--no-progress'], NO_NATIVE);
  assert.is(e.code, 0, e.err);
  assert.equal(fallbackLines(e.err).length, 1, e.err);
  assert.match(e.err.split('\n')[0]!, FALLBACK);
  // Asking for a device by name is not a fallback; neither is --show-config (it computes nothing).
  assert.equal(fallbackLines(run(['eval', '--checkpoint', ck, '--episodes', '1', '--no-progress', '--device', 'cpu-ts'], NO_NATIVE).err), []);
  assert.equal(fallbackLines(run(['train', '--show-config'], NO_NATIVE).err), []);
});

withNative('no fallback line when cpu-native loads', () => {
  const t = run(trainArgs('native'));
  assert.is(t.code, 0, t.err);
  assert.equal(fallbackLines(t.err), []);
  assert.match(t.err, /population on best available device cpu-native/);
});

test('eval: one JSON line (fractions) on stdout; on stderr the same result in percent, in train\'s test-line format', () => {
  const ck = join(dir, 'eval.safetensors');
  const layout = new ProtoNetLayout({ channels: 4, imageSize: 28 });
  saveCheckpoint(ck, { layout, params: initParams(layout, 5), bn: initialBnState(layout) });
  const r = run(['eval', '--checkpoint', ck, '--episodes', '4', '--shot', '1', '--query', '3', '--seed', '2', '--no-progress', '--device', 'cpu-ts']);
  assert.is(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  assert.is(lines.length, 1);
  const j = JSON.parse(lines[0]!) as { accuracy: number; ci95: number; loss: number };
  assert.ok(j.accuracy >= 0 && j.accuracy <= 1);
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  assert.ok(r.err.split('\n').includes(`test (${ck}, 4 5-way 1-shot 3-query episodes, seed 2, eval mode, cpu-ts): ${pct(j.accuracy)} +- ${pct(j.ci95)}, loss ${j.loss.toFixed(4)}`), r.err);
});

test('train --show-config prints what the library\'s esConfig() and backpropConfig() return', () => {
  const show = (args: string[]): unknown => {
    const r = run(['train', ...args, '--show-config']);
    assert.is(r.code, 0, r.err);
    return JSON.parse(r.out);
  };
  assert.equal(show([]), JSON.parse(JSON.stringify(esConfig())));
  assert.equal(show(['--preset', 'paper-t3-c32-w5', '--lr', '0.5', '--shot', '1']),
    JSON.parse(JSON.stringify(esConfig({ lr: 0.5, train: { shot: 1 } }, 'paper-t3-c32-w5'))));
  // --optimizer adam on the quick preset (SGD with momentum 0.9) is valid: the preset's momentum goes with its optimizer.
  const adam = show(['--optimizer', 'adam', '--lr', '0.01']) as { optimizer: string; momentum: number };
  assert.equal([adam.optimizer, adam.momentum], ['adam', 0]);
  assert.equal(adam, JSON.parse(JSON.stringify(esConfig({ optimizer: 'adam', lr: 0.01 }))));
  assert.equal(show(['--method', 'backprop']), JSON.parse(JSON.stringify(backpropConfig())));
  assert.equal(show(['--method', 'backprop', '--preset', 'quick', '--shot', '1']), JSON.parse(JSON.stringify(backpropConfig({ train: { shot: 1 } }, 'quick'))));
});

test('train --help and the README list every preset', () => {
  const help = run(['train', '--help']);
  assert.is(help.code, 0, help.err);
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  for (const [name, p] of [...Object.entries(ES_PRESETS), ...Object.entries(BACKPROP_PRESETS)]) {
    assert.ok(help.out.includes(`  ${name.padEnd(28)} ${p.description}`), `train --help lists ${name} with its description`);
    assert.ok(readme.includes(`\`${name}\``), `README names preset ${name}`);
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
