// BatchNorm2d: training mode (batch statistics, float64 totals), eval mode, and backward. One
// task per channel (results do not depend on the thread count); the per-element work runs in
// the ISA's vector code (native/isa/single_ops_impl.h): float vector partial sums over each
// image's run of the channel, added into float64 totals in a fixed order. The second pass over
// a channel walks the images in reverse, so it starts on the data the first pass left in cache.
#include <cmath>

#include "core/kernels.h"
#include "core/threadpool.h"
#include "isa/single_ops.h"

namespace evometa {

void batchnormTrain(const BnGeom& g, const float* x, const float* gamma, const float* beta, double eps, float* y,
                    float* mean, float* var, float* invStd) {
  const SingleOps& so = currentSingleOps();
  const double m = (double)g.n * g.hw;
  parallelForOrInline(g.c, 0, [&](int ch, int) {
    // sums of (x - shift) and its square, shifted by the channel's first value (no cancellation
    // when the mean is large against the spread)
    const float shift = g.hw > 0 && g.n > 0 ? x[(long)ch * g.hw] : 0.f;
    double s1 = 0, s2 = 0;
    for (int b = 0; b < g.n; b++) so.shiftedSums(x + ((long)b * g.c + ch) * g.hw, g.hw, shift, &s1, &s2);
    const double d = s1 / m, mu = shift + d;
    double v = s2 / m - d * d;
    if (v < 0) v = 0;
    const double is = 1 / std::sqrt(v + eps);
    mean[ch] = (float)mu;
    var[ch] = (float)v;
    invStd[ch] = (float)is;
    // y = (x - mu) * gs + beta as (x - muF) * gs + (beta - (mu - muF) * gs): a float subtraction
    // (exact near the mean) and one multiply-add per element, accurate however large the mean
    const double gs = gamma[ch] * is;
    const float muF = (float)mu, fs = (float)gs, ft = (float)(beta[ch] - (mu - muF) * gs);
    for (int b = g.n - 1; b >= 0; b--) {
      const long off = ((long)b * g.c + ch) * g.hw;
      so.scaleShift(x + off, g.hw, muF, fs, ft, y + off);
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

// dbeta = sum dy, dgamma = sum dy * xh (xh = (x - mean) * invStd), and
// dx = gamma * invStd / m * (m * dy - dbeta - xh * dgamma) = a * dy + b * (x - mean) + c.
void batchnormBackward(const BnGeom& g, const float* dy, const float* x, const float* gamma, const float* mean,
                       const float* invStd, float* dx, float* dgamma, float* dbeta) {
  const SingleOps& so = currentSingleOps();
  const double m = (double)g.n * g.hw;
  parallelForOrInline(g.c, 0, [&](int ch, int) {
    const float mu = mean[ch];
    const double is = invStd[ch];
    double sdy = 0, sdyx = 0;
    for (int b = 0; b < g.n; b++) {
      const long off = ((long)b * g.c + ch) * g.hw;
      so.dotSums(dy + off, x + off, g.hw, mu, &sdy, &sdyx);
    }
    sdyx *= is;
    dbeta[ch] = (float)sdy;
    dgamma[ch] = (float)sdyx;
    const double f = gamma[ch] * is / m;
    const float a = (float)(f * m), b = (float)(-f * is * sdyx), c = (float)(-f * sdy);
    for (int n = g.n - 1; n >= 0; n--) {
      const long off = ((long)n * g.c + ch) * g.hw;
      so.affine2(dy + off, x + off, g.hw, a, b, mu, c, dx + off);
    }
  });
}

}  // namespace evometa
