/**
 * Optional cross-check: the tape's float64 gradient of the ProtoNet episode
 * loss against PyTorch autograd on the same parameters and episode (an
 * independent implementation of the model and its derivative). Skips with a
 * printed reason when python3 with torch is unavailable.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../lib/device/cpu-ts/index.js';
import { getDevice } from '../lib/device/registry.js';
import { ProtoNetLayout, initialBnState } from '../lib/model/layout.js';
import { initParams } from '../lib/model/init.js';
import { concatImages, type Distance } from '../lib/model/protonet.js';
import { episodeGradient } from '../lib/autodiff/protonet.js';
import { SyntheticEpisodes } from '../lib/data/synthetic.js';
import { Rng } from '../lib/rng/philox.js';
import { needs, pythonModules, runPython } from './helpers/peers.js';

const withTorch = needs(pythonModules(['torch']), 'gradcheck-torch.test: PyTorch autograd cross-check');

const TORCH = `
import json, sys, torch
import torch.nn.functional as F
torch.set_default_dtype(torch.float64)
d = json.load(sys.stdin)
P = {k: torch.tensor(v['data']).reshape(v['shape']).requires_grad_() for k, v in d['params'].items()}
B = {k: torch.tensor(v['data']).reshape(v['shape']) for k, v in d['buffers'].items()}
h = torch.tensor(d['images']).reshape(d['imageShape'])
for i in range(d['blocks']):
    h = F.conv2d(h, P[f'encoder.{i}.0.weight'], P[f'encoder.{i}.0.bias'], padding=1)
    if d['bn'] == 'batch':
        h = F.batch_norm(h, None, None, P[f'encoder.{i}.1.weight'], P[f'encoder.{i}.1.bias'], training=True, eps=1e-5)
    else:
        h = F.batch_norm(h, B[f'encoder.{i}.1.running_mean'], B[f'encoder.{i}.1.running_var'], P[f'encoder.{i}.1.weight'], P[f'encoder.{i}.1.bias'], training=False, eps=1e-5)
    h = F.max_pool2d(F.relu(h), 2)
z = h.reshape(h.shape[0], -1)
ns = d['ns']
zs, zq = z[:ns], z[ns:]
sl, ql = torch.tensor(d['supportLabels']), torch.tensor(d['queryLabels'])
protos = torch.stack([zs[sl == k].mean(0) for k in range(d['way'])])
if d['distance'] == 'euclidean':
    logits = -((zq[:, None, :] - protos[None]) ** 2).sum(-1)
else:
    logits = d['scale'] * (zq @ protos.T) / (zq.norm(dim=1)[:, None] * protos.norm(dim=1)[None, :])
loss = F.cross_entropy(logits, ql)
loss.backward()
print(json.dumps({'loss': loss.item(), 'grads': {k: p.grad.reshape(-1).tolist() for k, p in P.items()}}))
`;

function crossCheck(distance: Distance, bnMode: 'batch' | 'running'): void {
  const layout = new ProtoNetLayout({ channels: 8, imageSize: 28, blocks: 4 });
  const params = Float64Array.from(initParams(layout, 21));
  const rng = new Rng(22);
  for (const e of layout.params) if (e.name.includes('.1.')) for (let i = 0; i < e.size; i++) params[e.offset + i]! += 0.2 * rng.normal();
  const bn = initialBnState(layout);
  for (let i = 0; i < bn.buffers.length; i++) bn.buffers[i]! += 0.2 * Math.abs(rng.normal());
  const ep = new SyntheticEpisodes({ classes: 10, way: 4, shot: 3, query: 2, imageSize: 28, seed: 23, dtype: 'float64' }).episode(0);
  const g = episodeGradient(getDevice('cpu-ts'), layout, params, bn, ep, { bn: bnMode, distance, cosineScale: 10 });
  const images = concatImages(ep.support, ep.query);
  const input = {
    params: Object.fromEntries(layout.params.map((e) => [e.name, { shape: e.shape, data: Array.from(params.subarray(e.offset, e.offset + e.size)) }])),
    buffers: Object.fromEntries(layout.buffers.map((e) => [e.name, { shape: e.shape, data: Array.from(bn.buffers.subarray(e.offset, e.offset + e.size)) }])),
    images: Array.from(images.data), imageShape: images.shape, blocks: 4, ns: ep.support.shape[0],
    supportLabels: Array.from(ep.supportLabels), queryLabels: Array.from(ep.queryLabels), way: ep.way, distance, scale: 10, bn: bnMode,
  };
  const t = JSON.parse(runPython(['-c', TORCH], { input: JSON.stringify(input) })) as { loss: number; grads: Record<string, number[]> };
  assert.ok(Math.abs(t.loss - g.loss) <= 1e-12 * Math.abs(t.loss), `loss ${g.loss} vs torch ${t.loss}`);
  let num = 0, den = 0;
  for (const e of layout.params) {
    const tg = t.grads[e.name]!;
    for (let i = 0; i < e.size; i++) {
      num += (g.grad[e.offset + i]! - tg[i]!) ** 2;
      den += tg[i]! ** 2;
    }
  }
  assert.ok(den > 0);
  assert.ok(Math.sqrt(num / den) < 1e-10, `relative L2 error vs torch ${Math.sqrt(num / den)}`);
}

for (const [distance, bnMode] of [['euclidean', 'batch'], ['cosine', 'batch'], ['euclidean', 'running']] as const) {
  withTorch(`PyTorch autograd agrees with the tape (float64, C=8, 28x28, ${distance}, BN ${bnMode})`, () => {
    crossCheck(distance, bnMode);
  });
}

test.run();
