// The per-channel arithmetic of training-mode BatchNorm, shared by the plain kernels (ops_bn.cc)
// and the fused BN + ReLU + max-pool (ops_bn_relu_pool.cc), so the two agree bit for bit.
#pragma once
#include <cmath>

#include "core/kernels.h"
#include "isa/single_ops.h"

namespace evometa {

// A channel's batch statistics and the affine map y = (x - muF) * scale + shift that applies them.
struct BnChannel {
  float mean, var, invStd;
  float muF, scale, shift;
};

inline BnChannel bnChannel(const SingleOps& so, const BnGeom& g, const float* x, int ch, double eps, float gamma, float beta) {
  const double m = (double)g.n * g.hw;
  // sums of (x - shift) and its square, shifted by the channel's first value (no cancellation
  // when the mean is large against the spread)
  const float shift = g.hw > 0 && g.n > 0 ? x[(long)ch * g.hw] : 0.f;
  double s1 = 0, s2 = 0;
  for (int b = 0; b < g.n; b++) so.shiftedSums(x + ((long)b * g.c + ch) * g.hw, g.hw, shift, &s1, &s2);
  const double d = s1 / m, mu = shift + d;
  double v = s2 / m - d * d;
  if (v < 0) v = 0;
  const double is = 1 / std::sqrt(v + eps);
  // y = (x - mu) * gs + beta as (x - muF) * gs + (beta - (mu - muF) * gs): a float subtraction
  // (exact near the mean) and one multiply-add per element, accurate however large the mean
  const double gs = gamma * is;
  const float muF = (float)mu;
  return BnChannel{(float)mu, (float)v, (float)is, muF, (float)gs, (float)(beta - (mu - muF) * gs)};
}

// The backward's coefficients from the sums sdy = sum dy and sdyxc = sum dy * (x - mean):
// dbeta = sdy, dgamma = sdyxc * invStd, dx = a * dy + b * (x - mean) + c.
struct BnBackward {
  float dgamma, dbeta, a, b, c;
};

inline BnBackward bnBackwardCoeffs(const BnGeom& g, float gamma, float invStd, double sdy, double sdyxc) {
  const double m = (double)g.n * g.hw, is = invStd, sdyx = sdyxc * is;
  const double f = gamma * is / m;
  return BnBackward{(float)sdyx, (float)sdy, (float)(f * m), (float)(-f * is * sdyx), (float)(-f * sdy)};
}

}  // namespace evometa
