/**
 * The contract between the one training loop (lib/train/loop.ts) and a
 * training method (ES-ProtoNet, backprop, EvoGrad, a learned optimizer, ...).
 *
 * A method owns the maths: its parameters, optimizer, data and one step. The
 * loop owns everything around it: the validation schedule, best-so-far
 * tracking, atomic checkpoints that resume bit for bit, metrics records,
 * progress, wall-clock limits, Ctrl-C, collapse handling and closing workers on
 * every exit path. A method is deterministic in (its saved state, its step):
 * saveState() after step k and loadState() in a fresh process continue exactly
 * as an uninterrupted run would.
 */
import type { StData } from '../io/safetensors.js';

/** Numbers of one training step, written to the metrics 'step' record (snake_case keys). */
export interface StepMetrics {
  /** The step's training loss (what collapse detection watches). */
  loss: number;
  /** Work done in this step in the method's unit (ES: member evaluations; backprop: episodes). */
  work?: number;
  [key: string]: number | undefined;
}

/** A validation pass: higher score is better (accuracy for few-shot models). */
export interface ValResult {
  score: number;
  ci95?: number;
  loss?: number;
  [key: string]: number | undefined;
}

/** Everything a method needs to resume: float tensors and JSON-serializable values. */
export interface MethodState {
  tensors: Record<string, Float32Array | Float64Array>;
  meta: Record<string, unknown>;
}

/** A model in PyTorch state_dict form (safetensors-ready), for best/last checkpoints a user can load. */
export interface ExportedModel {
  tensors: Record<string, { shape: number[]; data: StData }>;
  metadata: Record<string, string>;
}

export interface TrainMethod {
  /** 'es', 'backprop', 'evograd', 'l2l', ... (recorded in metrics and checkpoints). */
  readonly name: string;
  /** The resolved configuration (JSON-serializable), saved with every checkpoint. */
  readonly config: object;
  /** Index of the next step (= steps done). */
  readonly step: number;
  /** The loop runs until step === totalSteps (or a stop). */
  readonly totalSteps: number;
  /** Unit of StepMetrics.work for progress and reports, e.g. 'member evaluations'. */
  readonly workUnit?: string;
  /**
   * One training step. Resolve null when `signal` aborted it before it
   * completed: the method's state must then be exactly what it was before.
   */
  trainStep(signal?: AbortSignal): Promise<StepMetrics | null>;
  /** A validation pass on fixed held-out data (absent: the run has no validation). */
  validate?(): Promise<ValResult>;
  /** Score at which validation counts as collapsed (e.g. chance accuracy 1/way). */
  readonly chanceScore?: number;
  /** Training loss of guessing (ln way): a loss window above it, exploding, is a collapse. */
  readonly chanceLoss?: number;
  /** Metrics key of the cumulative work (default 'work'; ES: 'evals'). */
  readonly workKey?: string;
  saveState(): MethodState;
  loadState(state: MethodState): void;
  /** The model to write as best/last .safetensors (absent: only the state file is written). */
  exportModel?(): ExportedModel;
  /** Release workers, native resources. Called on every exit path, once. */
  close(): Promise<void>;
}
