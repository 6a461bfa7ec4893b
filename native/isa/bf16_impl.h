// Pieces shared by the two bf16 conv kernels (isa_avx512bf16.cc, isa_amx.cc), included inside
// each one's own namespace and compiled with its flags (both have AVX-512F/BW/VL + AVX512_BF16).
// No C++ standard library here (see engine_impl.h).

static inline int imin(int a, int b) { return a < b ? a : b; }

// max(a, b), NaN when either is NaN (as the fp32 kernels' Vec::maxNan)
// (MAXPS returns its second operand when either is NaN.)
static inline __m512 maxNan(__m512 a, __m512 b) {
  return _mm512_mask_mov_ps(_mm512_max_ps(a, b), _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), a);
}

// Per-channel sum and sum of squares of the rows of a tile of results, kept in fp32 per tile and
// added to the float64 totals (the same arithmetic as the fp32 kernels' epilogue).
template <int NV>
struct Stats {
  __m512 s[NV], ss[NV];
  Stats() {
    for (int v = 0; v < NV; v++) s[v] = ss[v] = _mm512_setzero_ps();
  }
  // stores one row of NV vectors from `in` to `out` and adds it
  inline void row(const float* in, float* out) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      const __m512 x = _mm512_loadu_ps(in + v * 16);
      _mm512_storeu_ps(out + v * 16, x);
      s[v] = _mm512_add_ps(s[v], x);
      ss[v] = _mm512_fmadd_ps(x, x, ss[v]);
    }
  }
  inline void flush(double* sum, double* sumsq) const {
    alignas(64) float ts[NV * 16], tss[NV * 16];
    for (int v = 0; v < NV; v++) {
      _mm512_store_ps(ts + v * 16, s[v]);
      _mm512_store_ps(tss + v * 16, ss[v]);
    }
    for (int j = 0; j < NV * 16; j++) {
      sum[j] += ts[j];
      sumsq[j] += tss[j];
    }
  }
};

static void toBf16(const float* x, uint16_t* out, long n) {
  long i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
    _mm512_storeu_si512(out + i, (__m512i)v);
  }
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
  }
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    const __m256i v = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
    _mm256_mask_storeu_epi16(out + i, m, v);
  }
}
