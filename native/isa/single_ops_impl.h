// The single-op kernels (see single_ops.h), written once against the vector layer
// `Vec` and the register-blocked micro-kernel of engine_impl.h; included by each
// isa_<name>.cc after engine_impl.h, inside its namespace. No C++ standard library here
// (see engine_impl.h).

static inline long lmin(long a, long b) { return a < b ? a : b; }

// The lanes of v added in float64, in lane order.
static inline double lanesSum(typename Vec::R v) {
  alignas(64) float t[Vec::L];
  Vec::store(t, v);
  double s = 0;
  for (int j = 0; j < Vec::L; j++) s += t[j];
  return s;
}

// dst[0, n) = src[0, n): whole vectors, then the tail.
static inline void copyFloats(float* dst, const float* src, int n) {
  int e = 0;
  for (; e + Vec::L <= n; e += Vec::L) Vec::store(dst + e, Vec::load(src + e));
  for (; e < n; e++) dst[e] = src[e];
}

// dst[0, n) = src[0, n) in whole vectors, in increasing address order: it also writes
// dst[n, ceil(n / L) * L) and reads as far past src + n. For runs written in address order, where
// a later write covers the overrun (the caller guarantees the slack).
static inline void copyOver(float* dst, const float* src, int n) {
  for (int e = 0; e < n; e += Vec::L) Vec::store(dst + e, Vec::load(src + e));
}

// An L x L transpose: row j of the result (L floats) goes to dst[j]; row i of the input is
// src + i * ls. AVX-512: 16 x 16 in registers (unpack, shuffle, two 128-bit lane shuffles);
// AVX2: 8 x 8; otherwise element by element.
#if defined(__AVX512F__)
static inline void transposeL(const float* src, long ls, float* const* dst) {
  __m512 r[16], t[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * ls);
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // r[4g + c]: in 128-bit lane l, column 4l + c of rows 4g .. 4g + 3
#pragma GCC unroll 4
  for (int g = 0; g < 4; g++) {
    r[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    r[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    r[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    r[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; c++) {
    const __m512 v0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), v1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44), v3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xEE);
    _mm512_storeu_ps(dst[c], _mm512_shuffle_f32x4(v0, v2, 0x88));
    _mm512_storeu_ps(dst[4 + c], _mm512_shuffle_f32x4(v0, v2, 0xDD));
    _mm512_storeu_ps(dst[8 + c], _mm512_shuffle_f32x4(v1, v3, 0x88));
    _mm512_storeu_ps(dst[12 + c], _mm512_shuffle_f32x4(v1, v3, 0xDD));
  }
}
#elif defined(__AVX2__)
static inline void transposeL(const float* src, long ls, float* const* dst) {
  __m256 r[8], t[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * ls);
#pragma GCC unroll 4
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 2
  for (int g = 0; g < 2; g++) {
    r[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    r[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    r[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    r[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; c++) {
    _mm256_storeu_ps(dst[c], _mm256_permute2f128_ps(r[c], r[4 + c], 0x20));
    _mm256_storeu_ps(dst[4 + c], _mm256_permute2f128_ps(r[c], r[4 + c], 0x31));
  }
}
#else
static inline void transposeL(const float* src, long ls, float* const* dst) {
  for (int j = 0; j < Vec::L; j++)
    for (int i = 0; i < Vec::L; i++) dst[j][i] = src[i * ls + j];
}
#endif

static long sameXpadFloats(int nImg, int cin, int h, int w, int pad) {
  return (long)nImg * (h + 2 * pad) * (w + 2 * pad) * cin + Vec::L;
}

// "Same" convolutions with few input taps (cin * k * k <= kSmallTaps, e.g. the 1-channel first
// layer) put pixels in the vector lanes instead: no transposes, the taps' shifted input vectors
// stay in registers while every output channel is computed from them.
constexpr int kSmallTaps = 9;
static bool smallConv(int cin, int k, int w) { return cin * k * k <= kSmallTaps && w >= Vec::L; }

// The first n lanes of p, zeros in the others (never reading past p + n).
#if defined(__AVX512F__)
static inline typename Vec::R loadFirst(const float* p, int n) {
  return _mm512_maskz_loadu_ps(n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1), p);
}
#else
static inline typename Vec::R loadFirst(const float* p, int n) {
  if (n >= Vec::L) return Vec::load(p);
  alignas(64) float t[Vec::L];
  for (int j = 0; j < Vec::L; j++) t[j] = j < n ? p[j] : 0.f;
  return Vec::load(t);
}
#endif

// The forward's pixel rows are read in place (one micro-kernel call per tap) when there are at
// least this many input channels; below, they are packed into im2row tiles first.
constexpr int kDirectCin = 16;

static int convRowsFor(int cout) { return rowsFor(blockWidthFor(cout) / Vec::L); }

static long sameTileFloats(int kkCin, int cout) { return (long)kTileGroup * convRowsFor(cout) * kkCin; }

static inline int roundUp(int v, int m) { return (v + m - 1) / m * m; }
constexpr long kPtrFloats = sizeof(void*) > sizeof(float) ? 2 : 1;  // floats per pointer slot
static inline long alignFloats(long n) { return (n + 15) / 16 * 16; }  // 64-byte multiples

// Zero-padded NCHW planes: xp[n][c][y + pad][x + pad] = x[n][c][y][x] (images * cin planes,
// then L floats of slack). Rows are copied in address order in whole vectors (the overrun lands
// in the pads and the next row, which are written after it); a row whose source vectors would
// reach past the end of x is copied element by element.
static void padPlanes(const float* x, int planes, int h, int w, int pad, float* xp) {
  const int wp = w + 2 * pad, hp = h + 2 * pad;
  const long ppl = (long)hp * wp;
  const float* end = x + (long)planes * h * w;
  const int wv = (w + Vec::L - 1) / Vec::L * Vec::L;
  for (int pl = 0; pl < planes; pl++) {
    float* d = xp + pl * ppl;
    const float* s = x + (long)pl * h * w;
    __builtin_memset(d, 0, sizeof(float) * ((long)pad * wp + pad));
    for (int y = 0; y < h; y++) {
      float* row = d + (long)(y + pad) * wp + pad;
      if (s + (long)y * w + wv <= end) copyOver(row, s + (long)y * w, w);
      else copyFloats(row, s + (long)y * w, w);
      // this row's right pad and the next row's left pad (the bottom pad rows for the last)
      for (int e = w; e < w + 2 * pad; e++) row[e] = 0.f;
    }
    __builtin_memset(d + (long)(h + pad) * wp + pad, 0, sizeof(float) * ((long)pad * wp - pad));
  }
  for (int e = 0; e < Vec::L; e++) xp[planes * ppl + e] = 0.f;
}

// Zero-padded NHWC copy of NCHW images: xpad[n][y + pad][x + pad][c] = x[n][c][y][x].
static void padNhwc(const float* x, int nImg, int cin, int h, int w, int pad, float* xpad) {
  const int wp = w + 2 * pad;
  const long plane = (long)h * w, rowLen = (long)wp * cin, img = (long)(h + 2 * pad) * rowLen;
  for (int n = 0; n < nImg; n++) {
    float* xp = xpad + n * img;
    const float* xs = x + (long)n * cin * plane;
    __builtin_memset(xp, 0, sizeof(float) * pad * rowLen);
    __builtin_memset(xp + (pad + h) * rowLen, 0, sizeof(float) * pad * rowLen);
    for (int y = 0; y < h; y++) {
      float* row = xp + (y + pad) * rowLen;
      __builtin_memset(row, 0, sizeof(float) * pad * cin);
      __builtin_memset(row + (long)(pad + w) * cin, 0, sizeof(float) * pad * cin);
    }
    long p0 = 0;
    if (cin % Vec::L == 0) {  // L channels x L pixels at a time
      for (; p0 + Vec::L <= plane; p0 += Vec::L) {
        float* dst[Vec::L];
        for (int j = 0; j < Vec::L; j++) {
          const long p = p0 + j;
          dst[j] = xp + ((p / w + pad) * wp + p % w + pad) * cin;
        }
        for (int c = 0; c < cin; c += Vec::L) {
          float* d[Vec::L];
          for (int j = 0; j < Vec::L; j++) d[j] = dst[j] + c;
          transposeL(xs + c * plane + p0, plane, d);
        }
      }
    }
    for (long p = p0; p < plane; p++) {
      float* d = xp + ((p / w + pad) * wp + p % w + pad) * cin;
      for (int c = 0; c < cin; c++) d[c] = xs[c * plane + p];
    }
  }
}

// acc[r][v] (+)= sum_kk a[r][kk] * b[kk][v]: the micro-kernel with one pointer per row of A.
template <int NV, int R>
static inline void microKernelRows(const float* const* a, int k, const float* b, float* ctile, bool accumulate) {
  constexpr int NB = NV * Vec::L;
  typename Vec::R acc[R][NV];
#pragma GCC unroll 32
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = accumulate ? Vec::load(ctile + r * NB + v * Vec::L) : Vec::zero();
  const float* ap[R];
#pragma GCC unroll 32
  for (int r = 0; r < R; r++) ap[r] = a[r];
  for (int kk = 0; kk < k; kk++) {
    typename Vec::R bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = Vec::load(b + (long)kk * NB + v * Vec::L);
#pragma GCC unroll 32
    for (int r = 0; r < R; r++) {
      const typename Vec::R av = Vec::bcast(ap[r] + kk);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = Vec::fma(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) Vec::store(ctile + r * NB + v * Vec::L, acc[r][v]);
}

// Groups of kTileGroup micro-tiles of R pixels over the zero-padded NHWC input. With at least
// kDirectCin channels the micro-kernel reads each pixel's window in place, one tap (cin values,
// contiguous) per call; with fewer, the group's im2row rows are packed first (for each kernel
// row, the k taps x cin channels are one contiguous run) and the micro-kernel is K-blocked. The
// group's tile is then stored transposed into the NCHW output (L x L register transposes where
// L pixels of one image line up), bias added.
template <int NV>
static void convSameT(const ConvSameArgs& a) {
  constexpr int NB = NV * Vec::L;
  constexpr int R = rowsFor(NV);
  constexpr int TG = kTileGroup;
  constexpr int KC = 8192 / NB;
  const int cin = a.cin, w = a.w, kk = a.k;
  const int wp = w + 2 * a.pad;
  const long plane = (long)a.h * w, img = (long)(a.h + 2 * a.pad) * wp * cin;
  const int kdim = kk * kk * cin, run = kk * cin;
  const bool direct = cin >= kDirectCin;
  padNhwc(a.x, a.nImg, cin, a.h, w, a.pad, a.xpad);
  alignas(64) float cgroup[TG * R * NB];
  const float* pix[TG * R];
  const long nPix = (long)a.nImg * plane;
  for (long g0 = 0; g0 < nPix; g0 += R * TG) {
    const int tiles = (int)lmin(TG, (nPix - g0 + R - 1) / R);
    // rows past the last pixel repeat the group's first pixel and are never stored
    for (int r = 0; r < tiles * R; r++) {
      const long q = g0 + r < nPix ? g0 + r : g0;
      const long n = q / plane, p = q % plane;
      pix[r] = a.xpad + n * img + ((p / w) * wp + p % w) * cin;
      if (!direct) {
        float* dst = a.atile + (long)r * kdim;
        for (int ky = 0; ky < kk; ky++) copyFloats(dst + ky * run, pix[r] + (long)ky * wp * cin, run);
      }
    }
    const int rows = (int)lmin((long)tiles * R, nPix - g0);
    for (int blk = 0; blk < a.cout / NB; blk++) {
      const float* panel = a.wpk + (long)blk * kdim * NB;
      if (direct) {
        for (int ky = 0; ky < kk; ky++)
          for (int kx = 0; kx < kk; kx++) {
            const int t = ky * kk + kx;
            const long off = ((long)ky * wp + kx) * cin;
            for (int tt = 0; tt < tiles; tt++) {
              const float* ap[R];
#pragma GCC unroll 32
              for (int r = 0; r < R; r++) ap[r] = pix[tt * R + r] + off;
              microKernelRows<NV, R>(ap, cin, panel + (long)t * cin * NB, cgroup + tt * R * NB, t > 0);
            }
          }
      } else {
        for (int k0 = 0; k0 < kdim; k0 += KC) {
          const int kl = imin(KC, kdim - k0);
          for (int t = 0; t < tiles; t++)
            microKernel<NV, R>(a.atile + (long)t * R * kdim + k0, kdim, kl, panel + (long)k0 * NB, cgroup + t * R * NB, k0 > 0);
        }
      }
      if (a.bias) {
        for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
          for (int v = 0; v < NV; v++) {
            float* c = cgroup + r * NB + v * Vec::L;
            Vec::store(c, Vec::load(c) + Vec::load(a.bias + blk * NB + v * Vec::L));
          }
      }
      for (int r = 0; r < rows;) {
        const long q = g0 + r, n = q / plane, p = q % plane;
        if (r + Vec::L <= rows && p + Vec::L <= plane) {  // L pixels of one image: register transposes
          for (int j0 = 0; j0 < NB; j0 += Vec::L) {
            float* dst[Vec::L];
            for (int j = 0; j < Vec::L; j++) dst[j] = a.y + (n * a.cout + blk * NB + j0 + j) * plane + p;
            transposeL(cgroup + r * NB + j0, NB, dst);
          }
          r += Vec::L;
        } else {
          float* dst = a.y + (n * a.cout + blk * NB) * plane + p;
          for (int j = 0; j < NB; j++) dst[j * plane] = cgroup[r * NB + j];
          r++;
        }
      }
    }
  }
}

template <int KD>  // KD = cin * k * k taps, unrolled so the shifted inputs stay in registers
static void convSameSmallT(const ConvSameArgs& a) {
  const int cin = a.cin, w = a.w, kk = a.k, taps = kk * kk, pad = a.pad;
  const int wp = w + 2 * pad, hp = a.h + 2 * pad, nb = blockWidthFor(a.cout);
  const long plane = (long)a.h * w, ppl = (long)hp * wp;
  long off[KD];  // input offset of row r = tap * cin + ci
  for (int t = 0; t < taps; t++)
    for (int ci = 0; ci < cin; ci++) off[t * cin + ci] = ci * ppl + (long)(t / kk) * wp + t % kk;
  padPlanes(a.x, a.nImg * cin, a.h, w, pad, a.xpad);
  for (int n = 0; n < a.nImg; n++)
    for (int oy = 0; oy < a.h; oy++)
      for (int ox = 0; ox < w; ox += Vec::L) {
        const int x0 = ox + Vec::L <= w ? ox : w - Vec::L;  // the last block overlaps the previous one
        const float* src = a.xpad + (long)n * cin * ppl + (long)oy * wp + x0;
        typename Vec::R xv[KD];
#pragma GCC unroll 16
        for (int r = 0; r < KD; r++) xv[r] = Vec::load(src + off[r]);
        float* yrow = a.y + (long)n * a.cout * plane + (long)oy * w + x0;
        for (int co = 0; co < a.cout; co++) {
          const float* wc = a.wpk + (long)(co / nb) * KD * nb + co % nb;
          typename Vec::R acc = Vec::set1(a.bias ? a.bias[co] : 0.f);
#pragma GCC unroll 16
          for (int r = 0; r < KD; r++) acc = Vec::fma(Vec::bcast(wc + (long)r * nb), xv[r], acc);
          Vec::store(yrow + co * plane, acc);
        }
      }
}

static void convSame(const ConvSameArgs& a) {
  if (smallConv(a.cin, a.k, a.w)) {
    switch (a.cin * a.k * a.k) {  // 1 x 1 kernels over up to 9 channels, or 3 x 3 over one
      case 1: convSameSmallT<1>(a); break;
      case 2: convSameSmallT<2>(a); break;
      case 3: convSameSmallT<3>(a); break;
      case 4: convSameSmallT<4>(a); break;
      case 5: convSameSmallT<5>(a); break;
      case 6: convSameSmallT<6>(a); break;
      case 7: convSameSmallT<7>(a); break;
      case 8: convSameSmallT<8>(a); break;
      default: convSameSmallT<9>(a); break;
    }
    return;
  }
  switch (blockWidthFor(a.cout) / Vec::L) {
    case 4: convSameT<4>(a); break;
    case 2: convSameT<2>(a); break;
    default: convSameT<1>(a); break;
  }
}

#include "isa/single_ops_wgrad_impl.h"

// ---- max-pool 2x2 / 2 (AVX-512: masked loads, even/odd lanes by permutes; other variants
// use the baseline code in native/core/ops_misc.cc) ----
#if defined(__AVX512F__)
static inline __mmask16 lowMask(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1); }

static void maxpool2x2(const float* x, int planes, int h, int w, long base, float* y, int32_t* argmax) {
  const int oh = h / 2, ow = w / 2;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi32(1), offW = _mm512_set1_epi32(w),
                offW1 = _mm512_set1_epi32(w + 1);
  for (int p = 0; p < planes; p++) {
    const float* xp = x + (long)p * h * w;
    for (int i = 0; i < oh; i++) {
      const float* r0 = xp + 2L * i * w;
      const float* r1 = r0 + w;
      const long rowIdx = base + (long)p * h * w + 2L * i * w;
      for (int j0 = 0; j0 < ow; j0 += 16) {
        const long o = ((long)p * oh + i) * ow + j0;
        const int nj = ow - j0 < 16 ? ow - j0 : 16;
        const __mmask16 mo = lowMask(nj), mlo = lowMask(2 * nj), mhi = lowMask(2 * nj - 16);
        const __m512 a0 = _mm512_maskz_loadu_ps(mlo, r0 + 2 * j0), a1 = _mm512_maskz_loadu_ps(mhi, r0 + 2 * j0 + 16);
        const __m512 b0 = _mm512_maskz_loadu_ps(mlo, r1 + 2 * j0), b1 = _mm512_maskz_loadu_ps(mhi, r1 + 2 * j0 + 16);
        const __m512 v0 = _mm512_permutex2var_ps(a0, even, a1), v1 = _mm512_permutex2var_ps(a0, odd, a1);
        const __m512 v2 = _mm512_permutex2var_ps(b0, even, b1), v3 = _mm512_permutex2var_ps(b0, odd, b1);
        // take v when v > best or v is NaN: the first maximum wins ties, a later NaN wins
        const __mmask16 t1 = _mm512_cmp_ps_mask(v1, v0, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v1, v1, _CMP_UNORD_Q);
        __m512 best = _mm512_mask_mov_ps(v0, t1, v1);
        __m512i off = _mm512_mask_mov_epi32(zero, t1, one);
        const __mmask16 t2 = _mm512_cmp_ps_mask(v2, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v2, v2, _CMP_UNORD_Q);
        best = _mm512_mask_mov_ps(best, t2, v2);
        off = _mm512_mask_mov_epi32(off, t2, offW);
        const __mmask16 t3 = _mm512_cmp_ps_mask(v3, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v3, v3, _CMP_UNORD_Q);
        best = _mm512_mask_mov_ps(best, t3, v3);
        off = _mm512_mask_mov_epi32(off, t3, offW1);
        const __m512i idx = _mm512_add_epi32(_mm512_add_epi32(_mm512_set1_epi32((int)(rowIdx + 2L * j0)), even), off);
        _mm512_mask_storeu_ps(y + o, mo, best);
        _mm512_mask_storeu_epi32(argmax + o, mo, idx);
      }
    }
  }
}

static bool maxpool2x2Backward(const float* dy, const int32_t* argmax, int planes, int h, int w, long base, float* dx) {
  const int oh = h / 2, ow = w / 2;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i one = _mm512_set1_epi32(1), offW = _mm512_set1_epi32(w), offW1 = _mm512_set1_epi32(w + 1);
  const __m512 zero = _mm512_setzero_ps();
  for (int p = 0; p < planes; p++) {
    float* xp = dx + (long)p * h * w;
    for (int i = 0; i < oh; i++) {
      float* r0 = xp + 2L * i * w;
      float* r1 = r0 + w;
      const long rowIdx = base + (long)p * h * w + 2L * i * w;
      const long o = ((long)p * oh + i) * ow;
      for (int j0 = 0; j0 < ow; j0 += 16) {
        const int nj = ow - j0 < 16 ? ow - j0 : 16;
        const __mmask16 mo = lowMask(nj), mlo = lowMask(2 * nj), mhi = lowMask(2 * nj - 16);
        const __m512i am = _mm512_maskz_loadu_epi32(mo, argmax + o + j0);
        const __m512 g = _mm512_maskz_loadu_ps(mo, dy + o + j0);
        const __m512i i0 = _mm512_add_epi32(_mm512_set1_epi32((int)(rowIdx + 2L * j0)), even);
        const __mmask16 e0 = _mm512_cmpeq_epi32_mask(am, i0), e1 = _mm512_cmpeq_epi32_mask(am, _mm512_add_epi32(i0, one));
        const __mmask16 e2 = _mm512_cmpeq_epi32_mask(am, _mm512_add_epi32(i0, offW));
        const __mmask16 e3 = _mm512_cmpeq_epi32_mask(am, _mm512_add_epi32(i0, offW1));
        if ((__mmask16)(mo & ~(e0 | e1 | e2 | e3)) != 0) return false;
        // 0 + dy (as the memset-and-add scatter computes it: -0 becomes +0)
        const __m512 g0 = _mm512_add_ps(zero, _mm512_maskz_mov_ps(e0, g)), g1 = _mm512_add_ps(zero, _mm512_maskz_mov_ps(e1, g));
        const __m512 g2 = _mm512_add_ps(zero, _mm512_maskz_mov_ps(e2, g)), g3 = _mm512_add_ps(zero, _mm512_maskz_mov_ps(e3, g));
        _mm512_mask_storeu_ps(r0 + 2 * j0, mlo, _mm512_permutex2var_ps(g0, lo, g1));
        _mm512_mask_storeu_ps(r0 + 2 * j0 + 16, mhi, _mm512_permutex2var_ps(g0, hi, g1));
        _mm512_mask_storeu_ps(r1 + 2 * j0, mlo, _mm512_permutex2var_ps(g2, lo, g3));
        _mm512_mask_storeu_ps(r1 + 2 * j0 + 16, mhi, _mm512_permutex2var_ps(g2, hi, g3));
      }
      if (w & 1) r0[w - 1] = r1[w - 1] = 0.f;  // the column no window covers
    }
    if (h & 1) __builtin_memset(xp + (long)(h - 1) * w, 0, sizeof(float) * w);  // the row no window covers
  }
  return true;
}
static constexpr auto maxpool2x2Fn = &maxpool2x2;
static constexpr auto maxpool2x2BackwardFn = &maxpool2x2Backward;
#else
static constexpr void (*maxpool2x2Fn)(const float*, int, int, int, long, float*, int32_t*) = nullptr;
static constexpr bool (*maxpool2x2BackwardFn)(const float*, const int32_t*, int, int, int, long, float*) = nullptr;
#endif

// ---- ReLU: the baseline's branch-free loops, vectorized here with the variant's width ----
static void relu(const float* x, long n, float* y) {
  for (long i = 0; i < n; i++) {
    const float v = x[i];
    y[i] = (v > 0) | (v != v) ? v : 0.f;
  }
}

static void reluBackward(const float* dy, const float* x, long n, float* dx) {
  for (long i = 0; i < n; i++) {
    const float g = dy[i], v = x[i];
    dx[i] = (v > 0) | (v != v) ? g : 0.f;
  }
}

// ---- BatchNorm pieces: float vector partial sums (two chains each), reduced into float64 ----

static void shiftedSums(const float* x, long n, float shift, double* s1, double* s2) {
  const typename Vec::R k = Vec::set1(shift);
  typename Vec::R a0 = Vec::zero(), a1 = Vec::zero(), q0 = Vec::zero(), q1 = Vec::zero();
  long i = 0;
  for (; i + 2 * Vec::L <= n; i += 2 * Vec::L) {
    const typename Vec::R d0 = Vec::load(x + i) - k, d1 = Vec::load(x + i + Vec::L) - k;
    a0 = a0 + d0;
    a1 = a1 + d1;
    q0 = Vec::fma(d0, d0, q0);
    q1 = Vec::fma(d1, d1, q1);
  }
  double t1 = lanesSum(a0 + a1), t2 = lanesSum(q0 + q1);
  for (; i < n; i++) {
    const double d = (double)(x[i] - shift);
    t1 += d;
    t2 += d * d;
  }
  *s1 += t1;
  *s2 += t2;
}

static void dotSums(const float* dy, const float* x, long n, float mu, double* sdy, double* sdyx) {
  const typename Vec::R m = Vec::set1(mu);
  typename Vec::R a0 = Vec::zero(), a1 = Vec::zero(), c0 = Vec::zero(), c1 = Vec::zero();
  long i = 0;
  for (; i + 2 * Vec::L <= n; i += 2 * Vec::L) {
    const typename Vec::R g0 = Vec::load(dy + i), g1 = Vec::load(dy + i + Vec::L);
    a0 = a0 + g0;
    a1 = a1 + g1;
    c0 = Vec::fma(g0, Vec::load(x + i) - m, c0);
    c1 = Vec::fma(g1, Vec::load(x + i + Vec::L) - m, c1);
  }
  double t1 = lanesSum(a0 + a1), t2 = lanesSum(c0 + c1);
  for (; i < n; i++) {
    t1 += dy[i];
    t2 += (double)dy[i] * (double)(x[i] - mu);
  }
  *sdy += t1;
  *sdyx += t2;
}

static void scaleShift(const float* x, long n, float m, float s, float t, float* y) {
  const typename Vec::R vm = Vec::set1(m), vs = Vec::set1(s), vt = Vec::set1(t);
  long i = 0;
  for (; i + Vec::L <= n; i += Vec::L) Vec::store(y + i, Vec::fma(Vec::load(x + i) - vm, vs, vt));
  for (; i < n; i++) y[i] = (x[i] - m) * s + t;
}

static void affine2(const float* dy, const float* x, long n, float a, float b, float mu, float c, float* dx) {
  const typename Vec::R va = Vec::set1(a), vb = Vec::set1(b), vm = Vec::set1(mu), vc = Vec::set1(c);
  long i = 0;
  for (; i + Vec::L <= n; i += Vec::L)
    Vec::store(dx + i, Vec::fma(va, Vec::load(dy + i), Vec::fma(vb, Vec::load(x + i) - vm, vc)));
  for (; i < n; i++) dx[i] = a * dy[i] + (b * (x[i] - mu) + c);
}
