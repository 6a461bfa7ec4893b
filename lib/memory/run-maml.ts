/**
 * The MAML cases of the memory study: MAML adapting every ConvNet-4
 * parameter (lib/maml/full.ts) and the head-only learner (lib/maml/metagrad.ts),
 * one meta-gradient each, booking the shared categories (PART).
 */
import type { Device } from '../device/registry.js';
import { initialBnState } from '../model/layout.js';
import type { Episode } from '../model/protonet.js';
import { MamlLayout, initMaml, type MamlConfig } from '../maml/layout.js';
import { mamlBackprop, mamlEs } from '../maml/metagrad.js';
import { fullBackprop, fullEs } from '../maml/full.js';
import { PART, PeakMeter } from '../ops/accounting.js';
import type { CaseSpec } from './cases.js';
import { OPTIMIZER_BYTES_PER_PARAM, timeIt, type AfterFirst, type Timed } from './run-common.js';

function config(spec: CaseSpec): MamlConfig {
  return { model: { channels: spec.channels, imageSize: spec.imageSize }, way: spec.way, innerSteps: spec.innerSteps!, innerLr: spec.innerLr ?? 0.1 };
}

function esNote(pop: number, cap: number): string {
  return cap === pop ? 'measured' : `extrapolated from ${cap} of ${pop} members`;
}

/** MAML with every parameter adapted: second order (tape of every inner step), first order, or ES. */
export function runFull(spec: CaseSpec, device: Device, ep: Episode, meter: PeakMeter, afterFirst?: AfterFirst): Timed {
  const cfg = config(spec);
  const layout = new MamlLayout(cfg.model, cfg.way);
  const phi = initMaml(layout, spec.seed);
  meter.set(PART.optimizer, OPTIMIZER_BYTES_PER_PARAM * phi.length);
  const ctx = { device, layout, cfg, meter };
  if (spec.method === 'maml-second-order' || spec.method === 'maml-first-order') {
    const order = spec.method === 'maml-second-order' ? 'second-order' : 'first-order';
    const t0 = performance.now();
    const r = fullBackprop(ctx, phi, ep, order);
    const first = (performance.now() - t0) / 1000;
    afterFirst?.();
    const seconds = timeIt(first, spec.reps ?? 2, () => fullBackprop({ ...ctx, meter: new PeakMeter() }, phi, ep, order));
    const dominant = order === 'second-order'
      ? { name: 'inner-loop tape (g x l)', bytes: meter.maxOf(PART.innerTape) }
      : { name: 'one step\'s activations', bytes: meter.maxOf(PART.activations) };
    return { seconds, timeNote: 'measured', loss: r.loss, dominant };
  }
  const pop = spec.pop!, cap = Math.min(pop, spec.maxMembers ?? pop);
  const t0 = performance.now();
  const r = fullEs(ctx, phi, ep, { pop, sigma: 0.01, antithetic: true, seed: spec.seed, step: 0, evaluate: cap });
  const seconds = ((performance.now() - t0) / 1000) * (pop / cap);
  return { seconds, timeNote: esNote(pop, cap), loss: r.loss, dominant: { name: 'ES population', bytes: meter.maxOf(PART.population) } };
}

/** The head-only learner: ConvNet-4 + linear head, only the head adapted in the inner loop. */
export function runHead(spec: CaseSpec, device: Device, ep: Episode, meter: PeakMeter, afterFirst?: AfterFirst): Timed {
  const cfg = config(spec);
  const layout = new MamlLayout(cfg.model, cfg.way);
  const phi = initMaml(layout, spec.seed);
  meter.set(PART.optimizer, OPTIMIZER_BYTES_PER_PARAM * phi.length);
  const ctx = { device, layout, cfg, bn: initialBnState(layout.encoder), meter };
  if (spec.method === 'head-second-order' || spec.method === 'head-first-order') {
    const order = spec.method === 'head-second-order' ? 'second-order' : 'first-order';
    const t0 = performance.now();
    const r = mamlBackprop(ctx, phi, ep, order);
    const first = (performance.now() - t0) / 1000;
    afterFirst?.();
    const seconds = timeIt(first, spec.reps ?? 2, () => mamlBackprop({ ...ctx, meter: new PeakMeter() }, phi, ep, order));
    const dominant = order === 'second-order'
      ? { name: 'head tape (g x l)', bytes: meter.maxOf(PART.innerTape) }
      : { name: 'encoder tape', bytes: meter.maxOf(PART.activations) };
    return { seconds, timeNote: 'measured', loss: r.loss, dominant };
  }
  const pop = spec.pop!, cap = Math.min(pop, spec.maxMembers ?? pop);
  const method = spec.method === 'head-es' ? 'es' : 'es-matrix';
  const t0 = performance.now();
  const r = mamlEs(ctx, phi, ep, { pop, sigma: 0.01, antithetic: true, seed: spec.seed, step: 0, evaluate: cap }, method);
  const seconds = ((performance.now() - t0) / 1000) * (pop / cap);
  const dominant = method === 'es' ? { name: 'ES population', bytes: meter.maxOf(PART.population) } : { name: 'population matrix', bytes: meter.maxOf(PART.matrix) };
  return { seconds, timeNote: esNote(pop, cap), loss: r.loss, dominant };
}
