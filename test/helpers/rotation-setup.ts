/**
 * A small float64 ProtoNet with the rotation angle as hyperparameter, for the hypergradient checks
 * (second-order graph, finite difference): layout, BN state, the rotation program, parameters with
 * the BN affine parameters moved off their defaults (so their second derivatives are generic), a
 * training episode and a validation episode rotated by 30 degrees.
 */
import type { Device } from '../../lib/device/registry.js';
import { rotateEpisode, rotationProgram } from '../../lib/evograd/rotation.js';
import { ProtoNetLayout, initialBnState } from '../../lib/model/layout.js';
import { initParams } from '../../lib/model/init.js';
import { SyntheticEpisodes } from '../../lib/data/synthetic.js';
import { Rng } from '../../lib/rng/philox.js';

export function rotationSetup(dev: Device, blocks: number, size: number, seed: number) {
  const layout = new ProtoNetLayout({ channels: 4, imageSize: size, blocks });
  const bn = initialBnState(layout);
  const program = rotationProgram(layout, bn, 'euclidean');
  const src = new SyntheticEpisodes({ classes: 6, way: 3, shot: 2, query: 2, imageSize: size, seed, dtype: 'float64' });
  const theta = Float64Array.from(initParams(layout, seed));
  const rng = new Rng(seed + 1);
  for (const e of layout.params) if (e.name.includes('.1.')) for (let i = 0; i < e.size; i++) theta[e.offset + i]! += 0.2 * rng.normal();
  return { layout, bn, program, theta, train: src.episode(0), val: rotateEpisode(dev, src.episode(1), 30) };
}
