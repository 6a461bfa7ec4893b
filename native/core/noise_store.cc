// The store of evaluated members' noise (core/noise_store.h).
#include "core/noise_store.h"

#include <algorithm>
#include <deque>
#include <mutex>
#include <new>

namespace evometa {

namespace {

constexpr double kBudget = 64.0 * 1024 * 1024;  // bytes of z kept, all blocks together

struct Store {
  std::mutex mu;
  std::deque<std::shared_ptr<NoiseBlock>> blocks;  // most recent first
};

Store& store() {
  static auto* s = new Store();  // never destroyed: threads may still use it at exit
  return *s;
}

double bytesOf(const NoiseBlock& b) { return 4.0 * (double)b.z.size(); }

}  // namespace

std::shared_ptr<NoiseBlock> reserveNoise(uint32_t seed, uint32_t step, long k0, long k1, long numParams) {
  if (k1 <= k0 || numParams <= 0 || 4.0 * (double)(k1 - k0) * (double)numParams > kBudget / 2) return nullptr;
  std::shared_ptr<NoiseBlock> b;
  try {
    b = std::make_shared<NoiseBlock>();
    b->z.resize((size_t)(k1 - k0) * (size_t)numParams);
  } catch (const std::bad_alloc&) {
    return nullptr;  // a hint only: the noise sums regenerate
  }
  b->seed = seed;
  b->step = step;
  b->k0 = k0;
  b->k1 = k1;
  b->numParams = numParams;
  return b;
}

void publishNoise(const std::shared_ptr<NoiseBlock>& b) {
  if (!b) return;
  Store& s = store();
  std::lock_guard<std::mutex> g(s.mu);
  s.blocks.push_front(b);
  double total = 0;
  for (size_t i = 0; i < s.blocks.size(); i++) {
    total += bytesOf(*s.blocks[i]);
    if (total > kBudget) {
      s.blocks.resize(i);
      break;
    }
  }
}

std::shared_ptr<const NoiseBlock> findNoise(uint32_t seed, uint32_t step, long k0, long k1, long numParams) {
  Store& s = store();
  std::lock_guard<std::mutex> g(s.mu);
  for (const auto& b : s.blocks) {
    if (b->seed == seed && b->step == step && b->numParams == numParams && b->k0 <= k0 && k1 <= b->k1) return b;
  }
  return nullptr;
}

double noiseStoreBytes() {
  Store& s = store();
  std::lock_guard<std::mutex> g(s.mu);
  double t = 0;
  for (const auto& b : s.blocks) t += bytesOf(*b);
  return t;
}

}  // namespace evometa
