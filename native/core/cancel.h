// Cooperative cancellation of long native work (the population loop, the noise sum): the
// boundary sets the flag (a worker thread being closed, an environment being torn down) and
// the kernels check it between members / chunks. Plain C++; no N-API here.
#pragma once
#include <atomic>
#include <stdexcept>

namespace evometa {

struct CancelToken {
  std::atomic<bool> requested{false};
};

class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("cancelled") {}
};

inline void throwIfCancelled(const CancelToken* t) {
  if (t != nullptr && t->requested.load(std::memory_order_relaxed)) throw Cancelled();
}

}  // namespace evometa
