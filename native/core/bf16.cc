#include "core/bf16.h"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <algorithm>

#include "core/cpu.h"
#include "isa/isa_bf16.h"

#if defined(EVOMETA_X64) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace evometa {

namespace {

struct Support {
  bool avx512bf16 = false;
  bool amx = false;
  std::string reason;
};

#if defined(EVOMETA_X64) && (defined(__GNUC__) || defined(__clang__))
uint64_t xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}
#endif

// Once per process: the CPU flags, and for AMX the OS state and the Linux permission.
const Support& support() {
  static const Support s = [] {
    Support r;
#if defined(EVOMETA_X64) && (defined(__GNUC__) || defined(__clang__))
    unsigned a = 0, b = 0, c = 0, d = 0;
    bool bf16 = false, amxBf16 = false, amxTile = false;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
      amxBf16 = (d >> 22) & 1;
      amxTile = (d >> 24) & 1;
      const unsigned maxSub = a;
      unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
      if (maxSub >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) bf16 = (a1 >> 5) & 1;
    }
    const bool avx512 = detectIsa() == Isa::avx512;  // avx512f/dq/bw/vl, OS state included
    r.avx512bf16 = bf16 && avx512;
    r.reason = std::string("cpu: avx512_bf16 ") + (bf16 ? "yes" : "no") + (avx512 ? "" : " (no avx512 variant)") +
               ", amx_bf16+amx_tile " + (amxBf16 && amxTile ? "yes" : "no");
    // EVOMETA_BF16=off: behave as a CPU without bf16; =noamx: as one without AMX (tests, and a
    // way around a misbehaving AMX setup).
    const char* env = std::getenv("EVOMETA_BF16");
    const bool off = env && !std::strcmp(env, "off"), noAmx = off || (env && !std::strcmp(env, "noamx"));
    if (off && r.avx512bf16) {
      r.avx512bf16 = false;
      r.reason += "; avx512_bf16 hidden by EVOMETA_BF16=off";
    }
#if defined(EVOMETA_AMX)
    constexpr bool amxBuilt = true;
#else
    constexpr bool amxBuilt = false;  // the compiler lacked -mamx-tile / -mamx-bf16 (binding.gyp)
#endif
    if (amxBf16 && amxTile && !amxBuilt) {
      r.reason += "; AMX: this build has no AMX kernel (its compiler lacked -mamx-tile / -mamx-bf16)";
    } else if (noAmx && amxBf16 && amxTile) {
      r.reason += std::string("; AMX hidden by EVOMETA_BF16=") + env;
    } else if (amxBf16 && amxTile && r.avx512bf16) {
      if ((xcr0() & (3u << 17)) != (3u << 17)) {
        r.reason += "; AMX: the OS does not enable the tile state (XCR0)";
      } else {
#if defined(__linux__)
        constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
        errno = 0;
        if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0) {
          r.amx = true;
          r.reason += "; AMX tile data granted (arch_prctl ARCH_REQ_XCOMP_PERM)";
        } else {
          r.reason += std::string("; AMX tile data refused by arch_prctl(ARCH_REQ_XCOMP_PERM): ") + std::strerror(errno);
        }
#else
        r.reason += "; AMX used on Linux only (the tile-data permission)";
#endif
      }
    }
#else
    r.reason = "not an x86-64 build: no bf16 kernels";
#endif
    return r;
  }();
  return s;
}

std::atomic<int> chosen{-1};

}  // namespace

Bf16Kernel detectBf16Kernel() {
  const Support& s = support();
  return s.amx ? Bf16Kernel::amx : s.avx512bf16 ? Bf16Kernel::avx512bf16 : Bf16Kernel::none;
}

Bf16Kernel activeBf16Kernel() {
  const int k = chosen.load();
  return k < 0 ? detectBf16Kernel() : static_cast<Bf16Kernel>(k);
}

bool bf16KernelAvailable(Bf16Kernel k) {
  const Support& s = support();
  switch (k) {
    case Bf16Kernel::emulated: return true;
    case Bf16Kernel::avx512bf16: return s.avx512bf16;
    case Bf16Kernel::amx: return s.amx;
    default: return false;
  }
}

bool setBf16Kernel(Bf16Kernel k) {
  if (k == Bf16Kernel::none) {
    chosen.store(-1);
    return true;
  }
  if (!bf16KernelAvailable(k)) return false;
  chosen.store(static_cast<int>(k));
  return true;
}

const char* bf16KernelName(Bf16Kernel k) {
  switch (k) {
    case Bf16Kernel::amx: return "amx";
    case Bf16Kernel::avx512bf16: return "avx512bf16";
    case Bf16Kernel::emulated: return "emulated";
    default: return "none";
  }
}

bool parseBf16Kernel(const char* name, Bf16Kernel* out) {
  if (!std::strcmp(name, "amx")) *out = Bf16Kernel::amx;
  else if (!std::strcmp(name, "avx512bf16")) *out = Bf16Kernel::avx512bf16;
  else if (!std::strcmp(name, "emulated")) *out = Bf16Kernel::emulated;
  else if (!std::strcmp(name, "auto")) *out = Bf16Kernel::none;
  else return false;
  return true;
}

const char* bf16Reason() { return support().reason.c_str(); }

const Bf16Ops* bf16Ops(Bf16Kernel k) {
#if defined(EVOMETA_X64)
#if defined(EVOMETA_AMX)
  if (k == Bf16Kernel::amx) return &bf16OpsAmx();
#endif
  if (k == Bf16Kernel::avx512bf16) return &bf16OpsAvx512();
#endif
  return nullptr;
}

namespace {
inline uint16_t bf16Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);            // zero, denormal
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);    // NaN: quiet
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);                      // nearest even
}
}  // namespace

uint16_t toBf16Bits(float x) { return bf16Bits(x); }

float roundBf16(float x) {
  const uint32_t u = (uint32_t)toBf16Bits(x) << 16;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

// Block-0 patches for precision bf16: rows of kp = k1 rounded up to 32, plus 32 zero rows
// (a bf16 layer1 reads whole tiles), or rounded to bf16 in place of the fp32 ones.
void bf16Patches(const std::vector<float>& patches, int k1, std::vector<uint16_t>& out, int& kp) {
  kp = (k1 + 31) / 32 * 32;
  const size_t rows = patches.size() / k1;
  out.resize((rows + 32) * kp);
  for (size_t r = 0; r < rows; r++) {
    uint16_t* o = out.data() + r * kp;
    const float* x = patches.data() + r * k1;
    for (int k = 0; k < k1; k++) o[k] = bf16Bits(x[k]);
    std::memset(o + k1, 0, sizeof(uint16_t) * (size_t)(kp - k1));
  }
  std::memset(out.data() + rows * kp, 0, sizeof(uint16_t) * 32 * (size_t)kp);
}

void roundedPatches(const std::vector<float>& patches, std::vector<float>& out) {
  out.resize(patches.size());
  for (size_t i = 0; i < patches.size(); i++) {
    const uint32_t u = (uint32_t)bf16Bits(patches[i]) << 16;
    std::memcpy(&out[i], &u, 4);
  }
}

// Block-0 weights w1 [k1][cp] -> bf16 B tiles [cp / 16][kp / 32][16 pairs][16][2].
void packLayer1Bf16(const float* w1, int k1, int cp, int kp, uint16_t* out) {
  std::fill(out, out + (size_t)cp * kp, 0);
  for (int k = 0; k < k1; k++)
    for (int co = 0; co < cp; co++)
      out[(((size_t)(co / 16) * (kp / 32) + k / 32) * 16 + (k % 32) / 2) * 32 + (co % 16) * 2 + (k & 1)] = toBf16Bits(w1[(size_t)k * cp + co]);
}

}  // namespace evometa
