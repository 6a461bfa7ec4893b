/** cpu-ts: conv2d forward and its two backward kernels (direct loops; the reference). */
import { registerKernel } from '../registry.js';
import { Tensor, allocLike, assertShape } from '../../tensor/tensor.js';
import { conv2dGeometry, type Conv2dGeometry } from '../../tensor/shape.js';

/** Valid output range [lo, hi) along one axis for kernel offset k. */
function validRange(outSize: number, inSize: number, k: number, stride: number, padding: number): [number, number] {
  const lo = Math.max(0, Math.ceil((padding - k) / stride));
  const hi = Math.min(outSize, Math.floor((inSize - 1 + padding - k) / stride) + 1);
  return [lo, Math.max(lo, hi)];
}

function forEachTap(g: Conv2dGeometry, fn: (i: number, j: number, oh0: number, oh1: number, ow0: number, ow1: number) => void): void {
  for (let i = 0; i < g.kh; i++) {
    const [oh0, oh1] = validRange(g.oh, g.h, i, g.stride, g.padding);
    for (let j = 0; j < g.kw; j++) {
      const [ow0, ow1] = validRange(g.ow, g.w, j, g.stride, g.padding);
      fn(i, j, oh0, oh1, ow0, ow1);
    }
  }
}

registerKernel('conv2d', 'cpu-ts', ({ x, w, b }, { stride, padding }) => {
  const g = conv2dGeometry(x.shape, w.shape, stride, padding);
  if (b) assertShape(b, [g.cout], 'conv2d bias');
  const out = allocLike(x.data, g.n * g.cout * g.oh * g.ow);
  const xd = x.data, wd = w.data, s = g.stride, p = g.padding;
  const plane = g.oh * g.ow;
  const acc = new Float64Array(plane);
  for (let n = 0; n < g.n; n++) {
    for (let co = 0; co < g.cout; co++) {
      acc.fill(b ? b.data[co]! : 0);
      for (let ci = 0; ci < g.cin; ci++) {
        const xBase = (n * g.cin + ci) * g.h * g.w;
        const wBase = (co * g.cin + ci) * g.kh * g.kw;
        forEachTap(g, (i, j, oh0, oh1, ow0, ow1) => {
          const wv = wd[wBase + i * g.kw + j]!;
          for (let oh = oh0; oh < oh1; oh++) {
            const xRow = xBase + (oh * s - p + i) * g.w - p + j;
            const aRow = oh * g.ow;
            for (let ow = ow0; ow < ow1; ow++) acc[aRow + ow] += wv * xd[xRow + ow * s]!;
          }
        });
      }
      out.set(acc, (n * g.cout + co) * plane);
    }
  }
  return new Tensor(out, [g.n, g.cout, g.oh, g.ow]);
});

registerKernel('conv2dBackwardInput', 'cpu-ts', ({ dy, w }, { stride, padding, inputShape }) => {
  const g = conv2dGeometry(inputShape, w.shape, stride, padding);
  assertShape(dy, [g.n, g.cout, g.oh, g.ow], 'conv2dBackwardInput dy');
  const dx = new Float64Array(g.n * g.cin * g.h * g.w);
  const dyd = dy.data, wd = w.data, s = g.stride, p = g.padding;
  for (let n = 0; n < g.n; n++) {
    for (let co = 0; co < g.cout; co++) {
      const dyBase = (n * g.cout + co) * g.oh * g.ow;
      for (let ci = 0; ci < g.cin; ci++) {
        const xBase = (n * g.cin + ci) * g.h * g.w;
        const wBase = (co * g.cin + ci) * g.kh * g.kw;
        forEachTap(g, (i, j, oh0, oh1, ow0, ow1) => {
          const wv = wd[wBase + i * g.kw + j]!;
          for (let oh = oh0; oh < oh1; oh++) {
            const xRow = xBase + (oh * s - p + i) * g.w - p + j;
            const dRow = dyBase + oh * g.ow;
            for (let ow = ow0; ow < ow1; ow++) dx[xRow + ow * s] += wv * dyd[dRow + ow]!;
          }
        });
      }
    }
  }
  const out = allocLike(dy.data, dx.length);
  out.set(dx);
  return new Tensor(out, inputShape);
});

registerKernel('conv2dBackwardWeight', 'cpu-ts', ({ dy, x }, { stride, padding, weightShape }) => {
  const g = conv2dGeometry(x.shape, weightShape, stride, padding);
  assertShape(dy, [g.n, g.cout, g.oh, g.ow], 'conv2dBackwardWeight dy');
  const dw = allocLike(x.data, g.cout * g.cin * g.kh * g.kw);
  const db = allocLike(x.data, g.cout);
  const dyd = dy.data, xd = x.data, s = g.stride, p = g.padding;
  for (let co = 0; co < g.cout; co++) {
    let bsum = 0;
    for (let n = 0; n < g.n; n++) {
      const dyBase = (n * g.cout + co) * g.oh * g.ow;
      for (let k = 0; k < g.oh * g.ow; k++) bsum += dyd[dyBase + k]!;
    }
    db[co] = bsum;
    for (let ci = 0; ci < g.cin; ci++) {
      const wBase = (co * g.cin + ci) * g.kh * g.kw;
      forEachTap(g, (i, j, oh0, oh1, ow0, ow1) => {
        let sum = 0;
        for (let n = 0; n < g.n; n++) {
          const xBase = (n * g.cin + ci) * g.h * g.w;
          const dyBase = (n * g.cout + co) * g.oh * g.ow;
          for (let oh = oh0; oh < oh1; oh++) {
            const xRow = xBase + (oh * s - p + i) * g.w - p + j;
            const dRow = dyBase + oh * g.ow;
            for (let ow = ow0; ow < ow1; ow++) sum += dyd[dRow + ow]! * xd[xRow + ow * s]!;
          }
        }
        dw[wBase + i * g.kw + j] = sum;
      });
    }
  }
  return { dw: new Tensor(dw, weightShape), db: new Tensor(db, [g.cout]) };
});
