// Bilinear rotation (OpSpecs.rotate): the sampling of one H x W plane -- four source corners per
// output pixel (flat index, or -1 outside), their float64 weights and the weights' derivatives
// with respect to the angle -- is computed in TypeScript (lib/device/cpu-ts/rotate.ts, the spec)
// and applied here to every plane, accumulating in double as the reference does.
#include <cstdint>

#include "core/kernels.h"

namespace evometa {

void rotateResample(long planes, long px, const int32_t* index, const double* weight, const float* x, float* y) {
  for (long p = 0; p < planes; p++) {
    const float* xp = x + p * px;
    float* yp = y + p * px;
    for (long q = 0; q < px; q++) {
      double acc = 0;
      for (long k = 4 * q; k < 4 * q + 4; k++) {
        const int32_t s = index[k];
        if (s >= 0) acc += weight[k] * (double)xp[s];
      }
      yp[q] = (float)acc;
    }
  }
}

double rotateBackward(long planes, long px, const int32_t* index, const double* weight, const double* dweight,
                      const float* dy, const float* x, float* dx) {
  double da = 0;
  for (long p = 0; p < planes; p++) {
    const float* xp = x + p * px;
    const float* gp = dy + p * px;
    float* dxp = dx + p * px;
    for (long i = 0; i < px; i++) dxp[i] = 0;
    for (long q = 0; q < px; q++) {
      const double g = gp[q];
      if (g == 0) continue;
      for (long k = 4 * q; k < 4 * q + 4; k++) {
        const int32_t s = index[k];
        if (s < 0) continue;
        dxp[s] = (float)((double)dxp[s] + weight[k] * g);
        da += dweight[k] * g * (double)xp[s];
      }
    }
  }
  return da;
}

}  // namespace evometa
