/** `evometa train`: ES (default) or backprop. Each method parses and validates its own options. */
import type { Command } from 'commander';
import { ES_DEFAULT_PRESET, ES_PRESETS } from '../methods/protonet-es/presets.js';
import { BACKPROP_DEFAULT_PRESET, BACKPROP_PRESETS } from '../methods/backprop/config.js';
import { UserError } from '../errors.js';

function presetHelp(): string {
  const list = (ps: Readonly<Record<string, { description: string }>>): string => Object.entries(ps).map(([k, p]) => `  ${k.padEnd(28)} ${p.description}`).join('\n');
  return `\nES presets (--method es, the default; '${ES_DEFAULT_PRESET}' unless --preset is given):\n${list(ES_PRESETS)}\n\n` +
    `backprop presets (--method backprop; '${BACKPROP_DEFAULT_PRESET}' unless given):\n${list(BACKPROP_PRESETS)}\n\n` +
    'A preset\'s values (with any options applied) are printed with: evometa train [--method M] --preset NAME --show-config';
}

export interface TrainCliOptions {
  method: string;
  preset?: string;
  device?: string;
  workers?: string;
  shards?: string;
  pop?: string;
  sigma?: string;
  lr?: string;
  steps?: string;
  estimator?: string;
  scheme?: string;
  optimizer?: string;
  momentum?: string;
  weightDecay?: string;
  channels?: string;
  way?: string;
  shot?: string;
  query?: string;
  imageSize?: string;
  split?: string;
  distance?: string;
  seed?: string;
  out?: string;
  resume?: string;
  data?: string;
  cache?: string;
  valEvery?: string;
  valEpisodes?: string;
  checkpointEvery?: string;
  maxMinutes?: string;
  lrDecayEvery?: string;
  lrGamma?: string;
  valWay?: string;
  valQuery?: string;
  testEpisodes?: string;
  antithetic?: boolean;
  baseline?: boolean;
  sigmaSchedule?: string;
  sigmaFinal?: string;
  nonfinite?: string;
  fdDelta?: string;
  forceFd?: boolean;
  valShot?: string;
  valSeed?: string;
  collapseWindow?: string;
  collapseLossFactor?: string;
  collapseValChecks?: string;
  lrSchedule?: string;
  lrFinal?: string;
  lrWarmup?: string;
  lrEvery?: string;
  popSchedule?: string;
  popFinal?: string;
  episodesPerStep?: string;
  sigmaLr?: string;
  maxSigmaChange?: string;
  shaping?: string;
  maxSpeed?: string;
  testShots?: string;
  showConfig?: boolean;
  redis?: string;
  redisSync?: string;
  redisCa?: string;
  redisTimeout?: string;
  redisPrefix?: string;
  precision?: string;
  csv?: boolean;
  report?: boolean;
  progress: boolean;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train a ProtoNet on Omniglot episodes: by evolution strategies (default) or by backprop')
    .option('--method <m>', 'es | backprop', 'es')
    .option('--preset <name>', 'a named configuration (listed below); explicit options override it')
    .option('--device <name>', 'device for the population / model evaluation (default: best available)')
    .option('--workers <n>', 'worker threads')
    .option('--shards <n>', 'population shards (the paper\'s cores); results do not depend on --workers')
    .option('--pop <n>', 'ES population size')
    .option('--sigma <x>', 'ES noise standard deviation')
    .option('--lr <x>', 'learning rate (ES: alpha)')
    .option('--steps <n>', 'training steps (ES) or episodes (backprop)')
    .option('--estimator <e>', 'wsr | nes | openai | fd | pgpe | snes')
    .option('--scheme <s>', 'paper | openai (distributed scheme)')
    .option('--optimizer <o>', 'plain | sgd | adam | clipup (ES); adam | sgd (backprop)')
    .option('--momentum <x>', 'SGD momentum')
    .option('--weight-decay <x>', 'weight decay')
    .option('--channels <n>', 'channels per conv block (16, 32, 64)')
    .option('--way <n>', 'training episode classes')
    .option('--shot <n>', 'support examples per class')
    .option('--query <n>', 'query examples per class')
    .option('--image-size <n>', '28 or 32')
    .option('--split <s>', 'vinyals | paper')
    .option('--distance <d>', 'euclidean | cosine')
    .option('--seed <n>', 'random seed')
    .option('--out <dir>', 'output directory (checkpoints, metrics.jsonl)')
    .option('--resume <file>', 'resume from a checkpoint written by a previous run')
    .option('--data <dir>', 'a directory with Lake\'s images_background.zip and images_evaluation.zip (default: the embedded copy)')
    .option('--cache <dir>', 'preprocessed-image cache directory')
    .option('--val-every <n>', 'validate every n steps/episodes')
    .option('--val-episodes <n>', 'validation episodes per validation pass')
    .option('--checkpoint-every <n>', 'write a checkpoint every n steps/episodes')
    .option('--max-minutes <x>', 'stop (saving a checkpoint) after this much wall time')
    .option('--lr-decay-every <n>', 'backprop: multiply the learning rate by --lr-gamma every n episodes (0: constant)')
    .option('--lr-gamma <x>', 'backprop: step-LR factor')
    .option('--val-way <n>', 'classes per validation (and backprop test) episode (default 5)')
    .option('--val-query <n>', 'query examples per class in validation (and backprop test) episodes (default 15)')
    .option('--test-episodes <n>', 'after training, evaluate the best checkpoint on n test-split episodes')
    .option('--antithetic', 'ES: mirrored sampling, members 2k and 2k+1 use +eps and -eps (always on for --estimator openai)')
    .option('--baseline', 'ES nes: subtract the mean fitness (eq. 6 as written uses raw fitness)')
    .option('--sigma-schedule <s>', 'ES: constant | linear | exp | cosine (from --sigma to --sigma-final over --steps)')
    .option('--sigma-final <x>', 'ES: sigma at the last step of a linear/exp schedule')
    .option('--nonfinite <p>', 'ES: NaN/inf fitness is ranked worst (worst) or dropped (drop)')
    .option('--fd-delta <x>', 'ES fd: the nudge of each parameter (paper: 0.001)')
    .option('--force-fd', 'ES fd: allow a model above the parameter limit (one forward per parameter per step)')
    .option('--val-shot <n>', 'validation support examples per class (default: --shot)')
    .option('--val-seed <n>', 'seed of the fixed validation episodes')
    .option('--collapse-window <n>', 'ES: steps in the loss window of collapse detection (0: off)')
    .option('--collapse-loss-factor <x>', 'ES: collapse when the window loss exceeds this factor x its best')
    .option('--collapse-val-checks <n>', 'ES: collapse after this many validations in a row at chance (0: off)')
    .option('--lr-schedule <s>', 'ES: constant | linear | exp | cosine | step (over --steps)')
    .option('--lr-final <x>', 'ES: the learning rate at the last step of a linear/exp/cosine schedule')
    .option('--lr-warmup <n>', 'ES cosine schedule: warm-up steps')
    .option('--lr-every <n>', 'ES step schedule: multiply the learning rate by --lr-gamma every n steps')
    .option('--pop-schedule <s>', 'ES: constant | linear | exp population over --steps (from --pop to --pop-final)')
    .option('--pop-final <n>', 'ES: the population at the last step of a population schedule')
    .option('--episodes-per-step <n>', 'ES: training episodes per step; a member\'s fitness is its mean over them')
    .option('--sigma-lr <x>', 'ES pgpe/snes: step size of the adapted sigma (default: the strategy\'s)')
    .option('--max-sigma-change <x>', 'ES pgpe: largest relative change of sigma per step (default 0.2)')
    .option('--shaping <s>', 'ES pgpe: fitness shaping, ranks (default) or raw')
    .option('--max-speed <x>', 'ES clipup: the largest step (default 2 x --lr)')
    .option('--test-shots <list>', 'shots of the --test-episodes evaluations, e.g. 5,1 (default: the validation shot)')
    .option('--precision <p>', 'ES: fp32, bf16 (the population\'s conv products on bf16 operands: cpu-native, AVX512_BF16 or AMX-BF16 CPUs) or auto (bf16 where the CPU has AMX, else fp32); the preset\'s, else fp32')
    .option('--show-config', 'print the resolved configuration (preset + options) as JSON and exit')
    .option('--redis <url>', 'ES: coordinate the run over Redis (redis://[:PASSWORD@]host:port or rediss://); `evometa worker --redis URL` processes compute the shards')
    .option('--redis-sync <s>', 'ES over Redis: mean (publish mu each step; default) or fitness (publish the fitness; every worker applies the update)')
    .option('--redis-ca <file>', 'ES over Redis: PEM file of the CA that signed the server\'s TLS certificate')
    .option('--redis-timeout <s>', 'ES over Redis: stop with an error when Redis has been unreachable this long (default 60)')
    .option('--redis-prefix <p>', 'ES over Redis: key prefix (default evometa)')
    .option('--csv', 'also write the metrics as CSV files (metrics-step.csv, metrics-val.csv, ...) in the run directory')
    .option('--no-report', 'do not write report.html (the run\'s charts) at the end')
    .option('--no-progress', 'no progress bar')
    .addHelpText('after', presetHelp)
    .action(async (opts: TrainCliOptions) => {
      if (opts.method === 'backprop') {
        if (opts.redis !== undefined) throw new UserError('--redis applies to --method es only');
        const { trainBackpropCli } = await import('./train-backprop.js');
        await trainBackpropCli(opts);
      } else if (opts.method === 'es') {
        const { trainEsCli } = await import('./train-es.js');
        await trainEsCli(opts);
      } else {
        throw new UserError(`--method: expected es or backprop, got ${JSON.stringify(opts.method)}`);
      }
    });
}
