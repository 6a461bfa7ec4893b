// conv2d forward and backward (data and weight gradients): im2col + the active ISA's sgemm.
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/kernels.h"
#include "isa/isa.h"

namespace evometa {

namespace {

// col[(ci*kh + i)*kw + j][oh*ow] (transposed = false) or col[oh*ow][...] (transposed = true)
void im2col(const ConvGeom& g, const float* x, float* col, bool transposed) {
  const long plane = (long)g.oh * g.ow, k = (long)g.cin * g.kh * g.kw;
  for (int ci = 0; ci < g.cin; ci++)
    for (int i = 0; i < g.kh; i++)
      for (int j = 0; j < g.kw; j++) {
        const long row = ((long)ci * g.kh + i) * g.kw + j;
        for (int oy = 0; oy < g.oh; oy++) {
          const int iy = oy * g.stride - g.pad + i;
          for (int ox = 0; ox < g.ow; ox++) {
            const int ix = ox * g.stride - g.pad + j;
            const float v = (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) ? x[((long)ci * g.h + iy) * g.w + ix] : 0.f;
            const long p = (long)oy * g.ow + ox;
            if (transposed) col[p * k + row] = v; else col[row * plane + p] = v;
          }
        }
      }
}

void col2imAdd(const ConvGeom& g, const float* col, float* dx) {
  const long plane = (long)g.oh * g.ow;
  for (int ci = 0; ci < g.cin; ci++)
    for (int i = 0; i < g.kh; i++)
      for (int j = 0; j < g.kw; j++) {
        const float* c = col + (((long)ci * g.kh + i) * g.kw + j) * plane;
        for (int oy = 0; oy < g.oh; oy++) {
          const int iy = oy * g.stride - g.pad + i;
          if (iy < 0 || iy >= g.h) continue;
          for (int ox = 0; ox < g.ow; ox++) {
            const int ix = ox * g.stride - g.pad + j;
            if (ix >= 0 && ix < g.w) dx[((long)ci * g.h + iy) * g.w + ix] += c[(long)oy * g.ow + ox];
          }
        }
      }
}

}  // namespace

void conv2dForward(const ConvGeom& g, const float* x, const float* w, const float* b, float* y) {
  const IsaOps& isa = currentIsaOps();
  const long plane = (long)g.oh * g.ow, k = (long)g.cin * g.kh * g.kw;
  std::vector<float> col(k * plane);
  for (int n = 0; n < g.n; n++) {
    im2col(g, x + (long)n * g.cin * g.h * g.w, col.data(), false);
    float* yn = y + (long)n * g.cout * plane;
    for (int co = 0; co < g.cout; co++)
      for (long p = 0; p < plane; p++) yn[co * plane + p] = b ? b[co] : 0.f;
    isa.sgemm(g.cout, (int)plane, (int)k, w, k, col.data(), plane, yn, plane, true);
  }
}

void conv2dBackwardInput(const ConvGeom& g, const float* dy, const float* w, float* dx) {
  const IsaOps& isa = currentIsaOps();
  const long plane = (long)g.oh * g.ow, k = (long)g.cin * g.kh * g.kw;
  std::vector<float> wt(k * g.cout), col(k * plane);
  for (int co = 0; co < g.cout; co++)
    for (long r = 0; r < k; r++) wt[r * g.cout + co] = w[co * k + r];
  std::memset(dx, 0, sizeof(float) * (size_t)g.n * g.cin * g.h * g.w);
  for (int n = 0; n < g.n; n++) {
    isa.sgemm((int)k, (int)plane, g.cout, wt.data(), g.cout, dy + (long)n * g.cout * plane, plane, col.data(), plane, false);
    col2imAdd(g, col.data(), dx + (long)n * g.cin * g.h * g.w);
  }
}

void conv2dBackwardWeight(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db) {
  const IsaOps& isa = currentIsaOps();
  const long plane = (long)g.oh * g.ow, k = (long)g.cin * g.kh * g.kw;
  std::vector<float> colT(plane * k);
  std::memset(dw, 0, sizeof(float) * (size_t)g.cout * k);
  for (int n = 0; n < g.n; n++) {
    im2col(g, x + (long)n * g.cin * g.h * g.w, colT.data(), true);
    isa.sgemm(g.cout, (int)k, (int)plane, dy + (long)n * g.cout * plane, plane, colT.data(), k, dw, k, true);
  }
  for (int co = 0; co < g.cout; co++) {
    double s = 0;
    for (int n = 0; n < g.n; n++) {
      const float* d = dy + ((long)n * g.cout + co) * plane;
      for (long p = 0; p < plane; p++) s += d[p];
    }
    db[co] = (float)s;
  }
}

}  // namespace evometa
