// Population evaluation driver: per-call plan (shared, read-only), per-worker workspaces
// (reused across calls, nothing allocated per member), and the per-member pipeline:
//   noise -> theta -> block 0 (BN statistics from the shared patch covariance, folded into
//   the weights; conv + ReLU + pool fused) -> blocks 1.. (implicit-GEMM conv with batch
//   statistics, then BN + ReLU + pool) -> prototypes, distances, log-softmax cross-entropy.
// The conv bias cancels under batch-mode BN, so it is not applied.
#include "core/population.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/conv_plan.h"
#include "core/cpu.h"
#include "core/noise.h"
#include "core/threadpool.h"
#include "isa/isa.h"
#include "isa/isa_bf16.h"
#include "core/population_plan.h"
#include "core/noise_store.h"

namespace evometa {

namespace {

using namespace plan;

// One worker's buffers, reused across calls while the geometry is unchanged.
struct Workspace {
  std::vector<float> theta, w1, shift1, wpk, act[kMaxBlocks], raw, emb, atile, scale, shift;
  std::vector<uint16_t> wbf, abf, w1bf;  // bf16 weight panels, packed inputs, block-0 weights (hardware bf16 kernels)
  std::vector<double> sum, sumsq, proto, logits;
  std::vector<int> counts;
  std::string sig;

  // May throw std::bad_alloc; the signature is recorded only once every buffer has its size.
  void prepare(const Plan& p, long numParams, int tileRows, const ConvMode& mode, const std::string& signature) {
    if (sig == signature) return;
    sig.clear();
    long chunkElems = 0;
    for (int l = 1; l < p.blocks; l++) chunkElems = std::max(chunkElems, (long)p.chunk[l] * (p.side[l] + 2) * (p.side[l] + 2) * p.cp);
    wbf.assign(mode.ops ? (size_t)mode.ops->weightElems(p.cp) : 0, 0);
    w1bf.assign(mode.ops && mode.ops->layer1 ? (size_t)p.cp * p.kp1 : 0, 0);
    abf.assign(mode.ops ? (size_t)mode.ops->scratchElems(p.cp, chunkElems) : 0, 0);
    theta.assign(numParams, 0.f);
    w1.assign((size_t)p.k1 * p.cp, 0.f);
    shift1.assign(p.cp, 0.f);
    wpk.assign((size_t)9 * p.cp * p.cp, 0.f);
    long rawMax = 0;
    for (int l = 1; l < p.blocks; l++) {
      const long sp = p.side[l] + 2;
      act[l].assign((size_t)p.chunk[l] * sp * sp * p.cp, 0.f);  // one chunk of images; zero borders stay zero
      rawMax = std::max(rawMax, (long)p.n * p.side[l] * p.side[l] * p.cp);
    }
    raw.assign(rawMax, 0.f);
    emb.assign((size_t)p.n * p.emb, 0.f);
    atile.assign((size_t)tileRows * 9 * p.cp, 0.f);
    scale.assign(p.cp, 0.f);
    shift.assign(p.cp, 0.f);
    sum.assign(p.cp, 0.0);
    sumsq.assign(p.cp, 0.0);
    proto.assign((size_t)p.way * p.emb, 0.0);
    logits.assign(p.way, 0.0);
    counts.assign(p.way, 0);
    sig = signature;
  }

  long bytes() const {
    long b = 0;
    for (const auto* v : {&theta, &w1, &shift1, &wpk, &raw, &emb, &atile, &scale, &shift}) b += (long)v->capacity() * 4;
    for (const auto& a : act) b += (long)a.capacity() * 4;
    b += (long)(wbf.capacity() + abf.capacity() + w1bf.capacity()) * 2;
    for (const auto* v : {&sum, &sumsq, &proto, &logits}) b += (long)v->capacity() * 8;
    return b;
  }
};

std::atomic<long> lastWorkingBytes{0};

std::vector<std::unique_ptr<Workspace>>& workspaces() {
  static auto* w = new std::vector<std::unique_ptr<Workspace>>();
  return *w;
}

Workspace& workspace(int worker) {
  auto& all = workspaces();  // parallelFor calls are serialized; workers index distinct slots
  return *all[worker];
}

void ensureWorkspaces(int n) {
  auto& all = workspaces();
  while ((int)all.size() < n) all.emplace_back(new Workspace());
}

double episodeLossFromEmbeddings(const Plan& p, const PopulationSpec& s, Workspace& ws) {
  const long e = p.emb;
  std::vector<double>& proto = ws.proto;
  std::fill(proto.begin(), proto.end(), 0.0);
  std::vector<int>& counts = ws.counts;
  std::fill(counts.begin(), counts.end(), 0);
  for (int r = 0; r < p.ns; r++) {
    const int l = s.supportLabels[r];
    counts[l]++;
    const float* z = ws.emb.data() + r * e;
    double* pr = proto.data() + l * e;
    for (long k = 0; k < e; k++) pr[k] += z[k];
  }
  for (int l = 0; l < p.way; l++)
    for (long k = 0; k < e; k++) proto[l * e + k] /= counts[l];
  std::vector<double> pnorm(s.distance == 1 ? p.way : 0);
  for (int l = 0; l < (int)pnorm.size(); l++) {
    double q = 0;
    for (long k = 0; k < e; k++) q += proto[l * e + k] * proto[l * e + k];
    pnorm[l] = std::fmax(std::sqrt(q), 1e-8);
  }
  double loss = 0;
  double* lg = ws.logits.data();
  for (int r = 0; r < p.nq; r++) {
    const float* z = ws.emb.data() + (long)(p.ns + r) * e;
    double qn = 0;
    if (s.distance == 1) {
      for (long k = 0; k < e; k++) qn += (double)z[k] * z[k];
      qn = std::fmax(std::sqrt(qn), 1e-8);
    }
    double mx = -INFINITY;
    for (int l = 0; l < p.way; l++) {
      const double* pr = proto.data() + l * e;
      double acc = 0;
      if (s.distance == 1) {
        for (long k = 0; k < e; k++) acc += z[k] * pr[k];
        lg[l] = s.cosineScale * (acc / (qn * pnorm[l]));
      } else {
        for (long k = 0; k < e; k++) {
          const double d = z[k] - pr[k];
          acc += d * d;
        }
        lg[l] = -acc;
      }
      mx = std::fmax(mx, lg[l]);
    }
    double se = 0;
    for (int l = 0; l < p.way; l++) se += std::exp(lg[l] - mx);
    loss -= lg[s.queryLabels[r]] - (mx + std::log(se));
  }
  return loss / p.nq;
}

// Per block l and channel c, at [l * channels + c]: the batch mean (conv bias included) and the
// biased batch variance of the convolution's outputs, in float64.
struct BatchStatsOut {
  double* mean;
  double* var;
};

// zOut: where to copy member m's standard normals (the noise store), or null.
double evaluateMember(const Plan& p, const PopulationSpec& s, const IsaOps& isa, const ConvMode& mode, Workspace& ws, long m,
                      float* zOut = nullptr, const BatchStatsOut* stats = nullptr) {
  float* theta = ws.theta.data();
  if (s.kind == 0 || s.kind == 2) {
    const long noiseId = s.antithetic ? m / 2 : m;
    const int sign = s.antithetic && (m % 2) ? -1 : 1;
    if (s.kind == 0) perturbGaussian(theta, s.mu, s.numParams, s.sigma, sign, s.seed, s.step, (uint32_t)noiseId, 0, zOut);
    else perturbDiagonal(theta, s.mu, s.sigmas, s.numParams, sign, s.seed, s.step, (uint32_t)noiseId, 0, zOut);
  } else {
    std::memcpy(theta, s.mu, sizeof(float) * (size_t)s.numParams);
    if (m >= 1) theta[m - 1] = (float)((double)s.mu[m - 1] + s.delta);
  }
  const int c = p.c, cp = p.cp;
  const bool layer1Bf16 = mode.ops && mode.ops->layer1;  // block 0 on the kernel's bf16 rows of the plan
  // block 0: BN statistics of w . patch from the shared covariance; scale folded into the weights
  {
    const float* w = theta + p.off.w[0];
    const float* gamma = theta + p.off.gamma[0];
    const float* beta = theta + p.off.beta[0];
    std::fill(ws.w1.begin(), ws.w1.end(), 0.f);
    std::fill(ws.shift1.begin(), ws.shift1.end(), 0.f);
    for (int co = 0; co < c; co++) {
      const float* wc = w + (long)co * p.k1;
      double var = 0;
      for (int a = 0; a < p.k1; a++) {
        double row = 0;
        for (int b = 0; b < p.k1; b++) row += p.cov[(size_t)a * p.k1 + b] * wc[b];
        var += wc[a] * row;
      }
      const double sc = gamma[co] / std::sqrt(std::fmax(var, 0.0) + s.bnEps);
      if (stats) {
        double mean = theta[p.off.b[0] + co];
        for (int k = 0; k < p.k1; k++) mean += (double)wc[k] * p.patchMean[k];
        stats->mean[co] = mean;
        stats->var[co] = std::fmax(var, 0.0);
      }
      for (int k = 0; k < p.k1; k++) ws.w1[(size_t)k * cp + co] = (float)(wc[k] * sc);
      ws.shift1[co] = beta[co];
    }
    if (layer1Bf16) packLayer1Bf16(ws.w1.data(), p.k1, cp, p.kp1, ws.w1bf.data());
    else if (mode.kernel != Bf16Kernel::none)
      for (float& x : ws.w1) x = roundBf16(x);
  }
  // Blocks run image chunk by image chunk where they can, so each chunk's activations are
  // consumed by the next convolution while still in cache: block 0 needs no batch statistics
  // of its own (they came from the covariance), and block l's BN + pool can run per chunk once
  // block l's statistics are complete.
  const int win0 = (p.side[0] / 2) * (p.side[0] / 2);
  auto dstFor = [&](int l, int n0) {  // where block l's pooled output of images n0.. goes
    const int sd = p.side[l + 1];
    if (l + 1 == p.blocks) return PoolDst{ws.emb.data() + (long)n0 * p.emb, sd, 0, cp};
    return PoolDst{ws.act[l + 1].data(), sd, 1, cp};  // the chunk buffer: image n0 at its start
  };
  auto block0 = [&](int n0, int n1) {
    if (layer1Bf16) {
      Layer1Bf16Args a{};
      a.patches = p.patchesBf16.data() + (long)n0 * win0 * 4 * p.kp1;
      a.nImg = n1 - n0;
      a.winPerImg = win0;
      a.kp = p.kp1;
      a.wpk = ws.w1bf.data();
      a.shift = ws.shift1.data();
      a.cp = cp;
      a.dst = dstFor(0, n0);
      mode.ops->layer1(a);
      return;
    }
    Layer1Args a{};
    a.patches = (mode.kernel != Bf16Kernel::none ? p.patchesRounded.data() : p.patches.data()) + (long)n0 * win0 * 4 * p.k1;
    a.nImg = n1 - n0;
    a.winPerImg = win0;
    a.k1 = p.k1;
    a.wpk = ws.w1.data();
    a.shift = ws.shift1.data();
    a.cp = cp;
    a.dst = dstFor(0, n0);
    isa.layer1(a);
  };
  auto conv = [&](int l, int n0, int n1) {  // raw outputs and statistics of block l for images [n0, n1)
    const long per = (long)p.side[l] * p.side[l];
    if (mode.ops) {
      ConvBf16Args a{};
      a.act = ws.act[l].data();
      a.pixOff = p.pixOff[l].data();
      a.perImg = (int)per;
      a.imgStride = (long)(p.side[l] + 2) * (p.side[l] + 2) * cp;
      a.nPix = (int)((n1 - n0) * per);
      a.tapOff = p.tapOff[l];
      a.side = p.side[l];
      a.virtMap = p.virtMap[l].data();
      a.cin = cp;
      a.wpk = ws.wbf.data();
      a.cp = cp;
      a.raw = ws.raw.data() + n0 * per * cp;
      a.sum = ws.sum.data();
      a.sumsq = ws.sumsq.data();
      a.scratch = ws.abf.data();
      mode.ops->convRaw(a);
      return;
    }
    ConvRawArgs a{};
    a.act = ws.act[l].data();  // the chunk buffer: image n0 at its start
    a.pixOff = p.pixOff[l].data();
    a.perImg = (int)per;
    a.imgStride = (long)(p.side[l] + 2) * (p.side[l] + 2) * cp;
    a.nPix = (int)((n1 - n0) * per);
    a.tapOff = p.tapOff[l];
    a.cin = cp;
    a.k = 9 * cp;
    a.wpk = ws.wpk.data();
    a.cp = cp;
    a.raw = ws.raw.data() + n0 * per * cp;
    a.sum = ws.sum.data();
    a.sumsq = ws.sumsq.data();
    a.atile = ws.atile.data();
    a.roundBf16 = mode.kernel == Bf16Kernel::emulated;
    isa.convRaw(a);
  };
  auto bnPool = [&](int l, int n0, int n1) {
    BnPoolArgs b{};
    b.raw = ws.raw.data() + (long)n0 * p.side[l] * p.side[l] * cp;
    b.nImg = n1 - n0;
    b.side = p.side[l];
    b.scale = ws.scale.data();
    b.shift = ws.shift.data();
    b.cp = cp;
    b.dst = dstFor(l, n0);
    isa.bnReluPool(b);
  };
  auto startConv = [&](int l) {
    if (mode.ops) {
      mode.ops->packWeights(theta + p.off.w[l], c, cp, ws.wbf.data());
    } else {
      packWeights(theta + p.off.w[l], c, cp, isa.blockWidth(cp), ws.wpk.data());
      if (mode.kernel == Bf16Kernel::emulated)
        for (float& x : ws.wpk) x = roundBf16(x);
    }
    std::fill(ws.sum.begin(), ws.sum.end(), 0.0);
    std::fill(ws.sumsq.begin(), ws.sumsq.end(), 0.0);
  };
  if (p.blocks == 1) {
    block0(0, p.n);
  } else {
    startConv(1);
    for (int n0 = 0, step = p.chunk[1]; n0 < p.n; n0 += step) {
      const int n1 = std::min(p.n, n0 + step);
      block0(n0, n1);
      conv(1, n0, n1);
    }
  }
  for (int l = 1; l < p.blocks; l++) {
    const float* gamma = theta + p.off.gamma[l];
    const float* beta = theta + p.off.beta[l];
    const double cnt = (double)p.n * p.side[l] * p.side[l];
    for (int co = 0; co < cp; co++) {
      if (co >= c) {
        ws.scale[co] = 0.f;
        ws.shift[co] = 0.f;
        continue;
      }
      const double mean = ws.sum[co] / cnt;
      const double var = std::fmax(ws.sumsq[co] / cnt - mean * mean, 0.0);
      if (stats) {
        stats->mean[(long)l * c + co] = mean + theta[p.off.b[l] + co];
        stats->var[(long)l * c + co] = var;
      }
      const double sc = gamma[co] / std::sqrt(var + s.bnEps);
      ws.scale[co] = (float)sc;
      ws.shift[co] = (float)(beta[co] - mean * sc);
    }
    if (l + 1 == p.blocks) {
      bnPool(l, 0, p.n);
      break;
    }
    startConv(l + 1);
    for (int n0 = 0, step = p.chunk[l + 1]; n0 < p.n; n0 += step) {
      const int n1 = std::min(p.n, n0 + step);
      bnPool(l, n0, n1);
      conv(l + 1, n0, n1);
    }
  }
  return -episodeLossFromEmbeddings(p, s, ws);
}

}  // namespace

long protoNetNumParams(int blocks, int inChannels, int channels) {
  return paramOffsets(blocks, inChannels, channels).total;
}

double populationBytes(const PopulationSpec& s, int threads) {
  const double cp = (s.channels + 15) / 16 * 16, n = (double)s.ns + s.nq, k1 = 9.0 * s.inChannels;
  double side[kMaxBlocks + 1];
  side[0] = s.imageSize;
  for (int l = 0; l < s.blocks && l < kMaxBlocks; l++) side[l + 1] = std::floor(side[l] / 2);
  const double emb = cp * side[s.blocks] * side[s.blocks];
  const double ps = std::floor(side[0] / 2);
  // the plan: centered block-0 patches, their covariance, pixel offsets
  double plan = 4 * n * ps * ps * 4 * k1 + 8 * k1 * k1;
  for (int l = 1; l < s.blocks; l++) plan += 4 * side[l] * side[l];
  // one workspace (see Workspace::prepare; the chunk buffers hold at most all images)
  double ws = 4.0 * s.numParams + 4 * k1 * cp + 4 * cp + 4 * 9 * cp * cp + 4 * n * emb + 4 * 192 * 9 * cp + 8 * cp + 16 * cp;
  double raw = 0, chunk = 0;
  for (int l = 1; l < s.blocks; l++) {
    const double sp = side[l] + 2;
    const double act = 4 * std::min(n, std::max(1.0, std::floor(512.0 * 1024 / (sp * sp * cp * 4)))) * sp * sp * cp;
    ws += act;
    chunk = std::max(chunk, act);
    raw = std::max(raw, 4 * n * side[l] * side[l] * cp);
  }
  ws += raw + 8.0 * s.way * emb + 12.0 * s.way;
  if (s.bf16 != 0) {
    ws += 2 * (cp + 192) * (9 * cp + 32) + chunk / 2 + 2 * (64 * cp + 64) + 2 * cp * (k1 + 32);  // bf16 weights, packed or converted inputs
    plan += 4 * n * ps * ps * 4 * (k1 + 32) + 2 * 32 * (k1 + 32);                                   // rounded or bf16 patches
  }
  return plan + std::max(1, threads) * ws;
}

namespace {

// Serializes the multi-threaded path (the shared workspaces and the pool).
std::mutex& evalMutex() {
  static auto* m = new std::mutex();
  return *m;
}

ConvMode checkedMode(int bf16) {
  if (bf16 < 0 || bf16 > (int)Bf16Kernel::amx || (bf16 > (int)Bf16Kernel::emulated && bf16Ops((Bf16Kernel)bf16) == nullptr)) {
    throw std::runtime_error("evaluatePopulation: no such bf16 kernel in this build");
  }
  return convMode(bf16);
}

std::string workspaceSignature(const PopulationSpec& s, const Plan& p, const IsaOps& isa, const ConvMode& mode) {
  return std::string(isa.name) + ":" + bf16KernelName(mode.kernel) + ":" + std::to_string(s.blocks) + ":" + std::to_string(s.inChannels) + ":" +
         std::to_string(s.imageSize) + ":" + std::to_string(s.channels) + ":" + std::to_string(p.n) + ":" + std::to_string(s.way) + ":" +
         std::to_string(s.numParams);
}

// The calling thread's own workspace, outside the shared pool, so that single-threaded calls
// from different threads run side by side.
Workspace& ownWorkspace() {
  static thread_local std::unique_ptr<Workspace> own;
  if (!own) own.reset(new Workspace());
  return *own;
}

}  // namespace

void evaluatePopulation(const PopulationSpec& s, double* fitness) {
  if (s.blocks < 1 || s.blocks > kMaxBlocks) throw std::runtime_error("blocks must be in [1, 16]");
  const long count = s.end - s.start;
  if (count <= 0) return;
  const IsaOps& isa = currentIsaOps();
  const ConvMode mode = checkedMode(s.bf16);
  const int threads = s.threads > 0 ? s.threads : poolThreads();
  // The members' noise, kept for the noise sums that follow (core/noise_store.h). Antithetic
  // pairs share a row, written once: by the even member, or by the first member of the call.
  const bool noisy = s.kind == 0 || s.kind == 2;
  const long k0 = s.antithetic ? s.start / 2 : s.start, k1 = s.antithetic ? (s.end - 1) / 2 + 1 : s.end;
  const std::shared_ptr<NoiseBlock> noise = noisy ? reserveNoise(s.seed, s.step, k0, k1, s.numParams) : nullptr;
  auto zOut = [&](long m) -> float* {
    if (!noise || (s.antithetic && m % 2 == 1 && m != s.start)) return nullptr;
    return noise->row(s.antithetic ? m / 2 : m);
  };
  if (threads == 1) {
    Workspace& own = ownWorkspace();
    const std::shared_ptr<const Plan> plan = sharedPlan(s, mode);
    const Plan& p = *plan;
    const std::string sig = workspaceSignature(s, p, isa, mode);
    for (long t = 0; t < count; t++) {
      throwIfCancelled(s.cancel);
      own.prepare(p, s.numParams, isa.tileRows(p.cp), mode, sig);
      fitness[t] = evaluateMember(p, s, isa, mode, own, s.start + t, zOut(s.start + t));
    }
    publishNoise(noise);
    lastWorkingBytes.store(own.bytes() + (long)(sharedPlanBytes() + noiseStoreBytes()));
    return;
  }
  std::lock_guard<std::mutex> g(evalMutex());
  const std::shared_ptr<const Plan> plan = sharedPlan(s, mode);
  const Plan& p = *plan;
  const std::string sig = workspaceSignature(s, p, isa, mode);
  const int tr = isa.tileRows(p.cp);
  ensureWorkspaces(std::max(threads, poolThreads()));
  parallelFor((int)count, threads, [&](int task, int worker) {
    throwIfCancelled(s.cancel);
    Workspace& ws = workspace(worker);
    ws.prepare(p, s.numParams, tr, mode, sig);
    fitness[task] = evaluateMember(p, s, isa, mode, ws, s.start + task, zOut(s.start + task));
  });
  publishNoise(noise);
  long b = (long)(sharedPlanBytes() + noiseStoreBytes());
  for (const auto& w : workspaces()) b += w->bytes();
  lastWorkingBytes.store(b);
}

double populationBatchStats(const PopulationSpec& spec, double* mean, double* var) {
  if (spec.blocks < 1 || spec.blocks > kMaxBlocks) throw std::runtime_error("blocks must be in [1, 16]");
  PopulationSpec s = spec;
  s.kind = 1;  // coordinate member 0: theta = mu exactly
  s.delta = 0;
  s.start = 0;
  s.end = 1;
  const IsaOps& isa = currentIsaOps();
  const ConvMode mode = checkedMode(s.bf16);
  Workspace& own = ownWorkspace();
  const std::shared_ptr<const Plan> plan = sharedPlan(s, mode);
  const Plan& p = *plan;
  own.prepare(p, s.numParams, isa.tileRows(p.cp), mode, workspaceSignature(s, p, isa, mode));
  const BatchStatsOut out{mean, var};
  return -evaluateMember(p, s, isa, mode, own, 0, nullptr, &out);
}

void preparePopulationPlan(const PopulationSpec& s) {
  if (s.blocks < 1 || s.blocks > kMaxBlocks) throw std::runtime_error("blocks must be in [1, 16]");
  sharedPlan(s, checkedMode(s.bf16));
}

void noiseSum(const NoiseSumSpec& s, double* out) {
  std::memset(out, 0, sizeof(double) * (size_t)s.numParams);
  constexpr long kChunk = 8192;  // a multiple of 4: chunks start on Philox block boundaries
  const long chunks = (s.numParams + kChunk - 1) / kChunk;
  if (chunks == 0) return;
  // The members' noise as the population call that evaluated them kept it, if it did: the same
  // z, so the same sums; else regenerated.
  const long last = s.start + s.count - 1;
  const std::shared_ptr<const NoiseBlock> kept =
      s.count > 0 ? findNoise(s.seed, s.step, s.antithetic ? s.start / 2 : s.start, (s.antithetic ? last / 2 : last) + 1, s.numParams) : nullptr;
  // Each task owns a range of elements and adds every member to it in member order, so the
  // result does not depend on the thread count.
  auto task = [&](int t, int) {
    const long j0 = (long)t * kChunk, len = std::min(kChunk, s.numParams - j0);
    for (long i = 0; i < s.count; i++) {
      if ((i & 15) == 0) throwIfCancelled(s.cancel);
      const long m = s.start + i;
      const uint32_t noiseId = (uint32_t)(s.antithetic ? m / 2 : m);
      const float* z = kept ? kept->row(noiseId) + j0 : nullptr;
      if (s.kind == 1) {
        if (z) accumulateStoredNoiseSquare(out + j0, len, s.weights[i], z);
        else accumulateNoiseSquare(out + j0, len, s.weights[i], s.seed, s.step, noiseId, (uint64_t)j0);
        continue;
      }
      const double w = s.antithetic && (m % 2) ? -s.weights[i] : s.weights[i];
      if (s.sigmas != nullptr) {
        if (z) accumulateStoredNoiseDiagonal(out + j0, len, w, s.sigmas + j0, z);
        else accumulateNoiseDiagonal(out + j0, len, w, s.sigmas + j0, s.seed, s.step, noiseId, (uint64_t)j0);
      } else if (z) {
        accumulateStoredNoise(out + j0, len, w, s.sigma, z);
      } else {
        accumulateNoise(out + j0, len, w, s.sigma, s.seed, s.step, noiseId, (uint64_t)j0);
      }
    }
  };
  if (s.threads == 1) {
    for (long t = 0; t < chunks; t++) task((int)t, 0);  // outside the shared pool, as above
  } else {
    parallelFor((int)chunks, s.threads, task);
  }
}

long populationWorkingBytes() { return lastWorkingBytes.load(); }

}  // namespace evometa
