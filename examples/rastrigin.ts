/**
 * ES on any objective with the ask/tell API: SNES, PGPE + ClipUp and OpenAI-ES
 * minimizing the 20-dimensional Rastrigin function from a point far from the
 * optimum (ES maximizes fitness, so fitness = -rastrigin).
 *   npx tsc -p . && node dist/examples/rastrigin.js
 */
import { OpenAIES, PGPE, SNES } from '../lib/index.js';

const D = 20;
/** Rastrigin: 10 D + sum (x^2 - 10 cos(2 pi x)); global minimum 0 at x = 0. */
export function rastrigin(x: Float32Array): number {
  let s = 10 * x.length;
  for (const v of x) s += v * v - 10 * Math.cos(2 * Math.PI * v);
  return s;
}

export async function main(generations = 300, log = true): Promise<Record<string, number>> {
  const init = Float32Array.from({ length: D }, (_, j) => 3 * Math.sin(j + 1)); // away from the optimum
  const steps = generations;
  const strategies = {
    snes: new SNES({ init, pop: 100, sigma: 2, seed: 1 }),
    pgpe: new PGPE({ init, pop: 100, sigma: 2, lr: 0.3, lrSchedule: { kind: 'cosine', final: 0 }, steps, seed: 1 }),
    openai: new OpenAIES({ init, pop: 100, sigma: 2, lr: 0.2, optimizer: 'adam', sigmaSchedule: { kind: 'linear', final: 0.05 }, steps, seed: 1 }),
  };
  const out: Record<string, number> = { start: rastrigin(init) };
  for (const [name, es] of Object.entries(strategies)) {
    for (let g = 0; g < generations; g++) {
      const gen = es.ask();
      const fitness = new Float64Array(gen.size);
      for (let i = 0; i < gen.size; i++) fitness[i] = -rastrigin(gen.member(i)); // ES maximizes fitness
      await es.tell(fitness);
    }
    out[name] = rastrigin(es.mean);
    if (log) console.log(`${name}: Rastrigin ${out.start!.toFixed(1)} -> ${out[name]!.toFixed(2)} after ${generations} generations of ${es.basePop}`);
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
