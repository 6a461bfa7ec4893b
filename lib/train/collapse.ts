/**
 * Collapse detection for the training loop (the ES paper saw accuracy fall to
 * chance at alpha = 25, sigma = 0.25): the training loss is NaN/inf, or its
 * mean over a window of steps exceeds `lossFactor` times the best window mean
 * so far while being worse than the method's chance loss (ln way for a
 * way-class episode); or validation stays at chance (at most the method's
 * chance score + CHANCE_MARGIN) for `valChecks` validations in a row.
 */

export const CHANCE_MARGIN = 0.05;

export interface CollapseConfig { window: number; lossFactor: number; valChecks: number }

export interface CollapseState { recent: number[]; bestWindowMean: number | null; chanceRun: number }

export class CollapseDetector {
  private s: CollapseState = { recent: [], bestWindowMean: null, chanceRun: 0 };
  constructor(readonly cfg: CollapseConfig) {}

  /** Returns a reason when the run has collapsed; `chanceLoss` is the loss of guessing (ln way), Infinity if unknown. */
  observeLoss(step: number, loss: number, chanceLoss = Infinity): string | null {
    if (!Number.isFinite(loss)) return `the training loss is ${loss} at step ${step}`;
    const w = this.cfg.window;
    if (w <= 0) return null;
    this.s.recent.push(loss);
    if (this.s.recent.length > w) this.s.recent.shift();
    if (this.s.recent.length < w) return null;
    let sum = 0;
    for (const x of this.s.recent) sum += x;
    const mean = sum / w;
    const best = this.s.bestWindowMean;
    if (best === null || mean < best) this.s.bestWindowMean = mean;
    if (best !== null && mean > this.cfg.lossFactor * best && mean > chanceLoss) {
      return `the training loss exploded: mean ${mean.toPrecision(4)} over the last ${w} steps (step ${step}) is over ${this.cfg.lossFactor} x the best window mean ${best.toPrecision(4)}${Number.isFinite(chanceLoss) ? ` and worse than chance (${chanceLoss.toFixed(3)})` : ''}`;
    }
    return null;
  }

  /** `chance` is the validation score of guessing (1/way for accuracy). */
  observeVal(step: number, acc: number, chance: number): string | null {
    if (this.cfg.valChecks <= 0) return null;
    if (Number.isFinite(acc) && acc > chance + CHANCE_MARGIN) {
      this.s.chanceRun = 0;
      return null;
    }
    this.s.chanceRun++;
    if (this.s.chanceRun >= this.cfg.valChecks) {
      return `validation score ${(acc * 100).toFixed(1)}% is at chance (${(chance * 100).toFixed(1)}%) for ${this.s.chanceRun} validations in a row (step ${step})`;
    }
    return null;
  }

  state(): CollapseState { return { recent: [...this.s.recent], bestWindowMean: this.s.bestWindowMean, chanceRun: this.s.chanceRun }; }

  load(s: CollapseState): void { this.s = { recent: [...s.recent], bestWindowMean: s.bestWindowMean, chanceRun: s.chanceRun }; }
}
