/**
 * The learned optimizer's parameters phi: ONE flat vector with named views, a
 * coordinatewise LSTM (Andrychowicz et al. 2016: two layers of 20 units, shared
 * by every coordinate of the optimizee) and a linear output, PyTorch-style names:
 *   lstm.weight_ih_l{k} [4H, in_k]  lstm.weight_hh_l{k} [4H, H]  lstm.bias_l{k} [4H]
 *   out.weight [1, H]  out.bias [1]
 * Gate rows in PyTorch's order (input, forget, cell, output); in_0 = 2 (the
 * preprocessed gradient), in_k = H above. One bias per layer (PyTorch's
 * bias_ih + bias_hh). Init: U(-1/sqrt(H), 1/sqrt(H)) for every entry (PyTorch's
 * nn.LSTM and nn.Linear(H, 1) default).
 */
import { Rng, STREAM } from '../rng/philox.js';
import { Tensor, type FloatArray } from '../tensor/tensor.js';

export interface LstmOptimizerConfig {
  /** Hidden units per layer (Andrychowicz et al.: 20). */
  hidden: number;
  /** LSTM layers (2). */
  layers: number;
  /** Gradient preprocessing constant p (10): (log|g|/p, sign g) if |g| >= e^-p, else (-1, e^p g). */
  preprocessP: number;
  /** The update is outScale * (out.weight h + out.bias) (0.1). */
  outScale: number;
}

export const DEFAULT_LSTM: LstmOptimizerConfig = { hidden: 20, layers: 2, preprocessP: 10, outScale: 0.1 };

export interface LstmParamEntry { name: string; shape: number[]; offset: number; size: number }

export function checkLstmConfig(c: LstmOptimizerConfig): void {
  if (!Number.isInteger(c.hidden) || c.hidden < 1) throw new RangeError(`lstm optimizer: hidden must be a positive integer, got ${c.hidden}`);
  if (!Number.isInteger(c.layers) || c.layers < 1) throw new RangeError(`lstm optimizer: layers must be a positive integer, got ${c.layers}`);
  if (!(c.preprocessP > 0)) throw new RangeError(`lstm optimizer: preprocessP must be > 0, got ${c.preprocessP}`);
  if (!(Number.isFinite(c.outScale) && c.outScale > 0)) throw new RangeError(`lstm optimizer: outScale must be a finite number > 0, got ${c.outScale}`);
}

export class LstmOptimizerLayout {
  readonly config: LstmOptimizerConfig;
  readonly params: LstmParamEntry[] = [];
  readonly numParams: number;
  /** Input features per coordinate (the preprocessed gradient). */
  static readonly INPUTS = 2;

  constructor(config: Partial<LstmOptimizerConfig> = {}) {
    this.config = { ...DEFAULT_LSTM, ...config };
    checkLstmConfig(this.config);
    const h = this.config.hidden;
    let p = 0;
    const add = (name: string, shape: number[]): void => {
      const size = shape.reduce((a, b) => a * b, 1);
      this.params.push({ name, shape, offset: p, size });
      p += size;
    };
    for (let k = 0; k < this.config.layers; k++) {
      add(`lstm.weight_ih_l${k}`, [4 * h, k === 0 ? LstmOptimizerLayout.INPUTS : h]);
      add(`lstm.weight_hh_l${k}`, [4 * h, h]);
      add(`lstm.bias_l${k}`, [4 * h]);
    }
    add('out.weight', [1, h]);
    add('out.bias', [1]);
    this.numParams = p;
  }

  param(name: string): LstmParamEntry {
    const e = this.params.find((x) => x.name === name);
    if (!e) throw new RangeError(`lstm optimizer: no parameter named ${name}`);
    return e;
  }

  check(phi: FloatArray): void {
    if (phi.length !== this.numParams) throw new RangeError(`lstm optimizer: parameter vector has ${phi.length} elements, the layout needs ${this.numParams}`);
  }

  /** A view of one parameter (shares phi's memory). */
  view(phi: FloatArray, name: string): Tensor {
    this.check(phi);
    const e = this.param(name);
    return new Tensor(phi.subarray(e.offset, e.offset + e.size), e.shape);
  }
}

/** Seeded init: every entry U(-1/sqrt(H), 1/sqrt(H)). */
export function initLstmOptimizer(layout: LstmOptimizerLayout, seed: number): Float32Array {
  const phi = new Float32Array(layout.numParams);
  const rng = new Rng(seed, STREAM.init, 7);
  const bound = 1 / Math.sqrt(layout.config.hidden);
  for (let i = 0; i < phi.length; i++) phi[i] = (2 * rng.uniform() - 1) * bound;
  return phi;
}
