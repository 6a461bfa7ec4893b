/**
 * ES training a small user-defined network on worker threads: a 2-16-2 MLP
 * classifying two interleaved spirals. The objective lives in this module and
 * each worker thread imports it by path (functions cannot cross threads); the
 * population is split into 4 shards over 2 workers, and any worker count gives
 * bitwise the same result.
 *   npx tsc -p . && node dist/examples/user-network.js
 */
import { fileURLToPath } from 'node:url';
import { OpenAIES, objectiveRunner, Rng } from '../lib/index.js';

const H = 16;
/** Parameters: W1 [H x 2], b1 [H], W2 [2 x H], b2 [2]. */
export const DIM = H * 2 + H + 2 * H + 2;

/** 200 points of two spirals (seeded), labels 0/1. */
function spirals(): { x: Float64Array; y: Uint8Array } {
  const n = 200, rng = new Rng(7);
  const x = new Float64Array(2 * n), y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 2, t = 0.5 + 2.5 * (Math.floor(i / 2) / (n / 2)), a = t * 2 + c * Math.PI;
    x[2 * i] = t * Math.cos(a) / 3 + 0.03 * rng.normal();
    x[2 * i + 1] = t * Math.sin(a) / 3 + 0.03 * rng.normal();
    y[i] = c;
  }
  return { x, y };
}
const data = spirals();

/** Mean cross-entropy and accuracy of the MLP with parameters p. */
export function evaluateNet(p: Float32Array): { loss: number; acc: number } {
  const n = data.y.length;
  let loss = 0, right = 0;
  const h = new Float64Array(H);
  for (let i = 0; i < n; i++) {
    const x0 = data.x[2 * i]!, x1 = data.x[2 * i + 1]!;
    for (let k = 0; k < H; k++) h[k] = Math.tanh(p[2 * k]! * x0 + p[2 * k + 1]! * x1 + p[2 * H + k]!);
    const o = [0, 1].map((c) => { let s = p[3 * H + 2 * H + c]!; for (let k = 0; k < H; k++) s += p[3 * H + c * H + k]! * h[k]!; return s; });
    const m = Math.max(o[0]!, o[1]!), lse = m + Math.log(Math.exp(o[0]! - m) + Math.exp(o[1]! - m));
    loss += lse - o[data.y[i]!]!;
    if ((o[1]! > o[0]! ? 1 : 0) === data.y[i]) right++;
  }
  return { loss: loss / n, acc: right / n };
}

/** The ES objective (maximized): minus the cross-entropy. */
export function fitness(p: Float32Array): number { return -evaluateNet(p).loss; }

export async function main(generations = 200, log = true): Promise<{ before: number; after: number; acc: number }> {
  const runner = await objectiveRunner({ module: fileURLToPath(import.meta.url), export: 'fitness', workers: 2 });
  try {
    const init = Float32Array.from({ length: DIM }, (_, j) => 0.5 * Math.sin(3 * j + 1));
    const es = new OpenAIES({ init, pop: 64, shards: 4, sigma: 0.1, lr: 0.03, optimizer: 'adam', seed: 3 });
    const before = evaluateNet(es.mean).loss;
    for (let g = 0; g < generations; g++) await es.run(runner);
    const r = evaluateNet(es.mean);
    if (log) console.log(`spirals MLP (${DIM} parameters): loss ${before.toFixed(3)} -> ${r.loss.toFixed(3)}, accuracy ${(100 * r.acc).toFixed(1)}% after ${generations} generations`);
    return { before, after: r.loss, acc: r.acc };
  } finally {
    await runner.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
