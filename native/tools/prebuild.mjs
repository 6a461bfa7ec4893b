#!/usr/bin/env node
// Builds the native addon and copies it to prebuilds/<platform>-<arch>/evometa_native.napi.node,
// the file the loader (lib/device/cpu-native/addon.ts) picks when no local build exists, so a
// packed tarball works without running any install script (npm 11 blocks dependency scripts).
// Runs before `npm pack` / `npm publish` (the "prepack" script). Offline: node-gyp uses the
// Node headers named by npm's nodedir setting.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);
const nodeGyp = process.env.npm_config_node_gyp || require.resolve('node-gyp/bin/node-gyp.js');
// Offline: the headers of the running Node (npm's nodedir setting, or the install prefix).
const prefix = dirname(dirname(process.execPath));
const nodedir = process.env.npm_config_nodedir || (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
const gypDir = nodedir ? [`--nodedir=${nodedir}`] : [];

const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed with status ${r.status}`);
};

run(process.execPath, [nodeGyp, 'rebuild', '-j', 'max', ...gypDir]);
const src = join(root, 'build', 'Release', 'evometa_native.node');
const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const dst = join(dir, 'evometa_native.napi.node');
mkdirSync(dir, { recursive: true });
copyFileSync(src, dst);
if (process.platform === 'linux') spawnSync('strip', ['--strip-unneeded', dst], { stdio: 'inherit' });
console.log(`prebuild: ${dst} (${statSync(dst).size} bytes)`);
