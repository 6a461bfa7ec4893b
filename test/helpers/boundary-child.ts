/**
 * Child-process side of test/native-boundary.test.ts: things that used to kill the process
 * (a segfault, std::terminate) run here, so that a crash is observed by the parent as a
 * failure instead of taking the test runner down. Prints one JSON line.
 *
 *   node boundary-child.js resize      every export, a later field's getter shrinks or detaches
 *                                      an earlier field's buffer
 *   node boundary-child.js terminate   a worker thread terminated while a native call runs in it
 *   node boundary-child.js exit        process.exit(130) while two worker threads run native calls
 *   node boundary-child.js oom         allocations that fail (run under `ulimit -v`)
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { addon } from '../../lib/device/cpu-native/addon.js';

type Args = Record<string, unknown>;

/** ES2024 resizable ArrayBuffer (Node 20 has it; the TS target here is ES2022). */
type Resizable = ArrayBuffer & { resize(n: number): void };
const RAB = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => Resizable;

/** A Float32Array over a resizable ArrayBuffer (length-tracking). */
function rf32(n: number, fill = 0.5): Float32Array {
  const a = new Float32Array(new RAB(4 * n, { maxByteLength: 4 * n }));
  a.fill(fill);
  return a;
}
function rf64(n: number, fill = 0.5): Float64Array {
  const a = new Float64Array(new RAB(8 * n, { maxByteLength: 8 * n }));
  a.fill(fill);
  return a;
}
function ri32(values: number[]): Int32Array {
  const a = new Int32Array(new RAB(4 * values.length, { maxByteLength: 4 * values.length }));
  a.set(values);
  return a;
}

/** A small valid population request (blocks 1, C 2, 4x4 images, 2-way 1-shot 1-query). */
function tinyPopulation(): Args {
  const d = 2 * 1 * 9 + 3 * 2;
  return {
    blocks: 1, inChannels: 1, imageSize: 4, channels: 2, bnEps: 1e-5, way: 2, supportCount: 2, queryCount: 2,
    distance: 'euclidean', cosineScale: 1, kind: 'gaussian', sigma: 0.1, antithetic: false,
    seed: 1, step: 0, start: 0, end: 2, threads: 1,
    mu: rf32(d), support: rf32(32), query: rf32(32), supportLabels: ri32([0, 1]), queryLabels: ri32([1, 0]),
  };
}

/** For each export: valid arguments in the addon's field order, the victim (a typed array field) and a later field. */
function cases(): Array<{ fn: string; args: Args; victim: string; trigger: string }> {
  const conv = { xShape: [1, 1, 3, 3], wShape: [1, 1, 3, 3], stride: 1, padding: 1 };
  const bn = { shape: [2, 1, 2, 2], eps: 1e-5 };
  const dist = { m: 2, k: 2, e: 3 };
  const ce = { m: 2, k: 3 };
  const pop = tinyPopulation();
  return [
    { fn: 'conv2d', args: { ...conv, x: rf32(9), w: rf32(9), b: rf32(1), y: rf32(9) }, victim: 'x', trigger: 'y' },
    { fn: 'conv2dBackwardInput', args: { ...conv, dy: rf32(9), w: rf32(9), dx: rf32(9) }, victim: 'dy', trigger: 'dx' },
    { fn: 'conv2dBackwardWeight', args: { ...conv, dy: rf32(9), x: rf32(9), dw: rf32(9), db: rf32(1) }, victim: 'x', trigger: 'db' },
    { fn: 'batchnorm2dTrain', args: { ...bn, x: rf32(8), gamma: rf32(1), beta: rf32(1), y: rf32(8), mean: rf32(1), variance: rf32(1), invStd: rf32(1) }, victim: 'x', trigger: 'invStd' },
    { fn: 'batchnorm2dEval', args: { ...bn, x: rf32(8), gamma: rf32(1), beta: rf32(1), runningMean: rf32(1), runningVar: rf32(1), y: rf32(8) }, victim: 'x', trigger: 'y' },
    { fn: 'batchnorm2dBackward', args: { ...bn, dy: rf32(8), x: rf32(8), gamma: rf32(1), mean: rf32(1), invStd: rf32(1), dx: rf32(8), dgamma: rf32(1), dbeta: rf32(1) }, victim: 'dy', trigger: 'dbeta' },
    { fn: 'relu', args: { size: 8, x: rf32(8), y: rf32(8) }, victim: 'x', trigger: 'y' },
    { fn: 'reluBackward', args: { size: 8, dy: rf32(8), x: rf32(8), dx: rf32(8) }, victim: 'dy', trigger: 'dx' },
    { fn: 'maxpool2d', args: { shape: [1, 1, 4, 4], kernel: 2, stride: 2, x: rf32(16), y: rf32(4), argmax: ri32([0, 0, 0, 0]) }, victim: 'x', trigger: 'argmax' },
    { fn: 'maxpool2dBackward', args: { outputSize: 4, inputSize: 16, dy: rf32(4), argmax: ri32([0, 2, 8, 10]), dx: rf32(16) }, victim: 'argmax', trigger: 'dx' },
    { fn: 'prototypes', args: { rows: 2, e: 3, way: 2, labels: ri32([0, 1]), support: rf32(6), out: rf32(6) }, victim: 'labels', trigger: 'out' },
    { fn: 'prototypesBackward', args: { rows: 2, e: 3, way: 2, labels: ri32([0, 1]), dproto: rf32(6), out: rf32(6) }, victim: 'dproto', trigger: 'out' },
    { fn: 'sqEuclidean', args: { ...dist, q: rf32(6), p: rf32(6), out: rf32(4) }, victim: 'q', trigger: 'out' },
    { fn: 'sqEuclideanBackward', args: { ...dist, dd: rf32(4), q: rf32(6), p: rf32(6), dq: rf32(6), dp: rf32(6) }, victim: 'dd', trigger: 'dp' },
    { fn: 'cosine', args: { ...dist, eps: 1e-8, q: rf32(6), p: rf32(6), out: rf32(4) }, victim: 'q', trigger: 'out' },
    { fn: 'cosineBackward', args: { ...dist, eps: 1e-8, dc: rf32(4), q: rf32(6), p: rf32(6), dq: rf32(6), dp: rf32(6) }, victim: 'dc', trigger: 'dp' },
    { fn: 'scale', args: { size: 8, alpha: 2, x: rf32(8), y: rf32(8) }, victim: 'x', trigger: 'y' },
    { fn: 'logSoftmax', args: { ...ce, x: rf32(6), y: rf32(6) }, victim: 'x', trigger: 'y' },
    { fn: 'logSoftmaxBackward', args: { ...ce, dy: rf32(6), y: rf32(6), dx: rf32(6) }, victim: 'dy', trigger: 'dx' },
    { fn: 'crossEntropy', args: { ...ce, logp: rf32(6), labels: ri32([0, 2]) }, victim: 'logp', trigger: 'labels' },
    { fn: 'crossEntropyBackward', args: { ...ce, dloss: 1, labels: ri32([0, 2]), d: rf32(6) }, victim: 'labels', trigger: 'd' },
    { fn: 'accuracy', args: { ...ce, scores: rf32(6), labels: ri32([0, 2]) }, victim: 'scores', trigger: 'labels' },
    { fn: 'evaluatePopulation', args: pop, victim: 'mu', trigger: 'queryLabels' },
    { fn: 'evaluatePopulation', args: { ...tinyPopulation(), kind: 'diagonal', sigmas: rf32(24, 0.1) }, victim: 'sigmas', trigger: 'queryLabels' },
    { fn: 'noiseSum', args: { numParams: 24, seed: 1, step: 0, antithetic: false, sigma: 0.1, sigmas: rf32(24, 0.1), kind: 'linear', start: 0, threads: 1, weights: rf64(3) }, victim: 'sigmas', trigger: 'weights' },
    { fn: 'gaussianFill', args: { out: rf32(64), seed: 1, stream: 0, step: 0, member: 0, start: 0 }, victim: 'out', trigger: 'start' },
  ];
}

function errorOf(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : `non-error: ${String(e)}`;
}

async function resize(): Promise<void> {
  const a = addon() as unknown as Record<string, (x: Args) => unknown>;
  const out: Array<{ fn: string; victim: string; how: string; result: string }> = [];
  for (const how of ['resize', 'detach'] as const) {
    for (const c of cases()) {
      const victim = c.args[c.victim] as Float32Array | Float64Array | Int32Array;
      const value = c.args[c.trigger];
      const args: Args = { ...c.args };
      // the getter runs user JavaScript after the victim field was read
      Object.defineProperty(args, c.trigger, {
        enumerable: true,
        get() {
          const buf = victim.buffer as Resizable;
          if (how === 'resize') buf.resize(0);
          else structuredClone(buf, { transfer: [buf] });
          return value;
        },
      });
      let result: string;
      try {
        const r = a[c.fn]!(args);
        result = r instanceof Promise ? `promise: ${await r.then(() => 'resolved', errorOf)}` : 'returned';
      } catch (e) {
        result = errorOf(e);
      }
      out.push({ fn: c.fn, victim: c.victim, how, result });
    }
  }
  console.log(JSON.stringify(out));
}

/** A population call that takes a while (C 64, 4 blocks, 100 images, 8 members, one thread). */
function longPopulation(): Args {
  let d = 0;
  for (let l = 0; l < 4; l++) d += 64 * (l === 0 ? 1 : 64) * 9 + 3 * 64;
  const img = 28 * 28;
  const mu = new Float32Array(d).map((_, i) => Math.sin(i) * 0.1);
  const sup = new Float32Array(25 * img).map((_, i) => (i % 17) / 17), qry = new Float32Array(75 * img).map((_, i) => (i % 13) / 13);
  return {
    blocks: 4, inChannels: 1, imageSize: 28, channels: 64, bnEps: 1e-5, way: 5, supportCount: 25, queryCount: 75,
    distance: 'euclidean', cosineScale: 1, kind: 'gaussian', sigma: 0.01, antithetic: false, seed: 1, step: 0, start: 0, end: 8, threads: 1,
    mu, support: sup, query: qry, supportLabels: Int32Array.from({ length: 25 }, (_, i) => i % 5), queryLabels: Int32Array.from({ length: 75 }, (_, i) => i % 5),
  };
}

function workerMain(): void {
  const mode = (workerData as { mode: string }).mode;
  void addon().evaluatePopulation(longPopulation()).catch(() => {});
  parentPort!.postMessage(`started ${mode}`);
}

async function terminate(): Promise<void> {
  const w = new Worker(new URL(import.meta.url), { workerData: { mode: 'started' } });
  await new Promise<void>((r) => w.once('message', () => r()));
  await new Promise((r) => setTimeout(r, 100));
  const t0 = Date.now();
  await w.terminate();
  console.log(JSON.stringify({ terminated: true, ms: Date.now() - t0 }));
}

async function exitMidCall(): Promise<void> {
  const ws = [0, 1].map(() => new Worker(new URL(import.meta.url), { workerData: { mode: 'started' } }));
  await Promise.all(ws.map((w) => new Promise<void>((r) => w.once('message', () => r()))));
  await new Promise((r) => setTimeout(r, 100));
  console.log(JSON.stringify({ exiting: true }));
  process.exit(130);
}

async function oom(): Promise<void> {
  const a = addon();
  const res: Record<string, string> = {};
  // a population request inside the limits whose workspace (embeddings of 2 images x 1024
  // channels x 512^2, about 4 GB with the prototypes) cannot be allocated under the child's
  // address-space limit: the job's bad_alloc -> RangeError
  const s = 1024, c = 1024;
  const req = {
    blocks: 1, inChannels: 1, imageSize: s, channels: c, bnEps: 1e-5, way: 1, supportCount: 1, queryCount: 1,
    distance: 'euclidean', cosineScale: 1, kind: 'gaussian', sigma: 0.1, antithetic: false, seed: 1, step: 0, start: 0, end: 1, threads: 1,
    mu: new Float32Array(c * 9 + 3 * c), support: new Float32Array(s * s), query: new Float32Array(s * s),
    supportLabels: new Int32Array(1), queryLabels: new Int32Array(1),
  };
  try {
    const f = await a.evaluatePopulation(req);
    res.evaluatePopulation = `resolved ${f.length}`;
  } catch (e) {
    res.evaluatePopulation = errorOf(e);
  }
  // a synchronous op whose scratch cannot be allocated: conv2d's im2col of a 40x40 kernel over a
  // 1024x1024 image is 1600 x 1025^2 floats (6.7 GB) for 4 MB of input
  const h = 1024, k = 40, o = h + 2 * 20 - k + 1;
  try {
    a.conv2d({ xShape: [1, 1, h, h], wShape: [1, 1, k, k], stride: 1, padding: 20, x: new Float32Array(h * h), w: new Float32Array(k * k), b: undefined, y: new Float32Array(o * o) });
    res.conv2d = 'returned';
  } catch (err) {
    res.conv2d = errorOf(err);
  }
  res.alive = 'yes';
  console.log(JSON.stringify(res));
}

if (!isMainThread) {
  workerMain();
} else {
  const mode = process.argv[2];
  if (mode === 'resize') await resize();
  else if (mode === 'terminate') await terminate();
  else if (mode === 'exit') await exitMidCall();
  else if (mode === 'oom') await oom();
  else throw new Error(`boundary-child: unknown mode ${mode}`);
}
