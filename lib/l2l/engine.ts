/**
 * The maths of one meta-step's work units, shared by the inline executor and
 * every worker thread: a GROUP is a list of slots run as one stacked program
 * (lib/l2l/unroll.ts). A unit's result depends only on its inputs (phi, the
 * slots, the chunk length), never on which thread runs it; the caller reduces
 * group gradients in group order, so results do not depend on the worker count.
 */
import { getDevice, type Device } from '../device/registry.js';
import { perturbMember } from '../es/noise.js';
import type { FloatArray } from '../tensor/tensor.js';
import { LstmOptimizerLayout, type LstmOptimizerConfig } from './layout.js';
import { createFamily, type FamilyConfig } from './tasks/families.js';
import type { OptimizeeTask, TaskFamily, TaskPart } from './tasks/task.js';
import { newSlot, rollout, unrollGroup, type MetaLossKind, type Slot } from './unroll.js';

export interface TaskRef { part: TaskPart; index: number }

/** A slot as plain data (structured-clonable): the task by reference. */
export interface SlotData { task: TaskRef; t: number; theta: Float32Array; h: Float32Array[]; c: Float32Array[]; grad: Float32Array; loss: number }

export interface UnrollJob { slots: SlotData[]; steps: number; metaLoss: MetaLossKind; slotWeight: number }
export interface UnrollOut { grad: Float64Array; metaLoss: number; slots: SlotData[]; tapePeakBytes: number }

export interface EsJob {
  mu: Float32Array;
  sigma: number;
  antithetic: boolean;
  seed: number;
  step: number;
  /** Members [start, end). */
  start: number;
  end: number;
  /** The meta-batch as groups of tasks, each group one stacked program; fresh trajectories of `horizon` steps. */
  groups: TaskRef[][];
  horizon: number;
  metaLoss: MetaLossKind;
}

export interface EngineSpec { family: FamilyConfig; lstm: LstmOptimizerConfig; device?: string }

const LOG_FLOOR = 1e-30;

export class GroupEngine {
  readonly family: TaskFamily;
  readonly layout: LstmOptimizerLayout;
  readonly device: Device;
  private readonly cache = new Map<string, OptimizeeTask>();

  constructor(readonly spec: EngineSpec) {
    this.family = createFamily(spec.family, spec.device);
    this.layout = new LstmOptimizerLayout(spec.lstm);
    this.device = getDevice(spec.device);
  }

  /** Task (part, index), built once and kept (tasks are pure functions of the family config). */
  task(r: TaskRef): OptimizeeTask {
    const key = `${r.part}:${r.index}`;
    let t = this.cache.get(key);
    if (!t) {
      if (this.cache.size > 4096) this.cache.clear();
      t = this.family.task(r.part, r.index);
      this.cache.set(key, t);
    }
    return t;
  }

  toSlot(d: SlotData): Slot {
    return { task: this.task(d.task), t: d.t, theta: d.theta, h: d.h, c: d.c, grad: d.grad, loss: d.loss };
  }

  static toData(s: Slot): SlotData {
    return { task: { part: s.task.part, index: s.task.index }, t: s.t, theta: s.theta as Float32Array, h: s.h as Float32Array[], c: s.c as Float32Array[], grad: s.grad as Float32Array, loss: s.loss };
  }

  unroll(phi: Float32Array, job: UnrollJob): UnrollOut {
    const slots = job.slots.map((d) => this.toSlot(d));
    const grad = new Float64Array(this.layout.numParams);
    const r = unrollGroup({ device: this.device, layout: this.layout, phi, steps: job.steps, metaLoss: job.metaLoss, slotWeight: job.slotWeight }, slots, grad);
    return { grad, metaLoss: r.metaLoss, slots: slots.map(GroupEngine.toData), tapePeakBytes: r.tapePeakBytes };
  }

  /** Per slot of the meta-batch (groups flattened in order): the mean over steps 1..T of f or log f, for parameters phi. */
  slotMetaLosses(phi: FloatArray, groups: TaskRef[][], horizon: number, kind: MetaLossKind): Float64Array {
    const out: number[] = [];
    for (const g of groups) {
      const slots = g.map((r) => newSlot(this.task(r), this.layout, phi));
      const res = rollout(this.device, this.layout, phi, slots, horizon);
      slots.forEach((_, i) => {
        let s = 0;
        for (let t = 1; t <= horizon; t++) {
          const f = res.losses[i * (horizon + 1) + t]!;
          s += kind === 'log' ? Math.log(Math.max(f, LOG_FLOOR)) : f;
        }
        out.push(s / horizon);
      });
    }
    return Float64Array.from(out);
  }

  /** ES fitness of members [start, end): minus the meta-loss (mean over slots, in slot order) of full forward rollouts. */
  esFitness(job: EsJob): Float64Array {
    const d = job.mu.length, theta = new Float32Array(d), z = new Float32Array(d);
    const out = new Float64Array(job.end - job.start);
    for (let m = job.start; m < job.end; m++) {
      perturbMember(theta, job.mu, { kind: 'gaussian', sigma: job.sigma, antithetic: job.antithetic }, job.seed, job.step, m, z);
      const per = this.slotMetaLosses(theta, job.groups, job.horizon, job.metaLoss);
      let s = 0;
      for (const v of per) s += v;
      out[m - job.start] = -(s / per.length);
    }
    return out;
  }
}

/** Fresh slot data for task r (theta_0, zero state, loss and gradient at theta_0). */
export function freshSlotData(e: GroupEngine, r: TaskRef): SlotData {
  return GroupEngine.toData(newSlot(e.task(r), e.layout, new Float32Array(0)));
}

export interface Executor {
  readonly workers: number;
  /** One result per job, in job order. */
  unroll(phi: Float32Array, jobs: UnrollJob[]): Promise<UnrollOut[]>;
  /** Fitness of members [0, pop) (job.start/end ignored: the executor splits them). */
  esFitness(job: Omit<EsJob, 'start' | 'end'>, pop: number): Promise<Float64Array>;
  close(): Promise<void>;
}

export class InlineExecutor implements Executor {
  readonly workers = 1;
  constructor(readonly engine: GroupEngine) {}
  async unroll(phi: Float32Array, jobs: UnrollJob[]): Promise<UnrollOut[]> { return jobs.map((j) => this.engine.unroll(phi, j)); }
  async esFitness(job: Omit<EsJob, 'start' | 'end'>, pop: number): Promise<Float64Array> { return this.engine.esFitness({ ...job, start: 0, end: pop }); }
  async close(): Promise<void> {}
}
