/** `evometa l2l`: meta-train the learned optimizer (lib/l2l) on the one training loop: presets, --cluster k, --resume, progress, metrics, Ctrl-C. */
import { join } from 'node:path';
import type { Command } from 'commander';
import '../index.js';
import { UserError, parseNum } from '../errors.js';
import { L2lMethod } from '../l2l/method.js';
import { L2L_PRESETS, DEFAULT_L2L_PRESET, L2L_RESUME_CHANGEABLE, resolveL2lConfig, type L2lConfig, type L2lConfigInput } from '../l2l/config.js';
import { l2lConfigFromOptions, type L2lCliOptions } from '../l2l/options.js';
import { resumeConfig } from '../train/run-files.js';
import { loopOptions, planRun, resumeMethod, runTraining } from './run.js';

interface L2lCommandOptions extends L2lCliOptions {
  preset?: string; workers?: string; device?: string; out?: string; resume?: string; valEvery?: string; checkpointEvery?: string;
  maxMinutes?: string; progress: boolean; csv?: boolean; report?: boolean; showConfig?: boolean;
}

export async function l2lCli(o: L2lCommandOptions): Promise<void> {
  const preset = o.preset ?? DEFAULT_L2L_PRESET;
  if (!L2L_PRESETS[preset]) throw new UserError(`--preset: expected one of ${Object.keys(L2L_PRESETS).join(', ')}, got ${JSON.stringify(preset)}`);
  const input = l2lConfigFromOptions(o);
  const workers = parseNum('workers', o.workers, { int: true, min: 1, max: 64 }) ?? 1;
  const valEvery = parseNum('val-every', o.valEvery, { int: true, min: 0 }) ?? 25;
  const { maxMinutes, checkpointEvery = 50 } = loopOptions(o);
  const plan = planRun<L2lConfig>(o, {
    method: 'l2l', label: 'a learned-optimizer run', outName: () => `l2l-${preset}`,
    fresh: () => resolveL2lConfig(input, preset),
    resumed: (saved) => resolveL2lConfig(resumeConfig(o.resume!, saved.config as unknown as L2lConfigInput, input as Partial<L2lConfigInput>, L2L_RESUME_CHANGEABLE) as L2lConfigInput),
  });
  if (!plan) return;
  const { cfg, out, statePath } = plan;
  const method = await L2lMethod.create(cfg, undefined, { workers, ...(o.device !== undefined ? { device: o.device } : {}) });
  const resume = await resumeMethod(method, statePath);
  await runTraining({
    method, out, ...(resume ? { resume } : {}), valEvery: cfg.valTasks > 0 ? valEvery : 0, checkpointEvery,
    ...(maxMinutes !== undefined ? { maxMinutes } : {}), progress: o.progress, csv: o.csv === true, report: o.report !== false,
    startRecord: { preset: statePath ? null : preset, params: method.engine.layout.numParams, workers },
    describe: [
      `evometa l2l: ${cfg.family.family} tasks, ${cfg.trainer}, T ${cfg.horizon}${cfg.trainer === 'bptt' ? ` K ${cfg.unroll}` : ` pop ${cfg.es.pop}`}, meta-batch ${cfg.metaBatch} (` +
        `${cfg.batchMode === 'cluster' ? `one of ${method.clustering?.k} clusters` : 'random'}, ${cfg.groupSize} per program), ${workers} worker(s); LSTM ${method.engine.layout.numParams} parameters; output ${out}` +
        `${resume ? `; resuming at step ${resume.step}` : ''}`,
    ],
  });
}

export function registerL2l(program: Command): void {
  program
    .command('l2l')
    .description('meta-train a learned optimizer (coordinatewise LSTM, Andrychowicz et al.) with task clustering (docs/l2l.md)')
    .option('--preset <name>', `${Object.keys(L2L_PRESETS).join(' | ')} (default ${DEFAULT_L2L_PRESET})`)
    .option('--family <name>', 'optimizee family: quadratic | mlp | protonet')
    .option('--trainer <name>', 'bptt (truncated backprop through the unroll) | es')
    .option('--cluster <k>', 'meta-batches from one of k task clusters (0: random meta-batches)')
    .option('--batch-mode <mode>', 'random | cluster')
    .option('--meta-batch <n>', 'tasks per meta-step (1: the sequential baseline)')
    .option('--group-size <n>', 'tasks stacked into one program (divides --meta-batch)')
    .option('--pool <n>', 'training tasks in the pool meta-batches are drawn from')
    .option('--horizon <T>', 'optimizee steps per trajectory')
    .option('--unroll <K>', 'truncation length (bptt)')
    .option('--meta-loss <kind>', 'sum | log')
    .option('--meta-lr <lr>', 'Adam learning rate on the LSTM')
    .option('--pop <n>', 'ES population (es)')
    .option('--sigma <s>', 'ES noise scale (es)')
    .option('--steps <n>', 'meta-steps')
    .option('--val-tasks <n>', 'held-out validation tasks')
    .option('--seed <n>', 'seed')
    .option('--dims <list>', 'quadratic: dimensions, e.g. 5,10,20')
    .option('--scales <list>', 'quadratic: scales of W, e.g. 0.5,1,2')
    .option('--hidden <list>', 'mlp: hidden units')
    .option('--channels <list>', 'protonet: ConvNet-4 channels')
    .option('--image-size <n>', 'mlp/protonet: image side')
    .option('--workers <n>', 'worker threads (never changes the result)')
    .option('--device <name>', 'device (default: the best available)')
    .option('--out <dir>', 'output directory (checkpoints, metrics.jsonl)')
    .option('--resume <path>', 'continue a run (its directory or a checkpoint)')
    .option('--val-every <n>', 'validate every n meta-steps (0: never)')
    .option('--checkpoint-every <n>', 'write last.safetensors every n meta-steps')
    .option('--max-minutes <m>', 'stop (saving) after this much wall-clock')
    .option('--csv', 'also write the metrics as CSV files')
    .option('--no-report', 'do not write report.html at the end')
    .option('--no-progress', 'no progress bar')
    .option('--show-config', 'print the resolved configuration and exit')
    .action(async (o: L2lCommandOptions) => { await l2lCli(o); });
}
