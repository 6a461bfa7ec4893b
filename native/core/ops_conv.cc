// conv2d forward and backward (data and weight gradients). "Same" stride-1 convolutions
// (kh = kw = 2 * pad + 1, the ConvNet-4 case) with channel counts that are multiples of 16 run
// the ISA's implicit-GEMM kernels (native/isa/single_ops_impl.h): the forward and the input gradient
// (a "same" convolution of dy with the flipped, transposed kernel) as one kernel over NHWC
// pixel tiles, the weight gradient as im2col x dy^T accumulated per fixed group of images.
// Everything else: im2col + the active ISA's sgemm.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/kernels.h"
#include "core/threadpool.h"
#include "isa/single_ops.h"
#include "isa/isa.h"

namespace evometa {

namespace {

// Output columns [lo, hi) whose input column ox*stride - pad + j lies inside [0, w).
inline void validCols(const ConvGeom& g, int j, int* lo, int* hi) {
  int l = 0;
  while (l < g.ow && l * g.stride - g.pad + j < 0) l++;
  int h = g.ow;
  while (h > l && (h - 1) * g.stride - g.pad + j >= g.w) h--;
  *lo = l;
  *hi = h;
}

// "Same" convolutions (stride 1, output size = input size): for a tap (i, j) the rows of an
// input plane shifted by (i - pad, j - pad) are contiguous, so a tap is one flat copy of the
// valid rows plus zeroed border rows and the |j - pad| columns that wrap across rows.
inline bool samePlane(const ConvGeom& g) { return g.stride == 1 && g.oh == g.h && g.ow == g.w; }

struct TapSpan {
  int rowLo, rowHi;  // output rows with a valid input row
  long dst0, src0, count;  // flat copy: col[dst0 + e] <- x[src0 + e], e in [0, count)
  int dx;                  // column shift j - pad
};

inline TapSpan tapSpan(const ConvGeom& g, int i, int j) {
  const int dy = i - g.pad, dx = j - g.pad;
  TapSpan t;
  t.rowLo = dy < 0 ? -dy : 0;
  t.rowHi = g.h - dy < g.oh ? g.h - dy : g.oh;
  if (t.rowHi < t.rowLo) t.rowHi = t.rowLo;
  t.dx = dx;
  // skip the |dx| elements at the start (dx < 0) or end (dx > 0) that would read outside the plane
  const long n = (long)(t.rowHi - t.rowLo) * g.ow;
  const int skip = dx < 0 ? -dx : dx;
  t.count = n > skip ? n - skip : 0;
  t.dst0 = (long)t.rowLo * g.ow + (dx < 0 ? skip : 0);
  t.src0 = (long)(t.rowLo + dy) * g.w + dx + (dx < 0 ? skip : 0);
  return t;
}

// Output positions of the wrapped columns of a tap: ox in [0, -dx) or [ow - dx, ow) of rows [rowLo, rowHi).
template <class F>
inline void forWrapped(const ConvGeom& g, const TapSpan& t, const F& f) {
  if (t.dx == 0) return;
  const int a = t.dx < 0 ? 0 : g.ow - t.dx, b = t.dx < 0 ? -t.dx : g.ow;
  for (int oy = t.rowLo; oy < t.rowHi; oy++)
    for (int ox = a < 0 ? 0 : a; ox < b && ox < g.ow; ox++) f((long)oy * g.ow + ox);
}

// col[(ci*kh + i)*kw + j][oh*ow]
void im2col(const ConvGeom& g, const float* x, float* col) {
  const long plane = (long)g.oh * g.ow;
  if (samePlane(g)) {
    for (int i = 0; i < g.kh; i++)
      for (int j = 0; j < g.kw; j++) {
        const TapSpan t = tapSpan(g, i, j);
        for (int ci = 0; ci < g.cin; ci++) {
          float* c = col + (((long)ci * g.kh + i) * g.kw + j) * plane;
          const float* xp = x + (long)ci * g.h * g.w;
          std::memset(c, 0, sizeof(float) * t.rowLo * g.ow);
          std::memset(c + (long)t.rowHi * g.ow, 0, sizeof(float) * (g.oh - t.rowHi) * g.ow);
          if (t.count > 0) std::memcpy(c + t.dst0, xp + t.src0, sizeof(float) * t.count);
          forWrapped(g, t, [c](long e) { c[e] = 0.f; });
        }
      }
    return;
  }
  for (int ci = 0; ci < g.cin; ci++)
    for (int i = 0; i < g.kh; i++)
      for (int j = 0; j < g.kw; j++) {
        float* c = col + (((long)ci * g.kh + i) * g.kw + j) * plane;
        int lo, hi;
        validCols(g, j, &lo, &hi);
        for (int oy = 0; oy < g.oh; oy++) {
          float* row = c + (long)oy * g.ow;
          const int iy = oy * g.stride - g.pad + i;
          if (iy < 0 || iy >= g.h) {
            std::memset(row, 0, sizeof(float) * g.ow);
            continue;
          }
          const float* src = x + ((long)ci * g.h + iy) * g.w - g.pad + j;
          for (int ox = 0; ox < lo; ox++) row[ox] = 0.f;
          if (g.stride == 1) {
            for (int ox = lo; ox < hi; ox++) row[ox] = src[ox];
          } else {
            for (int ox = lo; ox < hi; ox++) row[ox] = src[(long)ox * g.stride];
          }
          for (int ox = hi; ox < g.ow; ox++) row[ox] = 0.f;
        }
      }
}

// Scatter-adds col into dx; `col` is scratch and may be modified (wrapped entries zeroed).
void col2imAdd(const ConvGeom& g, float* col, float* dx) {
  const long plane = (long)g.oh * g.ow;
  if (samePlane(g)) {
    for (int ci = 0; ci < g.cin; ci++) {
      float* __restrict dp = dx + (long)ci * g.h * g.w;
      for (int i = 0; i < g.kh; i++)
        for (int j = 0; j < g.kw; j++) {
          const TapSpan t = tapSpan(g, i, j);
          float* c = col + (((long)ci * g.kh + i) * g.kw + j) * plane;
          forWrapped(g, t, [c](long e) { c[e] = 0.f; });
          const float* __restrict cs = c + t.dst0;
          float* __restrict d = dp + t.src0;
          for (long e = 0; e < t.count; e++) d[e] += cs[e];
        }
    }
    return;
  }
  for (int ci = 0; ci < g.cin; ci++)
    for (int i = 0; i < g.kh; i++)
      for (int j = 0; j < g.kw; j++) {
        const float* c = col + (((long)ci * g.kh + i) * g.kw + j) * plane;
        int lo, hi;
        validCols(g, j, &lo, &hi);
        for (int oy = 0; oy < g.oh; oy++) {
          const int iy = oy * g.stride - g.pad + i;
          if (iy < 0 || iy >= g.h) continue;
          float* dst = dx + ((long)ci * g.h + iy) * g.w - g.pad + j;
          const float* row = c + (long)oy * g.ow;
          if (g.stride == 1) {
            for (int ox = lo; ox < hi; ox++) dst[ox] += row[ox];
          } else {
            for (int ox = lo; ox < hi; ox++) dst[(long)ox * g.stride] += row[ox];
          }
        }
      }
}

// Static chunks of images per task (deterministic for a given thread count).
struct Chunks {
  int tasks, n;
  int begin(int t) const { return (int)((long)n * t / tasks); }
  int end(int t) const { return (int)((long)n * (t + 1) / tasks); }
};

Chunks chunksFor(int n) {
  const int t = poolThreads();
  return Chunks{n < t ? (n < 1 ? 1 : n) : t, n};
}

// A stride-1 convolution whose output has the input's size, square kernel 2 * pad + 1.
bool sameConv(const ConvGeom& g) {
  return g.stride == 1 && g.kh == g.kw && g.kh == 2 * g.pad + 1 && g.oh == g.h && g.ow == g.w && g.n > 0;
}

// Images per chunk of the implicit-GEMM kernels: about 256 output pixels (at least one image).
// A function of the plane size only, so the work split never depends on the thread count.
int imagesPerChunk(const ConvGeom& g) {
  const long plane = (long)g.h * g.w;
  return (int)std::max(1L, std::min((long)g.n, 256 / std::max(1L, plane)));
}

// Per-worker scratch, grown on first use.
struct Scratch {
  std::vector<std::vector<float>> a, b, c;
  explicit Scratch(int workers) : a(workers), b(workers), c(workers) {}
};

// y = conv(x, wpk) (+ bias) for a "same" convolution; wpk packed as single_ops.h says.
void sameConvRun(const SingleOps& ops, int n, int cin, int h, int w, int k, int pad, int cout, const float* x,
                 const float* wpk, const float* bias, float* y) {
  const long plane = (long)h * w;
  ConvGeom g{n, cin, h, w, cout, k, k, 1, pad, h, w};
  const int per = imagesPerChunk(g), chunks = (n + per - 1) / per;
  Scratch s(poolThreads());
  parallelForOrInline(chunks, 0, [&](int c, int worker) {
    const int n0 = c * per, cnt = std::min(n, n0 + per) - n0;
    std::vector<float>& xpad = s.a[worker];
    std::vector<float>& tile = s.b[worker];
    if (xpad.empty()) {
      xpad.resize(ops.sameXpadFloats(per, cin, h, w, pad));
      tile.resize(ops.sameTileFloats(k * k * cin, cout));
    }
    ConvSameArgs a{cnt, cin, h, w, k, pad, cout, x + (long)n0 * cin * plane, wpk, bias,
                   y + (long)n0 * cout * plane, xpad.data(), tile.data()};
    ops.convSame(a);
  });
}

}  // namespace

void conv2dForward(const ConvGeom& g, const float* x, const float* w, const float* b, float* y) {
  if (sameConv(g) && g.cout % 16 == 0) {
    // wpk[blk][tap * cin + ci][j] = w[blk * nb + j][ci][tap]
    const SingleOps& ops = currentSingleOps();
    const int nb = ops.blockWidth(g.cout), taps = g.kh * g.kw, kdim = taps * g.cin;
    std::vector<float> wpk((size_t)g.cout * kdim);
    for (int co = 0; co < g.cout; co++)
      for (int ci = 0; ci < g.cin; ci++)
        for (int t = 0; t < taps; t++)
          wpk[((size_t)(co / nb) * kdim + t * g.cin + ci) * nb + co % nb] = w[((long)co * g.cin + ci) * taps + t];
    sameConvRun(ops, g.n, g.cin, g.h, g.w, g.kh, g.pad, g.cout, x, wpk.data(), b, y);
    return;
  }
  const IsaOps& isa = currentIsaOps();
  const long plane = (long)g.oh * g.ow, k = (long)g.cin * g.kh * g.kw;
  const Chunks ch = chunksFor(g.n);
  std::vector<std::vector<float>> cols(ch.tasks);
  parallelForOrInline(ch.tasks, 0, [&](int t, int) {
    std::vector<float>& col = cols[t];
    col.resize(k * plane);
    for (int n = ch.begin(t); n < ch.end(t); n++) {
      im2col(g, x + (long)n * g.cin * g.h * g.w, col.data());
      float* yn = y + (long)n * g.cout * plane;
      for (int co = 0; co < g.cout; co++)
        for (long p = 0; p < plane; p++) yn[co * plane + p] = b ? b[co] : 0.f;
      isa.sgemm(g.cout, (int)plane, (int)k, w, k, col.data(), plane, yn, plane, true);
    }
  });
}

void conv2dBackwardInput(const ConvGeom& g, const float* dy, const float* w, float* dx) {
  if (sameConv(g) && g.cin % 16 == 0) {
    // dx = the "same" convolution of dy with w'[ci][co][tap] = w[co][ci][taps - 1 - tap]:
    // wpk[blk][tap * cout + co][j] = w[co][blk * nb + j][taps - 1 - tap]
    const SingleOps& ops = currentSingleOps();
    const int nb = ops.blockWidth(g.cin), taps = g.kh * g.kw, kdim = taps * g.cout;
    std::vector<float> wpk((size_t)g.cin * kdim);
    for (int co = 0; co < g.cout; co++)
      for (int ci = 0; ci < g.cin; ci++)
        for (int t = 0; t < taps; t++)
          wpk[((size_t)(ci / nb) * kdim + t * g.cout + co) * nb + ci % nb] = w[((long)co * g.cin + ci) * taps + taps - 1 - t];
    sameConvRun(ops, g.n, g.cout, g.h, g.w, g.kh, g.pad, g.cin, dy, wpk.data(), nullptr, dx);
    return;
  }
  const IsaOps& isa = currentIsaOps();
  const long plane = (long)g.oh * g.ow, k = (long)g.cin * g.kh * g.kw;
  std::vector<float> wt(k * g.cout);
  for (int co = 0; co < g.cout; co++)
    for (long r = 0; r < k; r++) wt[r * g.cout + co] = w[co * k + r];
  const Chunks ch = chunksFor(g.n);
  std::vector<std::vector<float>> cols(ch.tasks);
  parallelForOrInline(ch.tasks, 0, [&](int t, int) {
    std::vector<float>& col = cols[t];
    col.resize(k * plane);
    const long img = (long)g.cin * g.h * g.w;
    std::memset(dx + ch.begin(t) * img, 0, sizeof(float) * (size_t)((ch.end(t) - ch.begin(t)) * img));
    for (int n = ch.begin(t); n < ch.end(t); n++) {
      isa.sgemm((int)k, (int)plane, g.cout, wt.data(), g.cout, dy + (long)n * g.cout * plane, plane, col.data(), plane, false);
      col2imAdd(g, col.data(), dx + (long)n * g.cin * g.h * g.w);
    }
  });
}

namespace {
// The implicit-GEMM weight gradient: images in chunks of imagesPerChunk, chunks in a fixed
// number of groups (a function of the shape only), one accumulator per group, groups summed in
// order at the end: the result does not depend on the thread count.
void weightGradSame(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db) {
  const SingleOps& ops = currentSingleOps();
  const int k = g.kh;
  const long plane = (long)g.h * g.w, accSize = ops.weightAccFloats(g.cin, k, g.cout);
  const int per = imagesPerChunk(g), chunks = (g.n + per - 1) / per, groups = std::min(chunks, 16);
  std::vector<float> acc((size_t)groups * accSize, 0.f);
  std::vector<double> dbias((size_t)groups * g.cout, 0.0);
  Scratch s(poolThreads());
  parallelForOrInline(groups, 0, [&](int gi, int worker) {
    std::vector<float>& scratch = s.a[worker];
    if (scratch.empty()) scratch.resize(ops.weightScratchFloats(per, g.cin, g.h, g.w, k, g.pad, g.cout) + 16);
    float* aligned = scratch.data() + ((16 - (reinterpret_cast<uintptr_t>(scratch.data()) / sizeof(float)) % 16) % 16);
    const int c0 = (int)((long)chunks * gi / groups), c1 = (int)((long)chunks * (gi + 1) / groups);
    for (int c = c0; c < c1; c++) {
      const int n0 = c * per, cnt = std::min(g.n, n0 + per) - n0;
      ConvWeightArgs a{cnt, g.cin, g.h, g.w, k, g.pad, g.cout, x + (long)n0 * g.cin * plane,
                       dy + (long)n0 * g.cout * plane, acc.data() + gi * accSize, dbias.data() + (size_t)gi * g.cout,
                       aligned};
      ops.convWeight(a);
    }
  });
  // groups summed in order, then reordered into dw
  for (int gi = 1; gi < groups; gi++) {
    float* a0 = acc.data();
    const float* ag = acc.data() + gi * accSize;
    for (long e = 0; e < accSize; e++) a0[e] += ag[e];
  }
  ops.weightStore(g.cin, k, g.cout, acc.data(), dw);
  for (int co = 0; co < g.cout; co++) {
    double b = 0;
    for (int gi = 0; gi < groups; gi++) b += dbias[(size_t)gi * g.cout + co];
    db[co] = (float)b;
  }
}
}  // namespace

void conv2dBackwardWeight(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db) {
  if (sameConv(g) && g.cout % 16 == 0) {
    weightGradSame(g, dy, x, dw, db);
    return;
  }
  // Transpose the smaller operand per image: when k >= cout (the usual case),
  //   dW^T [k][cout] = sum_n col_n [k][plane] x dy_n^T [plane][cout];
  // when k < cout (e.g. a 1-channel input), dW [cout][k] = sum_n dy_n [cout][plane] x col_n^T [plane][k].
  const IsaOps& isa = currentIsaOps();
  const long plane = (long)g.oh * g.ow, k = (long)g.cin * g.kh * g.kw;
  const bool colT = k < g.cout;
  const Chunks ch = chunksFor(g.n);
  std::vector<std::vector<float>> cols(ch.tasks), tr(ch.tasks), acc(ch.tasks);
  parallelForOrInline(ch.tasks, 0, [&](int t, int) {
    cols[t].resize(k * plane);
    tr[t].resize(plane * (colT ? k : g.cout));
    acc[t].assign(k * g.cout, 0.f);
    for (int n = ch.begin(t); n < ch.end(t); n++) {
      im2col(g, x + (long)n * g.cin * g.h * g.w, cols[t].data());
      const float* d = dy + (long)n * g.cout * plane;
      // transpose src [rows][plane] into tr [plane][rows], in cache-friendly blocks of 16 pixels
      const float* src = colT ? cols[t].data() : d;
      const int rows = colT ? (int)k : g.cout;
      float* dt = tr[t].data();
      for (long p0 = 0; p0 < plane; p0 += 16) {
        const long p1 = p0 + 16 < plane ? p0 + 16 : plane;
        for (int r = 0; r < rows; r++)
          for (long p = p0; p < p1; p++) dt[p * rows + r] = src[r * plane + p];
      }
      if (colT)
        isa.sgemm(g.cout, (int)k, (int)plane, d, plane, dt, k, acc[t].data(), k, true);
      else
        isa.sgemm((int)k, g.cout, (int)plane, cols[t].data(), plane, dt, g.cout, acc[t].data(), g.cout, true);
    }
  });
  parallelForOrInline(g.cout, 0, [&](int co, int) {
    for (long r = 0; r < k; r++) {
      float s = 0;
      const long at = colT ? co * k + r : r * g.cout + co;
      for (int t = 0; t < ch.tasks; t++) s += acc[t][at];
      dw[co * k + r] = s;
    }
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // independent chains, fixed order
    for (int n = 0; n < g.n; n++) {
      const float* d = dy + ((long)n * g.cout + co) * plane;
      long p = 0;
      for (; p + 8 <= plane; p += 8)
        for (int j = 0; j < 8; j++) a[j] += d[p + j];
      for (; p < plane; p++) a[p & 7] += d[p];
    }
    db[co] = (float)(((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])));
  });
}

}  // namespace evometa
