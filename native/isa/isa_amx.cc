// bf16 conv kernel on AMX tiles (compiled with -mamx-tile -mamx-bf16 plus AVX-512 + AVX512_BF16
// for the conversion; see binding.gyp). TDPBF16PS multiplies a 16 x 32 bf16 tile of pixels by a
// 32 x 16 tile of weights (VNNI pairs) into a 16 x 16 fp32 tile: 8192 multiply-adds per
// instruction, exact products, fp32 accumulation.
//
// No im2col: the chunk's padded NHWC input is converted to bf16 once, and the convolution runs
// as a sum of shifted GEMMs over "virtual" output pixels v = y * (side + 2) + x, the rows of the
// padded grid (x up to side + 1). For 16 consecutive virtual pixels a tap's inputs lie at one
// stride (cp elements), so an A tile is one TILELOADD straight from the converted input; the
// virtual pixels with x >= side are computed and dropped (side / (side + 2) of the work is kept:
// 7/8 in block 1 at 28x28). K blocks of 32: for cp = 16 the taps (dy, 0) and (dy, 1) are
// adjacent in memory and share one block, (dy, 2) fills half of another; for cp >= 32 each tap
// has ceil(cp / 32) blocks. Weight rows past a block's real inputs are zero, so whatever the
// tile reads there (the next pixel's channels) adds nothing.
//
// Tiles: C 0..3 (2 pixel tiles x up to 2 channel tiles), A 4, 5, B 6, 7, all 16 rows x 64 bytes.
// Each call configures the tiles (LDTILECFG) on its thread and releases them at the end
// (TILERELEASE), so the thread carries no tile state between calls. The caller must hold the
// Linux tile-data permission (native/core/bf16.cc asks for it once per process).
#include <immintrin.h>

#include "isa/isa_bf16.h"

namespace evometa {
namespace amx {

#include "isa/bf16_impl.h"

static int blockWidth(int cp) { return cp % 32 == 0 ? 32 : 16; }
// K blocks of 32 inputs per output pixel (see above)
static int kBlocks(int cp) { return cp == 16 ? 6 : 9 * ((cp + 31) / 32); }

// The input element offset of K block kb relative to a virtual pixel's window (top-left tap).
static inline long aOffset(int kb, int cp, int sp) {
  if (cp == 16) return ((long)(kb / 2) * sp + (kb % 2) * 2) * 16;
  const int per = (cp + 31) / 32, t = kb / per, j = kb % per;
  return ((long)(t / 3) * sp + t % 3) * cp + 32L * j;
}

// Weights: panels [cp / nb][kBlocks][16 pairs][nb][2]; input k of block kb is (tap, ci) below.
static long weightElems(int cp) { return (long)kBlocks(cp) * 32 * cp; }
static void packWeights(const float* w, int c, int cp, uint16_t* out) {
  const int nb = blockWidth(cp), nkb = kBlocks(cp), per = (cp + 31) / 32;
  const long n = weightElems(cp);
  for (long i = 0; i < n; i++) out[i] = 0;
  for (int ci = 0; ci < c; ci++) {
    long off[9];  // where tap t of input channel ci goes, relative to an output channel's base
    for (int t = 0; t < 9; t++) {
      int kb, k;
      if (cp == 16) {
        kb = (t / 3) * 2 + (t % 3 == 2);
        k = t % 3 == 2 ? ci : (t % 3) * 16 + ci;
      } else {
        kb = t * per + ci / 32;
        k = ci % 32;
      }
      off[t] = ((long)kb * 16 + k / 2) * nb * 2 + (k & 1);
    }
    for (int co = 0; co < c; co++) {
      uint16_t* base = out + (long)(co / nb) * nkb * 32 * nb + (co % nb) * 2;
      alignas(32) uint16_t b[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(b), (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(0x1ff, w + ((long)co * c + ci) * 9)));
#pragma GCC unroll 9
      for (int t = 0; t < 9; t++) base[off[t]] = b[t];
    }
  }
}

// The converted input plus slack: the last tile rows of the last image read up to
// (sp^2 + 36) cp + 32 elements past its start.
static long scratchElems(int cp, long chunkElems) { return chunkElems + 64L * cp + 64; }

struct alignas(64) TileConfig {
  uint8_t palette;
  uint8_t startRow;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Keeps the real pixels of a step's results (ctile: 32 virtual pixels from r0 of image img x
// NB channels from c0), in pixOff order, and adds their statistics.
template <int NT>
static inline void convKeep(const ConvBf16Args& a, const float* ctile, int img, int r0, int c0) {
  constexpr int NB = NT * 16;
  const int rows = imin(32, a.side * (a.side + 2) - r0);
  Stats<NT> st;
  float* raw = a.raw + (long)img * a.perImg * a.cp + c0;
  for (int r = 0; r < rows; r++) {
    const int j = a.virtMap[r0 + r];
    if (j >= 0) st.row(ctile + r * NB, raw + (long)j * a.cp);
  }
  st.flush(a.sum + c0, a.sumsq + c0);
}

// The epilogue of a step runs after the next step's tiles are stored (two result buffers), so
// it never waits for a tile store to reach memory.
template <int NT>
static void convRawT(const ConvBf16Args& a) {
  constexpr int NB = NT * 16;
  alignas(64) float ctile[2][32 * NB];
  const int cp = a.cp, sp = a.side + 2, nImg = a.nPix / a.perImg, nkb = kBlocks(cp), virt = a.side * sp;
  const long elems = (long)nImg * a.imgStride, slack = scratchElems(cp, 0);
  toBf16(a.act, a.scratch, elems);
  for (long i = elems; i < elems + slack; i++) a.scratch[i] = 0;
  const long lda = (long)cp * 2, ldb = NB * 4, ldc = NB * 4;  // bytes
  int pImg = -1, pR0 = 0, pC0 = 0, cur = 0;
  for (int img = 0; img < nImg; img++) {
    const uint16_t* in = a.scratch + img * a.imgStride;
    for (int r0 = 0; r0 < virt; r0 += 32) {
      for (int blk = 0; blk < cp / NB; blk++) {
        const uint16_t* panel = a.wpk + (long)blk * nkb * 32 * NB;
        _tile_zero(0);
        _tile_zero(2);
        if (NT == 2) {
          _tile_zero(1);
          _tile_zero(3);
        }
        for (int kb = 0; kb < nkb; kb++) {
          const uint16_t* a0 = in + (long)r0 * cp + aOffset(kb, cp, sp);
          const uint16_t* b = panel + (long)kb * 32 * NB;
          _tile_loadd(4, a0, lda);
          _tile_loadd(5, a0 + 16L * cp, lda);
          _tile_loadd(6, b, ldb);
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(2, 5, 6);
          if (NT == 2) {
            _tile_loadd(7, b + 32, ldb);  // channels 16..31 of the panel
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(3, 5, 7);
          }
        }
        float* c = ctile[cur];
        _tile_stored(0, c, ldc);
        _tile_stored(2, c + 16 * NB, ldc);
        if (NT == 2) {
          _tile_stored(1, c + 16, ldc);
          _tile_stored(3, c + 16 * NB + 16, ldc);
        }
        if (pImg >= 0) convKeep<NT>(a, ctile[cur ^ 1], pImg, pR0, pC0);
        pImg = img;
        pR0 = r0;
        pC0 = blk * NB;
        cur ^= 1;
      }
    }
  }
  if (pImg >= 0) convKeep<NT>(a, ctile[cur ^ 1], pImg, pR0, pC0);
}

// Block 0: 32 pixels (8 pooling windows) x NB channels per step, K blocks of 32; then the max
// of each window's 4 rows, the shift and ReLU (NaN-propagating, as the fp32 kernels). The
// epilogue of a step runs after the next step's tiles are stored (two result buffers), so it
// never waits for a tile store to reach memory; with one K block (k1 <= 32) the weight tiles
// stay loaded for a whole channel block.
template <int NT>
static inline void layer1Pool(const Layer1Bf16Args& a, const float* ctile, long r0, long rows, int c0) {
  constexpr int NB = NT * 16;
  const __m512 zero = _mm512_setzero_ps();
  const int side = a.dst.side, wins = (int)((rows - r0 < 32 ? rows - r0 : 32) / 4);
  const long sp = side + 2 * a.dst.pad;
  for (int w = 0; w < wins; w++) {
    const long g = r0 / 4 + w;
    const int n = (int)(g / a.winPerImg), wi = (int)(g % a.winPerImg);
    float* out = a.dst.base + ((n * sp + wi / side + a.dst.pad) * sp + wi % side + a.dst.pad) * (long)a.dst.cp + c0;
#pragma GCC unroll 2
    for (int v = 0; v < NT; v++) {
      const float* x = ctile + 4 * w * NB + v * 16;
      __m512 m = _mm512_loadu_ps(x);
      for (int q = 1; q < 4; q++) m = maxNan(m, _mm512_loadu_ps(x + q * NB));
      m = maxNan(_mm512_add_ps(m, _mm512_loadu_ps(a.shift + c0 + v * 16)), zero);
      _mm512_storeu_ps(out + v * 16, m);
    }
  }
}

template <int NT>
static void layer1T(const Layer1Bf16Args& a) {
  constexpr int NB = NT * 16;
  alignas(64) float ctile[2][32 * NB];
  const long rows = (long)a.nImg * a.winPerImg * 4, lda = (long)a.kp * 2, ldb = 64, ldc = NB * 4;
  const int nkb = a.kp / 32;
  for (int blk = 0; blk < a.cp / NB; blk++) {
    const uint16_t* b0 = a.wpk + (long)(blk * NT) * nkb * 512;
    if (nkb == 1) {
      _tile_loadd(6, b0, ldb);
      if (NT == 2) _tile_loadd(7, b0 + 512, ldb);
    }
    long prev = -1;
    int cur = 0;
    for (long r0 = 0; r0 < rows; r0 += 32) {
      const uint16_t* a0 = a.patches + r0 * a.kp;
      _tile_zero(0);
      _tile_zero(2);
      if (NT == 2) {
        _tile_zero(1);
        _tile_zero(3);
      }
      for (int kb = 0; kb < nkb; kb++) {
        _tile_loadd(4, a0 + kb * 32, lda);
        _tile_loadd(5, a0 + 16L * a.kp + kb * 32, lda);
        if (nkb > 1) {
          _tile_loadd(6, b0 + (long)kb * 512, ldb);
          if (NT == 2) _tile_loadd(7, b0 + (long)(nkb + kb) * 512, ldb);  // the next 16 channels
        }
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(2, 5, 6);
        if (NT == 2) {
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(3, 5, 7);
        }
      }
      float* c = ctile[cur];
      _tile_stored(0, c, ldc);
      _tile_stored(2, c + 16 * NB, ldc);
      if (NT == 2) {
        _tile_stored(1, c + 16, ldc);
        _tile_stored(3, c + 16 * NB + 16, ldc);
      }
      if (prev >= 0) layer1Pool<NT>(a, ctile[cur ^ 1], prev, rows, blk * NB);
      prev = r0;
      cur ^= 1;
    }
    if (prev >= 0) layer1Pool<NT>(a, ctile[cur ^ 1], prev, rows, blk * NB);
  }
}

static void configureTiles() {
  TileConfig cfg;
  __builtin_memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; t++) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

static void convRaw(const ConvBf16Args& a) {
  configureTiles();
  if (blockWidth(a.cp) == 32) convRawT<2>(a);
  else convRawT<1>(a);
  _tile_release();
}

static void layer1(const Layer1Bf16Args& a) {
  configureTiles();
  if (a.cp % 32 == 0) layer1T<2>(a);
  else layer1T<1>(a);
  _tile_release();
}

// Four independent TDPBF16PS per round (C tiles 0..3), operands already in tiles 4..7.
static float peakLoop(long iters) {
  alignas(64) uint16_t ab[16 * 32];
  alignas(64) float c[16 * 16];
  for (int i = 0; i < 16 * 32; i++) ab[i] = 0x3f80;  // 1.0
  configureTiles();
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ab, 64);
  _tile_loadd(5, ab, 64);
  _tile_loadd(6, ab, 64);
  _tile_loadd(7, ab, 64);
  for (long it = 0; it < iters; it++) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, 64);
  _tile_release();
  return c[0];
}

}  // namespace amx

const Bf16Ops& bf16OpsAmx() {
  static const Bf16Ops ops = {"amx",         amx::weightElems, amx::packWeights, amx::scratchElems, amx::convRaw,
                              amx::layer1,      amx::toBf16,   amx::peakLoop,    4 * 16 * 16 * 32 * 2.0};
  return ops;
}

}  // namespace evometa
