/** `evometa train --method backprop`: options -> config, Omniglot samplers, progress, metrics, Ctrl-C, resume. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TrainCliOptions } from '../cli/train.js';
import { UserError, parseChoice, parseNum } from '../errors.js';
import { getDevice } from '../device/registry.js';
import '../index.js';
import { loadOmniglot } from '../data/omniglot.js';
import { getSplit } from '../data/splits.js';
import { EpisodeSampler } from '../data/sampler.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { createProgress } from './progress.js';
import { MetricsLog, onInterrupt } from './metrics.js';
import { BackpropTrainer, evaluateEpisodes, type BackpropSources } from './backprop.js';
import { PRESETS, DEFAULT_PRESET, resolveBackpropConfig, type BackpropConfig, type BackpropConfigInput } from './backprop-config.js';

/** ES-only options: refused with --method backprop rather than silently ignored. */
const ES_ONLY: readonly string[] = [
  'workers', 'shards', 'pop', 'sigma', 'estimator', 'scheme', 'antithetic', 'baseline', 'sigmaSchedule', 'sigmaFinal', 'nonfinite',
  'fdDelta', 'forceFd', 'collapseWindow', 'collapseLossFactor', 'collapseValChecks',
];
const FLAG_OF = (k: string): string => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export function backpropInput(o: TrainCliOptions): BackpropConfigInput {
  for (const k of ES_ONLY) {
    if ((o as unknown as Record<string, unknown>)[k] !== undefined) throw new UserError(`--${FLAG_OF(k)} does not apply to --method backprop (it is an ES option)`);
  }
  if (o.optimizer === 'plain') throw new UserError('--optimizer plain is ES-only; backprop uses adam (default) or sgd');
  const shot = parseNum('shot', o.shot, { int: true, min: 1 });
  return {
    model: { channels: parseNum('channels', o.channels, { int: true, min: 1 }), imageSize: parseNum('image-size', o.imageSize, { int: true, min: 1 }) },
    distance: parseChoice('distance', o.distance, ['euclidean', 'cosine'] as const),
    optimizer: parseChoice('optimizer', o.optimizer, ['adam', 'sgd'] as const),
    lr: parseNum('lr', o.lr), momentum: parseNum('momentum', o.momentum), weightDecay: parseNum('weight-decay', o.weightDecay),
    lrDecayEvery: parseNum('lr-decay-every', o.lrDecayEvery, { int: true, min: 0 }), lrGamma: parseNum('lr-gamma', o.lrGamma),
    train: { way: parseNum('way', o.way, { int: true, min: 2 }), shot, query: parseNum('query', o.query, { int: true, min: 1 }) },
    val: {
      way: parseNum('val-way', o.valWay, { int: true, min: 2 }), shot: parseNum('val-shot', o.valShot, { int: true, min: 1 }) ?? shot,
      query: parseNum('val-query', o.valQuery, { int: true, min: 1 }),
    },
    valSeed: parseNum('val-seed', o.valSeed, { int: true, min: 0, max: 0xffffffff }),
    split: parseChoice('split', o.split, ['vinyals', 'paper'] as const),
    seed: parseNum('seed', o.seed, { int: true, min: 0, max: 0xffffffff }),
    episodes: parseNum('steps', o.steps, { int: true, min: 1 }),
    episodesPerEpoch: parseNum('val-every', o.valEvery, { int: true, min: 1 }),
    valEpisodes: parseNum('val-episodes', o.valEpisodes, { int: true, min: 0 }),
  };
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

function samplers(cfg: BackpropConfig, o: TrainCliOptions): { sources: BackpropSources; test: EpisodeSampler | null } {
  const ds = loadOmniglot({
    ...(o.data !== undefined ? { dataDir: o.data } : {}), imageSize: cfg.model.imageSize, ...(o.cache !== undefined ? { cacheDir: o.cache } : {}),
    onProgress: (p) => { if (p.done === 0) log(`data: ${p.phase}...`); },
  });
  const split = (part: 'train' | 'val' | 'test'): ReturnType<typeof getSplit> => getSplit(ds, cfg.split, part);
  const train = new EpisodeSampler(split('train'), { ...cfg.train, seed: cfg.seed });
  const val = cfg.valEpisodes > 0 ? new EpisodeSampler(split('val'), { ...cfg.val, seed: cfg.valSeed }) : undefined;
  const tests = parseNum('test-episodes', o.testEpisodes, { int: true, min: 0 }) ?? 0;
  const test = tests > 0 ? new EpisodeSampler(split('test'), { ...cfg.val, seed: cfg.valSeed }) : null;
  return { sources: { train, ...(val ? { val } : {}) }, test };
}

export async function trainBackpropCli(o: TrainCliOptions): Promise<void> {
  const preset = o.preset ?? DEFAULT_PRESET;
  if (!PRESETS[preset]) throw new UserError(`--preset: expected one of ${Object.keys(PRESETS).join(', ')} for --method backprop, got ${JSON.stringify(preset)}`);
  const input = backpropInput(o);
  const device = getDevice(o.device);
  const maxMinutes = parseNum('max-minutes', o.maxMinutes, { min: 0 });
  const checkpointEvery = parseNum('checkpoint-every', o.checkpointEvery, { int: true, min: 0 }) ?? 0;
  let trainer: BackpropTrainer;
  let out: string;
  let test: EpisodeSampler | null;
  if (o.resume !== undefined) {
    if (!existsSync(o.resume)) throw new UserError(`--resume: ${o.resume} does not exist`);
    if (o.preset !== undefined) throw new UserError('--preset does not apply with --resume (the saved run\'s configuration is used)');
    const saved = BackpropTrainer.savedConfig(o.resume);
    const s = samplers(saved, o);
    test = s.test;
    trainer = BackpropTrainer.resume(o.resume, s.sources, input, { device });
    out = o.out ?? dirname(o.resume);
    log(`resuming ${o.resume} at episode ${trainer.episode} of ${trainer.cfg.episodes}`);
  } else {
    const cfg = resolveBackpropConfig(input, preset);
    const s = samplers(cfg, o);
    test = s.test;
    trainer = new BackpropTrainer(cfg, s.sources, { device });
    out = o.out ?? join('runs', `backprop-${preset}-seed${trainer.cfg.seed}`);
    if (existsSync(join(out, 'last.safetensors'))) {
      throw new UserError(`${out} already holds a run (last.safetensors): continue it with --resume ${join(out, 'last.safetensors')}, or choose another --out`);
    }
  }
  const cfg = trainer.cfg;
  log(`backprop: ${cfg.model.channels} channels, ${cfg.model.imageSize}x${cfg.model.imageSize}, ${trainer.layout.numParams} parameters; ` +
    `train ${cfg.train.way}-way ${cfg.train.shot}-shot ${cfg.train.query}-query, ${cfg.optimizer} lr ${cfg.lr}` +
    `${cfg.lrDecayEvery > 0 ? ` x${cfg.lrGamma} every ${cfg.lrDecayEvery}` : ''}; device ${device.name}; out ${out}`);
  const metrics = new MetricsLog(join(out, 'metrics.jsonl'));
  const start = trainer.episode;
  const progress = createProgress('backprop', Math.max(0, cfg.episodes - start), { enabled: o.progress });
  let stop = false;
  const dispose = onInterrupt(() => { stop = true; });
  let lastVal = '';
  let result;
  try {
    result = await trainer.run({
      out, metrics, checkpointEvery,
      shouldStop: () => stop,
      ...(maxMinutes !== undefined ? { maxMs: maxMinutes * 60000 } : {}),
      onEpisode: (r) => progress.update(r.episode + 1 - start, { episode: r.episode + 1, loss: r.loss, acc: r.acc, ...(lastVal ? { val: lastVal } : {}) }),
      onEpoch: (e) => { if (e.val) lastVal = e.val.acc.toFixed(4); },
    });
  } finally {
    progress.stop();
    dispose();
  }
  const best = result.bestEpisode >= 0 ? ` best validation accuracy ${result.bestVal.toFixed(4)} at episode ${result.bestEpisode} (${join(out, 'best.safetensors')});` : '';
  if (result.end === 'done') log(`done: ${result.episode} episodes;${best} last checkpoint ${result.lastCheckpoint}`);
  else {
    log(`stopped (${result.end === 'interrupted' ? 'interrupted' : '--max-minutes reached'}) at episode ${result.episode};${best} saved ${result.lastCheckpoint}; ` +
      `continue with: evometa train --method backprop --resume ${result.lastCheckpoint}`);
  }
  if (result.end === 'interrupted') {
    process.exitCode = 130;
    return;
  }
  if (test) {
    const n = parseNum('test-episodes', o.testEpisodes, { int: true, min: 1 })!;
    const ck = result.bestCheckpoint ? loadCheckpoint(result.bestCheckpoint) : { layout: trainer.layout, params: trainer.params, bn: trainer.bn };
    const t0 = Date.now();
    const r = evaluateEpisodes(device, ck.layout, ck.params, ck.bn, test, n, cfg.distance);
    metrics.write({ type: 'test', checkpoint: result.bestCheckpoint ?? 'final', episodes: n, way: cfg.val.way, shot: cfg.val.shot, query: cfg.val.query, test_acc: r.acc, test_ci95: r.ci95, test_loss: r.loss, seconds: (Date.now() - t0) / 1000 });
    log(`test: ${cfg.val.way}-way ${cfg.val.shot}-shot accuracy ${(100 * r.acc).toFixed(2)}% +- ${(100 * r.ci95).toFixed(2)}% over ${n} episodes`);
  }
}
