// BatchNorm2d: training mode (batch statistics, float64 sums), eval mode, and backward.
#include <cmath>

#include "core/kernels.h"
#include "core/threadpool.h"

namespace evometa {

namespace {
#if defined(EVOMETA_X64) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
// float64 sums vectorize 8 wide with AVX-512 (chosen at load time; baseline code otherwise)
#define EVOMETA_SUM_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define EVOMETA_SUM_CLONES
#endif

// Float64 sums with 8 independent accumulators (instruction-level parallelism; the order is fixed,
// so results are deterministic).
EVOMETA_SUM_CLONES double sum8(const float* x, long n) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) a[j] += x[i + j];
  double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
  for (; i < n; i++) s += x[i];
  return s;
}

EVOMETA_SUM_CLONES double sqdev8(const float* x, long n, double mu) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) {
      const double d = x[i + j] - mu;
      a[j] += d * d;
    }
  double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
  for (; i < n; i++) s += (x[i] - mu) * (x[i] - mu);
  return s;
}
}  // namespace

void batchnormTrain(const BnGeom& g, const float* x, const float* gamma, const float* beta, double eps, float* y,
                    float* mean, float* var, float* invStd) {
  const double m = (double)g.n * g.hw;
  // channels are independent: one task each (results do not depend on the thread count)
  parallelForOrInline(g.c, 0, [&](int ch, int) {
    double s = 0;
    for (int b = 0; b < g.n; b++) s += sum8(x + ((long)b * g.c + ch) * g.hw, g.hw);
    const double mu = s / m;
    double v = 0;
    for (int b = 0; b < g.n; b++) v += sqdev8(x + ((long)b * g.c + ch) * g.hw, g.hw, mu);
    v /= m;
    const double is = 1 / std::sqrt(v + eps);
    mean[ch] = (float)mu;
    var[ch] = (float)v;
    invStd[ch] = (float)is;
    // y = (x - mu) * gs + bt, as one float multiply-add per element (float32 output either way)
    const double gs = gamma[ch] * is;
    const float fs = (float)gs, ft = (float)(beta[ch] - mu * gs);
    for (int b = 0; b < g.n; b++) {
      const float* xp = x + ((long)b * g.c + ch) * g.hw;
      float* yp = y + ((long)b * g.c + ch) * g.hw;
      for (long k = 0; k < g.hw; k++) yp[k] = xp[k] * fs + ft;
    }
  });
}

void batchnormEval(const BnGeom& g, const float* x, const float* gamma, const float* beta, const float* runningMean,
                   const float* runningVar, double eps, float* y) {
  parallelForOrInline(g.c, 0, [&](int ch, int) {
    const double is = 1 / std::sqrt((double)runningVar[ch] + eps);
    const double gs = gamma[ch] * is, mu = runningMean[ch], bt = beta[ch];
    for (int b = 0; b < g.n; b++) {
      const float* xp = x + ((long)b * g.c + ch) * g.hw;
      float* yp = y + ((long)b * g.c + ch) * g.hw;
      for (long k = 0; k < g.hw; k++) yp[k] = (float)((xp[k] - mu) * gs + bt);
    }
  });
}

namespace {
EVOMETA_SUM_CLONES void bnBackwardChannel(const BnGeom& g, int ch, const float* dy, const float* x, const float* gamma,
                                          const float* mean, const float* invStd, float* dx, float* dgamma,
                                          float* dbeta) {
  const double m = (double)g.n * g.hw;
  const double mu = mean[ch], is = invStd[ch];
  double sdy = 0, sdyx = 0;
  for (int b = 0; b < g.n; b++) {
    const long base = ((long)b * g.c + ch) * g.hw;
    double a[4] = {0, 0, 0, 0}, c[4] = {0, 0, 0, 0};
    long k = 0;
    for (; k + 4 <= g.hw; k += 4)
      for (int j = 0; j < 4; j++) {
        const double d = dy[base + k + j];
        a[j] += d;
        c[j] += d * (x[base + k + j] - mu);
      }
    double ps = (a[0] + a[1]) + (a[2] + a[3]), pc = (c[0] + c[1]) + (c[2] + c[3]);
    for (; k < g.hw; k++) {
      ps += dy[base + k];
      pc += dy[base + k] * (x[base + k] - mu);
    }
    sdy += ps;
    sdyx += pc * is;
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
}  // namespace

void batchnormBackward(const BnGeom& g, const float* dy, const float* x, const float* gamma, const float* mean,
                       const float* invStd, float* dx, float* dgamma, float* dbeta) {
  parallelForOrInline(g.c, 0, [&](int ch, int) { bnBackwardChannel(g, ch, dy, x, gamma, mean, invStd, dx, dgamma, dbeta); });
}

}  // namespace evometa
