// The bf16 convolution kernels of the population loop (blocks 1..): the implicit-GEMM
// convolution of isa.h's ConvRawArgs with both operands rounded to bfloat16 (round to nearest
// even) and fp32 accumulation. Two hardware variants, each a static library with its own flags:
//   isa_avx512bf16.cc  VDPBF16PS (AVX512_BF16: Zen 4/5, Cooper Lake, Sapphire Rapids and later)
//   isa_amx.cc         TDPBF16PS tiles (AMX-BF16: Sapphire Rapids and later; Linux must grant
//                      the tile data first, see native/core/bf16.cc)
// The caller (native/core/bf16.cc) picks one at run time. Plain C structs only.
#pragma once
#include <cstdint>

namespace evometa {

struct ConvBf16Args {
  const float* act;       // padded NHWC fp32 input (as ConvRawArgs)
  const int32_t* pixOff;  // [perImg]
  int perImg;
  long imgStride;
  int nPix;
  const int32_t* tapOff;  // [9]
  int cin;                // channels per tap (= input channel stride, a multiple of 16)
  int k;                  // 9 * cin
  int kp;                 // k rounded up to the kernel's kAlign (the padding is zero)
  const uint16_t* wpk;    // bf16 weights [cp / nb][kp / 2][nb][2], nb = blockWidth(cp)
  int cp;
  float* raw;             // [nPix][cp] fp32
  double* sum;            // [cp]
  double* sumsq;          // [cp]
  uint16_t* atile;        // scratch: tileRows(cp) * kp bf16
};

struct Bf16Ops {
  const char* name;
  int kAlign;                  // K is padded to a multiple of this (2: a bf16 pair; 32: an AMX tile row)
  int (*blockWidth)(int cp);   // output channels per weight panel
  int (*tileRows)(int cp);     // pixels packed per group (rows of atile)
  void (*convRaw)(const ConvBf16Args& a);
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
const Bf16Ops& bf16OpsAmx();
#endif

}  // namespace evometa
