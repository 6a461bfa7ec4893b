// The ES noise: Philox4x32-10 + deterministic Box-Muller, bit-identical to
// lib/rng/philox.ts (gaussianFill). Compiled with -ffp-contract=off: every
// operation rounds exactly as the TypeScript does.
#pragma once
#include <cstdint>

namespace evometa {

void philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1, uint32_t out[4]);

// out[j] = standard normal at index start + j of (seed, stream, step, member), as float32.
void gaussianFill(float* out, long n, uint32_t seed, uint32_t stream, uint32_t step, uint32_t member, uint64_t start);

// theta[j] = f32(mu[j] + sign * f32(sigma * z[j])), with z = gaussianFill(seed, 0, step, noiseId, start);
// z is also copied to zOut when it is not null.
void perturbGaussian(float* theta, const float* mu, long n, double sigma, int sign, uint32_t seed, uint32_t step,
                     uint32_t noiseId, uint64_t start, float* zOut = nullptr);

// theta[j] = f32(mu[j] + sign * f32(sigmas[j] * z[j])) (a float32 product, rounded once); z to zOut as above.
void perturbDiagonal(float* theta, const float* mu, const float* sigmas, long n, int sign, uint32_t seed,
                     uint32_t step, uint32_t noiseId, uint64_t start, float* zOut = nullptr);

// out[j] += w * f32(sigma * z[j]) in float64 (w already carries the antithetic sign).
void accumulateNoise(double* out, long n, double w, double sigma, uint32_t seed, uint32_t step, uint32_t noiseId,
                     uint64_t start);
// out[j] += w * f32(sigmas[j] * z[j]) in float64 (sigmas indexed like out).
void accumulateNoiseDiagonal(double* out, long n, double w, const float* sigmas, uint32_t seed, uint32_t step,
                             uint32_t noiseId, uint64_t start);
// out[j] += w * (z[j] * z[j] - 1) in float64 (z^2 exact; no fused multiply-add).
void accumulateNoiseSquare(double* out, long n, double w, uint32_t seed, uint32_t step, uint32_t noiseId,
                           uint64_t start);

// The three sums above from stored standard normals z[0, n) (the same z gaussianFill gives for
// that member and range): the same arithmetic, so bit for bit the same result.
void accumulateStoredNoise(double* out, long n, double w, double sigma, const float* z);
void accumulateStoredNoiseDiagonal(double* out, long n, double w, const float* sigmas, const float* z);
void accumulateStoredNoiseSquare(double* out, long n, double w, const float* z);

// Which implementation runs ("avx512" or "scalar").
const char* noiseImpl();

namespace noise_scalar {
void gaussianFill(float* out, long n, uint32_t seed, uint32_t stream, uint32_t step, uint32_t member, uint64_t start);
}
#if defined(EVOMETA_X64)
namespace noise_avx512 {
// Requires n % 4 == 0 and start % 4 == 0 (whole Philox blocks).
void gaussianFillBlocks(float* out, long n, uint32_t seed, uint32_t stream, uint32_t step, uint32_t member,
                        uint64_t start);
}
#endif

}  // namespace evometa
