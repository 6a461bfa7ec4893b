// bf16 conv kernel on AMX tiles (compiled with -mamx-tile -mamx-bf16 plus AVX-512 + AVX512_BF16
// for packing; see binding.gyp). TDPBF16PS multiplies a 16 x 32 bf16 tile of pixels by a
// 32 x 16 tile of weights (VNNI pairs) into a 16 x 16 fp32 tile: 8192 multiply-adds per
// instruction, exact products, fp32 accumulation.
//
// Tiles: C 0..3 (2 pixel tiles x up to 2 channel tiles), A 4, 5 (pixels), B 6, 7 (weights), all
// 16 rows x 64 bytes; K steps of 32 (kAlign 32: K is padded with zeros). Each call configures
// the tiles (LDTILECFG) on its thread and releases them at the end (TILERELEASE), so the thread
// carries no tile state between calls. The caller must hold the Linux tile-data permission
// (native/core/bf16.cc asks for it once per process).
#include <immintrin.h>

#include "isa/isa_bf16.h"

namespace evometa {
namespace amx {

#include "isa/bf16_impl.h"

constexpr int kGroupRows = 64;  // pixels packed per group (two pixel-tile pairs)
static int blockWidth(int cp) { return cp % 32 == 0 ? 32 : 16; }
static int tileRows(int) { return kGroupRows; }

struct alignas(64) TileConfig {
  uint8_t palette;
  uint8_t startRow;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

template <int NT>
static void convRawT(const ConvBf16Args& a) {
  constexpr int NB = NT * 16;
  alignas(64) float cgroup[kGroupRows * NB];
  const long lda = (long)a.kp * 2, ldb = NB * 4, ldc = NB * 4;  // bytes
  const int nblk = a.cp / NB;
  for (int g0 = 0; g0 < a.nPix; g0 += kGroupRows) {
    const int valid = imin(kGroupRows, a.nPix - g0);
    const int rows = (valid + 31) / 32 * 32;
    packRowsBf16(a, g0, rows);
    for (int blk = 0; blk < nblk; blk++) {
      const uint16_t* panel = a.wpk + (long)blk * a.kp * NB;
      for (int r0 = 0; r0 < rows; r0 += 32) {
        const uint16_t* a0 = a.atile + (long)r0 * a.kp;
        const uint16_t* a1 = a0 + 16L * a.kp;
        _tile_zero(0);
        _tile_zero(2);
        if (NT == 2) {
          _tile_zero(1);
          _tile_zero(3);
        }
        for (int k0 = 0; k0 < a.kp; k0 += 32) {
          const uint16_t* b = panel + (long)(k0 / 2) * NB * 2;
          _tile_loadd(4, a0 + k0, lda);
          _tile_loadd(5, a1 + k0, lda);
          _tile_loadd(6, b, ldb);
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(2, 5, 6);
          if (NT == 2) {
            _tile_loadd(7, b + 32, ldb);  // channels 16..31 of the panel
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(3, 5, 7);
          }
        }
        float* c = cgroup + r0 * NB;
        _tile_stored(0, c, ldc);
        _tile_stored(2, c + 16 * NB, ldc);
        if (NT == 2) {
          _tile_stored(1, c + 16, ldc);
          _tile_stored(3, c + 16 * NB + 16, ldc);
        }
      }
      storeGroup<NT>(a, cgroup, g0, valid, blk * NB);
    }
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
  static const Bf16Ops ops = {"amx", 32, amx::blockWidth, amx::tileRows, amx::convRaw, amx::toBf16, amx::peakLoop, 4 * 16 * 16 * 32 * 2.0};
  return ops;
}

}  // namespace evometa
