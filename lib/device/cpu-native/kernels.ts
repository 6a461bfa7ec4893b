/**
 * cpu-native: every op of the contract, float32 in C++ (native/core). Float64 inputs run the
 * cpu-ts kernels explicitly (the device info says so). Shapes are checked here with the
 * shared helpers and again, with the array types and lengths, in C++ (native/napi/args.cc).
 */
import '../cpu-ts/index.js';
import { kernelsFor, registerKernel } from '../registry.js';
import type { Kernel, OpName } from '../../ops/contract.js';
import { Tensor, assertShape, sizeOf } from '../../tensor/tensor.js';
import { conv2dGeometry, poolOutSize } from '../../tensor/shape.js';
import { addon } from './addon.js';

const DEVICE = 'cpu-native';

function anyF64(...ts: (Tensor | undefined)[]): boolean {
  return ts.some((t) => t !== undefined && t.data instanceof Float64Array);
}

/** Registers `native` for float32 and the cpu-ts kernel for float64 inputs. */
function register<K extends OpName>(op: K, tensors: (inputs: Parameters<Kernel<K>>[0]) => (Tensor | undefined)[], native: Kernel<K>): void {
  registerKernel(op, DEVICE, ((inputs, attrs) => {
    if (anyF64(...tensors(inputs))) {
      const ref = kernelsFor('cpu-ts').get(op) as Kernel<K> | undefined;
      if (!ref) throw new Error(`cpu-native: no cpu-ts kernel for float64 ${op}`);
      return ref(inputs, attrs);
    }
    return native(inputs, attrs);
  }) as Kernel<K>);
}

function f32(n: number): Float32Array {
  return new Float32Array(n);
}

/** Outputs below this many elements are plain zeroed arrays, never pooled. */
const POOL_MIN = 16384;

/**
 * Large op outputs reused across calls of withOutputPool (a training step: forward and backward
 * allocate the same sizes every time). Every fresh ArrayBuffer counts as external memory to V8,
 * and a step allocates about 0.7 GB of them (C = 64, 20-way 5-shot 15-query), which set off a
 * dozen or more garbage collections per step (a tenth of the step's time, measured with
 * --trace-gc); reused buffers do not. Free buffers are kept by byte length; those not reused by
 * the next scope are dropped (shapes changed), so the pool never holds more than about two steps'
 * worth.
 */
class OutputPool {
  private free = new Map<number, ArrayBuffer[]>();
  private taken: ArrayBuffer[] = [];
  private depth = 0;

  get active(): boolean { return this.depth > 0; }

  take(bytes: number): ArrayBuffer {
    const list = this.free.get(bytes);
    const b = list?.pop() ?? (Buffer.allocUnsafeSlow(bytes).buffer as ArrayBuffer);
    this.taken.push(b);
    return b;
  }

  scope<T>(fn: () => T): T {
    if (this.depth > 0) return fn();  // nested: the outer scope recycles
    this.depth++;
    try {
      return fn();
    } finally {
      this.depth--;
      // what was not reused this time is dropped; what was handed out becomes free
      this.free = new Map();
      for (const b of this.taken) {
        const list = this.free.get(b.byteLength);
        if (list) list.push(b);
        else this.free.set(b.byteLength, [b]);
      }
      this.taken = [];
    }
  }
}

const pool = new OutputPool();

/**
 * Runs `fn` with cpu-native's large op outputs drawn from a pool that the next call reuses:
 * every tensor cpu-native returns inside `fn` is recycled when `fn` returns, so none may be
 * used after it (copy what must survive). Synchronous only.
 */
export function withOutputPool<T>(fn: () => T): T {
  return pool.scope(fn);
}

/**
 * An uninitialized output for a kernel that writes every element (no zero-fill pass over the
 * large activation-sized outputs); small ones stay zeroed.
 */
function f32Out(n: number): Float32Array {
  if (n < POOL_MIN) return new Float32Array(n);
  if (pool.active) return new Float32Array(pool.take(n * 4), 0, n);
  return new Float32Array(Buffer.allocUnsafeSlow(n * 4).buffer, 0, n);
}

/** An argmax output (the kernel writes every element). */
function i32Out(n: number): Int32Array {
  if (n >= POOL_MIN && pool.active) return new Int32Array(pool.take(n * 4), 0, n);
  return new Int32Array(n);
}

function rank4(t: Tensor, what: string): number[] {
  if (t.rank !== 4) throw new RangeError(`${what}: input must be NCHW, got shape [${t.shape.join(', ')}]`);
  return [...t.shape];
}

function mat(t: Tensor, what: string): [number, number] {
  if (t.rank !== 2) throw new RangeError(`${what}: expected [rows, columns], got [${t.shape.join(', ')}]`);
  return [t.shape[0]!, t.shape[1]!];
}

function pair(q: Tensor, p: Tensor, what: string): { m: number; k: number; e: number } {
  const [m, e] = mat(q, what), [k, e2] = mat(p, what);
  if (e !== e2) throw new RangeError(`${what}: expected q [M, E] and p [K, E], got [${q.shape.join(', ')}] and [${p.shape.join(', ')}]`);
  return { m, k, e };
}

register('conv2d', ({ x, w, b }) => [x, w, b], ({ x, w, b }, { stride, padding }) => {
  const g = conv2dGeometry(x.shape, w.shape, stride, padding);
  if (b) assertShape(b, [g.cout], 'conv2d bias');
  const y = f32Out(g.n * g.cout * g.oh * g.ow);
  addon().conv2d({ x: x.data, xShape: x.shape, w: w.data, wShape: w.shape, b: b?.data, stride, padding, y });
  return new Tensor(y, [g.n, g.cout, g.oh, g.ow]);
});

register('conv2dBackwardInput', ({ dy, w }) => [dy, w], ({ dy, w }, { stride, padding, inputShape }) => {
  const g = conv2dGeometry(inputShape, w.shape, stride, padding);
  assertShape(dy, [g.n, g.cout, g.oh, g.ow], 'conv2dBackwardInput dy');
  const dx = f32Out(sizeOf(inputShape));
  addon().conv2dBackwardInput({ dy: dy.data, w: w.data, wShape: w.shape, xShape: inputShape, stride, padding, dx });
  return new Tensor(dx, inputShape);
});

register('conv2dBackwardWeight', ({ dy, x }) => [dy, x], ({ dy, x }, { stride, padding, weightShape }) => {
  const g = conv2dGeometry(x.shape, weightShape, stride, padding);
  assertShape(dy, [g.n, g.cout, g.oh, g.ow], 'conv2dBackwardWeight dy');
  const dw = f32(sizeOf(weightShape)), db = f32(g.cout);
  addon().conv2dBackwardWeight({ dy: dy.data, x: x.data, xShape: x.shape, wShape: weightShape, stride, padding, dw, db });
  return { dw: new Tensor(dw, weightShape), db: new Tensor(db, [g.cout]) };
});

register('batchnorm2dTrain', ({ x, gamma, beta }) => [x, gamma, beta], ({ x, gamma, beta }, { eps }) => {
  const shape = rank4(x, 'batchnorm2dTrain');
  const c = shape[1]!;
  assertShape(gamma, [c], 'batchnorm2dTrain gamma');
  assertShape(beta, [c], 'batchnorm2dTrain beta');
  const y = f32Out(x.size), mean = f32(c), variance = f32(c), invStd = f32(c);
  addon().batchnorm2dTrain({ x: x.data, shape, gamma: gamma.data, beta: beta.data, eps, y, mean, variance, invStd });
  return { y: new Tensor(y, x.shape), mean: new Tensor(mean, [c]), variance: new Tensor(variance, [c]), invStd: new Tensor(invStd, [c]) };
});

register('batchnorm2dEval', (i) => [i.x, i.gamma, i.beta, i.runningMean, i.runningVar], ({ x, gamma, beta, runningMean, runningVar }, { eps }) => {
  const shape = rank4(x, 'batchnorm2dEval');
  const c = shape[1]!;
  for (const [t, nm] of [[gamma, 'gamma'], [beta, 'beta'], [runningMean, 'runningMean'], [runningVar, 'runningVar']] as const) {
    assertShape(t, [c], `batchnorm2dEval ${nm}`);
  }
  const y = f32(x.size);
  addon().batchnorm2dEval({ x: x.data, shape, gamma: gamma.data, beta: beta.data, runningMean: runningMean.data, runningVar: runningVar.data, eps, y });
  return new Tensor(y, x.shape);
});

register('batchnorm2dBackward', (i) => [i.dy, i.x, i.gamma, i.mean, i.invStd], ({ dy, x, gamma, mean, invStd }) => {
  const shape = rank4(x, 'batchnorm2dBackward');
  const c = shape[1]!;
  assertShape(dy, x.shape, 'batchnorm2dBackward dy');
  const dx = f32Out(x.size), dgamma = f32(c), dbeta = f32(c);
  addon().batchnorm2dBackward({ dy: dy.data, x: x.data, shape, gamma: gamma.data, mean: mean.data, invStd: invStd.data, dx, dgamma, dbeta });
  return { dx: new Tensor(dx, x.shape), dgamma: new Tensor(dgamma, [c]), dbeta: new Tensor(dbeta, [c]) };
});

register('relu', ({ x }) => [x], ({ x }) => {
  const y = f32Out(x.size);
  addon().relu({ x: x.data, y, size: x.size });
  return new Tensor(y, x.shape);
});

register('reluBackward', ({ dy, x }) => [dy, x], ({ dy, x }) => {
  assertShape(dy, x.shape, 'reluBackward dy');
  const dx = f32Out(x.size);
  addon().reluBackward({ dy: dy.data, x: x.data, dx, size: x.size });
  return new Tensor(dx, x.shape);
});

register('maxpool2d', ({ x }) => [x], ({ x }, { kernel, stride }) => {
  const shape = rank4(x, 'maxpool2d');
  const [n, c, h, w] = shape as [number, number, number, number];
  const oh = poolOutSize(h, kernel, stride), ow = poolOutSize(w, kernel, stride);
  const y = f32Out(n * c * oh * ow), argmax = i32Out(y.length);
  addon().maxpool2d({ x: x.data, shape, kernel, stride, y, argmax });
  return { y: new Tensor(y, [n, c, oh, ow]), argmax };
});

register('maxpool2dBackward', ({ dy }) => [dy], ({ dy, argmax }, { inputShape }) => {
  if (argmax.length !== dy.size) throw new RangeError(`maxpool2dBackward: argmax has ${argmax.length} entries, dy has ${dy.size}`);
  const n = sizeOf(inputShape);
  const dx = f32Out(n);
  // the planes' geometry lets the addon write 2x2 windows directly (it checks every argmax)
  const geom = inputShape.length === 4 && n > 0 ? { planes: inputShape[0]! * inputShape[1]!, height: inputShape[2]!, width: inputShape[3]! } : {};
  addon().maxpool2dBackward({ dy: dy.data, argmax, outputSize: dy.size, inputSize: n, ...geom, dx });
  return new Tensor(dx, inputShape);
});

register('bnReluPool', ({ x, gamma, beta }) => [x, gamma, beta], ({ x, gamma, beta }, { eps }) => {
  const shape = rank4(x, 'bnReluPool');
  const [n, c, h, w] = shape as [number, number, number, number];
  assertShape(gamma, [c], 'bnReluPool gamma');
  assertShape(beta, [c], 'bnReluPool beta');
  const pooled = [n, c, Math.floor(h / 2), Math.floor(w / 2)];
  const y = f32Out(sizeOf(pooled)), argmax = i32Out(y.length), mean = f32(c), variance = f32(c), invStd = f32(c);
  addon().bnReluPool({ x: x.data, shape, gamma: gamma.data, beta: beta.data, eps, y, argmax, mean, variance, invStd });
  return { y: new Tensor(y, pooled), argmax, mean: new Tensor(mean, [c]), variance: new Tensor(variance, [c]), invStd: new Tensor(invStd, [c]) };
});

register('bnReluPoolBackward', (i) => [i.dy, i.y, i.x, i.gamma, i.mean, i.invStd], ({ dy, y, argmax, x, gamma, mean, invStd }) => {
  const shape = rank4(x, 'bnReluPoolBackward');
  const [n, c, h, w] = shape as [number, number, number, number];
  const pooled = [n, c, Math.floor(h / 2), Math.floor(w / 2)];
  assertShape(dy, pooled, 'bnReluPoolBackward dy');
  assertShape(y, pooled, 'bnReluPoolBackward y');
  if (argmax.length !== dy.size) throw new RangeError(`bnReluPoolBackward: argmax has ${argmax.length} entries, dy has ${dy.size}`);
  for (const [t, nm] of [[gamma, 'gamma'], [mean, 'mean'], [invStd, 'invStd']] as const) assertShape(t, [c], `bnReluPoolBackward ${nm}`);
  const dx = f32Out(x.size), dgamma = f32(c), dbeta = f32(c);
  addon().bnReluPoolBackward({ dy: dy.data, y: y.data, argmax, x: x.data, shape, gamma: gamma.data, mean: mean.data, invStd: invStd.data, dx, dgamma, dbeta });
  return { dx: new Tensor(dx, x.shape), dgamma: new Tensor(dgamma, [c]), dbeta: new Tensor(dbeta, [c]) };
});

register('prototypes', ({ support }) => [support], ({ support, labels }, { way }) => {
  const [rows, e] = mat(support, 'prototypes');
  const out = f32(way * e);
  addon().prototypes({ support: support.data, rows, e, labels, way, out });
  return new Tensor(out, [way, e]);
});

register('prototypesBackward', ({ dproto }) => [dproto], ({ dproto, labels }, { way }) => {
  const [w, e] = mat(dproto, 'prototypesBackward');
  if (w !== way) throw new RangeError(`prototypesBackward: dproto has ${w} rows, way is ${way}`);
  const out = f32(labels.length * e);
  addon().prototypesBackward({ dproto: dproto.data, rows: labels.length, e, labels, way, out });
  return new Tensor(out, [labels.length, e]);
});

register('sqEuclidean', ({ q, p }) => [q, p], ({ q, p }) => {
  const d = pair(q, p, 'sqEuclidean');
  const out = f32(d.m * d.k);
  addon().sqEuclidean({ q: q.data, p: p.data, ...d, out });
  return new Tensor(out, [d.m, d.k]);
});

register('sqEuclideanBackward', ({ dd, q, p }) => [dd, q, p], ({ dd, q, p }) => {
  const d = pair(q, p, 'sqEuclideanBackward');
  assertShape(dd, [d.m, d.k], 'sqEuclideanBackward dd');
  const dq = f32(d.m * d.e), dp = f32(d.k * d.e);
  addon().sqEuclideanBackward({ dd: dd.data, q: q.data, p: p.data, ...d, dq, dp });
  return { dq: new Tensor(dq, q.shape), dp: new Tensor(dp, p.shape) };
});

register('cosine', ({ q, p }) => [q, p], ({ q, p }, { eps }) => {
  const d = pair(q, p, 'cosine');
  const out = f32(d.m * d.k);
  addon().cosine({ q: q.data, p: p.data, ...d, eps, out });
  return new Tensor(out, [d.m, d.k]);
});

register('cosineBackward', ({ dc, q, p }) => [dc, q, p], ({ dc, q, p }, { eps }) => {
  const d = pair(q, p, 'cosineBackward');
  assertShape(dc, [d.m, d.k], 'cosineBackward dc');
  const dq = f32(d.m * d.e), dp = f32(d.k * d.e);
  addon().cosineBackward({ dc: dc.data, q: q.data, p: p.data, ...d, eps, dq, dp });
  return { dq: new Tensor(dq, q.shape), dp: new Tensor(dp, p.shape) };
});

register('scale', ({ x }) => [x], ({ x }, { alpha }) => {
  const y = f32(x.size);
  addon().scale({ x: x.data, alpha, y, size: x.size });
  return new Tensor(y, x.shape);
});

register('logSoftmax', ({ x }) => [x], ({ x }) => {
  const [m, k] = mat(x, 'logSoftmax');
  const y = f32(m * k);
  addon().logSoftmax({ x: x.data, m, k, y });
  return new Tensor(y, [m, k]);
});

register('logSoftmaxBackward', ({ dy, y }) => [dy, y], ({ dy, y }) => {
  const [m, k] = mat(y, 'logSoftmaxBackward');
  assertShape(dy, [m, k], 'logSoftmaxBackward dy');
  const dx = f32(m * k);
  addon().logSoftmaxBackward({ dy: dy.data, y: y.data, m, k, dx });
  return new Tensor(dx, [m, k]);
});

register('crossEntropy', ({ logp }) => [logp], ({ logp, labels }) => {
  const [m, k] = mat(logp, 'crossEntropy');
  const out = f32(1);
  out[0] = addon().crossEntropy({ logp: logp.data, m, k, labels });
  return new Tensor(out, []);
});

register('crossEntropyBackward', ({ logp }) => [logp], ({ dloss, logp, labels }) => {
  const [m, k] = mat(logp, 'crossEntropyBackward');
  const d = f32(m * k);
  addon().crossEntropyBackward({ dloss, logp: logp.data, m, k, labels, d });
  return new Tensor(d, [m, k]);
});

register('accuracy', ({ scores }) => [scores], ({ scores, labels }) => {
  const [m, k] = mat(scores, 'accuracy');
  return addon().accuracy({ scores: scores.data, m, k, labels });
});
