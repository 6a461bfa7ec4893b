// Baseline variant: no ISA flags (SSE2 on x86-64, whatever the target has elsewhere).
// 4-lane GCC/Clang vector extensions, which the compiler maps to the baseline's vectors
// (or to scalar code).
#include "isa/single_ops.h"
#include "isa/isa.h"

namespace evometa {
namespace scalar {

typedef float v4f __attribute__((vector_size(16), aligned(4)));

struct Vec {
  using R = v4f;
  static constexpr int L = 4;
  static R zero() { return R{0, 0, 0, 0}; }
  static R load(const float* p) { R v; __builtin_memcpy(&v, p, sizeof v); return v; }
  static void store(float* p, R v) { __builtin_memcpy(p, &v, sizeof v); }
  static R set1(float x) { return R{x, x, x, x}; }
  static R bcast(const float* p) { return set1(*p); }
  static R fma(R a, R b, R c) { return a * b + c; }
  static R max(R a, R b) { return a > b ? a : b; }
  // NaN when either operand is NaN.
  static R maxNan(R a, R b) { return (a > b) | (a != a) ? a : b; }
};

// 16 xmm registers on SSE2: 12 accumulators (6 rows x 2 vectors), 2 for B, 1 broadcast.
constexpr int rowsFor(int nv) { return nv == 4 ? 3 : nv == 2 ? 6 : 12; }
inline int blockWidthFor(int) { return 8; }

#include "isa/engine_impl.h"
#include "isa/single_ops_impl.h"

}  // namespace scalar

const IsaOps& isaOpsScalar() {
  static const IsaOps ops = {"scalar", 4, scalar::sgemm, scalar::blockWidth, scalar::tileRows,
                             scalar::layer1, scalar::convRaw, scalar::bnReluPool, scalar::fmaLoop, scalar::roundBf16};
  return ops;
}

const SingleOps& singleOpsScalar() {
  static const SingleOps ops = {scalar::blockWidth, scalar::sameXpadFloats, scalar::sameTileFloats, scalar::convSame,
                                 scalar::weightAccFloats, scalar::weightScratchFloats, scalar::convWeight,
                                 scalar::weightStore, scalar::maxpool2x2Fn, scalar::maxpool2x2BackwardFn,
                                 scalar::relu, scalar::reluBackward, scalar::shiftedSums, scalar::dotSums, scalar::scaleShift, scalar::affine2};
  return ops;
}

}  // namespace evometa
