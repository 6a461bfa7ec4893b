/**
 * Meta-training the MAML-style learner: one meta-gradient per episode, by
 * backprop (second or first order, Adam by default) or ES (the paper's plain
 * step mu += alpha g by default). Episodes come from any EpisodeSource
 * (lib/es synthetic episodes, or Omniglot once a sampler provides them).
 */
import type { Device } from '../device/registry.js';
import { initialBnState } from '../model/layout.js';
import type { Episode } from '../model/protonet.js';
import { DirectOps } from '../ops/api.js';
import { concatImages } from '../model/protonet.js';
import { createOptimizer, type OptimizerConfig } from '../optim/optimizers.js';
import { PART, PeakMeter } from '../ops/accounting.js';
import { initMaml, MamlLayout, type MamlConfig } from './layout.js';
import { mamlBackprop, mamlEs, mamlForwardLoss, type EsSettings, type MamlMethod, type MetaContext } from './metagrad.js';

export interface MamlTrainOptions {
  device: Device;
  cfg: MamlConfig;
  method: MamlMethod;
  steps: number;
  seed: number;
  /** Training episodes by index. */
  train: { episode(index: number): Episode };
  /** Evaluated (meta-loss at the current phi, forward only) every `evalEvery` steps and at the end. */
  val?: Episode[];
  evalEvery?: number;
  optimizer?: OptimizerConfig;
  es?: Omit<EsSettings, 'step' | 'seed'>;
  onStep?: (s: MamlStepLog) => void;
}

export interface MamlStepLog {
  step: number;
  loss: number;
  accuracy: number;
  seconds: number;
  peakBytes: number;
  valLoss?: number;
  valAccuracy?: number;
}

export interface MamlTrainResult {
  phi: Float32Array;
  log: MamlStepLog[];
  /** Peak bytes over all steps, including the optimizer state. */
  peakBytes: number;
}

export function defaultOptimizer(method: MamlMethod): OptimizerConfig {
  return method === 'es' || method === 'es-matrix' ? { name: 'sgd', lr: 1 } : { name: 'adam', lr: 1e-3 };
}

/** Mean meta-loss and accuracy of phi over episodes (forward only). */
export function evaluateMaml(ctx: MetaContext, phi: Float32Array, eps: readonly Episode[]): { loss: number; accuracy: number } {
  const ops = new DirectOps(ctx.device);
  let l = 0, a = 0;
  for (const ep of eps) {
    const r = mamlForwardLoss(ctx, ops, phi, concatImages(ep.support, ep.query), ep);
    l += r.loss;
    a += r.accuracy;
  }
  return { loss: l / eps.length, accuracy: a / eps.length };
}

export function trainMaml(o: MamlTrainOptions): MamlTrainResult {
  if (!Number.isInteger(o.steps) || o.steps < 0) throw new RangeError(`maml train: steps must be a non-negative integer, got ${o.steps}`);
  const layout = new MamlLayout(o.cfg.model, o.cfg.way);
  const phi = initMaml(layout, o.seed);
  const ctx: MetaContext = { device: o.device, layout, cfg: o.cfg, bn: initialBnState(layout.encoder) };
  const opt = createOptimizer(o.optimizer ?? defaultOptimizer(o.method));
  const grad = new Float32Array(phi.length);
  const log: MamlStepLog[] = [];
  let peak = 0;
  const isEs = o.method === 'es' || o.method === 'es-matrix';
  if (isEs && !o.es) throw new RangeError(`maml train: method ${o.method} needs es settings (pop, sigma, antithetic)`);
  const every = o.evalEvery ?? 0;
  for (let step = 0; step < o.steps; step++) {
    const ep = o.train.episode(step);
    const meter = new PeakMeter();
    meter.set(PART.optimizer, Math.max(opt.bytes(), optimizerBytes(o.optimizer ?? defaultOptimizer(o.method), phi.length)));
    const t0 = performance.now();
    const r = isEs
      ? mamlEs({ ...ctx, meter }, phi, ep, { ...o.es!, seed: o.seed, step }, o.method as 'es' | 'es-matrix', grad)
      : mamlBackprop({ ...ctx, meter }, phi, ep, o.method as 'second-order' | 'first-order', grad);
    opt.step(phi, grad);
    const s: MamlStepLog = { step, loss: r.loss, accuracy: r.accuracy, seconds: (performance.now() - t0) / 1000, peakBytes: meter.peak };
    peak = Math.max(peak, meter.peak);
    if (o.val && o.val.length > 0 && ((every > 0 && (step + 1) % every === 0) || step === o.steps - 1)) {
      const v = evaluateMaml(ctx, phi, o.val);
      s.valLoss = v.loss;
      s.valAccuracy = v.accuracy;
    }
    log.push(s);
    o.onStep?.(s);
  }
  return { phi, log, peakBytes: peak };
}

/** Bytes of optimizer state for D float32 parameters: Adam 2D, SGD with momentum D, plain SGD 0. */
export function optimizerBytes(cfg: OptimizerConfig, d: number): number {
  if (cfg.name === 'adam') return 8 * d;
  return (cfg.momentum ?? 0) > 0 ? 4 * d : 0;
}
