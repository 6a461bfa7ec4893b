/** cpu-ts: class prototypes (per-class mean of support embeddings) and the backward. */
import { registerKernel } from '../registry.js';
import { Tensor, allocLike } from '../../tensor/tensor.js';
import { classCounts } from '../../ops/labels.js';

registerKernel('prototypes', 'cpu-ts', ({ support, labels }, { way }) => {
  if (support.rank !== 2) throw new RangeError(`prototypes: support must be [rows, features], got [${support.shape.join(', ')}]`);
  const [s, e] = support.shape as [number, number];
  const counts = classCounts(labels, way, s);
  const acc = new Float64Array(way * e);
  for (let r = 0; r < s; r++) {
    const l = labels[r]!;
    for (let k = 0; k < e; k++) acc[l * e + k] += support.data[r * e + k]!;
  }
  const out = allocLike(support.data, way * e);
  for (let l = 0; l < way; l++) for (let k = 0; k < e; k++) out[l * e + k] = acc[l * e + k]! / counts[l]!;
  return new Tensor(out, [way, e]);
});

registerKernel('prototypesBackward', 'cpu-ts', ({ dproto, labels }, { way }) => {
  const [w, e] = dproto.shape as [number, number];
  if (w !== way) throw new RangeError(`prototypesBackward: dproto has ${w} rows, way is ${way}`);
  const counts = classCounts(labels, way, labels.length);
  const out = allocLike(dproto.data, labels.length * e);
  for (let r = 0; r < labels.length; r++) {
    const l = labels[r]!;
    for (let k = 0; k < e; k++) out[r * e + k] = dproto.data[l * e + k]! / counts[l]!;
  }
  return new Tensor(out, [labels.length, e]);
});
