/** ES configuration: invalid hyperparameters are refused with errors naming the field, option and value; sigma schedules; the collapse detector. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveEsConfig, sigmaScheduleOf, FD_MAX_PARAMS, type EsConfigInput } from '../lib/methods/protonet-es/config.js';
import { CollapseDetector } from '../lib/train/collapse.js';
import { scheduleAt } from '../lib/es/schedule.js';
import { ProtoNetLayout } from '../lib/model/layout.js';

function refused(input: EsConfigInput, re: RegExp): void {
  let err: Error | null = null;
  try { resolveEsConfig(input); } catch (e) { err = e as Error; }
  assert.ok(err, `accepted ${JSON.stringify(input)}`);
  assert.is(err!.name, 'UserError');
  assert.match(err!.message, re);
}

test('invalid hyperparameters are refused with a clear error', () => {
  refused({ sigma: 0 }, /sigma \(--sigma\) must be a finite number > 0, got 0/);
  refused({ sigma: -0.1 }, /sigma \(--sigma\) must be a finite number > 0, got -0\.1/);
  refused({ sigma: NaN }, /sigma .* got NaN/);
  refused({ lr: 0 }, /lr \(--lr\) must be a finite number > 0/);
  refused({ pop: 7, antithetic: true }, /pop \(--pop\) must give every shard an even number of members with antithetic sampling .* pop 7 \/ 1 shards = 7/);
  refused({ pop: 20, shards: 4, estimator: 'openai' }, /pop 20 \/ 4 shards = 5/);
  refused({ pop: 8, workers: 9 }, /workers \(--workers\) must not exceed the population: 9 workers for pop 8/);
  refused({ pop: 10, shards: 4 }, /shards \(--shards\) must divide the population: 4 shards do not divide pop 10/);
  refused({ pop: 4, shards: 4 }, /at least 2 members per shard/);
  refused({ estimator: 'openai', antithetic: false }, /antithetic cannot be off for estimator openai/);
  refused({ estimator: 'xyz' as never }, /estimator \(--estimator\) must be one of wsr, nes, openai, fd, pgpe, snes, got "xyz"/);
  refused({ momentum: 0.9 }, /momentum \(--momentum\) applies to --optimizer sgd or clipup only/);
  refused({ optimizer: 'sgd', momentum: 1 }, /momentum .* must be in \[0, 1\), got 1/);
  refused({ steps: 0 }, /steps \(--steps\) must be an integer >= 1, got 0/);
  refused({ train: { way: 1 } }, /train\.way \(--way\) must be an integer >= 2, got 1/);
  refused({ seed: 2 ** 32 }, /seed \(--seed\) must be below 2\^32/);
  refused({ model: { channels: 0 } }, /channels must be a positive integer, got 0/);
  refused({ sigmaSchedule: 'exp', sigmaFinal: 0 }, /sigmaFinal \(--sigma-final\) must be a finite number > 0/);
  refused({ pop: 2 ** 21 }, /pop \(--pop\) must be at most 1048576, got 2097152/);
  refused({ valEpisodes: 1_000_000 }, /valEpisodes \(--val-episodes\) would hold 292\.\d GiB of validation episodes/);
  refused({ episodesPerStep: 0 }, /episodesPerStep \(--episodes-per-step\) must be an integer >= 1, got 0/);
  refused({ maxSpeed: 1 }, /maxSpeed \(--max-speed\) applies to --optimizer clipup only/);
  refused({ lrSchedule: 'cosine', lrWarmup: -1 }, /lrWarmup \(--lr-warmup\) must be an integer >= 0/);
  refused({ lrSchedule: 'bogus' as never }, /lrSchedule \(--lr-schedule\) must be one of constant, linear, exp, cosine, step/);
  refused({ estimator: 'pgpe', antithetic: false }, /antithetic cannot be off for estimator pgpe/);
  refused({ estimator: 'snes', sigmaSchedule: 'linear', sigmaFinal: 0.001 }, /sigmaSchedule \(--sigma-schedule\) does not apply to estimator snes/);
  refused({ popSchedule: 'linear', popFinal: 1 }, /popFinal \(--pop-final\) must be an integer >= 2, got 1/);
});

test('fd: population is parameters + 1; large models are refused unless forced', () => {
  const d16 = new ProtoNetLayout({ channels: 16, imageSize: 28 }).numParams;
  assert.ok(d16 <= FD_MAX_PARAMS);
  assert.is(resolveEsConfig({ estimator: 'fd', model: { channels: 16 } }).pop, d16 + 1);
  refused({ estimator: 'fd', model: { channels: 32 } }, /estimator fd needs a population of parameters \+ 1 = 28321 forwards per step .* refused above 10000 parameters: use fewer --channels, or --force-fd/);
  assert.is(resolveEsConfig({ estimator: 'fd', model: { channels: 32 }, fdForce: true }).pop, 28321);
  refused({ estimator: 'fd', model: { channels: 8 }, pop: 64 }, /pop \(--pop\) is fixed to parameters \+ 1/);
});

test('valid configurations resolve with defaults; openai implies antithetic pairs', () => {
  const c = resolveEsConfig({ estimator: 'openai', pop: 32, shards: 4, workers: 2 });
  assert.is(c.antithetic, true);
  assert.is(c.scheme, 'paper');
  assert.is(c.sigmaFinal, c.sigma);
  assert.is(resolveEsConfig({}).estimator, 'wsr');
});

test('sigma schedules: constant, linear and exponential from sigma (step 0) to sigmaFinal (last step)', () => {
  const base = { sigma: 0.1, sigmaFinal: 0.01, steps: 11 };
  const sigmaAt = (c: typeof base & { sigmaSchedule: 'constant' | 'linear' | 'exp' }, t: number): number => scheduleAt(c.sigma, sigmaScheduleOf(c), t, c.steps);
  assert.is(sigmaAt({ ...base, sigmaSchedule: 'constant' }, 5), 0.1);
  assert.is(sigmaAt({ ...base, sigmaSchedule: 'linear' }, 0), 0.1);
  assert.ok(Math.abs(sigmaAt({ ...base, sigmaSchedule: 'linear' }, 5) - 0.055) < 1e-15);
  assert.ok(Math.abs(sigmaAt({ ...base, sigmaSchedule: 'linear' }, 10) - 0.01) < 1e-15);
  assert.ok(Math.abs(sigmaAt({ ...base, sigmaSchedule: 'exp' }, 5) - Math.sqrt(0.1 * 0.01)) < 1e-15);
  assert.ok(Math.abs(sigmaAt({ ...base, sigmaSchedule: 'exp' }, 10) - 0.01) < 1e-15);
});

test('collapse detector: exploding window loss, non-finite loss, validation at chance for a window', () => {
  const d = new CollapseDetector({ window: 2, lossFactor: 10, valChecks: 2 });
  assert.is(d.observeLoss(0, 1.5, Math.log(5)), null);
  assert.is(d.observeLoss(1, 1.4, Math.log(5)), null);
  assert.is(d.observeLoss(2, 1.3, Math.log(5)), null);
  assert.is(d.observeLoss(3, 5, Math.log(5)), null); // window mean 3.15 < 10 x 1.35
  assert.match(d.observeLoss(4, 40, Math.log(5)) ?? '', /exploded: mean 22\.50 over the last 2 steps/);
  assert.match(new CollapseDetector({ window: 5, lossFactor: 10, valChecks: 0 }).observeLoss(7, NaN, Math.log(5)) ?? '', /loss is NaN at step 7/);
  const v = new CollapseDetector({ window: 0, lossFactor: 10, valChecks: 2 });
  assert.is(v.observeVal(0, 0.21, 1 / 5), null);
  assert.is(v.observeVal(1, 0.6, 1 / 5), null);
  assert.is(v.observeVal(2, 0.2, 1 / 5), null);
  assert.match(v.observeVal(3, 0.19, 1 / 5) ?? '', /at chance \(20\.0%\) for 2 validations in a row/);
  // a well-trained model's small losses do not trip it: 10x of 0.01 is still better than chance
  const w = new CollapseDetector({ window: 1, lossFactor: 10, valChecks: 0 });
  w.observeLoss(0, 0.01, Math.log(5));
  assert.is(w.observeLoss(1, 0.5, Math.log(5)), null);
});

test.run();
