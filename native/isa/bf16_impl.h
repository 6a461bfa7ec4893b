// Pieces shared by the two bf16 conv kernels (isa_avx512bf16.cc, isa_amx.cc), included inside
// each one's own namespace and compiled with its flags (both have AVX-512F/BW/VL + AVX512_BF16).
// No C++ standard library here (see engine_impl.h).

static inline int imin(int a, int b) { return a < b ? a : b; }

// Implicit im2col of `rows` pixels from g0 into bf16 rows of kp elements (tap-major,
// channel-minor, the tail [k, kp) zero); rows past the last pixel repeat pixel g0 and are
// never stored.
static inline void packRowsBf16(const ConvBf16Args& a, int g0, int rows) {
  const __m256i zero = _mm256_setzero_si256();
  for (int r = 0; r < rows; r++) {
    const int gp = g0 + r < a.nPix ? g0 + r : g0;
    const float* src = a.act + (gp / a.perImg) * a.imgStride + a.pixOff[gp % a.perImg];
    uint16_t* dst = a.atile + (long)r * a.kp;
    for (int t = 0; t < 9; t++) {
      const float* s = src + a.tapOff[t];
      uint16_t* d = dst + t * a.cin;
      for (int c = 0; c < a.cin; c += 16) {
        const __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(s + c));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + c), (__m256i)v);
      }
    }
    for (int kk = a.k; kk < a.kp; kk += 16) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + kk), zero);
  }
}

// Stores rows [0, rows) of a group's results (cgroup: [rows][NB] fp32) into raw at pixel g0,
// channels c0.., and adds their per-channel sums and sums of squares (fp32 within the group,
// then float64: the same arithmetic as the fp32 kernels' epilogue).
template <int NV>
static inline void storeGroup(const ConvBf16Args& a, const float* cgroup, int g0, int rows, int c0) {
  constexpr int NB = NV * 16;
  __m512 s[NV], ss[NV];
  for (int v = 0; v < NV; v++) s[v] = ss[v] = _mm512_setzero_ps();
  for (int r = 0; r < rows; r++) {
    float* out = a.raw + (long)(g0 + r) * a.cp + c0;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      const __m512 x = _mm512_loadu_ps(cgroup + r * NB + v * 16);
      _mm512_storeu_ps(out + v * 16, x);
      s[v] = _mm512_add_ps(s[v], x);
      ss[v] = _mm512_fmadd_ps(x, x, ss[v]);
    }
  }
  alignas(64) float ts[NB], tss[NB];
  for (int v = 0; v < NV; v++) {
    _mm512_store_ps(ts + v * 16, s[v]);
    _mm512_store_ps(tss + v * 16, ss[v]);
  }
  for (int j = 0; j < NB; j++) {
    a.sum[c0 + j] += ts[j];
    a.sumsq[c0 + j] += tss[j];
  }
}

static void toBf16(const float* x, uint16_t* out, long n) {
  long i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
  }
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    const __m256i v = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
    _mm256_mask_storeu_epi16(out + i, m, v);
  }
}
