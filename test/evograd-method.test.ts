/**
 * EvoGrad training as a TrainMethod (lib/evograd/method.ts) on synthetic episodes: the exact
 * state round trip (save after k steps, load into a fresh instance, continue: bit-identical to
 * an uninterrupted run), an aborted step changes nothing, plain training keeps the angle, the
 * exported model, and configuration errors that name the option.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { evoGradResumeChangeable, hyperLrAt, resolveEvoGradConfig, savedEvoGradConfig, type EvoGradConfigInput } from '../lib/evograd/config.js';
import { EvoGradMethod, type EvoGradSources } from '../lib/evograd/method.js';
import { RotatedEpisodes } from '../lib/evograd/rotation.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { UserError } from '../lib/errors.js';
import { assertSameState as sameState, viaFile } from './helpers/method-state.js';

const dev = getDevice('cpu-ts');
const SMALL: EvoGradConfigInput = { supersample: 1, model: { channels: 4, imageSize: 12, blocks: 2 }, train: { way: 3, shot: 2, query: 2 }, val: { way: 3, shot: 2, query: 2 }, steps: 6, valEpisodes: 3, seed: 4 };

function sources(): EvoGradSources {
  const mk = (seed: number) => new SyntheticEpisodes({ classes: 8, way: 3, shot: 2, query: 2, imageSize: 12, seed });
  return { train: mk(1), hyperVal: new RotatedEpisodes(mk(2), 30, dev), val: new RotatedEpisodes(mk(3), 30, dev) };
}

const make = (over: EvoGradConfigInput = {}): EvoGradMethod => new EvoGradMethod(resolveEvoGradConfig({ ...SMALL, ...over }, 'quick'), sources(), { device: dev });

test('state round trip: save after 3 steps, load into a fresh instance, continue to 6: bit-identical to 6 uninterrupted steps', async () => {
  const full = make();
  while (full.step < full.totalSteps) await full.trainStep();
  const first = make();
  for (let i = 0; i < 3; i++) await first.trainStep();
  const saved = viaFile(first.saveState());
  await first.close();
  const resumed = make();
  resumed.loadState(saved);
  assert.is(resumed.step, 3);
  while (resumed.step < resumed.totalSteps) await resumed.trainStep();
  sameState(resumed.saveState(), full.saveState());
  assert.ok(full.angle !== 0, 'EvoGrad moved the angle');
});

test('unrolled-es: a state saved mid-window (the two copies apart) continues bit for bit; the angle moves at each window\'s end only', async () => {
  const over: EvoGradConfigInput = { mode: 'unrolled-es', unroll: 4, hyperDelta: 5, hyperEpisodes: 2, hyperLr: 2 };
  const full = make(over);
  const angles: number[] = [];
  while (full.step < full.totalSteps) {
    const r = await full.trainStep();
    angles.push(full.angle);
    assert.is(r!['hypergrad'] !== undefined, full.step % 4 === 0, `step ${full.step}: a hypergradient only at a window's end`);
  }
  assert.equal(angles.slice(0, 3), [0, 0, 0]);
  assert.ok(angles[3] !== 0 && angles[4] === angles[3], `angles ${angles}`);
  const first = make(over);
  for (let i = 0; i < 3; i++) await first.trainStep();
  const saved = viaFile(first.saveState());
  assert.ok(saved.tensors['theta.minus'] && saved.tensors['opt.minus.exp_avg'], 'the second copy is saved');
  const resumed = make(over);
  resumed.loadState(saved);
  while (resumed.step < resumed.totalSteps) await resumed.trainStep();
  sameState(resumed.saveState(), full.saveState());
  const ex = full.exportModel();
  assert.is(Number(ex.metadata['angle_degrees']), full.angle);
  const { 'theta.minus': _, ...noMinus } = saved.tensors;
  assert.throws(() => make(over).loadState({ ...saved, tensors: noMinus }), (e: unknown) => e instanceof UserError && /missing tensor theta.minus/.test((e as Error).message));
  // the angle's Adam beta1 reaches its optimizer: the first Adam step does not depend on it (but for rounding), later ones do
  const angle = async (beta1: number): Promise<number[]> => {
    const m = make({ ...over, unroll: 2, hyperBeta1: beta1 });
    const a: number[] = [];
    while (m.step < m.totalSteps) { await m.trainStep(); if (m.step % 2 === 0) a.push(m.angle); }
    return a;
  };
  const [b0, b9] = [await angle(0), await angle(0.9)];
  assert.ok(Math.abs(b0[0]! - b9[0]!) < 1e-5, `first steps ${b0[0]} and ${b9[0]} (equal up to the float32 moments' rounding)`);
  assert.ok(b0[2] !== b9[2], `beta1 0: ${b0}, beta1 0.9: ${b9}`);
});

test('a validation batch of M episodes per hypergradient (hyperValEpisodes): step t uses episodes tM .. tM + M - 1; round trip; beta2 reaches the angle\'s Adam', async () => {
  // the hypergradient source records which episodes each step asks for
  const asked: number[] = [];
  const src = sources();
  const base = src.hyperVal;
  src.hyperVal = { episode: (i: number) => { asked.push(i); return base.episode(i); } };
  const m = new EvoGradMethod(resolveEvoGradConfig({ ...SMALL, hyperValEpisodes: 3 }, 'quick'), src, { device: dev });
  await m.trainStep();
  await m.trainStep();
  assert.equal(asked, [0, 1, 2, 3, 4, 5]);
  const over: EvoGradConfigInput = { hyperValEpisodes: 2 };
  const full = make(over);
  while (full.step < full.totalSteps) await full.trainStep();
  const one = make();
  while (one.step < one.totalSteps) await one.trainStep();
  assert.ok(full.angle !== one.angle, 'two validation episodes per step give another hypergradient than one');
  const first = make(over);
  for (let i = 0; i < 3; i++) await first.trainStep();
  const resumed = make(over);
  resumed.loadState(viaFile(first.saveState()));
  while (resumed.step < resumed.totalSteps) await resumed.trainStep();
  sameState(resumed.saveState(), full.saveState());
  // beta2: the first Adam step is lr * sign whatever beta2 is; later steps depend on it
  const angles = async (beta2: number): Promise<number[]> => {
    const r = make({ hyperBeta2: beta2 });
    const a: number[] = [];
    while (r.step < r.totalSteps) { await r.trainStep(); a.push(r.angle); }
    return a;
  };
  const [a999, a9] = [await angles(0.999), await angles(0.9)];
  assert.ok(Math.abs(a999[0]! - a9[0]!) < 1e-5, `first steps ${a999[0]} and ${a9[0]}`);
  assert.ok(a999[5] !== a9[5], `beta2 0.999: ${a999}, beta2 0.9: ${a9}`);
});

test('the angle\'s learning-rate schedule: its values, a zero rate freezes the angle, the round trip is exact, unrolled-es follows it at window ends', async () => {
  const lin = resolveEvoGradConfig({ ...SMALL, hyperLr: 2, hyperLrSchedule: 'linear', hyperLrFinal: 0.5 }, 'quick');
  assert.equal([0, 1, 5, 9].map((t) => hyperLrAt(lin, t)), [2, 2 - 1.5 / 5, 0.5, 0.5], 'from hyperLr at step 0 to hyperLrFinal at the last step (6 steps), held after');
  const cos = resolveEvoGradConfig({ ...SMALL, hyperLr: 2, hyperLrSchedule: 'cosine', hyperLrFinal: 0 }, 'quick');
  assert.ok(Math.abs(hyperLrAt(cos, 0) - 2) < 1e-12 && Math.abs(hyperLrAt(cos, 5)) < 1e-12, 'cosine: 2 at the first step, 0 at the last');
  assert.is(hyperLrAt(resolveEvoGradConfig({ ...SMALL, hyperLr: 2 }, 'quick'), 5), 2, 'constant by default');
  assert.is(hyperLrAt({ ...lin, steps: 1 }, 0), 2, 'a one-step run keeps hyperLr (lib/es/schedule.ts)');
  // the first Adam step moves the angle by the rate times the sign of the hypergradient; the last (rate 0) moves nothing
  const decaying: EvoGradConfigInput = { hyperLr: 1, hyperLrSchedule: 'linear', hyperLrFinal: 0 };
  const full = make(decaying), constant = make({ hyperLr: 1 });
  const a: number[] = [], b: number[] = [];
  while (full.step < full.totalSteps) { await full.trainStep(); await constant.trainStep(); a.push(full.angle); b.push(constant.angle); }
  // (Adam's first step is lr * g / (|g| + eps): 1 to within eps / |g|)
  assert.ok(Math.abs(Math.abs(a[0]!) - 1) < 1e-3 && a[0] === b[0], `step 0 at the full rate: ${a[0]} and ${b[0]}`);
  assert.is(a[5], a[4], 'the last step\'s rate is 0');
  assert.ok(b[5] !== b[4], 'without the schedule the last step moves the angle');
  const first = make(decaying);
  for (let i = 0; i < 2; i++) await first.trainStep();
  const resumed = make(decaying);
  resumed.loadState(viaFile(first.saveState()));
  while (resumed.step < resumed.totalSteps) await resumed.trainStep();
  sameState(resumed.saveState(), full.saveState());
  // unrolled-es: the window that ends at step 7 (of 8) takes the last rate, 0
  const u = make({ mode: 'unrolled-es', unroll: 4, hyperDelta: 5, hyperEpisodes: 2, hyperLr: 2, hyperLrSchedule: 'linear', hyperLrFinal: 0, steps: 8 });
  const ua: number[] = [];
  while (u.step < u.totalSteps) { await u.trainStep(); ua.push(u.angle); }
  assert.ok(Math.abs(Math.abs(ua[3]!) / (2 * (1 - 3 / 7)) - 1) < 1e-3, `the first window's step at rate 2 (1 - 3/7): ${ua[3]}`);
  assert.is(ua[7], ua[3], 'the second window ends at the last step, rate 0');
  // resume: steps is changeable only under the constant schedule; runs saved before the schedule existed are constant
  assert.equal(evoGradResumeChangeable(savedEvoGradConfig({})), ['steps']);
  assert.equal(evoGradResumeChangeable({ hyperLrSchedule: 'cosine' }), []);
});

test('each mode builds only the learner and workspace it uses', () => {
  const u = make({ mode: 'unrolled-es', unroll: 4 });
  assert.is(u.learner, null);
  assert.ok(u.unrolled !== null);
  const e = make();
  assert.ok(e.unrolled === null && e.learner !== null && e.learner.workspace !== null, 'EvoGrad: its D-vectors');
  for (const mode of ['plain', 'second-order', 'second-order-fd'] as const) {
    const m = make({ mode });
    assert.ok(m.unrolled === null && m.learner !== null, mode);
    assert.is(m.learner!.workspace, null, `${mode}: no EvoGrad workspace`);
  }
});

test('an aborted step changes nothing; plain training keeps the angle; validation and export', async () => {
  const m = make();
  const before = viaFile(m.saveState());
  const ac = new AbortController();
  ac.abort();
  assert.is(await m.trainStep(ac.signal), null);
  sameState(viaFile(m.saveState()), before);
  const r = await m.trainStep();
  assert.ok(r && Number.isFinite(r.loss) && Number.isFinite(r['hypergrad']!) && r['angle'] === m.angle);
  const so = make({ mode: 'second-order' });
  const r2 = await so.trainStep();
  assert.ok(r2 && Number.isFinite(r2['hypergrad']!) && so.angle !== 0, 'the second-order mode moves the angle');
  const fd = make({ mode: 'second-order-fd' });
  const r3 = await fd.trainStep();
  assert.ok(r3 && Number.isFinite(r3['hypergrad']!) && fd.angle !== 0, 'the second-order-fd mode moves the angle');
  const plain = make({ mode: 'plain', initAngle: 12 });
  for (let i = 0; i < 3; i++) await plain.trainStep();
  assert.is(plain.angle, 12);
  const v = await m.validate();
  assert.ok(v.score >= 0 && v.score <= 1 && Number.isFinite(v.loss!));
  const ex = m.exportModel();
  assert.equal(ex.tensors['encoder.0.0.weight']!.shape, [4, 1, 3, 3]);
  assert.ok(ex.tensors['encoder.1.1.num_batches_tracked']!.data instanceof BigInt64Array);
  assert.is(Number(ex.metadata['angle_degrees']), m.angle);
  assert.throws(() => m.loadState({ tensors: {}, meta: { format: 'something-else' } }), (e: unknown) => e instanceof UserError && /not an EvoGrad training state/.test((e as Error).message));
});

test('configuration errors name the option', () => {
  const bad = (input: EvoGradConfigInput, re: RegExp, preset?: string): void => {
    assert.throws(() => resolveEvoGradConfig(input, preset), (e: unknown) => e instanceof UserError && re.test((e as Error).message), `${JSON.stringify(input)} should fail with ${re}`);
  };
  bad({ copies: 1 }, /copies \(--copies\) must be an integer in \[2/);
  bad({ sigma: 0 }, /sigma \(--sigma\) must be a finite number > 0/);
  bad({ noise: 'uniform' as never }, /noise \(--noise\) must be one of sign, gaussian/);
  bad({ mode: 'third-order' as never }, /mode \(--mode\) must be one of evograd, plain, second-order, second-order-fd, unrolled-es/);
  bad({ mode: 'unrolled-es', unroll: 0 }, /unroll \(--unroll\) must be an integer in \[1/);
  bad({ mode: 'unrolled-es', hyperDelta: -1 }, /hyperDelta \(--hyper-delta\) must be a finite number > 0, got -1/);
  bad({ hyperEpisodes: 1.5 }, /hyperEpisodes \(--hyper-episodes\) must be an integer/);
  bad({ hyperBeta1: 1 }, /hyperBeta1 \(--hyper-beta1\) must be a number in \[0, 1\), got 1/);
  bad({ hyperBeta2: -0.5 }, /hyperBeta2 \(--hyper-beta2\) must be a number in \[0, 1\), got -0.5/);
  bad({ hyperLrSchedule: 'step' as never }, /hyperLrSchedule \(--hyper-lr-schedule\) must be one of constant, linear, cosine, exp/);
  bad({ hyperLrSchedule: 'exp', hyperLrFinal: 0 }, /hyperLrFinal \(--hyper-lr-final\) must be > 0 with the exp schedule/);
  bad({ hyperLrFinal: -1 }, /hyperLrFinal \(--hyper-lr-final\) must be a finite number >= 0, got -1/);
  bad({ hyperValEpisodes: 0 }, /hyperValEpisodes \(--hyper-val-episodes\) must be an integer in \[1, 10000\], got 0/);
  bad({ mode: 'second-order-fd', fdEps: 0 }, /fdEps \(--fd-eps\) must be a finite number > 0, got 0/);
  bad({ train: { shot: 5, query: 16 } }, /train.query \(--query\) plus shot must be at most 20/);
  bad({ valAngle: 1000 }, /valAngle \(--val-angle\)/);
  bad({}, /preset \(--preset\) must be one of rotation, quick, rotation-unrolled, rotation-population/, 'nope');
  const pop = resolveEvoGradConfig({}, 'rotation-population');
  assert.equal([pop.mode, pop.copyEval, pop.noise, pop.copies, pop.precision, pop.hyperValEpisodes, pop.hyperBeta2, pop.steps], ['evograd', 'population', 'gaussian', 256, 'bf16', 8, 0.99, 3600], 'the configuration of the seed-0 run of docs/evograd.md');
  const smooth = resolveEvoGradConfig({}, 'rotation-smoothed');
  assert.equal([smooth.copyEval, smooth.copies, smooth.fdDelta, smooth.hyperValEpisodes, smooth.hyperBeta2, smooth.hyperLrSchedule, smooth.hyperLrFinal, smooth.steps], ['population', 256, 20, 8, 0.99, 'linear', 0, 1200], 'the configuration of the five seeds of docs/evograd.md');
  assert.is(resolveEvoGradConfig({}, 'rotation-unrolled').mode, 'unrolled-es');
  assert.is(resolveEvoGradConfig({}, 'rotation-unrolled').steps, 2400, 'the preset runs the 2400 steps its five seeds were measured with');
  const c = resolveEvoGradConfig({ seed: 9 });
  assert.is(c.valSeed, 9);
  assert.is(c.copies, 2);
  assert.is(c.sigma, 0.001);
  assert.is(c.tau, 0.05);
  assert.is(c.noise, 'sign');
});

test.run();
