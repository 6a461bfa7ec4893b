/** xla: class prototypes as a one-hot matmul divided by class counts, and the backward. */
import { registerLowering } from '../lowering.js';
import type { FuncBuilder, Value } from '../hlo.js';
import { classCounts } from '../../../ops/labels.js';

/** onehot[k, r] = (labels[r] == k) as `dtype`, shape [way, rows]. */
export function oneHotT(fb: FuncBuilder, labels: Value, way: number, dtype: 'f32' | 'f64'): Value {
  const rows = labels.shape[0]!;
  const eq = fb.compare('EQ', fb.broadcastInDim(labels, [way, rows], [1]), fb.iota([way, rows], 0, 'i32'));
  return fb.convert(eq, dtype);
}

export function checkClasses(labels: Int32Array, way: number, rows: number): void {
  classCounts(labels, way, rows);
}

registerLowering('prototypes', ({ fb, ftype }, { support, labels }, { way }) => {
  if (support.rank !== 2) throw new RangeError(`prototypes: support must be [rows, features], got [${support.shape.join(', ')}]`);
  const oh = oneHotT(fb, labels, way, ftype);
  const counts = fb.reduce(oh, 'add', [1]);
  const sums = fb.dotGeneral(oh, support, { lhsContract: [1], rhsContract: [0] });
  return fb.div(sums, fb.broadcastInDim(counts, sums.shape, [0]));
}, ({ support, labels }, { way }) => checkClasses(labels, way, support.shape[0]!));

registerLowering('prototypesBackward', ({ fb, ftype }, { dproto, labels }, { way }) => {
  if (dproto.rank !== 2 || dproto.shape[0] !== way) throw new RangeError(`prototypesBackward: dproto must be [${way}, E], got [${dproto.shape.join(', ')}]`);
  const oh = oneHotT(fb, labels, way, ftype);
  const counts = fb.reduce(oh, 'add', [1]);
  const scaled = fb.div(dproto, fb.broadcastInDim(counts, dproto.shape, [0]));
  return fb.dotGeneral(oh, scaled, { lhsContract: [0], rhsContract: [0] });
}, ({ labels }, { way }) => checkClasses(labels, way, labels.length));
