#!/usr/bin/env node
// Builds the addon under AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/
// (separate from build/), for running the spec suite against it:
//
//   npm run build:asan
//   LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
//   ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
//   EVOMETA_NATIVE_ADDON=build-asan/src/build/Release/evometa_native.node \
//   npx uvu dist/test '(spec|native)\.test\.js$'
//
// (detect_leaks=0: Node itself holds allocations until exit by design.)
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = join(root, 'build-asan', 'src');
mkdirSync(src, { recursive: true });
copyFileSync(join(root, 'binding.gyp'), join(src, 'binding.gyp'));
for (const d of ['native', 'node_modules']) if (!existsSync(join(src, d))) symlinkSync(join(root, d), join(src, d));
const require = createRequire(import.meta.url);
const nodeGyp = process.env.npm_config_node_gyp || require.resolve('node-gyp/bin/node-gyp.js');
// Offline: the headers of the running Node (npm's nodedir setting, or the install prefix).
const prefix = dirname(dirname(process.execPath));
const nodedir = process.env.npm_config_nodedir || (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
const gypDir = nodedir ? [`--nodedir=${nodedir}`] : [];
const san = '-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1';
const env = { ...process.env, CFLAGS: san, CXXFLAGS: san, LDFLAGS: '-fsanitize=address,undefined' };
const run = (cmd, args, cwd) => {
  const r = spawnSync(cmd, args, { cwd, env, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed with status ${r.status}`);
};
run(process.execPath, [nodeGyp, 'configure', ...gypDir], src);
run('make', ['-C', 'build', '-j', '2', 'evometa_native', 'BUILDTYPE=Release', 'V=0'], src);
console.log(`ASan+UBSan addon: ${join(src, 'build', 'Release', 'evometa_native.node')}`);
