/**
 * Agreement of the EvoGrad hypergradient with the second-order (T1-T2) one on the same batches:
 * the rotation task on Omniglot (ConvNet-4, the 'rotation' preset), the model after `--pretrain`
 * plain steps, the angle at `--angle`; for B pairs of (training episode, rotated validation
 * episode): EvoGrad with the paper's settings (K = 2, sigma 0.001, sign noise, tau 0.05), the mean
 * of `--draws` EvoGrad estimates with fresh noise, and T1-T2 with alpha = sigma^2 / (2 tau) (for
 * K = 2 and sign noise, E[EvoGrad] = T1-T2 with that alpha to first order in sigma).
 * The hyperparameter is one angle, so agreement is measured across batches: the cosine and
 * Pearson correlation of the B-vectors of hypergradients, and the fraction of batches whose signs agree.
 *
 *   node dist/bench/evograd-agreement.js [--batches 30] [--draws 8] [--pretrain 300] [--angle 5]
 *
 * Writes bench/results/evograd/agreement.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import '../lib/device/cpu-ts/index.js';
import '../lib/device/cpu-native/index.js';
import { getDevice } from '../lib/device/registry.js';
import { resolveEvoGradConfig } from '../lib/evograd/config.js';
import { EvoGradMethod } from '../lib/evograd/method.js';
import { rotationSources } from '../lib/evograd/data.js';
import { evoGradHypergradient, EvoGradWorkspace } from '../lib/evograd/hypergrad.js';
import { lookaheadHypergradient } from '../lib/evograd/lookahead/t1t2.js';
import { tapeObjective } from '../lib/evograd/objective.js';
import { rotationProgram } from '../lib/evograd/rotation.js';
import { pearson } from '../lib/evograd/toy.js';
import { arg } from './common.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

function cosine(a: number[], b: number[]): number {
  let d = 0, x = 0, y = 0;
  for (let i = 0; i < a.length; i++) { d += a[i]! * b[i]!; x += a[i]! ** 2; y += b[i]! ** 2; }
  return d / Math.sqrt(x * y);
}

async function main(): Promise<void> {
  const out = resolve(arg('out', join(repo, 'bench', 'results', 'evograd')));
  mkdirSync(out, { recursive: true });
  const batches = Number(arg('batches', '30')), draws = Number(arg('draws', '8')), pre = Number(arg('pretrain', '300')), angle = Number(arg('angle', '5'));
  const device = getDevice(arg('device', 'cpu-native'));
  const cfg = resolveEvoGradConfig({ seed: Number(arg('seed', '0')), mode: 'plain', steps: pre });
  const { sources } = rotationSources(cfg, device);
  const m = new EvoGradMethod(cfg, sources, { device });
  while (m.step < pre) await m.trainStep();
  const program = rotationProgram(m.layout, m.bn, cfg.distance, true);
  const obj = tapeObjective(device, program);
  const ws = new EvoGradWorkspace(m.params);
  const settings = { copies: cfg.copies, sigma: cfg.sigma, tau: cfg.tau, noise: cfg.noise, seed: 77 };
  const alpha = (cfg.sigma * cfg.sigma) / (2 * cfg.tau);
  const lam = Float32Array.of(angle);
  const evo: number[] = [], evoMean: number[] = [], evoStd: number[] = [], t1t2: number[] = [];
  const t0 = Date.now();
  for (let b = 0; b < batches; b++) {
    const tb = sources.train.episode(100000 + b), vb = sources.hyperVal.episode(100000 + b);
    t1t2.push(lookaheadHypergradient(device, program, m.params, lam, tb, vb, alpha).grad[0]!);
    const hs: number[] = [];
    for (let d = 0; d < draws; d++) hs.push(evoGradHypergradient(obj, m.params, lam, tb, vb, settings, b * draws + d, ws).grad[0]!);
    evo.push(hs[0]!);
    const mean = hs.reduce((a, c) => a + c, 0) / hs.length;
    evoMean.push(mean);
    evoStd.push(Math.sqrt(hs.reduce((a, c) => a + (c - mean) ** 2, 0) / Math.max(1, hs.length - 1)));
    process.stderr.write(`batch ${b}: T1-T2 ${t1t2[b]!.toExponential(3)}, EvoGrad ${evo[b]!.toExponential(3)}, mean of ${draws} ${evoMean[b]!.toExponential(3)}\n`);
  }
  const signs = (a: number[]) => a.filter((v, i) => Math.sign(v) === Math.sign(t1t2[i]!)).length / a.length;
  const res = {
    description: 'EvoGrad vs T1-T2 hypergradients on the same batches (rotation task); see docs/evograd.md',
    command: `node dist/bench/evograd-agreement.js ${process.argv.slice(2).join(' ')}`, pretrainSteps: pre, angle, alpha, settings, draws, batches,
    seconds: (Date.now() - t0) / 1000, load: loadavg(),
    single: { cosine: cosine(evo, t1t2), pearson: pearson(evo, t1t2), signAgreement: signs(evo) },
    meanOfDraws: { cosine: cosine(evoMean, t1t2), pearson: pearson(evoMean, t1t2), signAgreement: signs(evoMean) },
    magnitude: { meanAbsT1T2: t1t2.reduce((a, c) => a + Math.abs(c), 0) / batches, meanAbsEvoGradMean: evoMean.reduce((a, c) => a + Math.abs(c), 0) / batches },
    // Per batch: |T1-T2| / (std of the EvoGrad draws) -- the signal-to-noise of one EvoGrad estimate given the batch
    // (E[EvoGrad | batch] = T1-T2 with this alpha, to first order in sigma).
    conditionalSnr: t1t2.map((t, i) => Math.abs(t) / evoStd[i]!),
    t1t2, evograd: evo, evogradMean: evoMean, evogradStd: evoStd,
  };
  writeFileSync(join(out, 'agreement.json'), `${JSON.stringify(res, null, 1)}\n`);
  const snr = [...res.conditionalSnr].sort((a, b) => a - b);
  process.stderr.write(`${JSON.stringify({ single: res.single, meanOfDraws: res.meanOfDraws, magnitude: res.magnitude, medianConditionalSnr: snr[Math.floor(snr.length / 2)] })}\n`);
}

main().catch((e) => { console.error(e); process.exit(1); });
