/**
 * Meta-training the learned optimizer as a TrainMethod (lib/train/method.ts):
 * the loop owns schedules, checkpoints, progress and Ctrl-C; this owns phi,
 * Adam on phi, the task pool and its clustering, the trajectories in progress
 * and one meta-step.
 *
 * bptt: a trajectory of T optimizee steps is cut into chunks of K; meta-step s
 * is chunk s mod ceil(T/K) of meta-batch floor(s / ceil(T/K)) (B tasks from the
 * sampler: random, or one cluster), its groups (stacked programs of groupSize
 * tasks) run on the executor (inline or worker threads), their gradients summed
 * in group order, one Adam step. es: meta-step s draws meta-batch s, every
 * member of the population runs full T-step forward rollouts (no truncation,
 * memory flat in T), WSR weights, Adam on minus the ES estimate.
 */
import type { ExportedModel, MethodState, StepMetrics, TrainMethod, ValResult } from '../train/method.js';
import { createOptimizer, type Optimizer } from '../optim/optimizers.js';
import { UserError } from '../errors.js';
import { initLstmOptimizer } from './layout.js';
import { clusterTasks, MetaBatchSampler, taskFeatures, type Clustering } from './cluster.js';
import { freshSlotData, GroupEngine, InlineExecutor, type Executor, type SlotData, type TaskRef, type UnrollJob } from './engine.js';
import { WorkerExecutor } from './pool.js';
import { esMetaGradient } from './es-adapter.js';
import { rollout, newSlot } from './unroll.js';
import { resolveL2lConfig, type L2lConfig, type L2lConfigInput } from './config.js';

export const L2L_STATE_FORMAT = 'evometa-l2l-state-1';

export interface L2lMethodOptions {
  /** Worker threads for the groups (bptt) or members (es); never changes the result. Default 1 (inline). */
  workers?: number;
  /** Device for the LSTM and the optimizees' models (default: the best available). */
  device?: string;
}

export interface TaskEvaluation {
  result: ValResult;
  /** Mean over the tasks of the loss after t steps, t = 0..T. */
  curve: number[];
}

function copySlot(s: SlotData): SlotData {
  return { task: { ...s.task }, t: s.t, theta: s.theta.slice(), h: s.h.map((a) => a.slice()), c: s.c.map((a) => a.slice()), grad: s.grad.slice(), loss: s.loss };
}

/**
 * Meta-training of the coordinatewise LSTM optimizer (Andrychowicz et al. 2016) as a TrainMethod:
 * truncated backprop through unrolled optimizee steps, or ES, over meta-batches of tasks (random or
 * from one cluster), on worker threads (docs/l2l.md).
 */
export class L2lMethod implements TrainMethod {
  readonly name = 'l2l';
  readonly workUnit = 'optimizee steps';
  readonly scoreFormat = 'number';
  step = 0;
  readonly phi: Float32Array;
  /** Trajectories in progress (bptt), one per meta-batch task. */
  slots: SlotData[] | null = null;
  readonly sampler: MetaBatchSampler;
  private readonly opt: Optimizer;
  private lastCluster = -1;

  private constructor(readonly config: L2lConfig, readonly engine: GroupEngine, readonly executor: Executor, readonly clustering: Clustering | null) {
    this.phi = initLstmOptimizer(engine.layout, config.seed);
    this.opt = createOptimizer({ name: 'adam', lr: config.metaLr });
    this.sampler = new MetaBatchSampler(config.poolSize, config.metaBatch, config.batchMode, config.seed, clustering ?? undefined);
  }

  /** Resolve the configuration, build the pool's clustering (batchMode 'cluster') and the executor. */
  static async create(input: L2lConfigInput | L2lConfig, preset?: string, opts: L2lMethodOptions = {}): Promise<L2lMethod> {
    const cfg = resolveL2lConfig(input as L2lConfigInput, preset);
    const spec = { family: cfg.family, lstm: cfg.lstm, ...(opts.device !== undefined ? { device: opts.device } : {}) };
    const engine = new GroupEngine(spec);
    let clustering: Clustering | null = null;
    if (cfg.batchMode === 'cluster') {
      const pool = Array.from({ length: cfg.poolSize }, (_, i) => engine.task({ part: 'train', index: i }));
      clustering = clusterTasks(pool.map(taskFeatures), cfg.clusters, cfg.seed, pool.map((t) => t.shapeKey));
    }
    const workers = opts.workers ?? 1;
    const executor = workers > 1 ? await WorkerExecutor.create(workers, spec) : new InlineExecutor(engine);
    return new L2lMethod(cfg, engine, executor, clustering);
  }

  get totalSteps(): number { return this.config.steps; }
  get chunksPerTrajectory(): number { return Math.ceil(this.config.horizon / this.config.unroll); }

  private groups<T>(items: T[]): T[][] {
    const out: T[][] = [];
    for (let i = 0; i < items.length; i += this.config.groupSize) out.push(items.slice(i, i + this.config.groupSize));
    return out;
  }

  async trainStep(signal?: AbortSignal): Promise<StepMetrics | null> {
    if (signal?.aborted) return null;
    return this.config.trainer === 'es' ? this.esStep(signal) : this.bpttStep(signal);
  }

  private async bpttStep(signal?: AbortSignal): Promise<StepMetrics | null> {
    const c = this.config, chunk = this.step % this.chunksPerTrajectory;
    let slots = this.slots;
    let cluster = this.lastCluster;
    if (chunk === 0 || !slots) {
      const b = this.sampler.draw(Math.floor(this.step / this.chunksPerTrajectory));
      slots = b.tasks.map((i) => freshSlotData(this.engine, { part: 'train', index: i }));
      cluster = b.cluster;
    } else slots = slots.map(copySlot);
    const steps = Math.min(c.unroll, c.horizon - chunk * c.unroll);
    const jobs: UnrollJob[] = this.groups(slots).map((g) => ({ slots: g, steps, metaLoss: c.metaLoss, slotWeight: 1 / c.metaBatch }));
    const t0 = performance.now();
    const outs = await this.executor.unroll(this.phi, jobs);
    if (signal?.aborted) return null;
    const grad = new Float64Array(this.phi.length);
    let meta = 0, peak = 0;
    for (const o of outs) {
      for (let j = 0; j < grad.length; j++) grad[j] = grad[j]! + o.grad[j]!;
      meta += o.metaLoss;
      peak = Math.max(peak, o.tapePeakBytes);
    }
    this.opt.step(this.phi, grad);
    this.slots = outs.flatMap((o) => o.slots);
    this.lastCluster = cluster;
    this.step++;
    let fin = 0;
    for (const s of this.slots) fin += Math.log10(Math.max(s.loss, 1e-30));
    return { loss: meta, work: c.metaBatch * steps, log10_task_loss: fin / this.slots.length, cluster, tape_peak_bytes: peak, seconds: (performance.now() - t0) / 1000 };
  }

  private async esStep(signal?: AbortSignal): Promise<StepMetrics | null> {
    const c = this.config, b = this.sampler.draw(this.step);
    const groups = this.groups(b.tasks.map((i): TaskRef => ({ part: 'train', index: i })));
    const t0 = performance.now();
    const r = await esMetaGradient({
      mu: this.phi, pop: c.es.pop, sigma: c.es.sigma, antithetic: c.es.antithetic, seed: c.seed, step: this.step,
      fitness: (pop) => this.executor.esFitness({ mu: this.phi, sigma: c.es.sigma, antithetic: c.es.antithetic, seed: c.seed, step: this.step, groups, horizon: c.horizon, metaLoss: c.metaLoss }, pop),
    });
    if (signal?.aborted) return null;
    this.opt.step(this.phi, r.grad);
    this.lastCluster = b.cluster;
    this.step++;
    let s = 0;
    for (const f of r.fitness) s += f;
    return { loss: -s / r.fitness.length, work: c.es.pop * c.metaBatch * c.horizon, cluster: b.cluster, non_finite: r.nonFinite, seconds: (performance.now() - t0) / 1000 };
  }

  /** The learned optimizer (current phi) on the validation tasks for T steps, forward only, all tasks in one program. */
  async validate(): Promise<ValResult> {
    return this.evaluateTasks('val', this.config.valTasks).result;
  }

  /** Score on `count` tasks of `part`: mean accuracy where the family has one, else minus the mean log10 final loss. */
  evaluateTasks(part: 'val' | 'test', count: number, phi: Float32Array = this.phi): TaskEvaluation {
    if (count < 1) throw new UserError(`l2l: no ${part} tasks to evaluate (valTasks is ${count})`);
    const T = this.config.horizon;
    const tasks = Array.from({ length: count }, (_, i) => this.engine.task({ part, index: i }));
    const slots = tasks.map((t) => newSlot(t, this.engine.layout, phi));
    const r = rollout(this.engine.device, this.engine.layout, phi, slots, T);
    const curve = new Array<number>(T + 1).fill(0);
    for (let i = 0; i < count; i++) for (let t = 0; t <= T; t++) curve[t] = curve[t]! + r.losses[i * (T + 1) + t]! / count;
    let logSum = 0, lossSum = 0, accSum = 0, accN = 0;
    slots.forEach((s) => {
      const e = s.task.evaluate(s.theta);
      lossSum += e.loss;
      logSum += Math.log10(Math.max(e.loss, 1e-30));
      if (e.accuracy !== undefined) { accSum += e.accuracy; accN++; }
    });
    const score = accN === count ? accSum / count : -logSum / count;
    return { result: { score, loss: lossSum / count, log10_loss: logSum / count, ...(accN === count ? { accuracy: accSum / count } : {}) }, curve };
  }

  saveState(): MethodState {
    const o = this.opt.state();
    const tensors: MethodState['tensors'] = { phi: this.phi.slice() };
    for (const [k, v] of Object.entries(o.tensors)) tensors[`adam.${k}`] = v;
    (this.slots ?? []).forEach((s, i) => {
      tensors[`slot.${i}.theta`] = s.theta.slice();
      tensors[`slot.${i}.grad`] = s.grad.slice();
      s.h.forEach((a, k) => { tensors[`slot.${i}.h${k}`] = a.slice(); });
      s.c.forEach((a, k) => { tensors[`slot.${i}.c${k}`] = a.slice(); });
    });
    return {
      tensors,
      meta: {
        format: L2L_STATE_FORMAT, config: this.config, step: this.step, adamStep: o.step, lastCluster: this.lastCluster,
        slots: this.slots?.map((s) => ({ task: s.task, t: s.t, loss: s.loss })) ?? null,
      },
    };
  }

  loadState(st: MethodState): void {
    const m = st.meta as { format?: string; step: number; adamStep: number; lastCluster: number; slots: { task: TaskRef; t: number; loss: number }[] | null; config: L2lConfig };
    if (m.format !== L2L_STATE_FORMAT) throw new UserError(`not a learned-optimizer training state (format ${JSON.stringify(m.format)}, expected ${L2L_STATE_FORMAT})`);
    const want = JSON.stringify({ ...this.config, steps: 0 }), got = JSON.stringify({ ...m.config, steps: 0 });
    if (want !== got) throw new UserError(`the saved state was made with another configuration (only steps may change on resume): saved ${got}, now ${want}`);
    const need = (k: string): Float32Array => {
      const t = st.tensors[k];
      if (!(t instanceof Float32Array)) throw new UserError(`learned-optimizer state: tensor ${k} is missing or not float32`);
      return t;
    };
    this.phi.set(need('phi'));
    const adam: Record<string, Float32Array> = {};
    for (const k of Object.keys(st.tensors)) if (k.startsWith('adam.')) adam[k.slice(5)] = need(k).slice();
    this.opt.load({ step: m.adamStep, tensors: adam });
    this.step = m.step;
    this.lastCluster = m.lastCluster;
    const L = this.engine.layout.config.layers;
    this.slots = m.slots?.map((s, i) => ({
      task: s.task, t: s.t, loss: s.loss, theta: need(`slot.${i}.theta`).slice(), grad: need(`slot.${i}.grad`).slice(),
      h: Array.from({ length: L }, (_, k) => need(`slot.${i}.h${k}`).slice()), c: Array.from({ length: L }, (_, k) => need(`slot.${i}.c${k}`).slice()),
    })) ?? null;
  }

  exportModel(): ExportedModel {
    const tensors: ExportedModel['tensors'] = {};
    for (const e of this.engine.layout.params) tensors[e.name] = { shape: e.shape, data: this.phi.slice(e.offset, e.offset + e.size) };
    return { tensors, metadata: { format: 'evometa-l2l-lstm-1', lstm: JSON.stringify(this.config.lstm), family: JSON.stringify(this.config.family) } };
  }

  async close(): Promise<void> { await this.executor.close(); }
}
