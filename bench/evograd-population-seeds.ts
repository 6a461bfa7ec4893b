/**
 * Seeds 0 and 1 of preset `rotation-population` were run with the CLI (`evometa evograd`), not with
 * bench/evograd-rotation; their angle trajectories are in bench/results/evograd/one-step-population/
 * runs.json, their final parameters' test results (bench/evograd-test, the rotation bench's protocol) in
 * test-3600.json and test-3600-s1.json, and plain training of the same length in plain-3600.json and
 * plain-3600-s1.json (bench/evograd-rotation). This writes them as one evograd-rotation result file, so
 * that `evograd-rotation --report-only --merge` can put them beside seeds run by the bench:
 *
 *   node dist/bench/evograd-population-seeds.js [--dir bench/results/evograd/one-step-population] [--out DIR/cli-seeds.json]
 *
 * Seed 0 is the run of `--hyper-beta2 0.99` (runs.json) continued to 3600 steps with `--resume`; the
 * preset is its configuration. The CLI's records hold the angle every 10 steps and no training loss
 * (null in the trajectory).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { resolveEvoGradConfig, type EvoGradConfig } from '../lib/evograd/config.js';
import { arg } from './common.js';

interface CliRun { command: string; config: EvoGradConfig; finalAngle: number; angle: [number, number][]; secondsTotal?: number; continued?: CliRun & { secondsTotal: number } }
interface TestFile { episodes: number; testSeed: number; rotated: { angle: number; acc: number; ci95: number; loss: number }; upright: { acc: number; ci95: number; loss: number } }
interface BenchFile { runs: Record<string, unknown>[] }

const dir = resolve(arg('dir', 'bench/results/evograd/one-step-population'));
const out = resolve(arg('out', join(dir, 'cli-seeds.json')));
const read = <T>(f: string): T => JSON.parse(readFileSync(join(dir, f), 'utf8')) as T;
const runs = read<{ runs: CliRun[] }>('runs.json').runs;

function find(seed: number, continued: boolean): { run: CliRun; seconds: number } {
  const preset = resolveEvoGradConfig({ seed }, 'rotation-population');
  for (const r of runs) {
    const full = continued ? r.continued : r;
    if (!full || r.config.seed !== seed) continue;
    // the preset's configuration, apart from the step count of a run that was continued
    if (JSON.stringify({ ...r.config, steps: preset.steps }) !== JSON.stringify(preset)) continue;
    return { run: { ...full, config: preset }, seconds: full.secondsTotal ?? NaN };
  }
  throw new Error(`${join(dir, 'runs.json')}: no run of seed ${seed} with preset rotation-population's configuration${continued ? ' continued' : ''}`);
}

const result: BenchFile & Record<string, unknown> = {
  description: 'Preset rotation-population, seeds 0 and 1 (run by the CLI; see bench/evograd-population-seeds.ts), with plain training of the same length',
  command: `node dist/bench/evograd-population-seeds.js ${process.argv.slice(2).join(' ')}`.trim(),
  machine: {},
  runs: [],
};
for (const [seed, continued, testFile, plainFile] of [[0, true, 'test-3600.json', 'plain-3600.json'], [1, false, 'test-3600-s1.json', 'plain-3600-s1.json']] as const) {
  const { run, seconds } = find(seed, continued);
  const t = read<TestFile>(testFile);
  result.runs.push({
    seed, mode: 'evograd', config: run.config,
    trajectory: run.angle.map(([step, angle]) => [step, angle, null]),
    finalAngle: run.finalAngle,
    test: { rotated: { ...t.rotated, episodes: t.episodes }, upright: { ...t.upright, episodes: t.episodes }, seed: t.testSeed, angle: t.rotated.angle },
    seconds, load: { start: [], end: [] }, source: { runs: 'runs.json', test: testFile, command: run.command },
  });
  const plain = read<BenchFile>(plainFile).runs.find((r) => r['seed'] === seed && r['mode'] === 'plain');
  if (!plain) throw new Error(`${join(dir, plainFile)}: no plain run of seed ${seed}`);
  result.runs.push({ ...plain, source: { runs: plainFile } });
}
writeFileSync(out, `${JSON.stringify(result, null, 1)}\n`);
process.stderr.write(`wrote ${out}: ${result.runs.length} runs\n`);
