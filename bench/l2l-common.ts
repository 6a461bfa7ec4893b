/** Shared pieces of the learned-optimizer benchmarks: a timed meta-training run with validation outside the clock, machine state, charts. */
import { cpus, loadavg } from 'node:os';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { L2lMethod, type L2lMethodOptions } from '../lib/l2l/method.js';
import type { L2lConfigInput } from '../lib/l2l/config.js';

export interface Machine { cpus: number; model: string; loadavg: number[]; node: string; time: string }

export function machine(): Machine {
  const c = cpus();
  return { cpus: c.length, model: c[0]?.model ?? '?', loadavg: loadavg().map((v) => Math.round(v * 100) / 100), node: process.version, time: new Date().toISOString() };
}

export interface ValPoint { step: number; trainSeconds: number; cpuSeconds: number; score: number; loss: number }

export interface TimedRun {
  points: ValPoint[];
  steps: number;
  trainSeconds: number;
  cpuSeconds: number;
  optimizeeSteps: number;
  method: L2lMethod;
}

/**
 * Meta-train for `budget` seconds of training wall-clock (validation excluded
 * from the clock: it is the same for every configuration), validating every
 * `valEvery` training seconds; stop early once the score reaches `stopAt`.
 */
export async function timedRun(cfg: L2lConfigInput, preset: string, opts: L2lMethodOptions, budget: number, valEvery: number, stopAt = Infinity, keep = false): Promise<TimedRun> {
  const m = await L2lMethod.create(cfg, preset, opts);
  const points: ValPoint[] = [];
  let train = 0, cpu = 0, lastVal = -Infinity, work = 0, best = -Infinity;
  let bestPhi = m.phi.slice();
  const val = async (): Promise<number> => {
    const v = await m.validate();
    points.push({ step: m.step, trainSeconds: train, cpuSeconds: cpu, score: v.score, loss: v.loss ?? NaN });
    lastVal = train;
    if (v.score > best) { best = v.score; bestPhi = m.phi.slice(); }
    return v.score;
  };
  try {
    await val();
    while (train < budget) {
      const c0 = process.cpuUsage(), t0 = performance.now();
      const r = await m.trainStep();
      train += (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      cpu += (c.user + c.system) / 1e6;
      work += r?.work ?? 0;
      if (train - lastVal >= valEvery && (await val()) >= stopAt) break;
    }
    if (lastVal < train) await val();
    if (keep) m.phi.set(bestPhi); // the kept method carries the best-validation phi
  } finally {
    if (!keep) await m.close();
  }
  return { points, steps: m.step, trainSeconds: train, cpuSeconds: cpu, optimizeeSteps: work, method: m };
}

/** First training time at which the validation score reached `target` (linear in time between validations is NOT assumed: the validation time itself), or null. */
export function timeToTarget(points: readonly ValPoint[], target: number): number | null {
  const p = points.find((q) => q.score >= target);
  return p ? p.trainSeconds : null;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b), n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

export function lineChart(title: string, x: string, y: string, values: Record<string, unknown>[], opts: { logY?: boolean; series?: string; dash?: string } = {}): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title, width: 460, height: 300,
    data: { values }, config: { font: 'sans-serif', legend: { labelLimit: 320 } },
    mark: { type: 'line', point: false },
    encoding: {
      x: { field: x, type: 'quantitative', title: x },
      y: { field: y, type: 'quantitative', title: y, ...(opts.logY ? { scale: { type: 'log' } } : {}) },
      color: { field: opts.series ?? 'series', type: 'nominal', title: null },
      ...(opts.dash ? { strokeDash: { field: opts.dash, type: 'nominal', title: null } } : {}),
    },
  } as TopLevelSpec;
}
