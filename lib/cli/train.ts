/** `evometa train`: ES (default) or backprop. Each method parses and validates its own options. */
import type { Command } from 'commander';

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
  progress: boolean;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train a ProtoNet on Omniglot episodes: by evolution strategies (default) or by backprop')
    .option('--method <m>', 'es | backprop', 'es')
    .option('--preset <name>', 'a named configuration (see README); explicit options override it')
    .option('--device <name>', 'device for the population / model evaluation (default: best available)')
    .option('--workers <n>', 'worker threads')
    .option('--shards <n>', 'population shards (the paper\'s cores); results do not depend on --workers')
    .option('--pop <n>', 'ES population size')
    .option('--sigma <x>', 'ES noise standard deviation')
    .option('--lr <x>', 'learning rate (ES: alpha)')
    .option('--steps <n>', 'training steps (ES) or episodes (backprop)')
    .option('--estimator <e>', 'wsr | nes | openai | fd')
    .option('--scheme <s>', 'paper | openai (distributed scheme)')
    .option('--optimizer <o>', 'plain | sgd | adam')
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
    .option('--sigma-schedule <s>', 'ES: constant | linear | exp (from --sigma to --sigma-final over --steps)')
    .option('--sigma-final <x>', 'ES: sigma at the last step of a linear/exp schedule')
    .option('--nonfinite <p>', 'ES: NaN/inf fitness is ranked worst (worst) or dropped (drop)')
    .option('--fd-delta <x>', 'ES fd: the nudge of each parameter (paper: 0.001)')
    .option('--force-fd', 'ES fd: allow a model above the parameter limit (one forward per parameter per step)')
    .option('--val-shot <n>', 'validation support examples per class (default: --shot)')
    .option('--val-seed <n>', 'seed of the fixed validation episodes')
    .option('--collapse-window <n>', 'ES: steps in the loss window of collapse detection (0: off)')
    .option('--collapse-loss-factor <x>', 'ES: collapse when the window loss exceeds this factor x its best')
    .option('--collapse-val-checks <n>', 'ES: collapse after this many validations in a row at chance (0: off)')
    .option('--no-progress', 'no progress bar')
    .action(async (opts: TrainCliOptions) => {
      if (opts.method === 'backprop') {
        const { trainBackpropCli } = await import('../train/backprop-cli.js');
        await trainBackpropCli(opts);
      } else if (opts.method === 'es') {
        const { trainEsCli } = await import('../es/cli.js');
        await trainEsCli(opts);
      } else {
        const { UserError } = await import('../errors.js');
        throw new UserError(`--method: expected es or backprop, got ${JSON.stringify(opts.method)}`);
      }
    });
}
