// AVX-512 variant (compiled with -mavx512f/dq/bw/vl -mfma; see binding.gyp).
#include <immintrin.h>

#include "isa/single_ops.h"
#include "isa/isa.h"

namespace evometa {
namespace avx512 {

struct Vec {
  using R = __m512;
  static constexpr int L = 16;
  static R zero() { return _mm512_setzero_ps(); }
  static R load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, R v) { _mm512_storeu_ps(p, v); }
  static R set1(float x) { return _mm512_set1_ps(x); }
  static R bcast(const float* p) { return _mm512_set1_ps(*p); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R max(R a, R b) { return _mm512_max_ps(a, b); }
  // NaN when either operand is NaN (max_ps alone returns b whenever one is NaN).
  static R maxNan(R a, R b) { return _mm512_mask_mov_ps(_mm512_max_ps(a, b), _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), a); }
};

// Accumulator tiles use 24 of the 32 zmm registers; the B panel sits in NV registers and A is
// broadcast from memory (an embedded-broadcast FMA operand).
constexpr int rowsFor(int nv) { return nv == 4 ? 6 : nv == 2 ? 12 : 24; }
inline int blockWidthFor(int cp) { return cp % 64 == 0 ? 64 : cp % 32 == 0 ? 32 : 16; }

#include "isa/engine_impl.h"
#include "isa/single_ops_impl.h"

}  // namespace avx512

const IsaOps& isaOpsAvx512() {
  static const IsaOps ops = {"avx512", 16, avx512::sgemm, avx512::blockWidth, avx512::tileRows,
                             avx512::layer1, avx512::convRaw, avx512::bnReluPool, avx512::fmaLoop, avx512::roundBf16};
  return ops;
}

const SingleOps& singleOpsAvx512() {
  static const SingleOps ops = {avx512::blockWidth, avx512::sameXpadFloats, avx512::sameTileFloats, avx512::convSame,
                                 avx512::weightAccFloats, avx512::weightScratchFloats, avx512::convWeight,
                                 avx512::weightStore, avx512::maxpool2x2Fn, avx512::maxpool2x2BackwardFn,
                                 avx512::relu, avx512::reluBackward, avx512::shiftedSums, avx512::dotSums, avx512::scaleShift, avx512::affine2};
  return ops;
}

}  // namespace evometa
