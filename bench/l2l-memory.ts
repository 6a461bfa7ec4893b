/**
 * Memory of meta-training the learned optimizer against the truncation length
 * K: the tape's exact peak bytes for one chunk of K optimizee steps (Tape's
 * ledger: every saved tensor, accounting, not RSS), against the forward-only
 * rollout ES members run (no tape: the LSTM state and one step's temporaries,
 * whatever K or T). One 10-dimensional quadratic and a stack of 8.
 *
 *   node dist/bench/l2l-memory.js      -> bench/results/l2l/memory.json
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import '../lib/index.js';
import { getDevice } from '../lib/device/registry.js';
import { LstmOptimizerLayout, initLstmOptimizer } from '../lib/l2l/layout.js';
import { QuadraticFamily, DEFAULT_QUADRATIC } from '../lib/l2l/tasks/quadratic.js';
import { newSlot, unrollGroup } from '../lib/l2l/unroll.js';

const device = getDevice(), layout = new LstmOptimizerLayout(), phi = initLstmOptimizer(layout, 0);
const fam = new QuadraticFamily(DEFAULT_QUADRATIC);
const rows: { tasks: number; coordinates: number; k: number; tapePeakBytes: number; rolloutStateBytes: number }[] = [];
for (const tasks of [1, 8]) {
  for (const k of [5, 10, 20, 40, 80]) {
    const slots = Array.from({ length: tasks }, (_, i) => newSlot(fam.task('train', i), layout, phi));
    const n = slots.reduce((s, x) => s + x.task.n, 0);
    const r = unrollGroup({ device, layout, phi, steps: k, metaLoss: 'log', slotWeight: 1 / tasks }, slots, new Float64Array(layout.numParams));
    // what a forward rollout keeps between steps: theta, grad, h and c of every layer (float32), independent of K and T
    const state = 4 * n * (2 + 2 * layout.config.layers * layout.config.hidden);
    rows.push({ tasks, coordinates: n, k, tapePeakBytes: r.tapePeakBytes, rolloutStateBytes: state });
    console.log(`tasks ${tasks} (N = ${n}) K = ${k}: tape peak ${r.tapePeakBytes} B; rollout state ${state} B`);
  }
}
mkdirSync('bench/results/l2l', { recursive: true });
writeFileSync('bench/results/l2l/memory.json', JSON.stringify({ bench: 'l2l-memory', command: 'node dist/bench/l2l-memory.js', note: 'tapePeakBytes: exact accounting of the tape (lib/autodiff ledger); rolloutStateBytes: accounting of the arrays a forward rollout carries between steps', rows }, null, 1));
