// The standard normals z of the members a population call evaluated, kept for the noise sums
// that follow (the same process, any thread): a noise sum over those members then reads z
// instead of regenerating it (Philox + Box-Muller), with the same arithmetic, so the same sum
// bit for bit. Blocks are keyed by (seed, step, noise ids [k0, k1), numParams); the most recent
// are kept within a byte budget, and a sum whose members a block does not cover regenerates.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace evometa {

struct NoiseBlock {
  uint32_t seed = 0, step = 0;
  long k0 = 0, k1 = 0;  // noise ids [k0, k1)
  long numParams = 0;
  std::vector<float> z;  // [(k1 - k0) * numParams]

  float* row(long noiseId) { return z.data() + (size_t)(noiseId - k0) * (size_t)numParams; }
  const float* row(long noiseId) const { return z.data() + (size_t)(noiseId - k0) * (size_t)numParams; }
};

// A block to fill (null when it would not fit the budget, or allocation fails); publishNoise makes
// it visible to findNoise once every row is written (a block never published is just dropped).
std::shared_ptr<NoiseBlock> reserveNoise(uint32_t seed, uint32_t step, long k0, long k1, long numParams);
void publishNoise(const std::shared_ptr<NoiseBlock>& b);

// A published block holding noise ids [k0, k1) of (seed, step) for numParams parameters, or null.
std::shared_ptr<const NoiseBlock> findNoise(uint32_t seed, uint32_t step, long k0, long k1, long numParams);

// Bytes held by the kept blocks.
double noiseStoreBytes();

}  // namespace evometa
