// AVX-512 version of the ES noise (8 Philox blocks = 32 normals per iteration), the same
// operations in the same order as noise.cc / lib/rng/philox.ts, in float64 lanes, compiled
// with -ffp-contract=off so no multiply-add is fused. Bit-identical by construction; the
// test suite checks it against gaussianFill.
#include <immintrin.h>

#include "core/noise.h"

namespace evometa {
namespace noise_avx512 {

namespace {

inline __m512d horner(__m512d p, __m512d z, double c) { return _mm512_add_pd(_mm512_mul_pd(p, z), _mm512_set1_pd(c)); }

__m512d lnUnit(__m512i x) {
  const __m512d u = _mm512_div_pd(_mm512_add_pd(_mm512_cvtepu64_pd(x), _mm512_set1_pd(0.5)), _mm512_set1_pd(4294967296.0));
  // u * 2^k in [1, 2) is u's mantissa with a zero exponent; -k is u's unbiased exponent.
  const __m512i bits = _mm512_castpd_si512(u);
  __m512d m = _mm512_castsi512_pd(_mm512_or_si512(_mm512_and_si512(bits, _mm512_set1_epi64(0x000fffffffffffffLL)),
                                                  _mm512_set1_epi64(0x3ff0000000000000LL)));
  __m512d e = _mm512_cvtepi64_pd(_mm512_sub_epi64(_mm512_srli_epi64(bits, 52), _mm512_set1_epi64(1023)));
  const __mmask8 big = _mm512_cmp_pd_mask(m, _mm512_set1_pd(2 * 0.7071067811865476), _CMP_GT_OQ);
  m = _mm512_mask_mul_pd(m, big, m, _mm512_set1_pd(0.5));
  e = _mm512_mask_add_pd(e, big, e, _mm512_set1_pd(1.0));
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512d s = _mm512_div_pd(_mm512_sub_pd(m, one), _mm512_add_pd(m, one));
  const __m512d z = _mm512_mul_pd(s, s);
  __m512d p = _mm512_set1_pd(1.0 / 23);
  p = horner(p, z, 1.0 / 21); p = horner(p, z, 1.0 / 19); p = horner(p, z, 1.0 / 17); p = horner(p, z, 1.0 / 15);
  p = horner(p, z, 1.0 / 13); p = horner(p, z, 1.0 / 11); p = horner(p, z, 1.0 / 9); p = horner(p, z, 1.0 / 7);
  p = horner(p, z, 1.0 / 5); p = horner(p, z, 1.0 / 3); p = horner(p, z, 1.0);
  return _mm512_add_pd(_mm512_mul_pd(_mm512_mul_pd(_mm512_set1_pd(2.0), s), p), _mm512_mul_pd(e, _mm512_set1_pd(0.6931471805599453)));
}

__m512d sinPoly(__m512d b) {
  const __m512d z = _mm512_mul_pd(b, b);
  __m512d p = _mm512_set1_pd(-1.0 / 1307674368000);
  p = horner(p, z, 1.0 / 6227020800);
  p = _mm512_sub_pd(_mm512_mul_pd(p, z), _mm512_set1_pd(1.0 / 39916800));
  p = horner(p, z, 1.0 / 362880);
  p = _mm512_sub_pd(_mm512_mul_pd(p, z), _mm512_set1_pd(1.0 / 5040));
  p = horner(p, z, 1.0 / 120);
  p = _mm512_sub_pd(_mm512_mul_pd(p, z), _mm512_set1_pd(1.0 / 6));
  p = horner(p, z, 1.0);
  return _mm512_mul_pd(b, p);
}

__m512d cosPoly(__m512d b) {
  const __m512d z = _mm512_mul_pd(b, b);
  __m512d p = _mm512_set1_pd(1.0 / 20922789888000);
  p = _mm512_sub_pd(_mm512_mul_pd(p, z), _mm512_set1_pd(1.0 / 87178291200));
  p = horner(p, z, 1.0 / 479001600);
  p = _mm512_sub_pd(_mm512_mul_pd(p, z), _mm512_set1_pd(1.0 / 3628800));
  p = horner(p, z, 1.0 / 40320);
  p = _mm512_sub_pd(_mm512_mul_pd(p, z), _mm512_set1_pd(1.0 / 720));
  p = horner(p, z, 1.0 / 24);
  p = _mm512_sub_pd(_mm512_mul_pd(p, z), _mm512_set1_pd(1.0 / 2));
  return horner(p, z, 1.0);
}

void boxMuller(__m512i a, __m512i b, __m256* outC, __m256* outS) {
  const __m512d r = _mm512_sqrt_pd(_mm512_mul_pd(_mm512_set1_pd(-2.0), lnUnit(a)));
  const __m512d t = _mm512_mul_pd(
      _mm512_div_pd(_mm512_add_pd(_mm512_cvtepu64_pd(b), _mm512_set1_pd(0.5)), _mm512_set1_pd(4294967296.0)),
      _mm512_set1_pd(4.0));
  const __m512d q = _mm512_roundscale_pd(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512d f = _mm512_sub_pd(t, q);
  const __mmask8 low = _mm512_cmp_pd_mask(f, _mm512_set1_pd(0.5), _CMP_LE_OQ);
  const __m512d halfPi = _mm512_set1_pd(1.5707963267948966);
  const __m512d ang = _mm512_mask_blend_pd(low, _mm512_mul_pd(_mm512_sub_pd(_mm512_set1_pd(1.0), f), halfPi),
                                           _mm512_mul_pd(f, halfPi));
  const __m512d cp = cosPoly(ang), sp = sinPoly(ang);
  const __m512d ca = _mm512_mask_blend_pd(low, sp, cp);  // low ? cos : sin
  const __m512d sa = _mm512_mask_blend_pd(low, cp, sp);  // low ? sin : cos
  const __m512i qi = _mm512_cvttpd_epi64(q);
  const __m512i one = _mm512_set1_epi64(1);
  const __mmask8 odd = _mm512_test_epi64_mask(qi, one);                                    // q = 1 or 3
  const __mmask8 negC = _mm512_cmpeq_epi64_mask(qi, one) | _mm512_cmpeq_epi64_mask(qi, _mm512_set1_epi64(2));
  const __mmask8 negS = _mm512_cmpge_epi64_mask(qi, _mm512_set1_epi64(2));
  __m512d c = _mm512_mask_blend_pd(odd, ca, sa);
  __m512d s = _mm512_mask_blend_pd(odd, sa, ca);
  const __m512i sign = _mm512_set1_epi64((long long)0x8000000000000000ULL);
  c = _mm512_castsi512_pd(_mm512_mask_xor_epi64(_mm512_castpd_si512(c), negC, _mm512_castpd_si512(c), sign));
  s = _mm512_castsi512_pd(_mm512_mask_xor_epi64(_mm512_castpd_si512(s), negS, _mm512_castpd_si512(s), sign));
  *outC = _mm512_cvtpd_ps(_mm512_mul_pd(r, c));
  *outS = _mm512_cvtpd_ps(_mm512_mul_pd(r, s));
}

}  // namespace

void gaussianFillBlocks(float* out, long n, uint32_t seed, uint32_t stream, uint32_t step, uint32_t member,
                        uint64_t start) {
  const __m512i mask32 = _mm512_set1_epi64(0xffffffffLL);
  const __m512i m0 = _mm512_set1_epi64(0xd2511f53LL), m1 = _mm512_set1_epi64(0xcd9e8d57LL);
  const __m512i lanes = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  uint64_t block = start / 4;
  const long blocks = n / 4;
  alignas(64) float tc01[8], ts01[8], tc23[8], ts23[8];
  for (long b0 = 0; b0 < blocks; b0 += 8, block += 8) {
    __m512i c0 = _mm512_and_si512(_mm512_add_epi64(_mm512_set1_epi64((long long)block), lanes), mask32);
    __m512i c1 = _mm512_set1_epi64(member), c2 = _mm512_set1_epi64(step), c3 = _mm512_setzero_si512();
    uint32_t k0 = seed, k1 = stream;
    for (int r = 0; r < 10; r++) {
      const __m512i p0 = _mm512_mul_epu32(m0, c0), p1 = _mm512_mul_epu32(m1, c2);
      const __m512i k0v = _mm512_set1_epi64(k0), k1v = _mm512_set1_epi64(k1);
      c0 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p1, 32), c1), k0v);
      c1 = _mm512_and_si512(p1, mask32);
      c2 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p0, 32), c3), k1v);
      c3 = _mm512_and_si512(p0, mask32);
      k0 += 0x9e3779b9u;
      k1 += 0xbb67ae85u;
    }
    __m256 zc01, zs01, zc23, zs23;
    boxMuller(c0, c1, &zc01, &zs01);
    boxMuller(c2, c3, &zc23, &zs23);
    _mm256_store_ps(tc01, zc01); _mm256_store_ps(ts01, zs01);
    _mm256_store_ps(tc23, zc23); _mm256_store_ps(ts23, zs23);
    const long nb = blocks - b0 < 8 ? blocks - b0 : 8;
    float* o = out + b0 * 4;
    for (long i = 0; i < nb; i++) {
      o[4 * i] = tc01[i]; o[4 * i + 1] = ts01[i]; o[4 * i + 2] = tc23[i]; o[4 * i + 3] = ts23[i];
    }
  }
}

}  // namespace noise_avx512
}  // namespace evometa
