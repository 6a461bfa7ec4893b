// AVX2 + FMA variant (compiled with -mavx2 -mfma; see binding.gyp).
#include <immintrin.h>

#include "isa/single_ops.h"
#include "isa/isa.h"

namespace evometa {
namespace avx2 {

struct Vec {
  using R = __m256;
  static constexpr int L = 8;
  static R zero() { return _mm256_setzero_ps(); }
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static R set1(float x) { return _mm256_set1_ps(x); }
  static R bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }
  // NaN when either operand is NaN (max_ps alone returns b whenever one is NaN).
  static R maxNan(R a, R b) { return _mm256_blendv_ps(_mm256_max_ps(a, b), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q)); }
};

// 16 ymm registers: 12 accumulators (6 rows x 2 vectors), 2 for B, 1 broadcast.
constexpr int rowsFor(int nv) { return nv == 4 ? 3 : nv == 2 ? 6 : 12; }
inline int blockWidthFor(int) { return 16; }

#include "isa/engine_impl.h"
#include "isa/single_ops_impl.h"

}  // namespace avx2

const IsaOps& isaOpsAvx2() {
  static const IsaOps ops = {"avx2", 8, avx2::sgemm, avx2::blockWidth, avx2::tileRows,
                             avx2::layer1, avx2::convRaw, avx2::bnReluPool, avx2::fmaLoop, avx2::roundBf16};
  return ops;
}

const SingleOps& singleOpsAvx2() {
  static const SingleOps ops = {avx2::blockWidth, avx2::sameXpadFloats, avx2::sameTileFloats, avx2::convSame,
                                 avx2::weightAccFloats, avx2::weightScratchFloats, avx2::convWeight,
                                 avx2::weightStore, avx2::maxpool2x2Fn, avx2::maxpool2x2BackwardFn,
                                 avx2::relu, avx2::reluBackward, avx2::shiftedSums, avx2::dotSums, avx2::scaleShift, avx2::affine2};
  return ops;
}

}  // namespace evometa
