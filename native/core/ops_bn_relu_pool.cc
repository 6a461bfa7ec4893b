// BN (training mode) + ReLU + 2x2 / 2 max-pool, fused, and its backward. One task per channel, as
// in ops_bn.cc. The forward reads the channel twice (statistics, then pooling) and writes only the
// pooled output and its argmax: each plane's BN and ReLU outputs exist only in a per-worker scratch
// plane that stays in L1. The backward rebuilds each plane's gradient at the ReLU output (the
// pooled gradient where ReLU passed, scattered to the argmax) in scratch twice: once for BN's sums
// and once for dx. Every step is the kernel the unfused ops run, in the same order on the same
// values, so the results are bitwise those of batchnormTrain, relu and maxpool (and of
// maxpoolBackward, reluBackward and batchnormBackward) in sequence.
#include <atomic>
#include <vector>

#include "core/bn_channel.h"
#include "core/kernels.h"
#include "core/threadpool.h"
#include "isa/single_ops.h"

namespace evometa {

namespace {
// One scratch vector per pool worker (sized on first use).
std::vector<std::vector<float>> workerPlanes() {
  return std::vector<std::vector<float>>((size_t)poolThreads(), std::vector<float>());
}
}  // namespace

void bnReluPool(const BnGeom& g, int h, int w, const float* x, const float* gamma, const float* beta, double eps,
                float* y, int32_t* argmax, float* mean, float* var, float* invStd) {
  const SingleOps& so = currentSingleOps();
  const long oplane = (long)(h / 2) * (w / 2);
  auto scratch = workerPlanes();
  parallelForOrInline(g.c, 0, [&](int ch, int worker) {
    const BnChannel k = bnChannel(so, g, x, ch, eps, gamma[ch], beta[ch]);
    mean[ch] = k.mean;
    var[ch] = k.var;
    invStd[ch] = k.invStd;
    std::vector<float>& s = scratch[(size_t)worker];
    if (s.size() < (size_t)g.hw) s.resize((size_t)g.hw);
    for (int b = g.n - 1; b >= 0; b--) {
      const long p = (long)b * g.c + ch, off = p * g.hw;
      so.scaleShift(x + off, g.hw, k.muF, k.scale, k.shift, s.data());
      so.relu(s.data(), g.hw, s.data());
      maxpool2x2Planes(s.data(), 1, h, w, off, y + p * oplane, argmax + p * oplane);
    }
  });
}

bool bnReluPoolBackward(const BnGeom& g, int h, int w, const float* dy, const float* y, const int32_t* argmax,
                        const float* x, const float* gamma, const float* mean, const float* invStd, float* dx,
                        float* dgamma, float* dbeta) {
  const SingleOps& so = currentSingleOps();
  const long oplane = (long)(h / 2) * (w / 2);
  auto planes = workerPlanes(), masked = workerPlanes();
  std::atomic<bool> ok{true};
  parallelForOrInline(g.c, 0, [&](int ch, int worker) {
    std::vector<float>& s = planes[(size_t)worker];
    std::vector<float>& md = masked[(size_t)worker];
    if (s.size() < (size_t)g.hw) s.resize((size_t)g.hw);
    if (md.size() < (size_t)oplane) md.resize((size_t)oplane);
    // plane p's gradient at the ReLU output into s: dy where ReLU passed (y > 0 or NaN), at the argmax
    auto rebuild = [&](long p) -> bool {
      const float* d = dy + p * oplane;
      const float* v = y + p * oplane;
      for (long i = 0; i < oplane; i++) md[(size_t)i] = (v[i] > 0) | (v[i] != v[i]) ? d[i] : 0.f;
      return maxpool2x2BackwardPlanes(md.data(), argmax + p * oplane, 1, h, w, p * g.hw, s.data());
    };
    const float mu = mean[ch];
    double sdy = 0, sdyx = 0;
    for (int b = 0; b < g.n; b++) {
      const long p = (long)b * g.c + ch;
      if (!rebuild(p)) {
        ok = false;
        return;
      }
      so.dotSums(s.data(), x + p * g.hw, g.hw, mu, &sdy, &sdyx);
    }
    const BnBackward k = bnBackwardCoeffs(g, gamma[ch], invStd[ch], sdy, sdyx);
    dbeta[ch] = k.dbeta;
    dgamma[ch] = k.dgamma;
    for (int b = g.n - 1; b >= 0; b--) {
      const long p = (long)b * g.c + ch;
      if (!rebuild(p)) {
        ok = false;
        return;
      }
      so.affine2(s.data(), x + p * g.hw, g.hw, k.a, k.b, mu, k.c, dx + p * g.hw);
    }
  });
  return ok;
}

}  // namespace evometa
