/**
 * xla: bilinear rotation as a dense resampling matrix. Bilinear sampling with zero fill is
 *   y[p] = sum_q tent(u_p - col(q)) tent(v_p - row(q)) x[q],   tent(d) = max(0, 1 - |d|),
 * over the source pixels q, so one [P, P] matrix M (P = H*W) built from iotas and the angle's
 * cosine and sine turns the rotation into a matmul of the [N*C, P] images with M^T (and the
 * images' gradient into a matmul with M). The angle's gradient uses the floor convention of the
 * reference kernel: tent'(d) = -1 on [0, 1), +1 on [-1, 0), 0 elsewhere.
 */
import { registerLowering } from '../lowering.js';
import type { FloatType, FuncBuilder, Value } from '../hlo.js';

interface Geometry { planes: number; h: number; w: number; p: number; u: Value; v: Value; du: Value; dv: Value }

function geometry(fb: FuncBuilder, ftype: FloatType, x: Value, angle: Value, what: string): Geometry {
  if (x.rank !== 4) throw new RangeError(`${what}: images must be NCHW, got shape [${x.shape.join(', ')}]`);
  if (angle.rank !== 1 || angle.shape[0] !== 1) throw new RangeError(`${what}: angle must have shape [1], got [${angle.shape.join(', ')}]`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const p = h * w;
  const a = fb.reshape(angle, []);
  const cos = fb.broadcastTo(fb.unary('cosine', a), [p]), sin = fb.broadcastTo(fb.unary('sine', a), [p]);
  const di = fb.addC(fb.reshape(fb.iota([h, w], 0, ftype), [p]), -(h - 1) / 2);
  const dj = fb.addC(fb.reshape(fb.iota([h, w], 1, ftype), [p]), -(w - 1) / 2);
  const u = fb.addC(fb.sub(fb.mul(dj, cos), fb.mul(di, sin)), (w - 1) / 2);
  const v = fb.addC(fb.add(fb.mul(dj, sin), fb.mul(di, cos)), (h - 1) / 2);
  const du = fb.unary('negate', fb.add(fb.mul(dj, sin), fb.mul(di, cos)));
  const dv = fb.sub(fb.mul(dj, cos), fb.mul(di, sin));
  return { planes: n * c, h, w, p, u, v, du, dv };
}

/** d[p, k] = coord[p] - k for k in [0, len): shape [P, len]. */
function offsets(fb: FuncBuilder, ftype: FloatType, coord: Value, p: number, len: number): Value {
  return fb.sub(fb.broadcastInDim(coord, [p, len], [0]), fb.iota([p, len], 1, ftype));
}

function tent(fb: FuncBuilder, d: Value): Value {
  return fb.max(fb.splat(0, d.dtype, d.shape), fb.sub(fb.splat(1, d.dtype, d.shape), fb.unary('abs', d)));
}

/** The floor convention's derivative of tent: -1 on [0, 1), +1 on [-1, 0), 0 elsewhere. */
function tentDeriv(fb: FuncBuilder, d: Value): Value {
  const z = fb.splat(0, d.dtype, d.shape), one = fb.splat(1, d.dtype, d.shape), mone = fb.splat(-1, d.dtype, d.shape);
  const right = fb.binary('and', fb.compare('GE', d, z), fb.compare('LT', d, one));
  const left = fb.binary('and', fb.compare('GE', d, mone), fb.compare('LT', d, z));
  return fb.select(right, mone, fb.select(left, one, z));
}

/** [P, P] matrix from per-row factors r[p, row] and per-column factors c[p, col]: M[p, row*W + col] = r * c. */
function outer(fb: FuncBuilder, r: Value, c: Value, g: Geometry): Value {
  const shape = [g.p, g.h, g.w];
  return fb.reshape(fb.mul(fb.broadcastInDim(r, shape, [0, 1]), fb.broadcastInDim(c, shape, [0, 2])), [g.p, g.p]);
}

function matrices(fb: FuncBuilder, ftype: FloatType, g: Geometry, withDeriv: boolean): { m: Value; dm?: Value } {
  const ov = offsets(fb, ftype, g.v, g.p, g.h), ou = offsets(fb, ftype, g.u, g.p, g.w);
  const tv = tent(fb, ov), tu = tent(fb, ou);
  const m = outer(fb, tv, tu, g);
  if (!withDeriv) return { m };
  // d tent(v - row)/da = tent'(v - row) dv/da; likewise for u.
  const dtv = fb.mul(tentDeriv(fb, ov), fb.broadcastInDim(g.dv, [g.p, g.h], [0]));
  const dtu = fb.mul(tentDeriv(fb, ou), fb.broadcastInDim(g.du, [g.p, g.w], [0]));
  return { m, dm: fb.add(outer(fb, dtv, tu, g), outer(fb, tv, dtu, g)) };
}

registerLowering('rotate', ({ fb, ftype }, { x, angle }) => {
  const g = geometry(fb, ftype, x, angle, 'rotate');
  const { m } = matrices(fb, ftype, g, false);
  const flat = fb.reshape(x, [g.planes, g.p]);
  return fb.reshape(fb.dotGeneral(flat, m, { lhsContract: [1], rhsContract: [1] }), x.shape);
});

registerLowering('rotateBackward', ({ fb, ftype }, { dy, x, angle }) => {
  const g = geometry(fb, ftype, x, angle, 'rotateBackward');
  if (dy.shape.join() !== x.shape.join()) throw new RangeError(`rotateBackward dy: expected shape [${x.shape.join(', ')}], got [${dy.shape.join(', ')}]`);
  const { m, dm } = matrices(fb, ftype, g, true);
  const dyf = fb.reshape(dy, [g.planes, g.p]), xf = fb.reshape(x, [g.planes, g.p]);
  const dx = fb.reshape(fb.dotGeneral(dyf, m, { lhsContract: [1], rhsContract: [0] }), x.shape);
  const deriv = fb.dotGeneral(xf, dm!, { lhsContract: [1], rhsContract: [1] });
  const dangle = fb.reshape(fb.reduce(fb.mul(dyf, deriv), 'add', [0, 1]), [1]);
  return { dx, dangle };
});
