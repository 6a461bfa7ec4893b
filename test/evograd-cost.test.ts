/**
 * The cost cases of bench/evograd-cost.ts (lib/evograd/cost.ts) on a small ProtoNet: each method
 * returns a finite hypergradient and accounts its bytes; EvoGrad's and the finite difference's
 * largest tape is one forward pass of a batch, below the second-order graph's joint peak.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { COST_METHODS, runCostCase, type CostResult } from '../lib/evograd/cost.js';

test('every cost method: finite hypergradient, timed repetitions, exact parts; EvoGrad and FD hold less than T1-T2', () => {
  const r: Record<string, CostResult> = {};
  for (const method of COST_METHODS) {
    const c = runCostCase({ method, channels: 4, imageSize: 16, way: 3, shot: 2, query: 2, reps: 2, device: 'cpu-ts' });
    assert.ok(Number.isFinite(c.hypergrad) && c.hypergrad !== 0, `${method}: hypergradient ${c.hypergrad}`);
    assert.is(c.seconds.length, 2);
    assert.ok(c.medianSeconds > 0);
    assert.is(c.accountedBytes, Object.values(c.parts).reduce((a, b) => a + b, 0));
    assert.ok(Object.values(c.parts).every((b) => b > 0), `${method}: ${JSON.stringify(c.parts)}`);
    r[method] = c;
  }
  assert.ok(r['evograd']!.accountedBytes < r['t1t2']!.accountedBytes && r['fd']!.accountedBytes < r['t1t2']!.accountedBytes,
    `accounted bytes: evograd ${r['evograd']!.accountedBytes}, fd ${r['fd']!.accountedBytes}, t1t2 ${r['t1t2']!.accountedBytes}`);
});

test('unrolled: UnrolledEsLearner itself is timed; it holds, beyond one training state, the second copy (theta, Adam moments), the gradient, the mean and lambda\'s Adam', () => {
  const c = runCostCase({ method: 'unrolled', channels: 4, imageSize: 16, way: 3, shot: 2, query: 2, reps: 2, device: 'cpu-ts', unroll: 40, hyperEpisodes: 2 });
  const learnerPart = Object.entries(c.parts).find(([k]) => k.startsWith('the learner'));
  assert.ok(learnerPart, JSON.stringify(c.parts));
  assert.is(learnerPart![1], 4 * (5 * c.params + 2));
  assert.ok(c.seconds.every((s) => Number.isFinite(s) && s > 0), `${c.seconds}`);
});

test('an unknown cost method is refused', () => {
  assert.throws(() => runCostCase({ method: 'adjoint' as never, channels: 4, imageSize: 16, way: 3, shot: 2, query: 2, reps: 1, device: 'cpu-ts' }), /unknown cost method/);
});

test.run();
