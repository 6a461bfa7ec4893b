// The bf16 convolution kernels of the population loop: the implicit-GEMM convolution of blocks
// 1.. (isa.h's ConvRawArgs) and, where a kernel has one, block 0's fused pass, with both operands
// rounded to bfloat16 (round to nearest even) and fp32 accumulation. Two hardware variants, each
// a static library with its own flags:
//   isa_avx512bf16.cc  VDPBF16PS (AVX512_BF16: Zen 4/5, Cooper Lake, Sapphire Rapids and later)
//   isa_amx.cc         TDPBF16PS tiles (AMX-BF16: Sapphire Rapids and later; Linux must grant
//                      the tile data first, see native/core/bf16.cc)
// The caller (native/core/bf16.cc) picks one at run time. Plain C structs only.
#pragma once
#include <cstdint>

#include "isa/isa.h"

namespace evometa {

struct ConvBf16Args {
  const float* act;       // padded NHWC fp32 input (as ConvRawArgs): images [0, nPix / perImg), imgStride apart
  const int32_t* pixOff;  // [perImg] (pooling-window order, as ConvRawArgs)
  int perImg;             // output pixels per image (side^2)
  long imgStride;         // (side + 2)^2 * cp
  int nPix;               // a multiple of perImg
  const int32_t* tapOff;  // [9]
  int side;               // output side of the block (the input is (side + 2)^2 with its zero border)
  // virtual output pixels v = y * (side + 2) + x of an image (x up to side + 1: rows of the padded
  // grid, so that 16 consecutive ones read their taps at one stride): virtMap[v] = the index of
  // pixel (y, x) in pixOff order, or -1 for x >= side. [side * (side + 2)]
  const int32_t* virtMap;
  int cin;                // channels per tap (= input channel stride cp, a multiple of 16)
  const uint16_t* wpk;    // bf16 weights in the kernel's layout (Bf16Ops::packWeights)
  int cp;
  float* raw;             // [nPix][cp] fp32, pixOff order
  double* sum;            // [cp]
  double* sumsq;          // [cp]
  uint16_t* scratch;      // Bf16Ops::scratchElems(cp, nPix / perImg * imgStride) bf16
};

// Block 0 on bf16 operands, fused as isa.h's layer1: conv (BN scale folded into the weights,
// patches centered) + shift + ReLU + 2x2 max-pool.
struct Layer1Bf16Args {
  const uint16_t* patches;  // [rows + 32][kp] bf16, rows = nImg * winPerImg * 4 in pooling-window order; K and the 32 slack rows zero-padded
  int nImg, winPerImg, kp;  // kp: k1 rounded up to 32
  const uint16_t* wpk;      // [cp / 16][kp / 32][16 pairs][16][2] bf16
  const float* shift;       // [cp]
  int cp;
  PoolDst dst;
};

struct Bf16Ops {
  const char* name;
  // bf16 elements of the packed weights of one block with cp (padded) channels
  long (*weightElems)(int cp);
  // Packs conv weights [c][c][3][3] (fp32, rounded here to nearest even) into the kernel's layout.
  void (*packWeights)(const float* w, int c, int cp, uint16_t* out);
  // bf16 elements of scratch convRaw needs for a chunk of `chunkElems` fp32 input elements
  long (*scratchElems)(int cp, long chunkElems);
  void (*convRaw)(const ConvBf16Args& a);
  // Block 0 on bf16 operands, or nullptr: the fp32 layer1 on bf16-rounded operands instead.
  void (*layer1)(const Layer1Bf16Args& a);
  // out[i] = the bf16 bits of x[i], by the hardware conversion (VCVTNEPS2BF16: round to nearest
  // even, denormal inputs to signed zero, NaN quieted).
  void (*toBf16)(const float* x, uint16_t* out, long n);
  // The peak probe: iters rounds of independent bf16 dot products from registers (tiles),
  // peakFlops FLOPs each (a multiply-add counts 2); returns a value to keep it live.
  float (*peakLoop)(long iters);
  double peakFlops;
};

#if defined(EVOMETA_X64)
const Bf16Ops& bf16OpsAvx512();
const Bf16Ops& bf16OpsAmx();  // built when the compiler knows the AMX flags (EVOMETA_AMX, binding.gyp)
#endif

}  // namespace evometa
