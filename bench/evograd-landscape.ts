/**
 * What the rotation task's hyperparameter looks like from the model (docs/evograd.md): after
 * `--pretrain` plain upright steps, for each angle A of `--angles`:
 *  - lookahead: `--restarts` branches of `--horizon` plain steps with the training images rotated
 *    by A (the same episodes for every angle), then the loss and accuracy on `--val-episodes`
 *    rotated validation episodes (eval-mode BN): the landscape a hypergradient of that horizon sees;
 *  - one step: over `--batches` pairs (training episode, rotated validation episode),
 *    h = -g . v with g = dL_val/dtheta and v = d/dA dL_train/dtheta (central differences, +-1
 *    degree): the T1-T2 hypergradient divided by its SGD step, the quantity EvoGrad estimates
 *    (positive h lowers the angle); its mean, standard deviation and t = mean / sd * sqrt(batches).
 * Both for each `--supersample` (1: bilinear rotation at 28 px; 3: rotated at 84 px, then 3 x 3
 * averages).
 *
 *   node dist/bench/evograd-landscape.js [--supersample 1,3] [--angles -10,-5,-2,0,2,5,10,20,30]
 *     [--pretrain 300] [--pretrain-angle 0] [--horizon 50] [--restarts 3] [--val-episodes 100] [--batches 40] [--seed 0]
 * (--pretrain-angle A: the pretraining steps rotate the training images by A degrees, e.g. the state a
 * learned angle has reached)
 *
 * Writes bench/results/evograd/landscape.json and landscape.svg.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../lib/device/cpu-ts/index.js';
import '../lib/device/cpu-native/index.js';
import { getDevice } from '../lib/device/registry.js';
import { resolveEvoGradConfig } from '../lib/evograd/config.js';
import { EvoGradMethod } from '../lib/evograd/method.js';
import { rotationSources } from '../lib/evograd/data.js';
import { tapeObjective } from '../lib/evograd/objective.js';
import { rotationProgram } from '../lib/evograd/rotation.js';
import { FdWorkspace, lambdaFdHypergradient } from '../lib/evograd/lookahead/fd.js';
import { initialBnState } from '../lib/model/layout.js';
import { renderSvg } from '../lib/memory/charts.js';
import { arg } from './common.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

interface Point { supersample: number; angle: number; lookaheadLoss: number; lookaheadAcc: number; deltaLoss: number; oneStep: { mean: number; sd: number; t: number } }

async function main(): Promise<void> {
  const out = resolve(arg('out', join(repo, 'bench', 'results', 'evograd')));
  mkdirSync(out, { recursive: true });
  const num = (name: string, def: string): number => Number(arg(name, def));
  const list = (name: string, def: string): number[] => arg(name, def).split(',').map(Number);
  const pre = num('pretrain', '300'), preAngle = num('pretrain-angle', '0'), horizon = num('horizon', '50'), restarts = num('restarts', '3');
  const nVal = num('val-episodes', '100'), batches = num('batches', '40'), seed = num('seed', '0');
  const angles = list('angles', '-10,-5,-2,0,2,5,10,20,30');
  const device = getDevice(arg('device', 'cpu-native'));
  const points: Point[] = [];
  const t0 = Date.now();
  for (const s of list('supersample', '1,3')) {
    const cfg = resolveEvoGradConfig({ seed, mode: 'plain', supersample: s, initAngle: preAngle, steps: pre + horizon * restarts });
    const { sources } = rotationSources(cfg, device);
    const base = new EvoGradMethod(cfg, sources, { device });
    while (base.step < pre) await base.trainStep();
    const state = base.saveState();
    const start = base.evaluate(sources.val!, nVal);
    process.stderr.write(`supersample ${s}: after ${pre} steps at ${preAngle} degrees, rotated validation loss ${start.loss.toFixed(4)}, accuracy ${(100 * start.acc).toFixed(1)}%\n`);
    const ws = new FdWorkspace(base.params);
    const objective = tapeObjective(device, rotationProgram(base.layout, initialBnState(base.layout), cfg.distance, true, s));
    for (const angle of angles) {
      let loss = 0, acc = 0;
      for (let r = 0; r < restarts; r++) {
        // rotateTrain: any non-zero initAngle; the angle is then set exactly
        const m = new EvoGradMethod({ ...cfg, initAngle: angle === 0 ? 1 : angle }, sources, { device });
        m.loadState(state);
        const learner = m.learner!; // mode 'plain': the one-copy learner
        learner.lambda[0] = angle;
        learner.step = pre + r * horizon;
        for (let i = 0; i < horizon; i++) await m.trainStep();
        const e = m.evaluate(sources.val!, nVal);
        loss += e.loss / restarts;
        acc += e.acc / restarts;
      }
      const hs: number[] = [];
      for (let b = 0; b < batches; b++) {
        const tb = sources.train.episode(1_000_000 + b), vb = sources.hyperVal.episode(1_000_000 + b);
        hs.push(lambdaFdHypergradient(objective, base.params, Float32Array.of(angle), tb, vb, 1, ws).grad[0]!);
      }
      const mean = hs.reduce((a, b) => a + b, 0) / batches;
      const sd = Math.sqrt(hs.reduce((a, b) => a + (b - mean) ** 2, 0) / (batches - 1));
      const p: Point = { supersample: s, angle, lookaheadLoss: loss, lookaheadAcc: acc, deltaLoss: loss - start.loss, oneStep: { mean, sd, t: (mean / sd) * Math.sqrt(batches) } };
      points.push(p);
      process.stderr.write(`supersample ${s}, angle ${angle}: after ${horizon} steps loss ${loss.toFixed(4)} (${p.deltaLoss >= 0 ? '+' : ''}${p.deltaLoss.toFixed(4)}), accuracy ${(100 * acc).toFixed(1)}%; one-step h ${mean.toExponential(2)} +- ${sd.toExponential(2)} (t ${p.oneStep.t.toFixed(2)}), ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    }
    await base.close();
  }
  const result = {
    description: 'Rotation task: rotated-validation loss after a horizon of plain steps at each training angle (lookahead), and the one-step hypergradient -g.v per batch; bilinear rotation at 28 px (supersample 1) against rotation at 84 px then 3 x 3 averages (supersample 3)',
    command: `node dist/bench/evograd-landscape.js ${process.argv.slice(2).join(' ')}`.trim(),
    settings: { pretrain: pre, pretrainAngle: preAngle, horizon, restarts, valEpisodes: nVal, batches, seed, angles },
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version, device: device.name, load: loadavg() },
    seconds: (Date.now() - t0) / 1000,
    points,
  };
  writeFileSync(join(out, 'landscape.json'), `${JSON.stringify(result, null, 1)}\n`);
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `Rotated-validation loss after ${horizon} steps at a training angle (from ${pre} upright steps; mean of ${restarts})`,
    width: 520, height: 300, config: { font: 'sans-serif' },
    data: { values: points.map((p) => ({ angle: p.angle, loss: p.lookaheadLoss, rotation: p.supersample === 1 ? 'bilinear at 28 px' : `at ${28 * p.supersample} px, ${p.supersample} x ${p.supersample} averages` })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'angle', type: 'quantitative', title: 'training angle (degrees); validation rotated by 30' },
      y: { field: 'loss', type: 'quantitative', title: 'rotated validation loss', scale: { zero: false } },
      color: { field: 'rotation', type: 'nominal', title: null },
    },
  };
  writeFileSync(join(out, 'landscape.svg'), await renderSvg(spec as never));
}

main().catch((e) => { console.error(e); process.exit(1); });
