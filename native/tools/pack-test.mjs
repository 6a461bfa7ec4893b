#!/usr/bin/env node
// The consumer's view: `npm pack` this package (prepack makes the prebuild), install the tarball
// into a scratch project with --ignore-scripts (what npm 11 does to dependencies by default),
// import evometa and check that the default device is cpu-native, loaded from the shipped prebuild.
//
//   node native/tools/pack-test.mjs            (from the repository root; about a minute)
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = mkdtempSync(join(tmpdir(), 'evometa-pack-'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let ok = false;
try {
  const out = execFileSync(npm, ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const info = JSON.parse(out.slice(out.indexOf('[')))[0];
  const files = info.files.map((f) => f.path);
  const prebuild = files.find((f) => /^prebuilds\/.+\/evometa_native\.napi\.node$/.test(f));
  console.log(`packed ${info.filename}: ${files.length} files, ${(info.size / 1e6).toFixed(2)} MB; prebuild: ${prebuild ?? 'MISSING'}`);
  const app = join(work, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch-app', version: '1.0.0', type: 'module', private: true }));
  execFileSync(npm, ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', join(work, info.filename)], { cwd: app, stdio: 'inherit' });
  const probe = `import { getDevice, deviceReport } from 'evometa';
const d = getDevice();
console.log(JSON.stringify({ name: d.name, info: d.info(), report: deviceReport(false).map((s) => [s.name, s.available]) }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: app, encoding: 'utf8', env: { ...process.env, EVOMETA_NATIVE_ADDON: '' } });
  if (r.status !== 0) throw new Error(`import failed: ${r.stderr}`);
  const res = JSON.parse(r.stdout.trim().split('\n').pop());
  console.log(`scratch app: device ${res.name}, isa ${res.info.isa}, from ${res.info.detail?.path ?? '-'}`);
  ok = res.name === 'cpu-native' && /node_modules\/evometa\/prebuilds\//.test(res.info.detail?.path ?? '') && prebuild !== undefined;
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(ok ? 'pack test: PASS (cpu-native from the shipped prebuild, no install script run)' : 'pack test: FAIL');
process.exit(ok ? 0 : 1);
