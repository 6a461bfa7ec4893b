// Scalar port of lib/rng/philox.ts, operation for operation (-ffp-contract=off), plus the
// dispatch to the AVX-512 version (noise_avx512.cc) for whole Philox blocks.
#include "core/noise.h"

#include <cstring>

#include <cmath>

#include "core/cpu.h"

namespace evometa {

namespace {

constexpr uint32_t M0 = 0xd2511f53u, M1 = 0xcd9e8d57u, W0 = 0x9e3779b9u, W1 = 0xbb67ae85u;
constexpr double TWO32 = 4294967296.0;
constexpr double SQRT_HALF = 0.7071067811865476;
constexpr double LN2 = 0.6931471805599453;
constexpr double HALF_PI = 1.5707963267948966;

double lnUnit(uint32_t x) {
  const double u = ((double)x + 0.5) / TWO32;
  const int k = x == 0 ? 33 : 32 - (31 - __builtin_clz(x));
  double m = u * std::ldexp(1.0, k);
  double e = -k;
  if (m > 2 * SQRT_HALF) {
    m = m * 0.5;
    e = e + 1;
  }
  const double s = (m - 1) / (m + 1);
  const double z = s * s;
  double p = 1.0 / 23;
  p = p * z + 1.0 / 21; p = p * z + 1.0 / 19; p = p * z + 1.0 / 17; p = p * z + 1.0 / 15;
  p = p * z + 1.0 / 13; p = p * z + 1.0 / 11; p = p * z + 1.0 / 9; p = p * z + 1.0 / 7;
  p = p * z + 1.0 / 5; p = p * z + 1.0 / 3; p = p * z + 1;
  return 2 * s * p + e * LN2;
}

double sinPoly(double b) {
  const double z = b * b;
  double p = -1.0 / 1307674368000;
  p = p * z + 1.0 / 6227020800; p = p * z - 1.0 / 39916800; p = p * z + 1.0 / 362880;
  p = p * z - 1.0 / 5040; p = p * z + 1.0 / 120; p = p * z - 1.0 / 6; p = p * z + 1;
  return b * p;
}

double cosPoly(double b) {
  const double z = b * b;
  double p = 1.0 / 20922789888000;
  p = p * z - 1.0 / 87178291200; p = p * z + 1.0 / 479001600; p = p * z - 1.0 / 3628800;
  p = p * z + 1.0 / 40320; p = p * z - 1.0 / 720; p = p * z + 1.0 / 24; p = p * z - 1.0 / 2;
  return p * z + 1;
}

void boxMuller(uint32_t a, uint32_t b, float* out) {
  const double r = std::sqrt(-2 * lnUnit(a));
  const double t = (((double)b + 0.5) / TWO32) * 4;
  const double q = std::floor(t);
  const double f = t - q;
  double ca, sa;
  if (f <= 0.5) {
    const double ang = f * HALF_PI;
    ca = cosPoly(ang);
    sa = sinPoly(ang);
  } else {
    const double ang = (1 - f) * HALF_PI;
    ca = sinPoly(ang);
    sa = cosPoly(ang);
  }
  double c, s;
  if (q == 0) { c = ca; s = sa; } else if (q == 1) { c = -sa; s = ca; } else if (q == 2) { c = -ca; s = -sa; } else { c = sa; s = -ca; }
  out[0] = (float)(r * c);
  out[1] = (float)(r * s);
}

}  // namespace

void philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1, uint32_t out[4]) {
  for (int r = 0; r < 10; r++) {
    const uint64_t p0 = (uint64_t)M0 * c0, p1 = (uint64_t)M1 * c2;
    const uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    const uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += W0;
    k1 += W1;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

namespace noise_scalar {
void gaussianFill(float* out, long n, uint32_t seed, uint32_t stream, uint32_t step, uint32_t member, uint64_t start) {
  long j = 0;
  uint64_t idx = start;
  uint32_t u[4];
  float z[4];
  while (j < n) {
    const uint64_t block = idx / 4;
    int lane = (int)(idx - block * 4);
    philox4x32((uint32_t)block, member, step, 0, seed, stream, u);
    boxMuller(u[0], u[1], z);
    boxMuller(u[2], u[3], z + 2);
    for (; lane < 4 && j < n; lane++, j++, idx++) out[j] = z[lane];
  }
}
}  // namespace noise_scalar

namespace {
bool useAvx512() {
#if defined(EVOMETA_X64)
  return activeIsa() == Isa::avx512;
#else
  return false;
#endif
}
}  // namespace

const char* noiseImpl() { return useAvx512() ? "avx512" : "scalar"; }

void gaussianFill(float* out, long n, uint32_t seed, uint32_t stream, uint32_t step, uint32_t member, uint64_t start) {
#if defined(EVOMETA_X64)
  if (useAvx512() && n >= 64) {
    // scalar head up to a block boundary, vector body of whole blocks, scalar tail
    long head = (long)((4 - start % 4) % 4);
    if (head > n) head = n;
    noise_scalar::gaussianFill(out, head, seed, stream, step, member, start);
    const long body = (n - head) / 4 * 4;
    noise_avx512::gaussianFillBlocks(out + head, body, seed, stream, step, member, start + head);
    noise_scalar::gaussianFill(out + head + body, n - head - body, seed, stream, step, member, start + head + body);
    return;
  }
#endif
  noise_scalar::gaussianFill(out, n, seed, stream, step, member, start);
}

void perturbGaussian(float* theta, const float* mu, long n, double sigma, int sign, uint32_t seed, uint32_t step,
                     uint32_t noiseId, uint64_t start, float* zOut) {
  gaussianFill(theta, n, seed, 0, step, noiseId, start);
  if (zOut != nullptr) std::memcpy(zOut, theta, sizeof(float) * (size_t)n);
  const float s = sign < 0 ? -1.f : 1.f;
  for (long j = 0; j < n; j++) {
    const float eps = (float)(sigma * (double)theta[j]);
    theta[j] = mu[j] + s * eps;  // float32 sum of two float32s == f32 of the exact sum
  }
}

void perturbDiagonal(float* theta, const float* mu, const float* sigmas, long n, int sign, uint32_t seed,
                     uint32_t step, uint32_t noiseId, uint64_t start, float* zOut) {
  gaussianFill(theta, n, seed, 0, step, noiseId, start);
  if (zOut != nullptr) std::memcpy(zOut, theta, sizeof(float) * (size_t)n);
  const float s = sign < 0 ? -1.f : 1.f;
  for (long j = 0; j < n; j++) {
    const float eps = sigmas[j] * theta[j];  // float32 product: the exact product rounded once
    theta[j] = mu[j] + s * eps;
  }
}

void accumulateNoise(double* out, long n, double w, double sigma, uint32_t seed, uint32_t step, uint32_t noiseId,
                     uint64_t start) {
  constexpr long kChunk = 1024;
  float z[kChunk];
  for (long j0 = 0; j0 < n; j0 += kChunk) {
    const long len = n - j0 < kChunk ? n - j0 : kChunk;
    gaussianFill(z, len, seed, 0, step, noiseId, start + j0);
    for (long j = 0; j < len; j++) out[j0 + j] += w * (double)(float)(sigma * (double)z[j]);
  }
}

}  // namespace evometa

namespace evometa {

void accumulateNoiseDiagonal(double* out, long n, double w, const float* sigmas, uint32_t seed, uint32_t step,
                             uint32_t noiseId, uint64_t start) {
  constexpr long kChunk = 1024;
  float z[kChunk];
  for (long j0 = 0; j0 < n; j0 += kChunk) {
    const long len = n - j0 < kChunk ? n - j0 : kChunk;
    gaussianFill(z, len, seed, 0, step, noiseId, start + j0);
    for (long j = 0; j < len; j++) out[j0 + j] += w * (double)(sigmas[j0 + j] * z[j]);
  }
}

void accumulateNoiseSquare(double* out, long n, double w, uint32_t seed, uint32_t step, uint32_t noiseId,
                           uint64_t start) {
  constexpr long kChunk = 1024;
  float z[kChunk];
  for (long j0 = 0; j0 < n; j0 += kChunk) {
    const long len = n - j0 < kChunk ? n - j0 : kChunk;
    gaussianFill(z, len, seed, 0, step, noiseId, start + j0);
    for (long j = 0; j < len; j++) {
      const double zj = z[j];
      out[j0 + j] += w * (zj * zj - 1.0);
    }
  }
}

}  // namespace evometa

namespace evometa {

// The loops of accumulateNoise, accumulateNoiseDiagonal and accumulateNoiseSquare on stored z.
void accumulateStoredNoise(double* out, long n, double w, double sigma, const float* z) {
  for (long j = 0; j < n; j++) out[j] += w * (double)(float)(sigma * (double)z[j]);
}

void accumulateStoredNoiseDiagonal(double* out, long n, double w, const float* sigmas, const float* z) {
  for (long j = 0; j < n; j++) out[j] += w * (double)(sigmas[j] * z[j]);
}

void accumulateStoredNoiseSquare(double* out, long n, double w, const float* z) {
  for (long j = 0; j < n; j++) {
    const double zj = z[j];
    out[j] += w * (zj * zj - 1.0);
  }
}

}  // namespace evometa
