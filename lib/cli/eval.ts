/** `evometa eval`: few-shot accuracy of a checkpoint; one JSON line on stdout, progress on stderr. */
import type { Command } from 'commander';
import { parseChoice, parseNum } from '../errors.js';
import { DRAWINGS } from '../data/raw.js';
import { createProgress } from '../train/progress.js';
import '../index.js';

interface EvalCli {
  checkpoint: string; split: string; splitScheme?: string; way: string; shot: string; query: string; episodes: string;
  seed: string; bn: string; distance?: string; data?: string; cache?: string; device?: string; progress: boolean;
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('evaluate a checkpoint on N-way K-shot episodes; prints one JSON line (accuracy, std, ci95, ...)')
    .requiredOption('--checkpoint <file>', 'a .safetensors checkpoint written by evometa (or PyTorch state_dict names)')
    .option('--split <part>', 'train | val | test', 'test')
    .option('--split-scheme <s>', 'vinyals | paper (default: the checkpoint\'s, else by image size)')
    .option('--way <n>', 'classes per episode', '5')
    .option('--shot <n>', 'support examples per class', '5')
    .option('--query <n>', 'query examples per class', '15')
    .option('--episodes <n>', 'number of episodes (at most 1000000)', '1000')
    .option('--seed <n>', 'episode seed', '0')
    .option('--bn <mode>', 'running (BN running statistics, default) | batch (episode statistics)', 'running')
    .option('--distance <d>', 'euclidean | cosine (default: the checkpoint\'s)')
    .option('--data <dir>', 'a directory with Lake\'s zips (default: the embedded copy)')
    .option('--cache <dir>', 'preprocessed-image cache directory')
    .option('--device <name>', 'device (default: best available)')
    .option('--no-progress', 'no progress bar')
    .action(async (o: EvalCli) => {
      const { evaluateCheckpoint, EVAL_LIMITS } = await import('../eval/evaluate.js');
      const episodes = parseNum('episodes', o.episodes, { int: true, min: 1, max: EVAL_LIMITS.episodes })!;
      let bar: ReturnType<typeof createProgress> | null = null;
      const r = evaluateCheckpoint({
        checkpoint: o.checkpoint,
        split: parseChoice('split', o.split, ['train', 'val', 'test', 'trainval'] as const),
        splitScheme: parseChoice('split-scheme', o.splitScheme, ['vinyals', 'paper'] as const),
        way: parseNum('way', o.way, { int: true, min: 2 }),
        shot: parseNum('shot', o.shot, { int: true, min: 1, max: DRAWINGS - 1 }),
        query: parseNum('query', o.query, { int: true, min: 1, max: DRAWINGS - 1 }),
        episodes,
        seed: parseNum('seed', o.seed, { int: true, min: 0, max: 0xffffffff }),
        bn: parseChoice('bn', o.bn, ['running', 'batch'] as const),
        distance: parseChoice('distance', o.distance, ['euclidean', 'cosine'] as const),
        dataDir: o.data,
        cacheDir: o.cache,
        device: o.device,
        onWarning: (m) => console.error(`evometa: warning: ${m}`),
        onEpisode: (done, total, acc) => {
          bar ??= createProgress('eval', total, { enabled: o.progress });
          bar.update(done, { acc });
        },
      });
      (bar as ReturnType<typeof createProgress> | null)?.stop();
      console.log(JSON.stringify(r));
    });
}
