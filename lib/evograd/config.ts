/**
 * Configuration of EvoGrad training on the rotation task: presets, defaults, and validation with
 * clear errors naming the field and its CLI option.
 *
 * Preset 'rotation' follows the authors' rotation experiment (K = 2 copies, sigma 0.001, random
 * signs, tau 0.05, Adam at 1e-3 for the model, Adam at 1e-2 radians = 0.573 degrees for the
 * angle, starting at 0) on a CPU-sized ProtoNet: ConvNet-4 with 16 channels on 28x28 Omniglot,
 * 10-way 5-shot 5-query episodes of upright characters for training, 10-way 5-shot 10-query
 * episodes rotated by 30 degrees for the hypergradient's validation batches and the validation
 * passes, 1200 steps. (Few-shot episodes of new classes give a noisy hypergradient: the larger
 * the episodes, the less noise per step; docs/evograd.md has the measurements.)
 * Preset 'quick' is a smoke-test size.
 */
import { UserError } from '../errors.js';
import { modelConfig, type ModelConfig } from '../model/layout.js';
import type { Distance } from '../model/protonet.js';
import { COPY_NOISES, type CopyNoise } from './noise.js';
import { EVALUATOR_PRECISIONS, type EvaluatorPrecision } from '../es/population.js';
import { scheduleAt, type ScheduleKind } from '../es/schedule.js';

export type EvoGradTask = 'rotation';
export const EVOGRAD_TASKS: readonly EvoGradTask[] = ['rotation'];
export type EvoGradMode = 'evograd' | 'plain' | 'second-order' | 'second-order-fd' | 'unrolled-es';
/** Every training mode of the rotation task (`--mode`). */
export const EVOGRAD_MODES: readonly EvoGradMode[] = ['evograd', 'plain', 'second-order', 'second-order-fd', 'unrolled-es'];
export type CopyEval = 'tape' | 'population';
export const COPY_EVALS: readonly CopyEval[] = ['tape', 'population'];
/** lib/es/schedule.ts's curves that run from a start to a final value (all but 'step'). */
export type HyperLrSchedule = Exclude<ScheduleKind, 'step'>;
export const HYPER_LR_SCHEDULES: readonly HyperLrSchedule[] = ['constant', 'linear', 'cosine', 'exp'];

export interface RotationEpisodeShape { way: number; shot: number; query: number }

export interface EvoGradConfig {
  task: EvoGradTask;
  /**
   * 'evograd': learn the angle by EvoGrad; 'plain': ordinary training with the angle fixed at initAngle
   * (the baseline); 'second-order': learn it by the T1-T2 hypergradient (back-propagation through one
   * inner SGD step of size lr; lookahead/t1t2.ts), the second-order comparison; 'second-order-fd': the
   * same hypergradient by a central difference along the validation gradient (lookahead/fd.ts: two
   * training passes to lambda and one validation pass, EvoGrad's cost with K = 2, no copy noise);
   * 'unrolled-es': a longer horizon, antithetic ES over the angle on `unroll`-step unrolls (unrolled.ts:
   * two copies of the model train at angle +- hyperDelta, scored on hyperEpisodes validation episodes).
   */
  mode: EvoGradMode;
  model: ModelConfig;
  distance: Distance;
  /** Training episodes (upright) and validation episodes (rotated by valAngle). */
  train: RotationEpisodeShape;
  val: RotationEpisodeShape;
  /** Angle of the validation and test episodes, degrees counter-clockwise. */
  valAngle: number;
  /** The learned angle's starting value, degrees. */
  initAngle: number;
  /**
   * Rotate at supersample x the model's image side, then average supersample x supersample blocks
   * (1: bilinear rotation at the model's side). Bilinear resampling blurs every non-zero angle and
   * leaves 0 sharp, so at 1 the rotated validation images are blurred and the upright training images
   * are not, which puts a cusp at 0 in the angle's landscape (docs/evograd.md); 3 (84 px for 28) removes it.
   */
  supersample: number;
  copies: number;
  /**
   * How the copies' losses and lambda-derivatives are computed: 'tape' (each copy a forward and
   * backward pass on the tape, the authors' way) or 'population' (forward only, by the ES
   * population evaluator, the derivative by central differences of +-fdDelta degrees; Gaussian
   * antithetic copies; lib/evograd/population.ts): what makes hundreds of copies affordable.
   */
  copyEval: CopyEval;
  /** Central-difference step of the angle for copyEval 'population' (degrees). */
  fdDelta: number;
  /** Length of the parameter-space displacement of mode 'second-order-fd' (along the unit validation gradient). */
  fdEps: number;
  /** Mode 'unrolled-es': steps per window (per hypergradient), the copies' angle offset (degrees), validation episodes per score. */
  unroll: number;
  hyperDelta: number;
  hyperEpisodes: number;
  /**
   * Modes evograd, second-order, second-order-fd: validation episodes averaged in each one-step
   * hypergradient (step t uses hypergradient-validation episodes t M .. t M + M - 1; 1: one episode).
   */
  hyperValEpisodes: number;
  /** The population evaluator's forward precision for copyEval 'population' ('bf16' on cpu-native only). */
  precision: EvaluatorPrecision;
  sigma: number;
  tau: number;
  noise: CopyNoise;
  /** Adam learning rate of the model, and of the angle (degrees per step at most, roughly). */
  lr: number;
  hyperLr: number;
  /** Adam's beta1 (momentum) of the angle's optimizer (0: steps from the current estimate only). */
  hyperBeta1: number;
  /**
   * Adam's beta2 of the angle's optimizer (0.999). The one-step hypergradients of the first tens of
   * steps are several times the later ones; at 0.999 they set the angle's step size for the next
   * thousand steps, a smaller beta2 forgets them sooner (docs/evograd.md).
   */
  hyperBeta2: number;
  /**
   * The angle's learning rate over the run: 'constant' (hyperLr throughout), or from hyperLr at step 0
   * to hyperLrFinal at the last step, 'linear', 'cosine' or 'exp' (lib/es/schedule.ts). A decaying
   * rate lets a noisy hypergradient's walk settle (docs/evograd.md).
   */
  hyperLrSchedule: HyperLrSchedule;
  /** The angle's learning rate at the last step of a decaying schedule (>= 0; > 0 for 'exp'). */
  hyperLrFinal: number;
  seed: number;
  /** Seed of the fixed validation episodes (default: seed). */
  valSeed: number;
  /** Training steps (one episode and one hypergradient each). */
  steps: number;
  /** Validation episodes per validation pass (0: none). */
  valEpisodes: number;
}

export type EvoGradConfigInput = Partial<Omit<EvoGradConfig, 'model' | 'train' | 'val'>> & {
  model?: Partial<ModelConfig>;
  train?: Partial<RotationEpisodeShape>;
  val?: Partial<RotationEpisodeShape>;
};

const ROTATION: EvoGradConfigInput = {
  task: 'rotation', mode: 'evograd', model: { channels: 16, imageSize: 28 }, distance: 'euclidean',
  train: { way: 10, shot: 5, query: 5 }, val: { way: 10, shot: 5, query: 10 }, valAngle: 30, initAngle: 0, supersample: 3,
  copies: 2, copyEval: 'tape', fdDelta: 1, fdEps: 0.01, unroll: 40, hyperDelta: 5, hyperEpisodes: 20, hyperValEpisodes: 1, precision: 'fp32', sigma: 0.001, tau: 0.05, noise: 'sign', lr: 1e-3, hyperLr: 0.573, hyperBeta1: 0.9, hyperBeta2: 0.999, hyperLrSchedule: 'constant', hyperLrFinal: 0, seed: 0, steps: 1200, valEpisodes: 50,
};

/** Named EvoGrad configurations: `rotation` (the experiment of docs/evograd.md) and `quick` (a small smoke run). */
export const EVOGRAD_PRESETS: Readonly<Record<string, EvoGradConfigInput>> = {
  rotation: ROTATION,
  quick: { ...ROTATION, model: { channels: 8, imageSize: 28 }, steps: 40, valEpisodes: 10 },
  /**
   * The rotation experiment with the longer-horizon hypergradient: 60 windows of 40 steps (2400 steps;
   * five seeds: mean angle 24.5 after 1200, 28.4 after 2400), the angle's Adam at 3 degrees without
   * momentum (at lr 2, seed 0 was still rising at 24 degrees after 1200 steps; with beta1 0.9 the angle
   * overshot to 36-50 degrees: docs/evograd.md).
   */
  'rotation-unrolled': { ...ROTATION, mode: 'unrolled-es', hyperLr: 3, hyperBeta1: 0, steps: 2400 },
  /**
   * One-step EvoGrad with what it needs on this task: 256 Gaussian copies through the population
   * evaluator (bf16: cpu-native), the validation loss of each hypergradient over 8 episodes, the angle's
   * Adam beta2 0.99, 3600 steps (seed 0: near 0 for ~1000 steps, then 30-40 degrees; seed 1 walked to
   * -38.8 instead: docs/evograd.md).
   */
  'rotation-population': { ...ROTATION, copyEval: 'population', noise: 'gaussian', copies: 256, precision: 'bf16', hyperValEpisodes: 8, hyperBeta2: 0.99, steps: 3600 },
  /**
   * One-step EvoGrad that learns the angle: rotation-population with the angle derivative over +-20
   * degrees (a smoothed one-step hypergradient, which pulls the angle up from 0) and the angle's
   * learning rate decaying linearly to 0 over 1200 steps (the walk settles; docs/evograd.md).
   */
  'rotation-smoothed': { ...ROTATION, copyEval: 'population', noise: 'gaussian', copies: 256, precision: 'bf16', hyperValEpisodes: 8, hyperBeta2: 0.99, fdDelta: 20, hyperLrSchedule: 'linear', hyperLrFinal: 0, steps: 1200 },
};
/** The preset `evometa evograd` uses when none is named. */
export const DEFAULT_EVOGRAD_PRESET = 'rotation';

/** Config field -> CLI option, for error messages. */
const FLAG: Record<string, string> = {
  task: '--task', mode: '--mode', distance: '--distance', valAngle: '--val-angle', initAngle: '--init-angle', supersample: '--supersample', copies: '--copies', copyEval: '--copy-eval', fdDelta: '--fd-delta', fdEps: '--fd-eps', unroll: '--unroll', hyperDelta: '--hyper-delta', hyperEpisodes: '--hyper-episodes', hyperValEpisodes: '--hyper-val-episodes', precision: '--precision',
  sigma: '--sigma', tau: '--tau', noise: '--noise', lr: '--lr', hyperLr: '--hyper-lr', hyperBeta1: '--hyper-beta1', hyperBeta2: '--hyper-beta2', hyperLrSchedule: '--hyper-lr-schedule', hyperLrFinal: '--hyper-lr-final', seed: '--seed', valSeed: '--val-seed',
  steps: '--steps', valEpisodes: '--val-episodes', 'train.way': '--way', 'train.shot': '--shot', 'train.query': '--query',
  'val.way': '--val-way', 'val.shot': '--val-shot', 'val.query': '--val-query', preset: '--preset',
};

function bad(field: string, msg: string): never {
  throw new UserError(`evograd config: ${field}${FLAG[field] ? ` (${FLAG[field]})` : ''} ${msg}`);
}

function int(field: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(v) || v < min || v > max) bad(field, `must be an integer in [${min}, ${max}], got ${v}`);
}

function positive(field: string, v: number): void {
  if (!(Number.isFinite(v) && v > 0)) bad(field, `must be a finite number > 0, got ${v}`);
}

function oneOf<T extends string>(field: string, v: T, choices: readonly T[]): void {
  if (!choices.includes(v)) bad(field, `must be one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
}

/** The preset's values overlaid with `input` (undefined fields ignored), validated. */
export function resolveEvoGradConfig(input: EvoGradConfigInput, preset: string = DEFAULT_EVOGRAD_PRESET): EvoGradConfig {
  const base = EVOGRAD_PRESETS[preset];
  if (!base) bad('preset', `must be one of ${Object.keys(EVOGRAD_PRESETS).join(', ')}, got ${JSON.stringify(preset)}`);
  const defined = <T extends object>(o: T | undefined): Partial<T> => Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
  let model: ModelConfig;
  try {
    model = modelConfig({ ...base.model, ...defined(input.model) });
  } catch (e) {
    throw new UserError(`evograd config: ${(e as Error).message}`);
  }
  const c = { ...base, ...defined(input), model, train: { ...base.train, ...defined(input.train) }, val: { ...base.val, ...defined(input.val) } } as EvoGradConfig;
  oneOf('task', c.task, EVOGRAD_TASKS);
  oneOf('mode', c.mode, EVOGRAD_MODES);
  oneOf('distance', c.distance, ['euclidean', 'cosine'] as const);
  oneOf('noise', c.noise, COPY_NOISES);
  if (model.inChannels !== 1) bad('model.inChannels', `must be 1 (Omniglot is grey), got ${model.inChannels}`);
  for (const f of ['valAngle', 'initAngle'] as const) if (!Number.isFinite(c[f]) || Math.abs(c[f]) > 360) bad(f, `must be a number of degrees in [-360, 360], got ${c[f]}`);
  int('copies', c.copies, 2, 4096);
  int('supersample', c.supersample, 1, 105);
  oneOf('copyEval', c.copyEval, COPY_EVALS);
  oneOf('precision', c.precision, EVALUATOR_PRECISIONS);
  positive('fdDelta', c.fdDelta);
  positive('fdEps', c.fdEps);
  int('unroll', c.unroll, 1, 1_000_000);
  positive('hyperDelta', c.hyperDelta);
  int('hyperEpisodes', c.hyperEpisodes, 1, 100_000);
  int('hyperValEpisodes', c.hyperValEpisodes, 1, 10_000);
  if (c.copyEval === 'population') {
    if (c.noise !== 'gaussian') bad('noise', `must be gaussian with --copy-eval population (the population's copies are the ES noise), got ${JSON.stringify(c.noise)}`);
    if (c.copies % 2 !== 0) bad('copies', `must be even with --copy-eval population (antithetic pairs), got ${c.copies}`);
  } else if (c.precision !== 'fp32') {
    bad('precision', `applies to --copy-eval population only; the tape runs fp32 (got ${c.precision})`);
  }
  if (model.imageSize * c.supersample > 105) bad('supersample', `times the image side must be at most 105 (Omniglot's drawings are 105 x 105), got ${c.supersample} x ${model.imageSize}`);
  for (const f of ['sigma', 'tau', 'lr', 'hyperLr'] as const) positive(f, c[f]);
  for (const f of ['hyperBeta1', 'hyperBeta2'] as const) if (!(Number.isFinite(c[f]) && c[f] >= 0 && c[f] < 1)) bad(f, `must be a number in [0, 1), got ${c[f]}`);
  oneOf('hyperLrSchedule', c.hyperLrSchedule, HYPER_LR_SCHEDULES);
  if (!(Number.isFinite(c.hyperLrFinal) && c.hyperLrFinal >= 0)) bad('hyperLrFinal', `must be a finite number >= 0, got ${c.hyperLrFinal}`);
  if (c.hyperLrSchedule === 'exp' && !(c.hyperLrFinal > 0)) bad('hyperLrFinal', `must be > 0 with the exp schedule (a geometric decay), got ${c.hyperLrFinal}`);
  int('seed', c.seed, 0, 0xffffffff);
  if (input.valSeed === undefined) c.valSeed = c.seed;
  int('valSeed', c.valSeed, 0, 0xffffffff);
  int('steps', c.steps, 1);
  int('valEpisodes', c.valEpisodes, 0);
  for (const part of ['train', 'val'] as const) {
    int(`${part}.way`, c[part].way, 2);
    int(`${part}.shot`, c[part].shot, 1);
    int(`${part}.query`, c[part].query, 1);
    if (c[part].shot + c[part].query > 20) bad(`${part}.query`, `plus shot must be at most 20 (the drawings of an Omniglot character), got ${c[part].shot} + ${c[part].query}`);
  }
  return c;
}

/**
 * A saved run's configuration as it was trained: runs saved before `supersample` existed rotated
 * bilinearly at the model's side (supersample 1), not at the preset's current default.
 */
export function savedEvoGradConfig(saved: EvoGradConfigInput): EvoGradConfigInput {
  return { supersample: 1, hyperLrSchedule: 'constant', hyperLrFinal: 0, ...saved };
}

/** The angle's learning rate at step t (0-based) of the run: hyperLr under cfg's schedule over cfg.steps. */
export function hyperLrAt(cfg: Pick<EvoGradConfig, 'hyperLr' | 'hyperLrSchedule' | 'hyperLrFinal' | 'steps'>, t: number): number {
  return scheduleAt(cfg.hyperLr, { kind: cfg.hyperLrSchedule, final: cfg.hyperLrFinal }, t, cfg.steps);
}

/** Fields a resumed run may change: they do not alter the steps already done or to come. */
export const EVOGRAD_RESUME_CHANGEABLE: readonly string[] = ['steps'];

/** What a resume of `saved` may change: not `steps` under a decaying angle schedule (the steps set its curve). */
export function evoGradResumeChangeable(saved: EvoGradConfigInput): readonly string[] {
  return saved.hyperLrSchedule !== undefined && saved.hyperLrSchedule !== 'constant' ? [] : EVOGRAD_RESUME_CHANGEABLE;
}
