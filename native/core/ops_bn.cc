// BatchNorm2d: training mode (batch statistics, float64 sums), eval mode, and backward.
#include <cmath>

#include "core/kernels.h"

namespace evometa {

void batchnormTrain(const BnGeom& g, const float* x, const float* gamma, const float* beta, double eps, float* y,
                    float* mean, float* var, float* invStd) {
  const double m = (double)g.n * g.hw;
  for (int ch = 0; ch < g.c; ch++) {
    double s = 0;
    for (int b = 0; b < g.n; b++) {
      const float* xp = x + ((long)b * g.c + ch) * g.hw;
      for (long k = 0; k < g.hw; k++) s += xp[k];
    }
    const double mu = s / m;
    double v = 0;
    for (int b = 0; b < g.n; b++) {
      const float* xp = x + ((long)b * g.c + ch) * g.hw;
      for (long k = 0; k < g.hw; k++) {
        const double d = xp[k] - mu;
        v += d * d;
      }
    }
    v /= m;
    const double is = 1 / std::sqrt(v + eps);
    mean[ch] = (float)mu;
    var[ch] = (float)v;
    invStd[ch] = (float)is;
    const double gs = gamma[ch] * is, bt = beta[ch];
    for (int b = 0; b < g.n; b++) {
      const float* xp = x + ((long)b * g.c + ch) * g.hw;
      float* yp = y + ((long)b * g.c + ch) * g.hw;
      for (long k = 0; k < g.hw; k++) yp[k] = (float)((xp[k] - mu) * gs + bt);
    }
  }
}

void batchnormEval(const BnGeom& g, const float* x, const float* gamma, const float* beta, const float* runningMean,
                   const float* runningVar, double eps, float* y) {
  for (int ch = 0; ch < g.c; ch++) {
    const double is = 1 / std::sqrt((double)runningVar[ch] + eps);
    const double gs = gamma[ch] * is, mu = runningMean[ch], bt = beta[ch];
    for (int b = 0; b < g.n; b++) {
      const float* xp = x + ((long)b * g.c + ch) * g.hw;
      float* yp = y + ((long)b * g.c + ch) * g.hw;
      for (long k = 0; k < g.hw; k++) yp[k] = (float)((xp[k] - mu) * gs + bt);
    }
  }
}

void batchnormBackward(const BnGeom& g, const float* dy, const float* x, const float* gamma, const float* mean,
                       const float* invStd, float* dx, float* dgamma, float* dbeta) {
  const double m = (double)g.n * g.hw;
  for (int ch = 0; ch < g.c; ch++) {
    const double mu = mean[ch], is = invStd[ch];
    double sdy = 0, sdyx = 0;
    for (int b = 0; b < g.n; b++) {
      const long base = ((long)b * g.c + ch) * g.hw;
      for (long k = 0; k < g.hw; k++) {
        const double d = dy[base + k];
        sdy += d;
        sdyx += d * (x[base + k] - mu) * is;
      }
    }
    dbeta[ch] = (float)sdy;
    dgamma[ch] = (float)sdyx;
    const double f = gamma[ch] * is / m;
    for (int b = 0; b < g.n; b++) {
      const long base = ((long)b * g.c + ch) * g.hw;
      for (long k = 0; k < g.hw; k++) {
        const double xh = (x[base + k] - mu) * is;
        dx[base + k] = (float)(f * (m * dy[base + k] - sdy - xh * sdyx));
      }
    }
  }
}

}  // namespace evometa
