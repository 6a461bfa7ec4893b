/**
 * The consumer's view of the published package: `npm pack`, install the tarball into a fresh
 * project (with --ignore-scripts, as npm 11 treats dependencies), compile the README's library
 * example with `tsc --strict` under the latest TypeScript and under TypeScript 5.x, with no
 * @types/node (the published types must not need it), and run it: its numbers must equal the
 * same computation in this process.
 *
 * The tarball is packed with --ignore-scripts from a staging copy of exactly the files `npm pack`
 * would ship, plus the prebuild that `prepack` would add (native/tools/prebuild.mjs copies
 * build/Release/evometa_native.node to prebuilds/<platform>-<arch>/), so no rebuild runs here.
 * Needs npm and the npm registry (it installs typescript@latest, typescript@5 and the package's
 * dependencies); skipped, saying why, when the registry cannot be reached.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { needs, peer } from './helpers/peers.js';
import '../lib/index.js';
import { getDevice } from '../lib/device/registry.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { loadOmniglot } from '../lib/data/omniglot.js';
import { getSplit } from '../lib/data/splits.js';
import { EpisodeSampler } from '../lib/data/sampler.js';
import { evaluateEpisode } from '../lib/model/score.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function sh(cmd: string, args: string[], cwd: string, timeoutMs = 180_000, env: NodeJS.ProcessEnv = process.env): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutMs, env, maxBuffer: 64 << 20 });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.ok(!r.error && r.status === 0, `${what} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const ping = sh(npm, ['ping'], root, 30_000);
const registry = peer(!ping.error && ping.status === 0, ping.error ? `npm not runnable (${ping.error.message})` : `npm registry unreachable: ${(ping.stderr || ping.stdout).trim().split('\n').pop()}`, 'npm-registry');
const withRegistry = needs(registry, 'pack: npm pack -> fresh project -> tsc --strict (TypeScript latest and 5.x) -> README example');

/** The first ```ts block after "### As a library" in the README. */
function readmeExample(): string {
  const md = readFileSync(join(root, 'README.md'), 'utf8');
  const at = md.indexOf('### As a library');
  assert.ok(at >= 0, 'README has a "### As a library" section');
  const m = /```ts\n([\s\S]*?)```/.exec(md.slice(at));
  assert.ok(m, 'the section has a ```ts block');
  return m![1]!;
}

withRegistry('the packed package compiles with tsc --strict under TypeScript latest and 5.x without @types/node, and the README example runs', () => {
  const t0 = Date.now();
  const work = mkdtempSync(join(tmpdir(), 'evometa-pack-'));
  try {
    // What `npm pack` ships.
    const dry = JSON.parse(ok(sh(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], root), 'npm pack --dry-run')) as Array<{ files: Array<{ path: string }> }>;
    const files = dry[0]!.files.map((f) => f.path);
    for (const f of ['package.json', 'README.md', 'LICENSE', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/internal.d.ts', 'dist/lib/cli/main.js', 'docs/es.md', 'docs/api.md', 'data/omniglot/omniglot-105.bin.br']) {
      assert.ok(files.includes(f), `the package ships ${f}`);
    }
    for (const f of files) assert.not.ok(/^(docs\/api\/|dist\/test\/|dist\/bench\/|test\/|lib\/)/.test(f), `the package does not ship ${f}`);
    // Stage those files, add the prebuild prepack would make, pack without scripts.
    const stage = join(work, 'stage');
    for (const f of files) {
      mkdirSync(dirname(join(stage, f)), { recursive: true });
      copyFileSync(join(root, f), join(stage, f));
    }
    const built = join(root, 'build', 'Release', 'evometa_native.node');
    const prebuild = join('prebuilds', `${process.platform}-${process.arch}`, 'evometa_native.napi.node');
    if (!files.includes(prebuild) && existsSync(built)) {
      mkdirSync(dirname(join(stage, prebuild)), { recursive: true });
      copyFileSync(built, join(stage, prebuild));
    }
    const packed = JSON.parse(ok(sh(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', work], stage), 'npm pack')) as Array<{ filename: string }>;
    const tgz = join(work, packed[0]!.filename);

    // A fresh consumer project: the tarball and two TypeScript versions, nothing else (no @types/node).
    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
    ok(sh(npm, ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tgz, 'ts-latest@npm:typescript@latest', 'ts5@npm:typescript@5'], app), 'npm install');
    assert.not.ok(existsSync(join(app, 'node_modules', '@types', 'node')), 'no @types/node came with the package');
    writeFileSync(join(app, 'example.ts'), readmeExample());
    // Every published entry point type-checks too (evometa/internal included).
    writeFileSync(join(app, 'entries.ts'), "import * as api from 'evometa';\nimport * as internal from 'evometa/internal';\nexport const names: number = Object.keys(api).length + Object.keys(internal).length;\n");
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', lib: ['es2022', 'dom'], types: [],
        strict: true, skipLibCheck: false, outDir: 'out', rootDir: '.',
      },
      files: ['example.ts', 'entries.ts'],
    }));
    const versions: string[] = [];
    for (const ts of ['ts-latest', 'ts5']) {
      const v = ok(sh(process.execPath, [join(app, 'node_modules', ts, 'bin', 'tsc'), '--version'], app), `${ts} --version`).trim();
      versions.push(v);
      ok(sh(process.execPath, [join(app, 'node_modules', ts, 'bin', 'tsc'), '-p', 'tsconfig.json', '--outDir', `out-${ts}`], app), `tsc (${v}) on the README example`);
    }
    assert.match(versions[1]!, /^Version 5\./);

    // Run it: the library prints nothing of its own; the numbers are this process's numbers.
    const env = { ...process.env };
    delete env.EVOMETA_NATIVE_ADDON;
    const r = sh(process.execPath, [join('out-ts-latest', 'example.js')], app, 240_000, env);
    const out = ok(r, 'the README example');
    assert.is(r.stderr, '', 'nothing on stderr');
    const lines = out.trim().split('\n');
    const dev = /^device (cpu-native|cpu-ts)\b/.exec(lines[0] ?? '');
    assert.ok(dev, `device line: ${lines[0]}`);
    if (existsSync(built)) {
      assert.is(dev![1], 'cpu-native', 'the shipped prebuild loads');
    }
    const layout = new ProtoNetLayout({ channels: 16, imageSize: 28 });
    const data = loadOmniglot({ imageSize: 28 });
    const val = new EpisodeSampler(getSplit(data, 'vinyals', 'val'), { way: 5, shot: 5, query: 15, seed: 1 });
    const want = evaluateEpisode(layout, initParams(layout, 0), initialBnState(layout), val.episode(0), { device: getDevice(dev![1]) });
    assert.is(lines[1], `untrained: loss ${want.loss.toFixed(4)}, accuracy ${(100 * want.accuracy).toFixed(1)}%`);
    assert.equal(lines.slice(2).map((l) => l.replace(/[\d.]+%$/, 'N%')),
      ['step 0: validation accuracy N%', 'step 3: validation accuracy N%', 'step 6: validation accuracy N%', 'done after 6 steps']);
    console.log(`  pack: ${packed[0]!.filename}, ${versions.join(' and ')}, example on ${dev![1]}: ${lines.slice(1).join(' | ')} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test.run();
