// bf16 for the population loop: which kernel runs the convolutions' matrix products when a
// request asks for precision 'bf16', and the scalar reference of the rounding.
//
// Kernels, best first (the default is the best the CPU and the OS support):
//   amx         AMX-BF16 tiles (cpuid amx_bf16 + amx_tile, and the Linux tile-data permission,
//               asked once per process with arch_prctl(ARCH_REQ_XCOMP_PERM))
//   avx512bf16  VDPBF16PS (cpuid avx512_bf16, with the avx512 ISA variant)
//   none        neither: precision 'bf16' is refused (the error names the CPU flags)
// and, only when chosen explicitly (setBf16Kernel), `emulated`: the fp32 kernels of the active
// ISA on operands rounded to bf16 (the same products; slower than fp32; for tests and accuracy
// studies on CPUs without bf16).
#pragma once
#include <cstdint>
#include <vector>

namespace evometa {

struct Bf16Ops;

enum class Bf16Kernel { none = 0, emulated = 1, avx512bf16 = 2, amx = 3 };

// The best hardware kernel available (none when neither).
Bf16Kernel detectBf16Kernel();
// The kernel in use: detectBf16Kernel() unless chosen with setBf16Kernel.
Bf16Kernel activeBf16Kernel();
// Whether this CPU (and OS) can run kernel k (emulated: always; none: never).
bool bf16KernelAvailable(Bf16Kernel k);
// Chooses a kernel; false when this CPU (or OS) cannot run it. `none` restores the default.
bool setBf16Kernel(Bf16Kernel k);
const char* bf16KernelName(Bf16Kernel k);
bool parseBf16Kernel(const char* name, Bf16Kernel* out);
// What was seen: the CPU flags and the AMX permission (granted, or why not).
const char* bf16Reason();
// The hardware kernel table (nullptr for none and emulated).
const Bf16Ops* bf16Ops(Bf16Kernel k);

// The bf16 bits of x as VCVTNEPS2BF16 rounds it: round to nearest even, a denormal input to
// a zero of its sign, NaN to a quiet NaN (the top 16 bits with the quiet bit set); overflow
// rounds to infinity.
uint16_t toBf16Bits(float x);
// x rounded to bf16, as a float (its low 16 bits zero).
float roundBf16(float x);

// Block-0 operands for precision bf16 (the population loop): the centered patches [rows][k1]
// as bf16 rows of kp = k1 rounded up to 32 plus 32 zero rows (for a kernel's layer1), or rounded
// to bf16 as fp32 (for the fp32 layer1); the folded weights w1 [k1][cp] as bf16 B tiles
// [cp / 16][kp / 32][16 pairs][16][2].
void bf16Patches(const std::vector<float>& patches, int k1, std::vector<uint16_t>& out, int& kp);
void roundedPatches(const std::vector<float>& patches, std::vector<float>& out);
void packLayer1Bf16(const float* w1, int k1, int cp, int kp, uint16_t* out);

}  // namespace evometa

namespace evometa {

// Test drivers (native/core/bf16_check.cc), run on the calling thread.
// kernel: 0 (Bf16Kernel::none) the fp32 path, or a Bf16Kernel.
//
// out[i] = x[i] rounded to bf16: none = the scalar reference (toBf16Bits), emulated = the active
// ISA's rounding of the emulated kernel, avx512bf16 / amx = the hardware conversion.
void roundBf16ForTest(Bf16Kernel kernel, const float* x, float* out, long n);

// One block's convolution as the population loop runs it (3x3, pad 1, no bias) on n images of
// side x side x c (NHWC, act), weights [c][c][3][3]: out [n][side][side][c] and the per-channel
// sum and sum of squares [c] of the outputs.
void convForTest(Bf16Kernel kernel, int n, int side, int c, const float* act, const float* w, float* out, double* sum,
                 double* sumsq);

}  // namespace evometa
