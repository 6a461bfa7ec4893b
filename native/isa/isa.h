// The per-instruction-set kernel table. Each ISA variant (isa_avx512.cc, isa_avx2.cc,
// isa_scalar.cc) compiles engine_impl.h against its own vector layer with its own
// compiler flags; the caller picks the table for the CPU at run time.
// Plain C structs only: nothing here touches N-API or the C++ standard library.
#pragma once
#include <cstdint>

namespace evometa {

// Where the pooled output of a block goes: a zero-padded NHWC activation buffer
// (pad = 1, the next block's input) or the embedding matrix (pad = 0).
struct PoolDst {
  float* base;
  int side;  // pooled side
  int pad;
  int cp;    // channel stride
};

// Block 0, fused: conv (BN scale folded into the weights, patches centered) + shift + ReLU + max-pool.
struct Layer1Args {
  const float* patches;  // [nImg * winPerImg * 4][k1], pixels in pooling-window order, centered
  int nImg, winPerImg, k1;
  const float* wpk;      // [k1][cp]
  const float* shift;    // [cp]
  int cp;
  PoolDst dst;
};

// Blocks 1..: implicit-GEMM conv of a padded NHWC input into raw outputs [nPix][cp]
// (pixels in pooling-window order), accumulating per-channel sum and sum of squares.
struct ConvRawArgs {
  const float* act;       // padded NHWC input: images [0, nPix / perImg), imgStride floats apart
  const int32_t* pixOff;  // [perImg]: offset of each output pixel's 3x3 window (top-left) within an image
  int perImg;             // output pixels per image (pixOff order: pooling windows first)
  long imgStride;
  int nPix;               // a multiple of perImg
  const int32_t* tapOff;  // [9]
  int cin;                // channels copied per tap (= input channel stride)
  int k;                  // 9 * cin
  const float* wpk;       // [cp / nb][k][nb], nb = blockWidth(cp)
  int cp;
  float* raw;             // [nPix][cp]
  double* sum;            // [cp]
  double* sumsq;          // [cp]
  float* atile;           // scratch: tileRows * k floats
  bool roundBf16;         // round the packed inputs to bf16 (the emulated bf16 kernel; weights come rounded)
};

// BN (as scale/shift) + ReLU + 2x2 max-pool of raw conv outputs (pooling-window order).
struct BnPoolArgs {
  const float* raw;
  int nImg, side;  // conv output side; windows per image = (side/2)^2, pixels per image = side^2
  const float* scale;
  const float* shift;
  int cp;
  PoolDst dst;
};

struct IsaOps {
  const char* name;
  int lanes;
  // C[M][N] = A[M][K] * B[K][N] (+= when accumulate). Row-major with leading dimensions.
  void (*sgemm)(int m, int n, int k, const float* a, long lda, const float* b, long ldb, float* c, long ldc, bool accumulate);
  int (*blockWidth)(int cp);  // output channels per weight panel (divides cp, cp a multiple of 16)
  int (*tileRows)(int cp);    // pixels per micro-tile in convRaw
  void (*layer1)(const Layer1Args& a);
  void (*convRaw)(const ConvRawArgs& a);
  void (*bnReluPool)(const BnPoolArgs& a);
  // Runs iters x 16 independent vector FMAs (the peak-FLOP probe); returns a value to keep it live.
  float (*fmaLoop)(long iters);
  // x[i] = x[i] rounded to bf16 in place, as the emulated bf16 kernel rounds its inputs (tests).
  void (*roundBf16)(float* x, long n);
};

// Throws std::bad_alloc; called by the ISA kernels when an allocation fails (defined in
// native/core/cpu.cc so that no standard-library code is compiled with ISA flags).
[[noreturn]] void isaOutOfMemory();

const IsaOps& isaOpsScalar();
#if defined(EVOMETA_X64)
const IsaOps& isaOpsAvx2();
const IsaOps& isaOpsAvx512();
#endif

}  // namespace evometa
