/** Synthetic metrics.jsonl files for the report tests: the unified schema and the older ES/backprop records. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

type Rec = Record<string, unknown>;

/** A small deterministic generator (LCG) so fixture values look noisy but never change. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const iso = (seconds: number): string => new Date(T0 + seconds * 1000).toISOString();

/** An ES run in the unified schema: start, step records, a validation every valEvery steps, two tests, end. */
export function esRun(seed: number, steps = 120, valEvery = 40): Rec[] {
  const r = lcg(seed);
  const out: Rec[] = [{ type: 'start', time: iso(0), method: 'es', step: 0, config: { pop: 32, sigma: 0.01, seed, model: { channels: 16 } }, preset: 'quick', device: 'cpu-native' }];
  let t = 0.5;
  const val = (step: number): Rec => ({ type: 'val', time: iso(t), step, elapsed_s: t, val_acc: 0.5 + 0.3 * (step / steps) + 0.02 * r(), val_ci95: 0.03, val_loss: 1.2 - 0.5 * (step / steps), best_val: 0.8 });
  out.push(val(0));
  for (let s = 0; s < steps; s++) {
    t += 0.1 + 0.02 * r();
    const loss = 1.5 * Math.exp(-s / 60) + 0.3 + 0.2 * (r() - 0.5);
    out.push({ type: 'step', time: iso(t), step: s + 1, elapsed_s: t, loss, fitness_mean: -loss, fitness_max: -loss + 0.2, sigma: 0.01, g_norm: 0.15 + 0.01 * r(), mu_norm: 9, cand_per_s: 500 + 100 * r(), evals: 32 * (s + 1) });
    if ((s + 1) % valEvery === 0) out.push(val(s + 1));
  }
  out.push({ type: 'test', time: iso(t + 1), checkpoint: '/x/best.safetensors', episodes: 100, way: 5, shot: 5, query: 15, test_acc: 0.81, test_ci95: 0.02, test_loss: 0.55 });
  out.push({ type: 'test', time: iso(t + 2), checkpoint: '/x/best.safetensors', episodes: 100, way: 5, shot: 1, query: 15, test_acc: 0.62, test_ci95: 0.03, test_loss: 1.01 });
  out.push({ type: 'end', time: iso(t + 2), step: steps, end: 'done', best_val: 0.8, best_step: steps });
  return out;
}

/** An ES run as the trainer wrote it before the unified loop: no method, validations without elapsed_s, no end record. */
export function oldEsRun(seed: number, steps = 60): Rec[] {
  const r = lcg(seed);
  const out: Rec[] = [{ type: 'start', time: iso(0), step: 0, resumed_from: null, preset: 'quick', config: { pop: 32, seed }, device: 'cpu-native' }];
  out.push({ type: 'val', time: iso(0.6), step: 0, val_acc: 0.6, val_ci95: 0.04, val_loss: 1.6, best_val: 0.6 });
  let t = 0.75;
  for (let s = 0; s < steps; s++) {
    out.push({ type: 'step', time: iso(t), step: s, loss: 1 - s / 100 + 0.1 * r(), fitness_mean: -1, fitness_max: -0.5, nonfinite: 0, degenerate: 0, sigma: 0.01, g_norm: 0.15, mu_norm: 9, step_s: 0.1, cand_per_s: 300, elapsed_s: t });
    t += 0.1;
  }
  out.push({ type: 'val', time: iso(t + 0.5), step: steps, val_acc: 0.7, val_ci95: 0.03, val_loss: 0.8, best_val: 0.7 });
  return out;
}

/** A backprop run as the trainer wrote it before the unified loop: episode records, val with episode, epoch summaries. */
export function oldBackpropRun(seed: number, episodes = 40, perEpoch = 20): Rec[] {
  const r = lcg(seed);
  const out: Rec[] = [{ type: 'val', time: iso(0.4), epoch: 0, episode: 0, val_loss: 1.6, val_acc: 0.5, val_ci95: 0.05, best_val: 0.5, improved: true }];
  let t = 1;
  for (let e = 0; e < episodes; e++) {
    out.push({ type: 'episode', time: iso(t), episode: e, epoch: 1 + Math.floor(e / perEpoch), loss: 2 - e / 30 + 0.2 * r(), acc: 0.5 + (0.4 * e) / episodes, lr: e < 30 ? 0.001 : 0.0005, episode_s: 1.5, tape_peak_bytes: 1e9, elapsed_s: t });
    t += 1.5;
    if ((e + 1) % perEpoch === 0) {
      out.push({ type: 'val', time: iso(t), epoch: (e + 1) / perEpoch, episode: e + 1, val_loss: 0.5, val_acc: 0.9 + e / 1000, val_ci95: 0.01, best_val: 0.95, improved: true });
      out.push({ type: 'epoch', time: iso(t), epoch: (e + 1) / perEpoch, episode: e + 1, train_loss: 0.6, train_acc: 0.85, val_loss: 0.5, val_acc: 0.9, best_val: 0.95 });
    }
  }
  out.push({ type: 'test', time: iso(t + 1), checkpoint: '/y/best.safetensors', episodes: 50, way: 5, shot: 5, query: 15, test_acc: 0.97, test_ci95: 0.01, test_loss: 0.1, seconds: 3 });
  return out;
}

/** Write records as metrics.jsonl in dir (created); `tail` is appended verbatim (e.g. a torn last line). */
export function writeRun(dir: string, records: Rec[], tail = ''): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'metrics.jsonl'), records.map((x) => JSON.stringify(x) + '\n').join('') + tail);
  return dir;
}
