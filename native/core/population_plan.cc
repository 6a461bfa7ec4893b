// The population loop's plan (core/population_plan.h).
#include "core/population_plan.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <cstring>
#include <stdexcept>

#include "core/conv_plan.h"

namespace evometa {
namespace plan {

namespace {

// One row of pixels of one image (y fixed, x in [0, S)): colSum[a][x] += P_a(x) and, for b <= a,
// colProd[t][x] += P_a(x) P_b(x), where P_k(x) = row[tap[k] + x] and t runs over the pairs in
// order. Float products are exact in float64, so the result does not depend on the instruction
// set the clone runs on (with or without fused multiply-add).
__attribute__((target_clones("avx512f", "avx2", "default")))
void rowStats(const float* row, const long* tap, int k1, int S, double* colSum, double* colProd) {
  for (int a = 0, t = 0; a < k1; a++) {
    const float* ra = row + tap[a];
    double* cs = colSum + (size_t)a * S;
    for (int x = 0; x < S; x++) cs[x] += ra[x];
    for (int b = 0; b <= a; b++, t++) {
      const float* rb = row + tap[b];
      double* cp = colProd + (size_t)t * S;
      for (int x = 0; x < S; x++) cp[x] += (double)ra[x] * (double)rb[x];
    }
  }
}

}  // namespace

ParamOffsets paramOffsets(int blocks, int cin, int c) {
  ParamOffsets o{};
  long p = 0;
  for (int i = 0; i < blocks; i++) {
    const long ci = i == 0 ? cin : c;
    o.w[i] = p;
    p += (long)c * ci * 9;
    o.b[i] = p;
    p += c;  // bias (cancels under batch-mode BN; only the running means of batchStats see it)
    o.gamma[i] = p;
    p += c;
    o.beta[i] = p;
    p += c;
  }
  o.total = p;
  return o;
}

void buildPlan(const PopulationSpec& s, Plan& p) {
  p.blocks = s.blocks;
  p.cin = s.inChannels;
  p.c = s.channels;
  p.cp = (s.channels + 15) / 16 * 16;
  p.ns = s.ns;
  p.nq = s.nq;
  p.n = s.ns + s.nq;
  p.way = s.way;
  p.side[0] = s.imageSize;
  for (int l = 0; l < s.blocks; l++) {
    p.side[l + 1] = p.side[l] / 2;
    if (p.side[l + 1] < 1) throw std::runtime_error("image too small for the number of blocks");
  }
  p.emb = (long)p.cp * p.side[s.blocks] * p.side[s.blocks];
  p.off = paramOffsets(s.blocks, s.inChannels, s.channels);
  const int S = s.imageSize, k1 = 9 * s.inChannels;
  p.k1 = k1;
  p.kp1 = (k1 + 31) / 32 * 32;  // the bf16 rows' width (bf16Patches), fixed here so that no reader races its writer
  const int ps = S / 2, win = ps * ps;
  // Patch mean and covariance over all n * S * S pixels (float64), shared by every member: each
  // image is copied into a zero-bordered buffer, so patch element k = (channel, dy, dx) of pixel
  // (y, x) is pad[channel][y + dy][x + dx]; the sums run along rows into per-column float64
  // accumulators (element-wise loops the compiler vectorizes), then cov = E[P_a P_b] - m_a m_b.
  const int P = S + 2;
  const long plane = (long)P * P;
  auto image = [&](int i) {
    const long sz = (long)s.inChannels * S * S;
    return i < s.ns ? s.support + i * sz : s.query + (long)(i - s.ns) * sz;
  };
  std::vector<float> pad((size_t)s.inChannels * plane, 0.f);
  std::vector<long> tap(k1);  // offset of patch element k from the pixel's position in pad
  for (int ci = 0; ci < s.inChannels; ci++)
    for (int dy = 0; dy < 3; dy++)
      for (int dx = 0; dx < 3; dx++) tap[ci * 9 + dy * 3 + dx] = ci * plane + (long)dy * P + dx;
  const int npairs = k1 * (k1 + 1) / 2;
  std::vector<double> colSum((size_t)k1 * S, 0.0), colProd((size_t)npairs * S, 0.0);
  p.patches.assign((size_t)p.n * win * 4 * k1, 0.f);
  for (int i = 0; i < p.n; i++) {
    const float* src = image(i);
    for (int ci = 0; ci < s.inChannels; ci++)
      for (int y = 0; y < S; y++) std::memcpy(pad.data() + ci * plane + (long)(y + 1) * P + 1, src + ((long)ci * S + y) * S, sizeof(float) * S);
    for (int y = 0; y < S; y++) rowStats(pad.data() + (long)y * P, tap.data(), k1, S, colSum.data(), colProd.data());
    // the pixels that reach the pooled output, in pooling-window order (centered below)
    for (int w = 0; w < win; w++)
      for (int q = 0; q < 4; q++) {
        const int y = 2 * (w / ps) + q / 2, x = 2 * (w % ps) + q % 2;
        const float* at = pad.data() + (long)y * P + x;
        float* dst = p.patches.data() + (((size_t)i * win + w) * 4 + q) * k1;
        for (int k = 0; k < k1; k++) dst[k] = at[tap[k]];
      }
  }
  const double count = (double)p.n * S * S;
  std::vector<double> mean(k1, 0.0);
  for (int a = 0; a < k1; a++) {
    double m = 0;
    for (int x = 0; x < S; x++) m += colSum[(size_t)a * S + x];
    mean[a] = m / count;
  }
  p.patchMean = mean;
  p.cov.assign((size_t)k1 * k1, 0.0);
  for (int a = 0, t = 0; a < k1; a++)
    for (int b = 0; b <= a; b++, t++) {
      double m = 0;
      for (int x = 0; x < S; x++) m += colProd[(size_t)t * S + x];
      const double c = m / count - mean[a] * mean[b];
      p.cov[(size_t)a * k1 + b] = c;
      p.cov[(size_t)b * k1 + a] = c;
    }
  for (size_t r = 0, rows = p.patches.size() / k1; r < rows; r++) {
    float* dst = p.patches.data() + r * k1;
    for (int k = 0; k < k1; k++) dst[k] = (float)((double)dst[k] - mean[k]);
  }
  // blocks 1..: output pixels in pooling-window order, then the pixels no window covers
  for (int l = 1; l < s.blocks; l++) {
    const int sp = p.side[l] + 2;
    convPixelOffsets(p.side[l], p.cp, p.pixOff[l], p.tapOff[l]);
    convVirtualRows(p.side[l], p.cp, p.pixOff[l], p.virtMap[l]);
    p.chunk[l] = (int)std::min<long>(p.n, std::max(1L, (512L * 1024) / ((long)sp * sp * p.cp * 4)));
  }
}

ConvMode convMode(int bf16) {
  ConvMode m;
  m.kernel = static_cast<Bf16Kernel>(bf16);
  m.ops = bf16Ops(m.kernel);
  return m;
}


namespace {

// One episode's plan. The base (fp32 patches, covariance, pixel maps) is built by the first
// caller; a precision's derived block-0 patches (bf16 rows, or bf16-rounded fp32) are added by
// the first caller that needs them. Every state change is made under Shared::mu.
struct Entry {
  int key[7] = {};
  std::vector<float> support, query;
  Plan plan;
  // base: building, then ready or failed; a derived part: idle, building, ready (back to idle
  // when its builder fails, so the next caller tries again)
  enum State { idle, building, ready, failed };
  State base = building, bf16 = idle, rounded = idle;

  double bytes() const {
    return 4.0 * ((double)plan.patches.capacity() + plan.patchesRounded.capacity() + support.capacity() + query.capacity()) +
           2.0 * plan.patchesBf16.capacity() + 8.0 * plan.cov.capacity();
  }
};

constexpr double kMaxKeptBytes = 256.0 * 1024 * 1024;  // all kept entries together
constexpr size_t kKept = 4;  // a step's episodes, the next step's (prefetched), the previous one's

struct Shared {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::shared_ptr<Entry>> entries;  // most recent first
};

Shared& shared() {
  static auto* s = new Shared();  // never destroyed: threads may still use it at exit
  return *s;
}

void drop(Shared& sh, const std::shared_ptr<Entry>& e) {
  sh.entries.erase(std::remove(sh.entries.begin(), sh.entries.end(), e), sh.entries.end());
}

// Keeps at most kKept entries and kMaxKeptBytes (the newest first; an entry over the budget on
// its own is still returned to its callers, just not kept).
void trim(Shared& sh) {
  while (sh.entries.size() > kKept) sh.entries.pop_back();
  double total = 0;
  for (size_t i = 0; i < sh.entries.size(); i++) {
    total += sh.entries[i]->bytes();
    if (total > kMaxKeptBytes) {
      sh.entries.resize(i);
      break;
    }
  }
}

// Runs `derive` once for a derived part in `state` (the first caller builds; callers arriving
// meanwhile wait, and try again themselves if it failed).
template <typename F>
void deriveOnce(Shared& sh, std::unique_lock<std::mutex>& lk, Entry::State& state, F derive) {
  sh.cv.wait(lk, [&] { return state != Entry::building; });
  if (state == Entry::ready) return;
  state = Entry::building;
  lk.unlock();
  try {
    derive();
  } catch (...) {
    lk.lock();
    state = Entry::idle;
    sh.cv.notify_all();
    throw;
  }
  lk.lock();
  state = Entry::ready;
  sh.cv.notify_all();
}

}  // namespace

std::shared_ptr<const Plan> sharedPlan(const PopulationSpec& s, const ConvMode& mode) {
  const int k[7] = {s.blocks, s.inChannels, s.imageSize, s.channels, s.ns, s.nq, s.way};
  const size_t img = (size_t)s.inChannels * s.imageSize * s.imageSize;
  Shared& sh = shared();
  std::unique_lock<std::mutex> lk(sh.mu);
  std::shared_ptr<Entry> e;
  for (const auto& c : sh.entries) {
    if (std::equal(k, k + 7, c->key) && std::memcmp(c->support.data(), s.support, sizeof(float) * img * s.ns) == 0 &&
        std::memcmp(c->query.data(), s.query, sizeof(float) * img * s.nq) == 0) {
      e = c;
      break;
    }
  }
  if (e) {
    sh.cv.wait(lk, [&] { return e->base != Entry::building; });
    if (e->base == Entry::failed) e.reset();  // its builder failed: build again (and fail the same way, here)
  }
  if (!e) {
    e = std::make_shared<Entry>();
    std::copy(k, k + 7, e->key);
    e->support.assign(s.support, s.support + img * s.ns);
    e->query.assign(s.query, s.query + img * s.nq);
    sh.entries.push_front(e);
    trim(sh);
    lk.unlock();
    try {
      buildPlan(s, e->plan);
    } catch (...) {
      lk.lock();
      e->base = Entry::failed;
      drop(sh, e);
      sh.cv.notify_all();
      throw;
    }
    lk.lock();
    e->base = Entry::ready;
    trim(sh);  // with its size known
    sh.cv.notify_all();
  }
  Plan& p = e->plan;
  if (mode.ops && mode.ops->layer1) {
    deriveOnce(sh, lk, e->bf16, [&] {
      int kp = 0;
      bf16Patches(p.patches, p.k1, p.patchesBf16, kp);
      if (kp != p.kp1) throw std::logic_error("population plan: bf16 row width mismatch");
    });
  } else if (mode.kernel != Bf16Kernel::none) {
    deriveOnce(sh, lk, e->rounded, [&] { roundedPatches(p.patches, p.patchesRounded); });
  }
  return std::shared_ptr<const Plan>(e, &e->plan);
}

double sharedPlanBytes() {
  Shared& sh = shared();
  std::lock_guard<std::mutex> g(sh.mu);
  double b = 0;
  for (const auto& e : sh.entries) b += e->bytes();
  return b;
}

}  // namespace plan
}  // namespace evometa
