// The single-op kernels of each instruction-set variant (the op contract's hot ops; the
// population engine's kernels are in isa.h). Convolutions: "same" stride-1
// convolutions (output size = input size, kh = kw = 2 * pad + 1) as an implicit GEMM over
// NHWC pixel tiles, and the weight gradient as a GEMM over im2col x dy^T. The ISA code
// (native/isa/single_ops_impl.h, compiled once per variant) works on one chunk of images with
// scratch the caller provides; native/core/ops_conv.cc packs the weights, chunks the
// images over the thread pool and reduces. Plain C structs only.
#pragma once
#include <cstdint>

namespace evometa {

// y[n] = conv(x[n], W) (+ bias) for the images of one chunk, NCHW in and out.
struct ConvSameArgs {
  int nImg;               // images in this chunk
  int cin, h, w, k, pad;  // k x k kernel, pad = (k - 1) / 2: output h x w
  int cout;               // a multiple of blockWidth(cout) (of 16 on every variant)
  const float* x;         // [nImg][cin][h][w]
  const float* wpk;       // [cout / nb][k * k * cin][nb]: row (tap * cin + ci), nb = blockWidth(cout)
  const float* bias;      // [cout] or nullptr
  float* y;               // [nImg][cout][h][w]
  float* xpad;            // scratch: convSameScratch(...).xpad floats (zero-padded NHWC input)
  float* atile;           // scratch: convSameScratch(...).atile floats (one group of pixel rows)
};

// The weight gradient of one chunk of images of a "same" convolution, accumulated into `acc`
// (a layout of the ISA's choosing: weightAccFloats floats, zeroed by the caller; several
// accumulators of one shape may be summed elementwise), and dbias[co] += the chunk's sum of
// dy[., co, .]. weightStore turns an accumulator into dw [cout][cin][k][k].
struct ConvWeightArgs {
  int nImg;
  int cin, h, w, k, pad;  // a "same" convolution, as above
  int cout;               // a multiple of 16
  const float* x;         // [nImg][cin][h][w]
  const float* dy;        // [nImg][cout][h][w]
  float* acc;
  double* dbias;          // [cout]
  float* scratch;         // weightScratchFloats(nImg, ...) floats, 64-byte aligned
};

struct SingleOps {
  // Output channels per weight panel for `cout` (a multiple of 16): the packing's nb.
  int (*blockWidth)(int cout);
  // Scratch floats of convSame for a chunk of nImg images.
  long (*sameXpadFloats)(int nImg, int cin, int h, int w, int pad);
  long (*sameTileFloats)(int kkCin, int cout);
  void (*convSame)(const ConvSameArgs& a);
  long (*weightAccFloats)(int cin, int k, int cout);
  long (*weightScratchFloats)(int nImg, int cin, int h, int w, int k, int pad, int cout);
  void (*convWeight)(const ConvWeightArgs& a);
  void (*weightStore)(int cin, int k, int cout, const float* acc, float* dw);

  // 2x2 stride-2 max-pool of `planes` planes (h x w in, (h / 2) x (w / 2) out, PyTorch's NaN
  // rule, argmax + `base` = the flat input index); nullptr where the variant has none.
  void (*maxpool2x2)(const float* x, int planes, int h, int w, long base, float* y, int32_t* argmax);
  // Its backward over the same planes, when every argmax lies in its own window: writes every
  // element of dx (0 + dy at the argmax, 0 elsewhere) and returns true; returns false (dx
  // partly written) as soon as an argmax lies outside its window. nullptr where none.
  bool (*maxpool2x2Backward)(const float* dy, const int32_t* argmax, int planes, int h, int w, long base, float* dx);

  // ReLU and its backward over n floats (NaN passes; -0 maps to +0), compiled for the variant.
  void (*relu)(const float* x, long n, float* y);
  void (*reluBackward)(const float* dy, const float* x, long n, float* dx);

  // BatchNorm pieces over one contiguous run of n floats (float vector partial sums, added to
  // the float64 totals): s1 += sum (x - shift), s2 += sum (x - shift)^2.
  void (*shiftedSums)(const float* x, long n, float shift, double* s1, double* s2);
  // sdy += sum dy, sdyx += sum dy * (x - mu).
  void (*dotSums)(const float* dy, const float* x, long n, float mu, double* sdy, double* sdyx);
  // y = (x - m) * s + t.
  void (*scaleShift)(const float* x, long n, float m, float s, float t, float* y);
  // dx = a * dy + b * (x - mu) + c.
  void (*affine2)(const float* dy, const float* x, long n, float a, float b, float mu, float c, float* dx);
};

// The table of the active variant (native/core/cpu.cc).
const SingleOps& currentSingleOps();

const SingleOps& singleOpsScalar();
#if defined(EVOMETA_X64)
const SingleOps& singleOpsAvx2();
const SingleOps& singleOpsAvx512();
#endif

}  // namespace evometa
