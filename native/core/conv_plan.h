// The layout of the implicit-GEMM convolution of blocks 1.. (3x3, pad 1, NHWC input with cp
// channels and a one-pixel zero border), shared by the population loop and the conv-kernel
// test driver (population_bf16.cc).
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace evometa {

// Output pixels of one image of side sd in pooling-window order (the 4 pixels of each 2x2
// window), then the pixels no window covers; each as the offset of its 3x3 window's top-left
// in the padded input. tapOff[t]: the offset of tap t within the window.
inline void convPixelOffsets(int sd, int cp, std::vector<int32_t>& off, int32_t tapOff[9]) {
  const int sp = sd + 2, q = sd / 2;
  off.clear();
  off.reserve((size_t)sd * sd);
  if ((long)sp * sp * cp > 0x7fffffffL) throw std::runtime_error("image too large for 32-bit activation offsets");
  auto add = [&](int y, int x) { off.push_back((int32_t)(((long)y * sp + x) * cp)); };
  for (int w = 0; w < q * q; w++)
    for (int t = 0; t < 4; t++) add(2 * (w / q) + t / 2, 2 * (w % q) + t % 2);
  for (int y = 0; y < sd; y++)
    for (int x = 0; x < sd; x++)
      if (y >= 2 * q || x >= 2 * q) add(y, x);
  for (int t = 0; t < 9; t++) tapOff[t] = ((t / 3) * sp + t % 3) * cp;
}

// virt[v] for the virtual output pixels v = y * (sd + 2) + x (y < sd, x < sd + 2) of an image:
// the index of pixel (y, x) in `off` (convPixelOffsets order), or -1 for x >= sd.
inline void convVirtualRows(int sd, int cp, const std::vector<int32_t>& off, std::vector<int32_t>& virt) {
  const int sp = sd + 2;
  virt.assign((size_t)sd * sp, -1);
  for (size_t j = 0; j < off.size(); j++) {
    const int pix = off[j] / cp, y = pix / sp, x = pix % sp;  // the window's top-left = the output pixel
    virt[(size_t)y * sp + x] = (int32_t)j;
  }
}

// Packs conv weights [c][cin][3][3] (cin = c) into [cp/nb][9*cp][nb], k = tap*cp + ci.
inline void packWeights(const float* w, int c, int cp, int nb, float* out) {
  const long k = 9L * cp;
  std::memset(out, 0, sizeof(float) * (size_t)k * cp);
  for (int co = 0; co < c; co++) {
    float* blk = out + (long)(co / nb) * k * nb + co % nb;
    for (int ci = 0; ci < c; ci++)
      for (int t = 0; t < 9; t++) blk[((long)t * cp + ci) * nb] = w[((long)co * c + ci) * 9 + t];
  }
}

}  // namespace evometa
