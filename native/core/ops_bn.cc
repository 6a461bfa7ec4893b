// BatchNorm2d: training mode (batch statistics, float64 totals), eval mode, and backward. One
// task per channel (results do not depend on the thread count); the per-element work runs in
// the ISA's vector code (native/isa/single_ops_impl.h): float vector partial sums over each
// image's run of the channel, added into float64 totals in a fixed order. The second pass over
// a channel walks the images in reverse, so it starts on the data the first pass left in cache.
#include <cmath>

#include "core/bn_channel.h"
#include "core/kernels.h"
#include "core/threadpool.h"
#include "isa/single_ops.h"

namespace evometa {

void batchnormTrain(const BnGeom& g, const float* x, const float* gamma, const float* beta, double eps, float* y,
                    float* mean, float* var, float* invStd) {
  const SingleOps& so = currentSingleOps();
  parallelForOrInline(g.c, 0, [&](int ch, int) {
    const BnChannel k = bnChannel(so, g, x, ch, eps, gamma[ch], beta[ch]);
    mean[ch] = k.mean;
    var[ch] = k.var;
    invStd[ch] = k.invStd;
    for (int b = g.n - 1; b >= 0; b--) {
      const long off = ((long)b * g.c + ch) * g.hw;
      so.scaleShift(x + off, g.hw, k.muF, k.scale, k.shift, y + off);
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
  parallelForOrInline(g.c, 0, [&](int ch, int) {
    const float mu = mean[ch];
    double sdy = 0, sdyx = 0;
    for (int b = 0; b < g.n; b++) {
      const long off = ((long)b * g.c + ch) * g.hw;
      so.dotSums(dy + off, x + off, g.hw, mu, &sdy, &sdyx);
    }
    const BnBackward k = bnBackwardCoeffs(g, gamma[ch], invStd[ch], sdy, sdyx);
    dbeta[ch] = k.dbeta;
    dgamma[ch] = k.dgamma;
    for (int n = g.n - 1; n >= 0; n--) {
      const long off = ((long)n * g.c + ch) * g.hw;
      so.affine2(dy + off, x + off, g.hw, k.a, k.b, mu, k.c, dx + off);
    }
  });
}

}  // namespace evometa
