/** `evometa train --method es`: presets, options, Omniglot, progress, metrics, checkpoints, Ctrl-C, --resume. */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import type { TrainCliOptions } from '../cli/train.js';
import { parseChoice, parseNum, UserError } from '../errors.js';
import { loadCheckpoint, loadTrainState } from '../model/checkpoint.js';
import { createProgress } from '../train/progress.js';
import { MetricsLog, onInterrupt } from '../train/metrics.js';
import { resolveEsConfig, type EsConfig, type EsConfigInput } from './config.js';
import { ES_PRESETS, presetNames } from './presets.js';
import { evaluatorSpecFor } from './evaluators.js';
import { EsTrainer } from './trainer.js';
import { omniglotSources, omniglotTestSampler } from './data.js';

/** Seed of the test episodes drawn by --test-episodes. */
export const TEST_SEED = 2024;

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
    estimator: parseChoice('estimator', o.estimator, ['wsr', 'nes', 'openai', 'fd'] as const),
    scheme: parseChoice('scheme', o.scheme, ['paper', 'openai'] as const),
    optimizer: parseChoice('optimizer', o.optimizer, ['plain', 'sgd', 'adam'] as const),
    sigmaSchedule: parseChoice('sigma-schedule', o.sigmaSchedule, ['constant', 'linear', 'exp'] as const),
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
    antithetic: o.antithetic, baseline: o.baseline, fdForce: o.forceFd,
  };
  if (Object.keys(model).length) c.model = model;
  const tr = shape(o.way, o.shot, o.query);
  if (tr) c.train = tr;
  const va = shape(o.valWay, o.valShot, o.valQuery, 'val-');
  if (va) c.val = va;
  return Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)) as EsConfigInput;
}

/** Preset fields, then explicit options (the validation shot follows --shot unless --val-shot is given). */
export function presetConfig(o: TrainCliOptions): EsConfigInput {
  const name = o.preset ?? 'quick';
  const p = ES_PRESETS[name];
  if (!p) throw new UserError(`--preset: unknown preset ${JSON.stringify(name)}; presets: ${presetNames().join(', ')}`);
  const x = cliConfig(o);
  const val = { ...p.config.val, ...(x.train?.shot !== undefined && o.valShot === undefined ? { shot: x.train.shot } : {}), ...x.val };
  const c: EsConfigInput = { ...p.config, ...x, model: { ...p.config.model, ...x.model }, train: { ...p.config.train, ...x.train }, val };
  // fd fixes its own population (parameters + 1): a preset's population does not apply, an explicit --pop is refused
  if (c.estimator === 'fd' && x.pop === undefined) delete c.pop;
  return c;
}

function pct(x: number): string { return Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '-'; }

export async function trainEsCli(o: TrainCliOptions): Promise<void> {
  for (const [k, flag] of [['lrDecayEvery', '--lr-decay-every'], ['lrGamma', '--lr-gamma']] as const) {
    if ((o as unknown as Record<string, unknown>)[k] !== undefined) throw new UserError(`${flag} applies to --method backprop only (ES: see --sigma-schedule, --optimizer)`);
  }
  const maxMinutes = parseNum('max-minutes', o.maxMinutes, { min: 0 });
  const testEpisodes = parseNum('test-episodes', o.testEpisodes, { int: true, min: 0 }) ?? 0;
  let cfg: EsConfig;
  let override: EsConfigInput = {};
  let device = o.device;
  if (o.resume) {
    if (!existsSync(o.resume)) throw new UserError(`--resume: ${o.resume} does not exist`);
    const meta = loadTrainState(o.resume).meta as { config?: EsConfig; device?: string };
    // the same device reproduces the run exactly (kernels of different devices round differently)
    device ??= meta.device;
    if (!meta.config) throw new UserError(`--resume ${o.resume}: its training state holds no ES configuration`);
    if (o.preset) throw new UserError('--preset cannot be combined with --resume (the run keeps its saved configuration)');
    override = cliConfig(o);
    cfg = resolveEsConfig({ ...(meta.config as unknown as EsConfigInput), ...override });
  } else {
    const input = presetConfig(o);
    if (input.workers === undefined) input.workers = Math.max(1, Math.min(availableParallelism(), input.pop ?? availableParallelism()));
    cfg = resolveEsConfig(input);
  }
  const out = o.out ?? (o.resume ? dirname(o.resume) : join('runs', `es-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  if (!o.resume && existsSync(join(out, 'last.safetensors'))) {
    throw new UserError(`--out ${out} already holds a run (last.safetensors): resume it with --resume ${join(out, 'last.safetensors')}, or choose another --out`);
  }
  const spec = evaluatorSpecFor(device);
  const loadMsg = (p: { phase: string; done: number; total: number }): void => { if (p.done === 0) process.stderr.write(`omniglot: ${p.phase}...\n`); };
  const sources = omniglotSources(cfg, { dataDir: o.data, cacheDir: o.cache, onProgress: loadMsg });
  const trainer = o.resume
    ? await EsTrainer.resume(o.resume, sources, override, { device: spec.device })
    : await EsTrainer.create(cfg, sources, { device: spec.device });
  cfg = trainer.cfg;
  const metrics = new MetricsLog(join(out, 'metrics.jsonl'));
  const d = trainer.layout.numParams;
  metrics.write({
    type: 'start', step: trainer.step, resumed_from: o.resume ?? null, preset: o.resume ? null : (o.preset ?? 'quick'), config: cfg,
    device: spec.device, evaluator: spec.reason, params: d, workers: trainer.runner.workers,
  });
  const log = (s: string): void => { process.stderr.write(`${s}\n`); };
  log(`evometa ES: ${cfg.estimator} (${cfg.scheme} scheme), pop ${cfg.pop} in ${cfg.shards} shard(s) on ${trainer.runner.workers} worker(s), sigma ${cfg.sigma}, lr ${cfg.lr} (${cfg.optimizer})`);
  log(`  model C ${cfg.model.channels}, ${cfg.model.imageSize}x${cfg.model.imageSize}, ${d} parameters; ${cfg.train.way}-way ${cfg.train.shot}-shot ${cfg.train.query}-query episodes from ${cfg.split}/train; validation ${cfg.val.way}-way ${cfg.val.shot}-shot on ${cfg.valEpisodes} fixed ${cfg.split}/val episodes`);
  log(`  population on ${spec.reason}; output ${out}${o.resume ? `; resuming at step ${trainer.step}` : ''}`);

  const bar = createProgress('es', cfg.steps, { enabled: o.progress });
  let lastVal = NaN;
  const abort = new AbortController();
  const off = onInterrupt(() => {
    abort.abort();
    process.stderr.write('\nstopping: saving the state of the last completed step; Ctrl-C again to quit at once\n');
  });
  let result;
  try {
    result = await trainer.run({
      out, metrics, signal: abort.signal, ...(maxMinutes !== undefined ? { maxMs: maxMinutes * 60000 } : {}),
      onStep: (r) => bar.update(r.step + 1, { loss: r.loss, fit: r.fitnessMean, val: pct(lastVal), 'cand/s': Math.round(r.candidatesPerSecond) }),
      onVal: (v) => { lastVal = v.acc; bar.update(v.step, { val: pct(v.acc) }); },
    });
  } finally {
    bar.stop();
    off();
  }
  try {
    const why = { done: 'finished', interrupted: 'interrupted', time: `stopped after --max-minutes ${maxMinutes}`, collapsed: 'collapsed' }[result.end];
    log(`${why} at step ${result.step}; best validation accuracy ${pct(result.bestVal)} (step ${trainer.bestStep}); checkpoints: ${join(out, 'last.safetensors')}${Number.isFinite(result.bestVal) ? `, ${join(out, 'best.safetensors')}` : ''}`);
    if (result.end !== 'interrupted' && testEpisodes > 0) {
      const bestPath = join(out, 'best.safetensors');
      const ck = existsSync(bestPath) ? loadCheckpoint(bestPath) : null;
      const test = omniglotTestSampler(sources.dataset, cfg, cfg.val, TEST_SEED);
      const r = await trainer.evaluateOn(test, testEpisodes, ck ? { params: ck.params, bn: ck.bn } : undefined);
      metrics.write({ type: 'test', checkpoint: ck ? bestPath : 'final', episodes: testEpisodes, way: cfg.val.way, shot: cfg.val.shot, test_acc: r.acc, test_ci95: r.ci95, test_loss: r.loss });
      log(`test (${ck ? 'best checkpoint' : 'final parameters'}, ${testEpisodes} ${cfg.val.way}-way ${cfg.val.shot}-shot episodes, eval mode): ${pct(r.acc)} +- ${pct(r.ci95)}`);
    }
  } finally {
    await trainer.close();
  }
}
