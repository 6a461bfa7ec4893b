/** `evometa train --method backprop`: options -> config, Omniglot samplers, the backprop method on the one training loop, --resume, test episodes. */
import { join } from 'node:path';
import type { TrainCliOptions } from './train.js';
import { UserError, parseChoice, parseNum } from '../errors.js';
import { getDevice } from '../device/registry.js';
import '../index.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { BackpropMethod, evaluateEpisodes } from '../methods/backprop/method.js';
import { BACKPROP_PRESETS, BACKPROP_DEFAULT_PRESET, BACKPROP_RESUME_CHANGEABLE, backpropConfig, resolveBackpropConfig, type BackpropConfig, type BackpropConfigInput } from '../methods/backprop/config.js';
import { omniglotSources, omniglotTestSampler, TEST_SEED } from '../methods/protonet/data.js';
import { resumeConfig } from '../train/run-files.js';
import { log, loopOptions, pct, planRun, resumeMethod, runTraining } from './run.js';
import { parseShots } from './train-es.js';

/** ES-only options: refused with --method backprop rather than silently ignored. */
const ES_ONLY: readonly string[] = [
  'workers', 'shards', 'pop', 'sigma', 'estimator', 'scheme', 'antithetic', 'baseline', 'sigmaSchedule', 'sigmaFinal', 'nonfinite',
  'fdDelta', 'forceFd', 'collapseWindow', 'collapseLossFactor', 'collapseValChecks', 'lrSchedule', 'lrFinal', 'lrWarmup', 'lrEvery',
  'popSchedule', 'popFinal', 'episodesPerStep', 'sigmaLr', 'maxSigmaChange', 'shaping', 'maxSpeed', 'precision',
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

export async function trainBackpropCli(o: TrainCliOptions): Promise<void> {
  const preset = o.preset ?? BACKPROP_DEFAULT_PRESET;
  if (!BACKPROP_PRESETS[preset]) throw new UserError(`--preset: expected one of ${Object.keys(BACKPROP_PRESETS).join(', ')} for --method backprop, got ${JSON.stringify(preset)}`);
  const input = backpropInput(o);
  const device = getDevice(o.device);
  const { maxMinutes, testEpisodes, checkpointEvery = 0 } = loopOptions(o);
  const testShots = parseShots(o.testShots);
  const plan = planRun<BackpropConfig>(o, {
    method: 'backprop', label: 'a backprop run', hint: (m) => `(use --method ${m})`, outName: () => `backprop-${preset}`,
    fresh: () => backpropConfig(input, preset),
    resumed: (saved) => resolveBackpropConfig(resumeConfig(o.resume!, saved.config as unknown as BackpropConfigInput, input, BACKPROP_RESUME_CHANGEABLE)),
  });
  if (!plan) return;
  const { cfg, out, statePath } = plan;
  const sources = omniglotSources(cfg, {
    dataDir: o.data, cacheDir: o.cache, onProgress: (p) => { if (p.done === 0) log(`omniglot: ${p.phase}...`); }, onWarning: (m) => log(`evometa: warning: ${m}`),
  });
  const method = new BackpropMethod(cfg, cfg.valEpisodes > 0 ? sources : { train: sources.train }, { device });
  const resume = await resumeMethod(method, statePath);
  await runTraining({
    method, out, ...(resume ? { resume } : {}), valEvery: cfg.valEpisodes > 0 ? cfg.episodesPerEpoch : 0, checkpointEvery: checkpointEvery || cfg.episodesPerEpoch,
    collapse: { window: 0, lossFactor: 10, valChecks: 0 }, ...(maxMinutes !== undefined ? { maxMinutes } : {}), progress: o.progress, csv: o.csv === true, report: o.report !== false,
    startRecord: { preset: statePath ? null : preset, device: device.name, params: method.layout.numParams },
    describe: [
      `evometa train (backprop): C ${cfg.model.channels}, ${cfg.model.imageSize}x${cfg.model.imageSize}, ${method.layout.numParams} parameters; ` +
        `train ${cfg.train.way}-way ${cfg.train.shot}-shot ${cfg.train.query}-query, ${cfg.optimizer} lr ${cfg.lr}` +
        `${cfg.lrDecayEvery > 0 ? ` x${cfg.lrGamma} every ${cfg.lrDecayEvery}` : ''}; device ${device.name}; output ${out}${resume ? `; resuming at step ${resume.step}` : ''}`,
    ],
    after: async (r, metrics) => {
      if (testEpisodes <= 0) return;
      const ck = r.bestCheckpoint ? loadCheckpoint(r.bestCheckpoint) : { layout: method.layout, params: method.params, bn: method.bn };
      for (const shot of testShots ?? [cfg.val.shot]) {
        const shape = { ...cfg.val, shot };
        const test = omniglotTestSampler(sources.dataset, cfg.split, shape, TEST_SEED);
        const t = evaluateEpisodes(device, ck.layout, ck.params, ck.bn, test, testEpisodes, cfg.distance);
        metrics.write({ type: 'test', checkpoint: r.bestCheckpoint ?? 'final', episodes: testEpisodes, way: shape.way, shot, query: shape.query, test_acc: t.acc, test_ci95: t.ci95, test_loss: t.loss });
        log(`test (${r.bestCheckpoint ? 'best checkpoint' : 'final parameters'}, ${testEpisodes} ${shape.way}-way ${shot}-shot episodes, eval mode): ${pct(t.acc)} +- ${pct(t.ci95)}`);
      }
    },
  });
}
