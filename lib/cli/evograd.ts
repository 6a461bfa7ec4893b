/**
 * `evometa evograd --task rotation`: EvoGrad (or plain training, or the second-order baseline) on
 * the rotation task, the EvoGradMethod (lib/evograd/method.ts) on the one training loop: presets,
 * progress, metrics JSONL, atomic checkpoints of (theta, angle), Ctrl-C and exact --resume, test
 * episodes (rotated and upright) at the end.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { parseChoice, parseNum } from '../errors.js';
import { getDevice } from '../device/registry.js';
import '../index.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { COPY_EVALS, EVOGRAD_MODES, EVOGRAD_PRESETS, DEFAULT_EVOGRAD_PRESET, savedEvoGradConfig, evoGradResumeChangeable, EVOGRAD_TASKS, HYPER_LR_SCHEDULES, resolveEvoGradConfig, type EvoGradConfig, type EvoGradConfigInput } from '../evograd/config.js';
import { COPY_NOISES } from '../evograd/noise.js';
import { EVALUATOR_PRECISIONS } from '../es/population.js';
import { EvoGradMethod } from '../evograd/method.js';
import { ROTATION_TEST_SHAPE, rotationSources, rotationTest } from '../evograd/data.js';
import { resumeConfig } from '../train/run-files.js';
import { log, loopOptions, pct, planRun, resumeMethod, runTraining } from './run.js';

export interface EvoGradCliOptions {
  task?: string; preset?: string; mode?: string; device?: string;
  copies?: string; copyEval?: string; fdDelta?: string; fdEps?: string; unroll?: string; hyperDelta?: string; hyperEpisodes?: string; hyperValEpisodes?: string; precision?: string; sigma?: string; tau?: string; noise?: string; lr?: string; hyperLr?: string; hyperBeta1?: string; hyperBeta2?: string; hyperLrSchedule?: string; hyperLrFinal?: string;
  initAngle?: string; valAngle?: string; supersample?: string; channels?: string; imageSize?: string; distance?: string;
  way?: string; shot?: string; query?: string; valWay?: string; valShot?: string; valQuery?: string;
  seed?: string; valSeed?: string; steps?: string; valEvery?: string; valEpisodes?: string; checkpointEvery?: string;
  maxMinutes?: string; testEpisodes?: string; out?: string; resume?: string; data?: string; cache?: string;
  showConfig?: boolean; csv?: boolean; report?: boolean; progress: boolean;
}

/** Test episodes: 5-way 5-shot 15-query, as the ProtoNet trainers report. */
const TEST_SHAPE = ROTATION_TEST_SHAPE;
const TEST_SEED = 0;

export function evoGradInput(o: EvoGradCliOptions): EvoGradConfigInput {
  const int = (name: string, v: string | undefined, min: number, max?: number): number | undefined => parseNum(name, v, { int: true, min, ...(max !== undefined ? { max } : {}) });
  return {
    task: parseChoice('task', o.task, EVOGRAD_TASKS),
    mode: parseChoice('mode', o.mode, EVOGRAD_MODES),
    model: { channels: int('channels', o.channels, 1), imageSize: int('image-size', o.imageSize, 1) },
    distance: parseChoice('distance', o.distance, ['euclidean', 'cosine'] as const),
    copies: int('copies', o.copies, 2), copyEval: parseChoice('copy-eval', o.copyEval, COPY_EVALS), fdDelta: parseNum('fd-delta', o.fdDelta), fdEps: parseNum('fd-eps', o.fdEps),
    unroll: int('unroll', o.unroll, 1), hyperDelta: parseNum('hyper-delta', o.hyperDelta), hyperEpisodes: int('hyper-episodes', o.hyperEpisodes, 1), hyperValEpisodes: int('hyper-val-episodes', o.hyperValEpisodes, 1),
    precision: parseChoice('precision', o.precision, EVALUATOR_PRECISIONS), sigma: parseNum('sigma', o.sigma), tau: parseNum('tau', o.tau),
    noise: parseChoice('noise', o.noise, COPY_NOISES),
    lr: parseNum('lr', o.lr), hyperLr: parseNum('hyper-lr', o.hyperLr), hyperBeta1: parseNum('hyper-beta1', o.hyperBeta1), hyperBeta2: parseNum('hyper-beta2', o.hyperBeta2),
    hyperLrSchedule: parseChoice('hyper-lr-schedule', o.hyperLrSchedule, HYPER_LR_SCHEDULES), hyperLrFinal: parseNum('hyper-lr-final', o.hyperLrFinal),
    initAngle: parseNum('init-angle', o.initAngle), valAngle: parseNum('val-angle', o.valAngle),
    supersample: int('supersample', o.supersample, 1),
    train: { way: int('way', o.way, 2), shot: int('shot', o.shot, 1), query: int('query', o.query, 1) },
    val: { way: int('val-way', o.valWay, 2), shot: int('val-shot', o.valShot, 1), query: int('val-query', o.valQuery, 1) },
    seed: int('seed', o.seed, 0, 0xffffffff), valSeed: int('val-seed', o.valSeed, 0, 0xffffffff),
    steps: int('steps', o.steps, 1), valEpisodes: int('val-episodes', o.valEpisodes, 0),
  };
}

export async function evoGradCli(o: EvoGradCliOptions): Promise<void> {
  const preset = o.preset ?? DEFAULT_EVOGRAD_PRESET;
  const input = evoGradInput(o);
  const device = getDevice(o.device);
  const valEvery = parseNum('val-every', o.valEvery, { int: true, min: 0 }) ?? 100;
  const { maxMinutes, testEpisodes, checkpointEvery = valEvery } = loopOptions(o);
  const plan = planRun<EvoGradConfig>(o, {
    method: 'evograd', label: 'an evograd run', outName: (c) => `evograd-${c.task}-${c.mode}-seed${c.seed}`,
    fresh: () => resolveEvoGradConfig(input, preset),
    resumed: (saved) => {
      const s = savedEvoGradConfig(saved.config as unknown as EvoGradConfigInput);
      return resolveEvoGradConfig(resumeConfig(o.resume!, s, input, evoGradResumeChangeable(s)));
    },
  });
  if (!plan) return;
  const { cfg, out, statePath } = plan;
  const { dataset, sources } = rotationSources(cfg, device, {
    ...(o.data !== undefined ? { dataDir: o.data } : {}), ...(o.cache !== undefined ? { cacheDir: o.cache } : {}),
    onProgress: (p) => { if (p.done === 0) log(`omniglot: ${p.phase}...`); },
  });
  const method = new EvoGradMethod(cfg, cfg.valEpisodes > 0 ? sources : { train: sources.train, hyperVal: sources.hyperVal }, { device });
  const resume = await resumeMethod(method, statePath);
  const valBatch = cfg.hyperValEpisodes > 1 ? `, ${cfg.hyperValEpisodes} validation episodes per hypergradient` : '';
  const angleLr = `angle Adam lr ${cfg.hyperLr}${cfg.hyperLrSchedule !== 'constant' ? ` -> ${cfg.hyperLrFinal} (${cfg.hyperLrSchedule})` : ''}`;
  const how = cfg.mode === 'evograd' ? `EvoGrad K ${cfg.copies}${cfg.copyEval === 'population' ? ` (population evaluator, ${cfg.precision}, angle derivative by +-${cfg.fdDelta} degrees)` : ''}, sigma ${cfg.sigma}, tau ${cfg.tau}, ${cfg.noise} noise${valBatch}, ${angleLr}`
    : cfg.mode === 'second-order' ? `second-order (T1-T2) hypergradient${valBatch}, ${angleLr}`
    : cfg.mode === 'second-order-fd' ? `T1-T2 hypergradient by a central difference of +-${cfg.fdEps} along the validation gradient${valBatch}, ${angleLr}`
    : cfg.mode === 'unrolled-es' ? `antithetic ES over the angle on ${cfg.unroll}-step unrolls (copies at +-${cfg.hyperDelta} degrees, ${cfg.hyperEpisodes} validation episodes each), ${angleLr}`
    : `plain training at ${cfg.initAngle} degrees`;
  await runTraining({
    method, out, ...(resume ? { resume } : {}), valEvery: cfg.valEpisodes > 0 ? valEvery : 0, checkpointEvery,
    collapse: { window: 0, lossFactor: 10, valChecks: 0 }, ...(maxMinutes !== undefined ? { maxMinutes } : {}), progress: o.progress,
    csv: o.csv === true, report: o.report !== false,
    startRecord: { preset: statePath ? null : preset, device: device.name, params: method.layout.numParams },
    describe: [
      `evometa evograd --task ${cfg.task}: ${how}; C ${cfg.model.channels}, ${cfg.model.imageSize}x${cfg.model.imageSize}${cfg.supersample > 1 ? ` (rotated at ${cfg.supersample * cfg.model.imageSize} px)` : ''}, ${method.layout.numParams} parameters; ` +
        `train ${cfg.train.way}-way ${cfg.train.shot}-shot ${cfg.train.query}-query upright, validation rotated ${cfg.valAngle} degrees; ` +
        `device ${device.name}; output ${out}${resume ? `; resuming at step ${resume.step}` : ''}`,
    ],
    after: async (r, metrics) => {
      log(`learned angle: ${method.angle.toFixed(2)} degrees (validation episodes are rotated by ${cfg.valAngle})`);
      if (testEpisodes <= 0) return;
      const ck = r.bestCheckpoint ? loadCheckpoint(r.bestCheckpoint) : { layout: method.layout, params: method.params, bn: method.bn };
      const tests = rotationTest(device, ck, dataset, { episodes: testEpisodes, seed: TEST_SEED, angle: cfg.valAngle, supersample: cfg.supersample, distance: cfg.distance });
      for (const [what, degrees] of [['rotated', cfg.valAngle], ['upright', 0]] as const) {
        const t = tests[what];
        metrics.write({ type: 'test', checkpoint: r.bestCheckpoint ?? 'final', test: what, angle: degrees, episodes: testEpisodes, ...TEST_SHAPE, test_acc: t.acc, test_ci95: t.ci95, test_loss: t.loss });
        log(`test (${r.bestCheckpoint ? 'best checkpoint' : 'final parameters'}, ${testEpisodes} 5-way 5-shot episodes ${what === 'rotated' ? `rotated ${degrees} degrees` : 'upright'}): ${pct(t.acc)} +- ${pct(t.ci95)}`);
      }
    },
  });
}

export function registerEvograd(program: Command): void {
  const presets = Object.keys(EVOGRAD_PRESETS).join(', ');
  program
    .command('evograd')
    .description('learn hyperparameters by EvoGrad (Bohdal et al. 2021): --task rotation learns the rotation of the training images of a ProtoNet whose validation episodes are rotated')
    .option('--task <t>', EVOGRAD_TASKS.join(' | '), 'rotation')
    .option('--preset <name>', `${presets} (default ${DEFAULT_EVOGRAD_PRESET}); explicit options override it`)
    .option('--mode <m>', 'evograd | plain (the angle fixed at --init-angle) | second-order (T1-T2 hypergradient) | second-order-fd (T1-T2 by a finite difference along the validation gradient) | unrolled-es (a longer horizon: antithetic ES over the angle on --unroll-step unrolls)')
    .option('--copies <k>', 'EvoGrad: perturbed copies K (paper: 2)')
    .option('--copy-eval <e>', 'EvoGrad: tape (each copy forward and backward on the tape) | population (forward only by the ES population evaluator, the angle\'s derivative by central differences: hundreds of copies)')
    .option('--fd-delta <deg>', 'EvoGrad --copy-eval population: central-difference step of the angle (degrees)')
    .option('--fd-eps <x>', 'second-order-fd: length of the displacement along the unit validation gradient (default 0.01)')
    .option('--unroll <t>', 'unrolled-es: steps per window, the horizon of each hypergradient (default 40)')
    .option('--hyper-delta <deg>', 'unrolled-es: the two copies train at the angle +- this (degrees, default 5)')
    .option('--hyper-episodes <n>', 'unrolled-es: validation episodes scoring each copy at a window\'s end (default 20)')
    .option('--hyper-val-episodes <n>', 'evograd, second-order, second-order-fd: validation episodes averaged in each hypergradient (default 1)')
    .option('--precision <p>', 'EvoGrad --copy-eval population: the population evaluator\'s forward precision, fp32 | bf16')
    .option('--sigma <x>', 'EvoGrad: perturbation scale (paper: 0.001)')
    .option('--tau <x>', 'EvoGrad: softmax temperature of the copies\' weights (paper: 0.05)')
    .option('--noise <n>', 'EvoGrad: sign | gaussian')
    .option('--lr <x>', 'Adam learning rate of the model (second-order and second-order-fd: also the inner step of the lookahead)')
    .option('--hyper-lr <x>', 'Adam learning rate of the angle (degrees)')
    .option('--hyper-beta1 <x>', 'Adam beta1 (momentum) of the angle, in [0, 1) (default 0.9)')
    .option('--hyper-beta2 <x>', 'Adam beta2 of the angle, in [0, 1) (default 0.999)')
    .option('--hyper-lr-schedule <s>', 'the angle\'s learning rate over the run: constant | linear | cosine | exp (from --hyper-lr to --hyper-lr-final)')
    .option('--hyper-lr-final <x>', 'the angle\'s learning rate at the last step of a decaying schedule (default 0; exp: > 0)')
    .option('--init-angle <deg>', 'the learned angle\'s start (degrees)')
    .option('--val-angle <deg>', 'rotation of the validation and test episodes (degrees, counter-clockwise)')
    .option('--supersample <s>', 'rotate at s x the image side, then average s x s blocks (1: bilinear at the image side, which blurs every angle but 0)')
    .option('--channels <n>', 'channels per conv block')
    .option('--image-size <n>', 'image side')
    .option('--distance <d>', 'euclidean | cosine')
    .option('--way <n>', 'training episode classes')
    .option('--shot <n>', 'support examples per class')
    .option('--query <n>', 'query examples per class')
    .option('--val-way <n>', 'validation episode classes')
    .option('--val-shot <n>', 'validation support examples per class')
    .option('--val-query <n>', 'validation query examples per class')
    .option('--seed <n>', 'random seed (model, episodes, copy noise)')
    .option('--val-seed <n>', 'seed of the fixed validation episodes (default: --seed)')
    .option('--steps <n>', 'training steps (the only option --resume may change)')
    .option('--val-every <n>', 'validate every n steps (default 100; 0: at the start and end only)')
    .option('--val-episodes <n>', 'validation episodes per pass (0: none)')
    .option('--checkpoint-every <n>', 'write the last checkpoint every n steps (default: --val-every)')
    .option('--max-minutes <x>', 'stop (saving a checkpoint) after this much wall time')
    .option('--test-episodes <n>', 'after training, evaluate the best checkpoint on n rotated and n upright test episodes')
    .option('--out <dir>', 'output directory (checkpoints, metrics.jsonl)')
    .option('--resume <file>', 'continue a run from its last.safetensors (or its directory)')
    .option('--device <name>', 'device (default: the best available)')
    .option('--data <dir>', 'a directory with Lake\'s Omniglot zips (default: the embedded copy)')
    .option('--cache <dir>', 'preprocessed-image cache directory')
    .option('--show-config', 'print the resolved configuration as JSON and exit')
    .option('--csv', 'also write the metrics as CSV files in the run directory')
    .option('--no-report', 'do not write report.html at the end')
    .option('--no-progress', 'no progress bar')
    .action(async (o: EvoGradCliOptions) => { await evoGradCli(o); });
}
