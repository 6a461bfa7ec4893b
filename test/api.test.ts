/**
 * The public API surface: `import … from 'evometa'` exports exactly the names below (values and
 * types, read from the compiled dist/lib/index.d.ts with the TypeScript compiler), so a new public
 * name is a conscious decision and an internal one cannot leak in. Each public value has a doc
 * comment; docs/api.md names every export; the package's exports map points at the files.
 * To add a public name: lib/index.ts, this list and docs/api.md (see docs/api.md, "Adding a module").
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Runtime values (functions, classes, constants), by group as in lib/index.ts. */
const VALUES: Record<string, string[]> = {
  errors: ['UserError', 'OmniglotDataError', 'SafetensorsError'],
  version: ['VERSION'],
  devices: ['getDevice', 'defaultDevice', 'deviceReport', 'registeredDevices', 'DeviceUnavailableError', 'nativeInfo', 'nativeLimits', 'setNativeThreads', 'setNativeIsa', 'configureXla'],
  tensors: ['Tensor', 'DirectOps', 'Rng'],
  model: ['ProtoNetLayout', 'initialBnState', 'DEFAULT_MODEL', 'initParams', 'embed', 'episodeLoss', 'evaluateEpisode', 'episodeGradient'],
  checkpoints: ['saveCheckpoint', 'loadCheckpoint', 'readSafetensors', 'writeSafetensors', 'readRunState', 'resolveResumePath'],
  data: ['loadOmniglot', 'OmniglotDataset', 'getSplit', 'EpisodeSampler', 'SyntheticEpisodes', 'omniglotSources', 'omniglotTestSampler', 'TEST_SEED'],
  es: ['EvolutionStrategy', 'Generation', 'AbandonedError', 'WSR', 'NES', 'OpenAIES', 'PGPE', 'SNES', 'FD', 'objectiveRunner'],
  training: ['runLoop', 'CollapseError', 'MetricsLog', 'CsvMetricsSink', 'esConfig', 'ES_PRESETS', 'ES_DEFAULT_PRESET', 'ProtoNetEsMethod',
    'backpropConfig', 'BACKPROP_PRESETS', 'BACKPROP_DEFAULT_PRESET', 'BackpropMethod', 'resolveL2lConfig', 'L2L_PRESETS', 'DEFAULT_L2L_PRESET', 'L2lMethod'],
  evograd: ['evoGradHypergradient', 'copyWeights', 'EVOGRAD_DEFAULTS', 'EvoGradWorkspace', 'tapeObjective', 'EvoGradLearner', 'resolveEvoGradConfig', 'EVOGRAD_PRESETS',
    'DEFAULT_EVOGRAD_PRESET', 'EvoGradMethod', 'populationHypergradient', 'fdLookaheadHypergradient', 'FdWorkspace', 'EVOGRAD_MODES', 'UnrolledEsLearner'],
  cluster: ['createRedisRunner', 'runClusterWorker', 'ClusterError', 'RedisUnavailableError', 'DEFAULT_SYNC'],
  evaluation: ['evaluateCheckpoint', 'summarize'],
  export: ['exportOnnx', 'ONNX_INPUT', 'ONNX_OUTPUT', 'exportPytorch'],
  reports: ['writeRunReport', 'readRun'],
};

/** Types only (interfaces and type aliases). */
const TYPES: Record<string, string[]> = {
  devices: ['Device', 'DeviceInfo', 'DeviceStatus', 'DeviceChoice', 'NativeInfo', 'NativeLimits', 'XlaOptions', 'XlaExecutorKind', 'Precision'],
  tensors: ['DType', 'FloatArray', 'TensorOps', 'BnTrainResult', 'Conv2dAttrs', 'PoolAttrs'],
  model: ['ModelConfig', 'BnState', 'LayoutEntry', 'Episode', 'EpisodeOutput', 'LossOptions', 'ForwardOptions', 'BnMode', 'Distance', 'EpisodeResult',
    'EvaluateEpisodeOptions', 'EpisodeGradient'],
  checkpoints: ['ProtoNetState', 'LoadedCheckpoint', 'StData', 'StDType', 'StTensor', 'SafetensorsFile', 'SafetensorsHeader', 'StEntry', 'ReadSafetensorsOptions',
    'RunState', 'LoopState'],
  data: ['LoadOmniglotOptions', 'LoadProgress', 'CacheInfo', 'CacheStatus', 'DataSource', 'SplitScheme', 'SplitPart', 'OmniglotSplit', 'OmniglotClass',
    'GetSplitOptions', 'Rotation', 'EpisodeSpec', 'EpisodeDraw', 'EpisodeSource', 'SyntheticOptions', 'ProtoNetSources', 'OmniglotSourceOptions', 'SourceConfig',
    'EpisodeCounts'],
  es: ['StrategyOptions', 'TellResult', 'StrategyState', 'Scheme', 'EsOptimizerName', 'NesOptions', 'PgpeOptions', 'SnesOptions', 'FdOptions', 'Objective',
    'ObjectiveContext', 'PopulationRunner', 'NonFinitePolicy', 'Schedule', 'ScheduleKind'],
  training: ['LoopOptions', 'LoopResult', 'LoopEnd', 'CollapseConfig', 'TrainMethod', 'StepMetrics', 'ValResult', 'MethodState', 'ExportedModel', 'MetricsSink',
    'EsPreset', 'EsConfig', 'EsConfigInput', 'EsEstimator', 'EsOptimizer', 'EsEpisodeShape', 'SigmaSchedule', 'LrSchedule', 'PopSchedule', 'EsPrecision', 'EsMethodInit',
    'BackpropPreset', 'BackpropConfig', 'BackpropConfigInput', 'BackpropEpisodeShape', 'BackpropOptimizer', 'BackpropInit', 'L2lConfig', 'L2lConfigInput'],
  evograd: ['EvoGradSettings', 'HyperObjective', 'Hypergradient', 'HyperProgram', 'ProgramArgs', 'ProgramMode', 'TapeObjective', 'LearnerConfig',
    'LearnerStep', 'LearnerState', 'HypergradientFn', 'CopyNoise', 'CopyLosses', 'PopulationCopies', 'FdLookaheadResult', 'UnrolledEsConfig', 'UnrolledEsSettings', 'UnrolledEsState', 'UnrolledEsStep', 'EvoGradConfig', 'EvoGradConfigInput',
    'EvoGradMode', 'CopyEval'],
  cluster: ['SyncMode', 'RedisRunnerOptions', 'ClusterStats', 'WorkerOptions', 'WorkerSummary', 'RedisConnectOptions', 'DataDescriptor', 'RunMeta'],
  evaluation: ['EvalOptions', 'EvalResult', 'Summary'],
  export: ['OnnxExportOptions', 'OnnxBnMode', 'ExportState'],
  reports: ['ReportOptions', 'ReportResult', 'RunData', 'Chart', 'MetricsPoint', 'MetricsRecord', 'MetricsStartRecord', 'MetricsStepRecord', 'MetricsValRecord',
    'MetricsTestRecord', 'MetricsEndRecord', 'MetricsResumeRecord'],
};

/** Internal names that were public before the API was curated: they must stay out. */
const NEVER = ['CTL_TURN', 'KinkProbe', 'lnUnit', 'runInFreshProcess', 'registerKernel', 'registerDevice', 'registerGradient', 'registerLowering',
  'PRESETS', 'DEFAULT_PRESET', 'RESUME_CHANGEABLE', 'ES_DEFAULTS', 'resolveEsConfig', 'resolveBackpropConfig', 'Tape', 'philox4x32', 'MAX_POP'];

const sorted = (xs: Iterable<string>): string[] => [...xs].sort();
const all = (g: Record<string, string[]>): string[] => Object.values(g).flat();

/** Every name dist/lib/index.d.ts exports, with whether it has a value and its doc comment. */
function declaredExports(): Map<string, { value: boolean; doc: string }> {
  const file = join(root, 'dist', 'lib', 'index.d.ts');
  const program = ts.createProgram([file], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, types: [], noEmit: true });
  const checker = program.getTypeChecker();
  const mod = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
  const out = new Map<string, { value: boolean; doc: string }>();
  for (const s of checker.getExportsOfModule(mod)) {
    const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
    out.set(s.name, { value: (target.flags & ts.SymbolFlags.Value) !== 0, doc: ts.displayPartsToString(target.getDocumentationComment(checker)).trim() });
  }
  return out;
}

const declared = declaredExports();

test('the public index exports exactly the allow-listed values and types (no internal name leaks in)', async () => {
  const values = all(VALUES), types = all(TYPES);
  assert.is(new Set([...values, ...types]).size, values.length + types.length, 'a name is listed twice');
  const extra = sorted([...declared.keys()].filter((n) => !values.includes(n) && !types.includes(n)));
  const absent = sorted([...values, ...types].filter((n) => !declared.has(n)));
  assert.equal(extra, [], `exported but not in the allow-list of test/api.test.ts: ${extra.join(', ')}`);
  assert.equal(absent, [], `allow-listed but not exported: ${absent.join(', ')}`);
  const wrongKind = sorted([...declared].filter(([n, d]) => d.value !== values.includes(n)).map(([n]) => n));
  assert.equal(wrongKind, [], `listed as a value but only a type, or the reverse: ${wrongKind.join(', ')}`);
  for (const n of NEVER) assert.not.ok(declared.has(n), `${n} is internal`);
  // What the module exports at run time is the value list.
  const m = await import('../lib/index.js') as Record<string, unknown>;
  assert.equal(sorted(Object.keys(m)), sorted(values));
});

test('every public value has a doc comment', () => {
  const bare = sorted(all(VALUES).filter((n) => !declared.get(n)?.doc));
  assert.equal(bare, [], `public values without a doc comment: ${bare.join(', ')}`);
});

test('docs/api.md names every public export', () => {
  const md = readFileSync(join(root, 'docs', 'api.md'), 'utf8');
  const missing = [...all(VALUES), ...all(TYPES)].filter((n) => !new RegExp('`' + n + '[`(]').test(md));
  assert.equal(missing, [], `not mentioned in docs/api.md: ${missing.join(', ')}`);
});

test('the imports shown in README.md and docs/*.md name real exports of evometa and evometa/internal', async () => {
  const pub = await import('../lib/index.js') as Record<string, unknown>;
  const internal = await import('../lib/internal.js') as Record<string, unknown>;
  const types = all(TYPES);
  const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
  let seen = 0;
  for (const page of pages) {
    const text = readFileSync(join(root, page), 'utf8');
    for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*'(evometa(?:\/internal)?)'/g)) {
      const names = m[1]!.split(',').map((n) => n.trim().replace(/^type\s+/, '')).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n));
      for (const n of names) {
        seen++;
        if (m[2] === 'evometa') assert.ok(n in pub || types.includes(n), `${page}: ${n} is not exported by evometa`);
        else assert.ok(n in internal, `${page}: ${n} is not exported by evometa/internal`);
      }
    }
  }
  assert.ok(seen > 20, `found ${seen} imported names`);
});

test('evometa/internal re-exports every public value, and the package exports map points at built files', async () => {
  const pub = await import('../lib/index.js') as Record<string, unknown>;
  const internal = await import('../lib/internal.js') as Record<string, unknown>;
  for (const n of Object.keys(pub)) assert.is(internal[n], pub[n], `internal.${n}`);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, { types: string; import: string } | string>; repository?: { url?: string }; files: string[] };
  for (const [k, v] of Object.entries(pkg.exports)) {
    for (const f of typeof v === 'string' ? [v] : [v.types, v.import]) assert.ok(existsSync(join(root, f)), `exports["${k}"] -> ${f}`);
  }
  assert.ok(pkg.exports['./internal'], 'evometa/internal is an explicit subpath');
  assert.match(pkg.repository?.url ?? '', /github\.com\/evometa\/evometa/);
  assert.ok(pkg.files.includes('docs/*.md'), 'the docs ship with the package');
});

test('importing the library prints nothing, even when cpu-native cannot load: defaultDevice() says why', () => {
  const script = "const m = await import('./dist/lib/index.js'); const c = m.defaultDevice(); console.log(JSON.stringify({ device: c.device.name, skipped: c.skipped }));";
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', env: { ...process.env, EVOMETA_NATIVE_ADDON: 'none' } });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr, '');
  const j = JSON.parse(r.stdout) as { device: string; skipped: Array<{ name: string; reason: string }> };
  assert.is(j.device, 'cpu-ts');
  assert.equal(j.skipped, [{ name: 'cpu-native', reason: 'disabled by EVOMETA_NATIVE_ADDON=none' }]);
});

test.run();
