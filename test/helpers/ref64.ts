/**
 * Independent float64 references for the op tests: written from the
 * definitions, differently from the kernels (padded copies, index maps,
 * nested arrays), so a shared mistake is unlikely.
 */
export type Arr4 = number[][][][];

export function to4(data: ArrayLike<number>, [n, c, h, w]: readonly number[]): Arr4 {
  const out: Arr4 = [];
  for (let a = 0; a < n!; a++) {
    const ca: number[][][] = [];
    for (let b = 0; b < c!; b++) {
      const hb: number[][] = [];
      for (let i = 0; i < h!; i++) {
        const row: number[] = [];
        for (let j = 0; j < w!; j++) row.push(data[((a * c! + b) * h! + i) * w! + j]!);
        hb.push(row);
      }
      ca.push(hb);
    }
    out.push(ca);
  }
  return out;
}

export function flat4(a: Arr4): number[] {
  return a.flat(3);
}

export function conv2dRef(x: Arr4, w: Arr4, b: number[] | null, stride: number, pad: number): Arr4 {
  const n = x.length, cin = x[0]!.length, h = x[0]![0]!.length, wd = x[0]![0]![0]!.length;
  const cout = w.length, kh = w[0]![0]!.length, kw = w[0]![0]![0]!.length;
  // explicit zero-padded copy
  const xp = x.map((img) => img.map((ch) => {
    const rows: number[][] = [];
    for (let i = 0; i < h + 2 * pad; i++) {
      const r: number[] = [];
      for (let j = 0; j < wd + 2 * pad; j++) {
        const ii = i - pad, jj = j - pad;
        r.push(ii >= 0 && ii < h && jj >= 0 && jj < wd ? ch[ii]![jj]! : 0);
      }
      rows.push(r);
    }
    return rows;
  }));
  const oh = Math.floor((h + 2 * pad - kh) / stride) + 1, ow = Math.floor((wd + 2 * pad - kw) / stride) + 1;
  const out: Arr4 = [];
  for (let a = 0; a < n; a++) {
    const oc: number[][][] = [];
    for (let co = 0; co < cout; co++) {
      const plane: number[][] = [];
      for (let i = 0; i < oh; i++) {
        const row: number[] = [];
        for (let j = 0; j < ow; j++) {
          let s = b ? b[co]! : 0;
          for (let ci = 0; ci < cin; ci++) for (let p = 0; p < kh; p++) for (let q = 0; q < kw; q++) s += xp[a]![ci]![i * stride + p]![j * stride + q]! * w[co]![ci]![p]![q]!;
          row.push(s);
        }
        plane.push(row);
      }
      oc.push(plane);
    }
    out.push(oc);
  }
  return out;
}

export function channelValues(x: Arr4, c: number): number[] {
  return x.flatMap((img) => img[c]!.flat());
}

export function bnTrainRef(x: Arr4, gamma: number[], beta: number[], eps: number): { y: Arr4; mean: number[]; variance: number[] } {
  const c = x[0]!.length;
  const mean: number[] = [], variance: number[] = [];
  for (let k = 0; k < c; k++) {
    const v = channelValues(x, k);
    const mu = v.reduce((s, t) => s + t, 0) / v.length;
    mean.push(mu);
    variance.push(v.reduce((s, t) => s + (t - mu) ** 2, 0) / v.length);
  }
  const y = x.map((img) => img.map((ch, k) => ch.map((row) => row.map((t) => gamma[k]! * (t - mean[k]!) / Math.sqrt(variance[k]! + eps) + beta[k]!))));
  return { y, mean, variance };
}

export function maxpoolRef(x: Arr4, k: number, s: number): Arr4 {
  return x.map((img) => img.map((ch) => {
    const h = ch.length, w = ch[0]!.length;
    const oh = Math.floor((h - k) / s) + 1, ow = Math.floor((w - k) / s) + 1;
    const out: number[][] = [];
    for (let i = 0; i < oh; i++) {
      const r: number[] = [];
      for (let j = 0; j < ow; j++) {
        const win: number[] = [];
        for (let p = 0; p < k; p++) for (let q = 0; q < k; q++) win.push(ch[i * s + p]![j * s + q]!);
        r.push(Math.max(...win));
      }
      out.push(r);
    }
    return out;
  }));
}

export function rows(data: ArrayLike<number>, m: number, e: number): number[][] {
  return Array.from({ length: m }, (_, i) => Array.from({ length: e }, (_, j) => data[i * e + j]!));
}
