/**
 * A small MLP classifying Omniglot characters (the learned optimizer's second
 * optimizee, after Andrychowicz et al.'s MNIST MLP): input S x S (28, or 14 for
 * a CPU budget), one sigmoid hidden layer of H units (20), `classes` outputs
 * (10). Task (part, index): `classes` classes of the Vinyals split's part
 * (train/val/test), optionally all from one alphabet; the first `trainPerClass`
 * drawings of each class train (minibatches of `batch`, minibatch t drawn by
 * (task, t)), the other drawings are held out for evaluate(). Parameters in
 * PyTorch's nn.Linear layout (fc1.weight [H, S^2], fc1.bias, fc2.weight [C, H],
 * fc2.bias), init U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Loss and gradient on the tape.
 */
import { getDevice, type Device } from '../../device/registry.js';
import { Tape, type Var } from '../../autodiff/tape.js';
import { DirectOps, type DenseOps } from '../../ops/api.js';
import { Rng, STREAM } from '../../rng/philox.js';
import { Tensor, allocLike, type FloatArray } from '../../tensor/tensor.js';
import { loadOmniglot, type OmniglotDataset } from '../../data/omniglot.js';
import { getSplit, type OmniglotClass } from '../../data/splits.js';
import { DRAWINGS } from '../../data/raw.js';
import { taskLane, type OptimizeeTask, type TaskEval, type TaskFamily, type TaskPart } from './task.js';

export interface MlpConfig {
  family: 'mlp';
  /** Hidden units of each task, drawn uniformly from this list ([20]). */
  hidden: number[];
  classes: number;
  imageSize: number;
  trainPerClass: number;
  batch: number;
  /** All of a task's classes from one alphabet (else from the whole split). */
  sameAlphabet: boolean;
  /** Omniglot: a directory of Lake's zips (default: the embedded copy). */
  dataDir?: string;
  seed: number;
}

export const DEFAULT_MLP: MlpConfig = { family: 'mlp', hidden: [20], classes: 10, imageSize: 14, trainPerClass: 15, batch: 32, sameAlphabet: false, seed: 0 };

export function checkMlpConfig(c: MlpConfig): void {
  if (!Array.isArray(c.hidden) || c.hidden.length === 0 || !c.hidden.every((h) => Number.isInteger(h) && h >= 1)) throw new RangeError(`mlp: hidden must be a non-empty list of positive integers, got ${JSON.stringify(c.hidden)}`);
  if (!Number.isInteger(c.classes) || c.classes < 2) throw new RangeError(`mlp: classes must be an integer >= 2, got ${c.classes}`);
  if (!Number.isInteger(c.imageSize) || c.imageSize < 4 || c.imageSize > 105) throw new RangeError(`mlp: imageSize must be an integer in [4, 105], got ${c.imageSize}`);
  if (!Number.isInteger(c.trainPerClass) || c.trainPerClass < 1 || c.trainPerClass >= DRAWINGS) throw new RangeError(`mlp: trainPerClass must be an integer in [1, ${DRAWINGS - 1}], got ${c.trainPerClass}`);
  if (!Number.isInteger(c.batch) || c.batch < 1) throw new RangeError(`mlp: batch must be a positive integer, got ${c.batch}`);
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff) throw new RangeError(`mlp: seed must be an integer in [0, 2^32), got ${c.seed}`);
}

const PART_SPLIT: Record<TaskPart, 'train' | 'val' | 'test'> = { train: 'train', val: 'val', test: 'test' };

export class MlpTask implements OptimizeeTask {
  readonly family = 'mlp';
  readonly n: number;
  readonly shapeKey: string;
  private readonly x = new Map<string, { train: Tensor; eval: Tensor }>();

  constructor(readonly part: TaskPart, readonly index: number, readonly cfg: MlpConfig, readonly hidden: number, private readonly device: Device,
    private readonly trainX: Float64Array, readonly trainY: Int32Array, private readonly evalX: Float64Array, readonly evalY: Int32Array,
    private readonly theta0: Float64Array, private readonly seed: number, readonly classKeys: string[]) {
    const d = cfg.imageSize ** 2;
    this.n = hidden * d + hidden + cfg.classes * hidden + cfg.classes;
    this.shapeKey = `mlp:${d}-${hidden}-${cfg.classes}`;
  }

  initialParams(like: FloatArray): FloatArray {
    const t = allocLike(like, this.n);
    t.set(this.theta0);
    return t;
  }

  private data(like: FloatArray): { train: Tensor; eval: Tensor } {
    const key = like instanceof Float64Array ? 'f64' : 'f32';
    let v = this.x.get(key);
    if (!v) {
      const d = this.cfg.imageSize ** 2;
      const cvt = (a: Float64Array): FloatArray => { const o = allocLike(like, a.length); o.set(a); return o; };
      v = { train: new Tensor(cvt(this.trainX), [this.trainY.length, d]), eval: new Tensor(cvt(this.evalX), [this.evalY.length, d]) };
      this.x.set(key, v);
    }
    return v;
  }

  /** Logits of rows of x for theta, on ops (leaves via `leaf` on a tape). */
  private logits<V>(ops: DenseOps<V>, theta: FloatArray, x: V, leaf: (t: Tensor, off: number) => V): V {
    const d = this.cfg.imageSize ** 2, h = this.hidden, c = this.cfg.classes;
    let o = 0;
    const view = (shape: number[]): V => {
      const size = shape.reduce((a, b) => a * b, 1);
      const v = leaf(new Tensor(theta.subarray(o, o + size), shape), o);
      o += size;
      return v;
    };
    const w1 = view([h, d]), b1 = view([h]), w2 = view([c, h]), b2 = view([c]);
    const hid = ops.sigmoid(ops.add(ops.matmul(x, w1, false, true), b1));
    return ops.add(ops.matmul(hid, w2, false, true), b2);
  }

  /** Minibatch `step`: `batch` training rows drawn with replacement by Rng(seed, task lane, step). */
  private batchRows(step: number, like: FloatArray): { x: Tensor; y: Int32Array } {
    const { train } = this.data(like), d = this.cfg.imageSize ** 2, b = this.cfg.batch;
    const rng = new Rng(this.seed, STREAM.sampler, taskLane(this.part, this.index));
    rng.setState(step * 2 ** 20); // a disjoint window of draws per step
    const xs = allocLike(like, b * d), ys = new Int32Array(b);
    for (let i = 0; i < b; i++) {
      const r = rng.int(this.trainY.length);
      xs.set(train.data.subarray(r * d, (r + 1) * d), i * d);
      ys[i] = this.trainY[r]!;
    }
    return { x: new Tensor(xs, [b, d]), y: ys };
  }

  lossGrad(theta: FloatArray, step: number, grad: FloatArray): number {
    if (theta.length !== this.n || grad.length !== this.n) throw new RangeError(`mlp task ${this.index}: theta/grad have ${theta.length}/${grad.length} elements, expected ${this.n}`);
    const { x, y } = this.batchRows(step, theta);
    const tape = new Tape(this.device);
    const loss = tape.crossEntropy(tape.logSoftmax(this.logits(tape, theta, tape.constant(x), (t, off) => tape.leaf(t, off))), y);
    grad.fill(0);
    tape.backward(loss, grad);
    return loss.value.data[0]!;
  }

  evaluate(theta: FloatArray): TaskEval {
    const ops = new DirectOps(this.device), { eval: ex } = this.data(theta);
    const z = this.logits(ops, theta, ex, (t) => t);
    const loss = ops.crossEntropy(ops.logSoftmax(z), this.evalY).data[0]!;
    return { loss, accuracy: this.device.run('accuracy', { scores: z, labels: this.evalY }, {}) };
  }
}

export class MlpFamily implements TaskFamily {
  readonly name = 'mlp';
  private data: OmniglotDataset | null = null;
  private readonly classes = new Map<TaskPart, readonly OmniglotClass[]>();
  private readonly device: Device;
  constructor(readonly config: MlpConfig, device?: string) {
    checkMlpConfig(config);
    this.device = getDevice(device);
  }

  private dataset(): OmniglotDataset {
    this.data ??= loadOmniglot({ imageSize: this.config.imageSize, ...(this.config.dataDir !== undefined ? { dataDir: this.config.dataDir } : {}) });
    return this.data;
  }

  private split(part: TaskPart): readonly OmniglotClass[] {
    let c = this.classes.get(part);
    if (!c) { c = getSplit(this.dataset(), 'vinyals', PART_SPLIT[part]).classes; this.classes.set(part, c); }
    return c;
  }

  task(part: TaskPart, index: number): MlpTask {
    const c = this.config, ds = this.dataset(), all = this.split(part);
    const rng = new Rng(c.seed, STREAM.general, taskLane(part, index));
    const hidden = c.hidden[rng.int(c.hidden.length)]!;
    let pool: number[] = all.map((_, i) => i);
    if (c.sameAlphabet) {
      const alphabetOf = (i: number): string => ds.characters[all[i]!.character]!.alphabet;
      const a = alphabetOf(rng.int(all.length));
      pool = pool.filter((i) => alphabetOf(i) === a);
    }
    if (pool.length < c.classes) throw new RangeError(`mlp task ${part}/${index}: ${pool.length} classes available, ${c.classes} needed`);
    const picked = Array.from(rng.choose(pool.length, c.classes), (i) => all[pool[i]!]!);
    const d = c.imageSize ** 2, ntr = c.trainPerClass, nev = DRAWINGS - ntr;
    const trainX = new Float64Array(c.classes * ntr * d), evalX = new Float64Array(c.classes * nev * d);
    const trainY = new Int32Array(c.classes * ntr), evalY = new Int32Array(c.classes * nev);
    const img = new Float32Array(d);
    picked.forEach((cls, k) => {
      for (let j = 0; j < DRAWINGS; j++) {
        ds.imageInto(cls.character, j, cls.rotation, img, 0);
        if (j < ntr) { trainX.set(img, (k * ntr + j) * d); trainY[k * ntr + j] = k; }
        else { evalX.set(img, (k * nev + j - ntr) * d); evalY[k * nev + j - ntr] = k; }
      }
    });
    const n = hidden * d + hidden + c.classes * hidden + c.classes, theta0 = new Float64Array(n);
    const b1 = 1 / Math.sqrt(d), b2 = 1 / Math.sqrt(hidden);
    for (let i = 0; i < n; i++) theta0[i] = (2 * rng.uniform() - 1) * (i < hidden * d + hidden ? b1 : b2);
    const keys = picked.map((cl) => `${ds.characters[cl.character]!.alphabet}/${ds.characters[cl.character]!.character}/rot${cl.rotation}`);
    return new MlpTask(part, index, c, hidden, this.device, trainX, trainY, evalX, evalY, theta0, c.seed, keys);
  }
}
