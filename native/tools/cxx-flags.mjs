#!/usr/bin/env node
// Prints 1 when the C++ compiler node-gyp will use ($CXX, else c++) accepts every flag given
// (compiling an empty translation unit), else 0. binding.gyp uses it to build the AMX kernel
// only with compilers that know -mamx-tile / -mamx-bf16 (GCC >= 11, Clang >= 12); without it the
// addon still builds and precision 'bf16' uses avx512bf16 (or is refused on CPUs without it).
import { spawnSync } from 'node:child_process';

const cxx = (process.env.CXX || 'c++').split(/\s+/).filter(Boolean);
const r = spawnSync(cxx[0], [...cxx.slice(1), ...process.argv.slice(2), '-x', 'c++', '-c', '-o', process.platform === 'win32' ? 'NUL' : '/dev/null', '-'], { input: 'int evometa_probe;\n', encoding: 'utf8' });
process.stdout.write(r.status === 0 ? '1' : '0');
