#include "core/cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace evometa {

namespace {
std::atomic<int> active{-1};
const char* reason = "";
}  // namespace

Isa detectIsa() {
#if defined(EVOMETA_X64) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
    reason = "CPU supports avx512f+dq+bw+vl";
    return Isa::avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    reason = "CPU supports avx2+fma but not avx512f/dq/bw/vl";
    return Isa::avx2;
  }
  reason = "CPU lacks avx2+fma: baseline vector code";
  return Isa::scalar;
#else
  reason = "not an x86-64 build: baseline (compiler-vectorized) code";
  return Isa::scalar;
#endif
}

Isa activeIsa() {
  int a = active.load();
  if (a < 0) {
    a = static_cast<int>(detectIsa());
    active.store(a);
  }
  return static_cast<Isa>(a);
}

bool setIsa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(detectIsa())) return false;
  active.store(static_cast<int>(isa));
  return true;
}

const char* isaName(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "scalar";
  }
}

bool parseIsa(const char* name, Isa* out) {
  if (!std::strcmp(name, "avx512")) *out = Isa::avx512;
  else if (!std::strcmp(name, "avx2")) *out = Isa::avx2;
  else if (!std::strcmp(name, "scalar")) *out = Isa::scalar;
  else return false;
  return true;
}

const char* isaReason() {
  detectIsa();
  return reason;
}

}  // namespace evometa

#include "isa/isa.h"
#include "isa/single_ops.h"

namespace evometa {
const SingleOps& currentSingleOps() {
#if defined(EVOMETA_X64)
  switch (activeIsa()) {
    case Isa::avx512: return singleOpsAvx512();
    case Isa::avx2: return singleOpsAvx2();
    default: break;
  }
#endif
  return singleOpsScalar();
}
const IsaOps& currentIsaOps() {
#if defined(EVOMETA_X64)
  switch (activeIsa()) {
    case Isa::avx512: return isaOpsAvx512();
    case Isa::avx2: return isaOpsAvx2();
    default: break;
  }
#endif
  return isaOpsScalar();
}
const char* tuneMalloc() {
  static const char* done = [] {
#if defined(__GLIBC__)
    const char* env = std::getenv("EVOMETA_MALLOC_TUNE");
    if (env && std::strcmp(env, "0") == 0) return "off (EVOMETA_MALLOC_TUNE=0)";
    // No mmap for large blocks (the 32 MB cap on M_MMAP_THRESHOLD is below our largest
    // tensors); keep up to 256 MiB free at the heap top instead of returning it each time.
    const bool ok = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1;
    return ok ? "glibc: M_MMAP_MAX=0, M_TRIM_THRESHOLD=256MiB" : "glibc: mallopt failed";
#else
    return "not glibc: unchanged";
#endif
  }();
  return done;
}

}  // namespace evometa


#include <new>

namespace evometa {
void isaOutOfMemory() { throw std::bad_alloc(); }
}  // namespace evometa
