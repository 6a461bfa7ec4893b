/**
 * Learned-optimizer worker thread: owns one GroupEngine (built from the spec the
 * main thread sends) and serves unroll / ES-fitness messages. See pool.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import '../index.js';
import { GroupEngine, type EngineSpec, type EsJob, type UnrollJob } from './engine.js';

const port = parentPort;
if (!port) throw new Error('lib/l2l/worker.js must run as a worker thread');
const engine = new GroupEngine((workerData as { spec: EngineSpec }).spec);
let phi = new Float32Array(0);
let shared: Float32Array | null = null;

type Msg =
  | { type: 'phi'; buffer: Float32Array }
  | { type: 'unroll'; id: number; jobs: UnrollJob[] }
  | { type: 'es'; id: number; job: EsJob };

function localPhi(): Float32Array {
  if (!shared) throw new Error('no shared parameter buffer');
  if (phi.length !== shared.length) phi = new Float32Array(shared.length);
  phi.set(shared);
  return phi;
}

port.on('message', (m: Msg) => {
  if (m.type === 'phi') { shared = m.buffer; return; }
  try {
    if (m.type === 'unroll') {
      const p = localPhi();
      const outs = m.jobs.map((j) => engine.unroll(p, j));
      const buffers = new Set(outs.flatMap((o) => [o.grad.buffer, ...o.slots.flatMap((s) => [s.theta.buffer, s.grad.buffer, ...s.h.map((a) => a.buffer), ...s.c.map((a) => a.buffer)])]));
      port.postMessage({ type: 'done', id: m.id, outs }, [...buffers].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer));
    } else {
      const fit = engine.esFitness(m.job);
      port.postMessage({ type: 'done', id: m.id, fitness: fit }, [fit.buffer as ArrayBuffer]);
    }
  } catch (e) {
    const err = e as Error;
    port.postMessage({ type: 'error', id: m.id, message: err.message, stack: err.stack });
  }
});
port.postMessage({ type: 'ready' });
