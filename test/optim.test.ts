/** Optimizers on the flat vector: hand-computed steps, float64 references of PyTorch's update rules, resume, step-LR; torch cross-check when available. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createOptimizer, stepLr, type OptimizerConfig } from '../lib/optim/optimizers.js';
import { Rng } from '../lib/rng/philox.js';
import { needs, pythonModules, runPython } from './helpers/peers.js';

const f32 = Math.fround;

function close(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, what: string): void {
  assert.is(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    const err = Math.abs(a[i]! - b[i]!);
    assert.ok(err <= rtol * Math.max(1e-3, Math.abs(b[i]!)), `${what}[${i}]: ${a[i]} vs reference ${b[i]} (err ${err})`);
  }
}

/** PyTorch's SGD (dampening 0) and Adam/AdamW update rules, in float64, written out independently. */
function reference(cfg: OptimizerConfig, p0: number[], grads: number[][], lrs?: number[]): number[] {
  const p = p0.slice(), n = p.length;
  const buf = new Array<number>(n).fill(0), m = new Array<number>(n).fill(0), v = new Array<number>(n).fill(0);
  const wd = cfg.weightDecay ?? 0, mom = cfg.momentum ?? 0, [b1, b2] = cfg.betas ?? [0.9, 0.999], eps = cfg.adamEps ?? 1e-8;
  grads.forEach((g0, t) => {
    const lr = lrs?.[t] ?? cfg.lr;
    for (let i = 0; i < n; i++) {
      let g = g0[i]!;
      if (cfg.decoupled) p[i] = p[i]! * (1 - lr * wd);
      else g += wd * p[i]!;
      if (cfg.name === 'sgd') {
        if (mom > 0) {
          buf[i] = t === 0 ? g : mom * buf[i]! + g;
          g = cfg.nesterov ? g + mom * buf[i]! : buf[i]!;
        }
        p[i] = p[i]! - lr * g;
      } else {
        m[i] = b1 * m[i]! + (1 - b1) * g;
        v[i] = b2 * v[i]! + (1 - b2) * g * g;
        const mh = m[i]! / (1 - b1 ** (t + 1)), vh = v[i]! / (1 - b2 ** (t + 1));
        p[i] = p[i]! - (lr * mh) / (Math.sqrt(vh) + eps);
      }
    }
  });
  return p;
}

function run(cfg: OptimizerConfig, p0: number[], grads: number[][], lrs?: number[]): Float32Array {
  const opt = createOptimizer(cfg);
  const p = Float32Array.from(p0);
  grads.forEach((g, t) => opt.step(p, Float32Array.from(g), lrs?.[t]));
  return p;
}

const rng = new Rng(77);
const P0 = Array.from({ length: 9 }, () => f32(rng.normal()));
const GRADS = Array.from({ length: 4 }, () => Array.from({ length: 9 }, () => f32(rng.normal())));

test('SGD without momentum: p - lr * g, by hand', () => {
  const p = Float32Array.of(1, -2);
  createOptimizer({ name: 'sgd', lr: 0.1 }).step(p, Float32Array.of(0.5, -4));
  assert.equal(Array.from(p), [f32(0.95), f32(-1.6)]);
});

test('SGD momentum: first step uses the gradient itself, then buf = m buf + g (by hand, two steps)', () => {
  const p = Float32Array.of(1);
  const opt = createOptimizer({ name: 'sgd', lr: 0.1, momentum: 0.9 });
  opt.step(p, Float32Array.of(1)); // buf = 1, p = 1 - 0.1
  opt.step(p, Float32Array.of(1)); // buf = 1.9, p = 0.9 - 0.19
  assert.ok(Math.abs(p[0]! - 0.71) < 1e-7, `p = ${p[0]}`);
  assert.equal(Array.from(opt.state().tensors['momentum_buffer']!), [f32(1.9)]);
});

for (const cfg of [
  { name: 'sgd', lr: 0.05, momentum: 0.9 },
  { name: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true },
  { name: 'sgd', lr: 0.05, momentum: 0.5, weightDecay: 0.01 },
  { name: 'sgd', lr: 0.05, momentum: 0.5, weightDecay: 0.1, decoupled: true },
  { name: 'adam', lr: 1e-3 },
  { name: 'adam', lr: 1e-2, betas: [0.8, 0.99], adamEps: 1e-6, weightDecay: 0.01 },
  { name: 'adam', lr: 1e-2, weightDecay: 0.1, decoupled: true },
] as OptimizerConfig[]) {
  test(`${JSON.stringify(cfg)}: four steps match the float64 reference`, () => {
    close(run(cfg, P0, GRADS), reference(cfg, P0, GRADS), 2e-6, JSON.stringify(cfg));
  });
}

test('Adam first step moves each parameter by lr * g / (|g| + eps) (bias correction), by hand', () => {
  const p = Float32Array.of(1, 1);
  createOptimizer({ name: 'adam', lr: 0.01 }).step(p, Float32Array.of(0.5, -3));
  assert.equal(Array.from(p), [f32(1 - 0.01 * 0.5 / (0.5 + 1e-8)), f32(1 + 0.01 * 3 / (3 + 1e-8))]);
});

test('per-step learning rate (step-LR) is honoured', () => {
  const cfg: OptimizerConfig = { name: 'adam', lr: 1e-3 };
  const lrs = [0, 1, 2, 3].map((t) => stepLr(1e-2, t, 2));
  assert.equal(lrs, [1e-2, 1e-2, 5e-3, 5e-3]);
  close(run(cfg, P0, GRADS, lrs), reference(cfg, P0, GRADS, lrs), 2e-6, 'adam with step-LR');
});

test('stepLr: halves every `every` steps; every <= 0 means constant', () => {
  assert.is(stepLr(1e-3, 0, 2000), 1e-3);
  assert.is(stepLr(1e-3, 1999, 2000), 1e-3);
  assert.is(stepLr(1e-3, 2000, 2000), 5e-4);
  assert.is(stepLr(1e-3, 5999, 2000), 2.5e-4);
  assert.is(stepLr(1e-3, 6000, 2000, 0.1), 1e-3 * 0.1 ** 3);
  assert.is(stepLr(1e-3, 9999, 0), 1e-3);
});

for (const cfg of [{ name: 'sgd', lr: 0.05, momentum: 0.9 }, { name: 'adam', lr: 1e-2 }] as OptimizerConfig[]) {
  test(`${cfg.name}: state saved after two steps and loaded into a fresh optimizer continues bit-identically`, () => {
    const a = createOptimizer(cfg), pa = Float32Array.from(P0);
    GRADS.forEach((g) => a.step(pa, Float32Array.from(g)));
    const b = createOptimizer(cfg), pb = Float32Array.from(P0);
    b.step(pb, Float32Array.from(GRADS[0]!));
    b.step(pb, Float32Array.from(GRADS[1]!));
    const c = createOptimizer(cfg);
    c.load(b.state());
    c.step(pb, Float32Array.from(GRADS[2]!));
    c.step(pb, Float32Array.from(GRADS[3]!));
    assert.equal(Array.from(pb), Array.from(pa));
    assert.is(c.state().step, 4);
    assert.is(c.bytes(), cfg.name === 'adam' ? 2 * 9 * 4 : 9 * 4);
  });
}

test('bad configuration and mismatched sizes are errors naming the field', () => {
  assert.throws(() => createOptimizer({ name: 'sgd', lr: 0 }), /lr/);
  assert.throws(() => createOptimizer({ name: 'sgd', lr: 0.1, momentum: 1 }), /momentum/);
  assert.throws(() => createOptimizer({ name: 'adam', lr: 0.1, betas: [0.9, 1] }), /betas/);
  assert.throws(() => createOptimizer({ name: 'adam', lr: 0.1, weightDecay: -1 }), /weightDecay/);
  assert.throws(() => createOptimizer({ name: 'rmsprop' as 'sgd', lr: 0.1 }), /unknown optimizer/);
  assert.throws(() => createOptimizer({ name: 'adam', lr: 0.1 }).step(new Float32Array(3), new Float32Array(2)), /gradient has 2/);
});

const withTorch = needs(pythonModules(['torch']), 'optim.test: PyTorch cross-check');

const TORCH = `
import json, sys, torch
d = json.load(sys.stdin)
out = []
for c in d['configs']:
    p = torch.nn.Parameter(torch.tensor(d['p0'], dtype=torch.float32))
    if c['name'] == 'sgd':
        opt = torch.optim.SGD([p], lr=c['lr'], momentum=c.get('momentum', 0), nesterov=c.get('nesterov', False), weight_decay=c.get('weightDecay', 0))
    elif c.get('decoupled'):
        opt = torch.optim.AdamW([p], lr=c['lr'], betas=tuple(c.get('betas', [0.9, 0.999])), eps=c.get('adamEps', 1e-8), weight_decay=c.get('weightDecay', 0))
    else:
        opt = torch.optim.Adam([p], lr=c['lr'], betas=tuple(c.get('betas', [0.9, 0.999])), eps=c.get('adamEps', 1e-8), weight_decay=c.get('weightDecay', 0))
    for g in d['grads']:
        p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
    out.append(p.detach().tolist())
print(json.dumps(out))
`;

withTorch('PyTorch cross-check: SGD (momentum, Nesterov, weight decay), Adam, AdamW agree with torch.optim (float32)', () => {
  const configs: OptimizerConfig[] = [
    { name: 'sgd', lr: 0.05, momentum: 0.9 },
    { name: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 },
    { name: 'adam', lr: 1e-3, weightDecay: 0.01 },
    { name: 'adam', lr: 1e-2, weightDecay: 0.1, decoupled: true },
  ];
  const outs = JSON.parse(runPython(['-c', TORCH], { input: JSON.stringify({ configs, p0: P0, grads: GRADS }) })) as number[][];
  configs.forEach((cfg, k) => close(run(cfg, P0, GRADS), outs[k]!, 2e-6, `torch ${JSON.stringify(cfg)}`));
});

test.run();
