// Test drivers for the bf16 kernels (declared in core/bf16.h): the rounding and one block's
// convolution through exactly the code the population loop runs.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/bf16.h"
#include "core/conv_plan.h"
#include "core/cpu.h"
#include "isa/isa.h"
#include "isa/isa_bf16.h"

namespace evometa {

void roundBf16ForTest(Bf16Kernel kernel, const float* x, float* out, long n) {
  if (kernel == Bf16Kernel::none) {
    for (long i = 0; i < n; i++) out[i] = roundBf16(x[i]);
    return;
  }
  if (kernel == Bf16Kernel::emulated) {
    std::copy(x, x + n, out);
    currentIsaOps().roundBf16(out, n);
    return;
  }
  std::vector<uint16_t> bits((size_t)n);
  bf16Ops(kernel)->toBf16(x, bits.data(), n);
  for (long i = 0; i < n; i++) {
    const uint32_t u = (uint32_t)bits[i] << 16;
    std::memcpy(out + i, &u, 4);
  }
}

void convForTest(Bf16Kernel kernel, int n, int side, int c, const float* act, const float* w, float* out, double* sum,
                 double* sumsq) {
  const int cp = (c + 15) / 16 * 16, sp = side + 2, per = side * side;
  std::vector<float> in((size_t)n * sp * sp * cp, 0.f);
  for (int i = 0; i < n; i++)
    for (int y = 0; y < side; y++)
      for (int x = 0; x < side; x++)
        std::copy(act + (((long)i * side + y) * side + x) * c, act + (((long)i * side + y) * side + x + 1) * c,
                  in.data() + (((long)i * sp + y + 1) * sp + x + 1) * cp);
  std::vector<int32_t> off;
  int32_t tapOff[9];
  convPixelOffsets(side, cp, off, tapOff);
  std::vector<float> raw((size_t)n * per * cp);
  std::vector<double> s(cp, 0.0), ss(cp, 0.0);
  const Bf16Ops* ops = bf16Ops(kernel);
  if (ops) {
    std::vector<int32_t> virt;
    convVirtualRows(side, cp, off, virt);
    const long elems = (long)n * sp * sp * cp;
    std::vector<uint16_t> wpk((size_t)ops->weightElems(cp)), scratch((size_t)ops->scratchElems(cp, elems));
    ops->packWeights(w, c, cp, wpk.data());
    ConvBf16Args a{};
    a.act = in.data();
    a.pixOff = off.data();
    a.perImg = per;
    a.imgStride = (long)sp * sp * cp;
    a.nPix = n * per;
    a.tapOff = tapOff;
    a.side = side;
    a.virtMap = virt.data();
    a.cin = cp;
    a.wpk = wpk.data();
    a.cp = cp;
    a.raw = raw.data();
    a.sum = s.data();
    a.sumsq = ss.data();
    a.scratch = scratch.data();
    ops->convRaw(a);
  } else {
    const IsaOps& isa = currentIsaOps();
    std::vector<float> wpk((size_t)9 * cp * cp), atile((size_t)isa.tileRows(cp) * 9 * cp);
    packWeights(w, c, cp, isa.blockWidth(cp), wpk.data());
    if (kernel == Bf16Kernel::emulated)
      for (float& x : wpk) x = roundBf16(x);
    ConvRawArgs a{};
    a.act = in.data();
    a.pixOff = off.data();
    a.perImg = per;
    a.imgStride = (long)sp * sp * cp;
    a.nPix = n * per;
    a.tapOff = tapOff;
    a.cin = cp;
    a.k = 9 * cp;
    a.wpk = wpk.data();
    a.cp = cp;
    a.raw = raw.data();
    a.sum = s.data();
    a.sumsq = ss.data();
    a.atile = atile.data();
    a.roundBf16 = kernel == Bf16Kernel::emulated;
    isa.convRaw(a);
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < per; j++) {
      const int pix = off[j] / cp, y = pix / sp, x = pix % sp;
      const float* r = raw.data() + ((long)i * per + j) * cp;
      std::copy(r, r + c, out + (((long)i * side + y) * side + x) * c);
    }
  std::copy(s.begin(), s.begin() + c, sum);
  std::copy(ss.begin(), ss.begin() + c, sumsq);
}

}  // namespace evometa
