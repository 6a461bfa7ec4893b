/** `evometa train --method es`: presets, options, Omniglot, the ES-ProtoNet method on the one training loop, --resume, test episodes. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainCliOptions } from './train.js';
import { parseChoice, parseNum, UserError } from '../errors.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { resolveEsConfig, type EsConfig, type EsConfigInput } from '../methods/protonet-es/config.js';
import { ES_DEFAULT_PRESET, esPresetInput } from '../methods/protonet-es/presets.js';
import { resolvePrecision } from '../methods/protonet-es/precision.js';
import { ES_RESUME_CHANGEABLE, ProtoNetEsMethod } from '../methods/protonet-es/method.js';
import { omniglotSources, omniglotTestSampler, TEST_SEED } from '../methods/protonet/data.js';
import { evaluatorSpecFor } from '../es/evaluators.js';
import { nativeInfo } from '../device/cpu-native/index.js';
import { resumeConfig } from '../train/run-files.js';
import { log, loopOptions, pct, planRun, resumeMethod, runTraining } from './run.js';
import type { EvaluatorSpec } from '../es/evaluators.js';
import type { RedisRunner } from '../cluster/coordinator.js';

/** --redis: the population runner over Redis (workers are `evometa worker` processes). */
async function redisRunner(o: TrainCliOptions, cfg: EsConfig, spec: EvaluatorSpec): Promise<RedisRunner> {
  const sync = parseChoice('redis-sync', o.redisSync, ['mean', 'fitness'] as const);
  const timeout = parseNum('redis-timeout', o.redisTimeout, { min: 0.1 }) ?? 60;
  const { RedisRunner } = await import('../cluster/coordinator.js');
  return RedisRunner.create({
    url: o.redis!, config: cfg, data: { kind: 'omniglot' }, spec, localWorkers: cfg.workers, timeoutMs: timeout * 1000, onNotice: (m) => log(`cluster: ${m}`),
    ...(sync ? { sync } : {}), ...(o.redisCa !== undefined ? { caFile: o.redisCa } : {}), ...(o.redisPrefix !== undefined ? { prefix: o.redisPrefix } : {}),
  });
}

/** The EsConfigInput fields given explicitly on the command line. */
export function cliConfig(o: TrainCliOptions): EsConfigInput {
  const n = (name: string, v: string | undefined, int = false, min?: number): number | undefined => parseNum(name, v, { int, ...(min !== undefined ? { min } : {}) });
  const model: EsConfigInput['model'] = {};
  const ch = n('channels', o.channels, true, 1);
  if (ch !== undefined) model.channels = ch;
  const size = n('image-size', o.imageSize, true);
  if (size !== undefined) {
    if (size !== 28 && size !== 32) throw new UserError(`--image-size: expected 28 or 32, got ${size}`);
    model.imageSize = size;
  }
  const shape = (way?: string, shot?: string, query?: string, p = ''): Partial<EsConfig['train']> | undefined => {
    const r: Partial<EsConfig['train']> = {};
    const w = n(`${p}way`, way, true), s = n(`${p}shot`, shot, true), q = n(`${p}query`, query, true);
    if (w !== undefined) r.way = w;
    if (s !== undefined) r.shot = s;
    if (q !== undefined) r.query = q;
    return Object.keys(r).length ? r : undefined;
  };
  const c: EsConfigInput = {
    estimator: parseChoice('estimator', o.estimator, ['wsr', 'nes', 'openai', 'fd', 'pgpe', 'snes'] as const),
    scheme: parseChoice('scheme', o.scheme, ['paper', 'openai'] as const),
    optimizer: parseChoice('optimizer', o.optimizer, ['plain', 'sgd', 'adam', 'clipup'] as const),
    sigmaSchedule: parseChoice('sigma-schedule', o.sigmaSchedule, ['constant', 'linear', 'exp', 'cosine'] as const),
    lrSchedule: parseChoice('lr-schedule', o.lrSchedule, ['constant', 'linear', 'exp', 'cosine', 'step'] as const),
    popSchedule: parseChoice('pop-schedule', o.popSchedule, ['constant', 'linear', 'exp'] as const),
    shaping: parseChoice('shaping', o.shaping, ['ranks', 'raw'] as const),
    nonFinite: parseChoice('nonfinite', o.nonfinite, ['worst', 'drop'] as const),
    distance: parseChoice('distance', o.distance, ['euclidean', 'cosine'] as const),
    split: parseChoice('split', o.split, ['vinyals', 'paper'] as const),
    pop: n('pop', o.pop, true), shards: n('shards', o.shards, true), workers: n('workers', o.workers, true),
    sigma: n('sigma', o.sigma), sigmaFinal: n('sigma-final', o.sigmaFinal), lr: n('lr', o.lr),
    momentum: n('momentum', o.momentum), weightDecay: n('weight-decay', o.weightDecay),
    steps: n('steps', o.steps, true), seed: n('seed', o.seed, true), valSeed: n('val-seed', o.valSeed, true),
    valEvery: n('val-every', o.valEvery, true), valEpisodes: n('val-episodes', o.valEpisodes, true),
    checkpointEvery: n('checkpoint-every', o.checkpointEvery, true), fdDelta: n('fd-delta', o.fdDelta),
    collapseWindow: n('collapse-window', o.collapseWindow, true), collapseLossFactor: n('collapse-loss-factor', o.collapseLossFactor),
    collapseValChecks: n('collapse-val-checks', o.collapseValChecks, true),
    maxSpeed: n('max-speed', o.maxSpeed), lrFinal: n('lr-final', o.lrFinal), lrWarmup: n('lr-warmup', o.lrWarmup, true),
    lrEvery: n('lr-every', o.lrEvery, true), lrGamma: n('lr-gamma', o.lrGamma), popFinal: n('pop-final', o.popFinal, true),
    episodesPerStep: n('episodes-per-step', o.episodesPerStep, true), sigmaLr: n('sigma-lr', o.sigmaLr), maxSigmaChange: n('max-sigma-change', o.maxSigmaChange),
    precision: parseChoice('precision', o.precision, ['fp32', 'bf16', 'auto'] as const),
    antithetic: o.antithetic, baseline: o.baseline, fdForce: o.forceFd,
  };
  if (Object.keys(model).length) c.model = model;
  const tr = shape(o.way, o.shot, o.query);
  if (tr) c.train = tr;
  const va = shape(o.valWay, o.valShot, o.valQuery, 'val-');
  if (va) c.val = va;
  return Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)) as EsConfigInput;
}

/** Preset fields, then explicit options (the validation shot follows --shot unless --val-shot is given): the library's esPresetInput. */
export function presetConfig(o: TrainCliOptions): EsConfigInput {
  return esPresetInput(cliConfig(o), o.preset ?? ES_DEFAULT_PRESET);
}

export async function trainEsCli(o: TrainCliOptions): Promise<void> {
  if (o.lrDecayEvery !== undefined) throw new UserError('--lr-decay-every applies to --method backprop only (ES: --lr-schedule step --lr-every N --lr-gamma G)');
  const { maxMinutes, testEpisodes } = loopOptions({ maxMinutes: o.maxMinutes, testEpisodes: o.testEpisodes });
  const testShots = parseShots(o.testShots);
  const plan = planRun<EsConfig>(o, {
    method: 'es', label: 'an ES run', hint: (m) => `(use --method ${m})`, outName: () => 'es',
    fresh: () => resolveEsConfig(presetConfig(o)),
    resumed: (saved) => resolveEsConfig(resumeConfig(o.resume!, saved.config as unknown as EsConfigInput, cliConfig(o), ES_RESUME_CHANGEABLE)),
  });
  if (!plan) return;
  const { cfg, out, statePath } = plan;
  // the same device reproduces a resumed run exactly (kernels of different devices round differently)
  const device = o.device ?? (plan.saved?.state.meta['device'] as string | undefined);
  // Over Redis every worker evaluates in fp32 (lib/cluster/worker.ts builds its evaluators before
  // it sees a run): precision auto means fp32 there, and bf16 is refused rather than mixed.
  if (o.redis !== undefined && cfg.precision === 'bf16') throw new UserError('--precision bf16 does not run over --redis yet (the workers evaluate in fp32); use --precision fp32 or auto');
  const precision = o.redis !== undefined ? 'fp32' : resolvePrecision(cfg.precision, device);
  const spec = evaluatorSpecFor(device, { precision });
  if (cfg.precision === 'bf16' && spec.device === 'cpu-native') {
    const bf = nativeInfo().bf16;
    if (bf.kernel === 'none') throw new UserError(`--precision bf16 needs a CPU with AVX512_BF16 or AMX-BF16 (${bf.reason}); use --precision fp32`);
  }
  const loadMsg = (p: { phase: string; done: number; total: number }): void => { if (p.done === 0) log(`omniglot: ${p.phase}...`); };
  const sources = omniglotSources(cfg, { dataDir: o.data, cacheDir: o.cache, onProgress: loadMsg, onWarning: (m) => log(`evometa: warning: ${m}`) });
  const cluster = o.redis !== undefined ? await redisRunner(o, cfg, spec) : undefined;
  let method: ProtoNetEsMethod;
  try {
    method = await ProtoNetEsMethod.create(cfg, sources, { device: spec.device, ...(cluster ? { runner: cluster } : {}) });
  } catch (e) {
    await cluster?.close();
    throw e;
  }
  cluster?.attachStrategy(method.strategy);
  const resume = await resumeMethod(method, statePath);
  const d = method.layout.numParams;
  await runTraining({
    method, out, ...(resume ? { resume } : {}), valEvery: cfg.valEpisodes > 0 ? cfg.valEvery : 0, checkpointEvery: cfg.checkpointEvery,
    collapse: { window: cfg.collapseWindow, lossFactor: cfg.collapseLossFactor, valChecks: cfg.collapseValChecks },
    ...(maxMinutes !== undefined ? { maxMinutes } : {}), progress: o.progress, csv: o.csv === true, report: o.report !== false,
    startRecord: {
      preset: o.resume ? null : (o.preset ?? ES_DEFAULT_PRESET), device: spec.device, evaluator: spec.reason, params: d, workers: method.runner.workers,
      ...(cluster ? { redis: cluster.where, redis_sync: cluster.sync, redis_run: cluster.run } : {}),
    },
    describe: [
      `evometa train (ES): ${cfg.estimator} (${cfg.scheme} scheme), pop ${cfg.pop} in ${cfg.shards} shard(s) on ${method.runner.workers} worker(s), sigma ${cfg.sigma}, lr ${cfg.lr} (${cfg.optimizer}${cfg.lrSchedule !== 'constant' ? `, ${cfg.lrSchedule} schedule` : ''})`,
      `  model C ${cfg.model.channels}, ${cfg.model.imageSize}x${cfg.model.imageSize}, ${d} parameters; ${cfg.train.way}-way ${cfg.train.shot}-shot ${cfg.train.query}-query episodes from ${cfg.split}/train${cfg.episodesPerStep > 1 ? ` (${cfg.episodesPerStep} per step)` : ''}; validation ${cfg.val.way}-way ${cfg.val.shot}-shot on ${cfg.valEpisodes} fixed ${cfg.split}/val episodes`,
      `  population on ${spec.reason}; output ${out}${resume ? `; resuming at step ${resume.step}` : ''}`,
      ...(cluster ? [`  over Redis at ${cluster.where}: run ${cluster.run}, sync ${cluster.sync}; shards computed by \`evometa worker\` processes (${cluster.connected} connected now); ${cfg.workers} local thread(s) for validation and noise sums`] : []),
    ],
    after: async (r, metrics) => {
      if (testEpisodes <= 0) return;
      const bestPath = join(out, 'best.safetensors');
      const ck = r.bestCheckpoint && existsSync(bestPath) ? loadCheckpoint(bestPath) : null;
      for (const shot of testShots ?? [cfg.val.shot]) {
        const shape = { ...cfg.val, shot };
        const test = omniglotTestSampler(sources.dataset, cfg.split, shape, TEST_SEED);
        const t = await method.evaluateOn(test, testEpisodes, ck ? { params: ck.params, bn: ck.bn } : undefined);
        metrics.write({ type: 'test', checkpoint: ck ? bestPath : 'final', episodes: testEpisodes, way: shape.way, shot, query: shape.query, test_acc: t.acc, test_ci95: t.ci95, test_loss: t.loss });
        log(`test (${ck ? 'best checkpoint' : 'final parameters'}, ${testEpisodes} ${shape.way}-way ${shot}-shot episodes, eval mode): ${pct(t.acc)} +- ${pct(t.ci95)}`);
      }
    },
  });
  if (cluster) log(`cluster: ${cluster.summary()}`);
}

/** --test-shots 5,1: the shots of the test episodes (default: the validation shot). */
export function parseShots(v: string | undefined): number[] | undefined {
  if (v === undefined) return undefined;
  const xs = v.split(',').map((x) => parseNum('test-shots', x.trim(), { int: true, min: 1, max: 19 })!);
  if (xs.length === 0) throw new UserError('--test-shots: expected a comma-separated list of shots, e.g. 5,1');
  return xs;
}
