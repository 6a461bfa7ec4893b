// bf16 conv kernel on AVX512_BF16 (compiled with -mavx512f/dq/bw/vl -mavx512bf16; see
// binding.gyp). VDPBF16PS multiplies pairs of bf16 and adds both exact products into an fp32
// lane: 32 multiply-adds per instruction, twice an fp32 FMA. The micro-kernel is the fp32 one
// of engine_impl.h with a K step of one pair: R pixels x NV vectors of 16 output channels in
// registers, the weight panel in VNNI order [k/2][nb][2], each pixel's pair of inputs broadcast
// as one 32-bit element.
#include <immintrin.h>

#include "isa/isa_bf16.h"

namespace evometa {
namespace avx512bf16 {

#include "isa/bf16_impl.h"

constexpr int rowsFor(int nv) { return nv == 4 ? 6 : nv == 2 ? 12 : 24; }
static int blockWidth(int cp) { return cp % 64 == 0 ? 64 : cp % 32 == 0 ? 32 : 16; }
constexpr int kTileGroup = 8;
static int tileRows(int cp) { return kTileGroup * rowsFor(blockWidth(cp) / 16); }

// Weights [c][c][3][3] -> panels [cp / nb][k / 2][nb][2], k = tap * cp + ci (9 cp, even): the pair
// (k, k + 1) of output channel n is one 32-bit lane; padding channels are zero.
static long weightElems(int cp) { return 9L * cp * cp; }
static void packWeights(const float* w, int c, int cp, uint16_t* out) {
  const int nb = blockWidth(cp);
  const long k = 9L * cp;
  for (long i = 0; i < k * cp; i++) out[i] = 0;
  for (int co = 0; co < c; co++) {
    uint16_t* blk = out + (long)(co / nb) * k * nb + (co % nb) * 2;
    for (int ci = 0; ci < c; ci++) {
      alignas(32) uint16_t b[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(b), (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(0x1ff, w + ((long)co * c + ci) * 9)));
#pragma GCC unroll 9
      for (int t = 0; t < 9; t++) {
        const long kk = (long)t * cp + ci;
        blk[(kk / 2) * nb * 2 + (kk & 1)] = b[t];
      }
    }
  }
}
static long scratchElems(int cp, long) { return (long)tileRows(cp) * 9 * cp; }

// Implicit im2col of `rows` pixels from g0 into bf16 rows of k = 9 cin (tap-major,
// channel-minor); rows past the last pixel repeat pixel g0 and are never stored.
static inline void packRows(const ConvBf16Args& a, int g0, int rows) {
  const int k = 9 * a.cin;
  for (int r = 0; r < rows; r++) {
    const int gp = g0 + r < a.nPix ? g0 + r : g0;
    const float* src = a.act + (gp / a.perImg) * a.imgStride + a.pixOff[gp % a.perImg];
    uint16_t* dst = a.scratch + (long)r * k;
    for (int t = 0; t < 9; t++) {
      const float* s = src + a.tapOff[t];
      uint16_t* d = dst + t * a.cin;
      for (int c = 0; c < a.cin; c += 16) {
        const __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(s + c));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + c), (__m256i)v);
      }
    }
  }
}

// ctile[r][n] (+)= sum over pairs kk < kpairs of a[r][2kk..2kk+1] . b[kk][n][0..1]
template <int NV, int R>
static inline void microKernel(const uint16_t* a, long lda, int kpairs, const uint16_t* b, float* ctile, bool accumulate) {
  constexpr int NB = NV * 16;
  __m512 acc[R][NV];
#pragma GCC unroll 32
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = accumulate ? _mm512_loadu_ps(ctile + r * NB + v * 16) : _mm512_setzero_ps();
  for (int kk = 0; kk < kpairs; kk++) {
    __m512bh bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = (__m512bh)_mm512_loadu_si512(b + ((long)kk * NB + v * 16) * 2);
#pragma GCC unroll 32
    for (int r = 0; r < R; r++) {
      int32_t pair;
      __builtin_memcpy(&pair, a + r * lda + 2 * kk, 4);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(ctile + r * NB + v * 16, acc[r][v]);
}

template <int NV>
static void convRawT(const ConvBf16Args& a) {
  constexpr int NB = NV * 16;
  constexpr int R = rowsFor(NV);
  constexpr int TG = kTileGroup;
  constexpr int KC = 8192 / NB;  // pairs per K block: kc x nb bf16 pairs = 32 KB of the panel
  alignas(64) float cgroup[TG * R * NB];
  const int k = 9 * a.cin, nblk = a.cp / NB, kpairs = k / 2;
  for (int g0 = 0; g0 < a.nPix; g0 += R * TG) {
    const int tiles = imin(TG, (a.nPix - g0 + R - 1) / R);
    packRows(a, g0, tiles * R);
    for (int blk = 0; blk < nblk; blk++) {
      const uint16_t* panel = a.wpk + (long)blk * k * NB;
      for (int k0 = 0; k0 < kpairs; k0 += KC) {
        const int kl = imin(KC, kpairs - k0);
        for (int t = 0; t < tiles; t++)
          microKernel<NV, R>(a.scratch + (long)t * R * k + 2 * k0, k, kl, panel + (long)k0 * NB * 2, cgroup + t * R * NB, k0 > 0);
      }
      Stats<NV> st;
      const int rows = imin(tiles * R, a.nPix - g0), c0 = blk * NB;
      for (int r = 0; r < rows; r++) st.row(cgroup + r * NB, a.raw + (long)(g0 + r) * a.cp + c0);
      st.flush(a.sum + c0, a.sumsq + c0);
    }
  }
}

static void convRaw(const ConvBf16Args& a) {
  switch (blockWidth(a.cp) / 16) {
    case 4: convRawT<4>(a); break;
    case 2: convRawT<2>(a); break;
    default: convRawT<1>(a); break;
  }
}

constexpr int kPeakChains = 24;

static float peakLoop(long iters) {
  __m512 acc[kPeakChains];
  __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x33d633d6);  // 1, 1e-7
#pragma GCC unroll 32
  for (int i = 0; i < kPeakChains; i++) acc[i] = _mm512_set1_ps((float)i);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 32
    for (int i = 0; i < kPeakChains; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kPeakChains; i++) s = _mm512_max_ps(s, acc[i]);
  alignas(64) float out[16];
  _mm512_store_ps(out, s);
  return out[0];
}

}  // namespace avx512bf16

const Bf16Ops& bf16OpsAvx512() {
  static const Bf16Ops ops = {"avx512bf16",          avx512bf16::weightElems, avx512bf16::packWeights,
                              avx512bf16::scratchElems, avx512bf16::convRaw,     nullptr,                 avx512bf16::toBf16,
                              avx512bf16::peakLoop,     avx512bf16::kPeakChains * 16 * 2 * 2.0};
  return ops;
}

}  // namespace evometa
