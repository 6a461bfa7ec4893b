// Population-loop bindings: the request is validated and COPIED into plain structs on the JS
// thread, then evaluated off the event loop as an AsyncJob (napi/job.h: cancellable, safe when
// the environment is torn down); the promise resolves with a fresh Float64Array. Also the noise
// fill (for the bit-identity test), the limits, cancellation and device info.
#include <cmath>
#include <cstring>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/cpu.h"
#include "core/noise.h"
#include "core/population.h"
#include "core/threadpool.h"
#include "isa/isa.h"
#include "napi/args.h"
#include "napi/bindings.h"
#include "napi/job.h"

namespace evometa {

namespace {

constexpr int64_t kU32 = 4294967295LL;
constexpr PopulationLimits L = kPopulationLimits;

// A request's episode, copied (the job owns its inputs).
struct EpisodeCopy {
  std::vector<float> support, query;
  std::vector<int32_t> supportLabels, queryLabels;
};

void pointAt(PopulationSpec& s, const EpisodeCopy& e) {
  s.support = e.support.data();
  s.query = e.query.data();
  s.supportLabels = e.supportLabels.data();
  s.queryLabels = e.queryLabels.data();
}

class PopulationJob : public VectorJob {
 public:
  PopulationJob(uint32_t group, size_t n) : VectorJob("evaluatePopulation", group, n) {}
  PopulationSpec spec{};
  std::vector<float> mu, sigmas;
  EpisodeCopy episode;

 protected:
  void run(const CancelToken& cancel) override {
    spec.mu = mu.data();
    pointAt(spec, episode);
    spec.sigmas = sigmas.empty() ? nullptr : sigmas.data();
    spec.cancel = &cancel;
    evaluatePopulation(spec, out_.data());
  }
};

class NoiseSumJob : public VectorJob {
 public:
  NoiseSumJob(uint32_t group, size_t n) : VectorJob("noiseSum", group, n) {}
  NoiseSumSpec spec{};
  std::vector<double> weights;
  std::vector<float> sigmas;

 protected:
  void run(const CancelToken& cancel) override {
    spec.weights = weights.data();
    spec.sigmas = sigmas.empty() ? nullptr : sigmas.data();
    spec.cancel = &cancel;
    noiseSum(spec, out_.data());
  }
};

template <typename T>
std::vector<T> copyOf(const T* p, int64_t n) { return std::vector<T>(p, p + n); }

// Per-parameter sigmas: a copy, every value finite and > 0.
std::vector<float> checkedSigmas(Args& a, int64_t n) {
  std::vector<float> s = copyOf(a.f32("sigmas", n), n);
  for (int64_t j = 0; j < n; j++) {
    if (!(std::isfinite(s[j]) && s[j] > 0)) {
      a.rangeError("field 'sigmas'[" + std::to_string(j) + "] must be finite and > 0, got " + formatNumber(s[j]));
    }
  }
  return s;
}

// The fields 'precision' ('fp32' default | 'bf16') and 'bf16Kernel' ('auto' default | 'amx' |
// 'avx512bf16' | 'emulated'; with 'bf16' only): none for fp32, else the kernel, which this CPU
// must have.
Bf16Kernel bf16KernelFor(Args& a) {
  const std::string precision = a.oneOfOr("precision", {"fp32", "bf16"}, "fp32");
  if (precision == "fp32") {
    if (a.present("bf16Kernel")) a.rangeError("field 'bf16Kernel' applies to precision 'bf16' only");
    return Bf16Kernel::none;
  }
  const std::string name = a.oneOfOr("bf16Kernel", {"auto", "amx", "avx512bf16", "emulated"}, "auto");
  Bf16Kernel k = Bf16Kernel::none;
  parseBf16Kernel(name.c_str(), &k);
  if (k == Bf16Kernel::none) k = activeBf16Kernel();
  if (k == Bf16Kernel::none) {
    throw std::runtime_error(std::string("precision 'bf16' needs a CPU with AVX512_BF16 (cpuid flag avx512_bf16, with AVX-512F/BW/VL) or AMX-BF16 "
                                         "(amx_bf16 + amx_tile); this one has neither (") + bf16Reason() +
                             "). Use precision 'fp32', or the 'emulated' bf16 kernel (bf16 rounding on the fp32 kernels: slower than fp32)");
  }
  if (!bf16KernelAvailable(k)) {
    a.rangeError("field 'bf16Kernel' is '" + name + "', which this CPU cannot run (" + bf16Reason() + ")");
  }
  return k;
}

std::string gib(double bytes) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024 * 1024));
  return buf;
}

}  // namespace

namespace {

// The model and episode fields of a population request (shared by evaluatePopulation and
// populationBatchStats), checked into s.
void parseModelEpisode(Args& a, PopulationSpec& s) {
  s.blocks = (int)a.integer("blocks", 1, L.blocks);
  s.inChannels = (int)a.integer("inChannels", 1, L.inChannels);
  s.imageSize = (int)a.integer("imageSize", 2, L.imageSize);
  s.channels = (int)a.integer("channels", 1, L.channels);
  s.bnEps = a.positive("bnEps");
  int side = s.imageSize;
  for (int l = 0; l < s.blocks; l++) {
    side /= 2;
    if (side < 1) a.rangeError("imageSize " + std::to_string(s.imageSize) + " is too small for " + std::to_string(s.blocks) + " blocks");
  }
  s.way = (int)a.integer("way", 1, L.way);
  s.ns = (int)a.integer("supportCount", 1, L.images);
  s.nq = (int)a.integer("queryCount", 1, L.images);
  if ((int64_t)s.ns + s.nq > L.images) {
    a.rangeError("supportCount + queryCount = " + std::to_string((int64_t)s.ns + s.nq) + " images exceeds the limit of " +
                 std::to_string(L.images) + " per episode");
  }
  const std::string dist = a.oneOf("distance", {"euclidean", "cosine"});
  s.distance = dist == "cosine" ? 1 : 0;
  s.cosineScale = s.distance == 1 ? a.number("cosineScale") : 1.0;
  s.numParams = protoNetNumParams(s.blocks, s.inChannels, s.channels);
  if (s.numParams > L.params) a.rangeError("the model has " + std::to_string(s.numParams) + " parameters, above the limit of " + std::to_string(L.params));
}

// Copies the episode's images and labels (after every scalar field has been read).
void copyEpisode(Args& a, const PopulationSpec& s, EpisodeCopy& e) {
  const int64_t img = (int64_t)s.inChannels * s.imageSize * s.imageSize;
  e.support = copyOf(a.f32("support", (int64_t)s.ns * img), (int64_t)s.ns * img);
  e.query = copyOf(a.f32("query", (int64_t)s.nq * img), (int64_t)s.nq * img);
  e.supportLabels = a.indices("supportLabels", s.ns, 0, s.way);
  std::vector<char> seen(s.way, 0);
  for (int i = 0; i < s.ns; i++) seen[e.supportLabels[i]] = 1;
  for (int l = 0; l < s.way; l++)
    if (!seen[l]) a.rangeError("class " + std::to_string(l) + " has no support example");
  e.queryLabels = a.indices("queryLabels", s.nq, 0, s.way);
}

}  // namespace

Napi::Value EvaluatePopulation(const Napi::CallbackInfo& info) {
  Args a(info, "evaluatePopulation",
         {"blocks", "inChannels", "imageSize", "channels", "bnEps", "way", "supportCount", "queryCount", "distance",
          "cosineScale", "kind", "sigma", "sigmas", "antithetic", "delta", "seed", "step", "start", "end", "threads",
          "cancelGroup", "precision", "bf16Kernel", "mu", "support", "query", "supportLabels", "queryLabels"});
  PopulationSpec s{};
  parseModelEpisode(a, s);
  const std::string kind = a.oneOf("kind", {"gaussian", "coordinate", "diagonal"});
  s.kind = kind == "coordinate" ? 1 : kind == "diagonal" ? 2 : 0;
  if (s.kind == 0) {
    s.sigma = a.positive("sigma");  // finite and > 0
    s.antithetic = a.boolean("antithetic");
  } else if (s.kind == 2) {
    s.antithetic = a.boolean("antithetic");
  } else {
    s.delta = a.number("delta");
  }
  s.seed = (uint32_t)a.integer("seed", 0, kU32);
  s.step = (uint32_t)a.integer("step", 0, kU32);
  s.start = (long)a.integer("start", 0, L.memberIndex);
  s.end = (long)a.integer("end", s.start, L.memberIndex + 1);
  if (s.end - s.start > L.members) {
    a.rangeError("end - start = " + std::to_string(s.end - s.start) + " members exceeds the limit of " + std::to_string(L.members) + " per call");
  }
  if (s.kind == 1 && s.end > s.numParams + 1) {
    a.rangeError("coordinate members end at numParams + 1 = " + std::to_string(s.numParams + 1) + ", got end " + std::to_string(s.end));
  }
  s.threads = (int)a.integer("threads", 0, L.threads);
  const uint32_t group = (uint32_t)a.integerOr("cancelGroup", 0, kU32, 0);
  s.bf16 = (int)bf16KernelFor(a);
  const int threads = s.threads > 0 ? s.threads : poolThreads();
  const double bytes = populationBytes(s, std::min<int64_t>(threads, s.end - s.start));
  if (bytes > (double)L.workingBytes) {
    a.rangeError("the request needs about " + gib(bytes) + " of working memory (episode images, channels, way, threads), above the limit of " +
                 gib((double)L.workingBytes));
  }
  // Copies (the job owns its inputs); allocation failures become a RangeError at the boundary.
  auto job = std::make_unique<PopulationJob>(group, (size_t)(s.end - s.start));
  job->mu = copyOf(a.f32("mu", s.numParams), s.numParams);
  if (s.kind == 2) job->sigmas = checkedSigmas(a, s.numParams);
  copyEpisode(a, s, job->episode);
  job->spec = s;
  return Napi::Value(a.env(), AsyncJob::queue(a.env(), std::move(job)));
}

namespace {

// The model, episode and precision of a synchronous request run on the calling thread
// (populationBatchStats, populationPreparePlan), checked into s, its working memory bounded.
void parseOnThisThread(Args& a, PopulationSpec& s) {
  parseModelEpisode(a, s);
  s.threads = 1;
  s.bf16 = (int)bf16KernelFor(a);
  const double bytes = populationBytes(s, 1);
  if (bytes > (double)L.workingBytes) {
    a.rangeError("the request needs about " + gib(bytes) + " of working memory (episode images, channels, way), above the limit of " + gib((double)L.workingBytes));
  }
}

}  // namespace

// populationBatchStats({model and episode fields as evaluatePopulation, mu, precision?,
// bf16Kernel?, mean: Float64Array(blocks * channels), variance: Float64Array(blocks * channels)}):
// synchronous, on the calling thread; writes the batch statistics of mu and returns its loss.
Napi::Value PopulationBatchStats(const Napi::CallbackInfo& info) {
  Args a(info, "populationBatchStats",
         {"blocks", "inChannels", "imageSize", "channels", "bnEps", "way", "supportCount", "queryCount", "distance",
          "cosineScale", "precision", "bf16Kernel", "mu", "support", "query", "supportLabels", "queryLabels", "mean", "variance"});
  PopulationSpec s{};
  parseOnThisThread(a, s);
  const int64_t nstats = (int64_t)s.blocks * s.channels;
  if (a.f64Length("mean") != nstats) a.rangeError("field 'mean' must have blocks * channels = " + std::to_string(nstats) + " elements");
  if (a.f64Length("variance") != nstats) a.rangeError("field 'variance' must have blocks * channels = " + std::to_string(nstats) + " elements");
  // Everything is read and copied before the output pointers are taken (no user code runs after).
  std::vector<float> mu = copyOf(a.f32("mu", s.numParams), s.numParams);
  EpisodeCopy e;
  copyEpisode(a, s, e);
  std::vector<double> mean((size_t)nstats), var((size_t)nstats);
  s.mu = mu.data();
  pointAt(s, e);
  const double loss = populationBatchStats(s, mean.data(), var.data());
  std::memcpy(a.f64("mean", nstats), mean.data(), sizeof(double) * (size_t)nstats);
  std::memcpy(a.f64("variance", nstats), var.data(), sizeof(double) * (size_t)nstats);
  return Napi::Number::New(a.env(), loss);
}

// populationPreparePlan({model and episode fields as evaluatePopulation, precision?, bf16Kernel?}):
// synchronous; builds the episode's shared plan for that precision (preparePopulationPlan).
Napi::Value PopulationPreparePlan(const Napi::CallbackInfo& info) {
  Args a(info, "populationPreparePlan",
         {"blocks", "inChannels", "imageSize", "channels", "bnEps", "way", "supportCount", "queryCount", "distance",
          "cosineScale", "precision", "bf16Kernel", "support", "query", "supportLabels", "queryLabels"});
  PopulationSpec s{};
  parseOnThisThread(a, s);
  EpisodeCopy e;
  copyEpisode(a, s, e);
  pointAt(s, e);
  preparePopulationPlan(s);
  return a.env().Undefined();
}

Napi::Value NoiseSum(const Napi::CallbackInfo& info) {
  Args a(info, "noiseSum",
         {"numParams", "seed", "step", "antithetic", "sigma", "sigmas", "kind", "start", "threads", "cancelGroup", "weights"});
  NoiseSumSpec s{};
  s.numParams = (long)a.integer("numParams", 0, L.params);
  s.seed = (uint32_t)a.integer("seed", 0, kU32);
  s.step = (uint32_t)a.integer("step", 0, kU32);
  s.antithetic = a.boolean("antithetic");
  s.kind = a.oneOfOr("kind", {"linear", "square"}, "linear") == "square" ? 1 : 0;
  const bool perParam = a.present("sigmas");
  // sigma scales eps only in the linear kind without per-parameter sigmas
  s.sigma = s.kind == 0 && !perParam ? a.positive("sigma") : 1.0;
  s.start = (long)a.integer("start", 0, L.memberIndex);
  s.threads = (int)a.integer("threads", 0, L.threads);
  const uint32_t group = (uint32_t)a.integerOr("cancelGroup", 0, kU32, 0);
  const int64_t count = a.f64Length("weights");
  if (count > L.members) a.rangeError("field 'weights' has " + std::to_string(count) + " members, above the limit of " + std::to_string(L.members));
  if (s.start + count - 1 > L.memberIndex) a.rangeError("member indices start + weights.length - 1 exceed 2^32 - 1");
  s.count = (long)count;
  auto job = std::make_unique<NoiseSumJob>(group, (size_t)s.numParams);
  if (perParam) job->sigmas = checkedSigmas(a, s.numParams);
  job->weights = copyOf(a.f64("weights", count), count);
  job->spec = s;
  return Napi::Value(a.env(), AsyncJob::queue(a.env(), std::move(job)));
}

Napi::Value GaussianFill(const Napi::CallbackInfo& info) {
  Args a(info, "gaussianFill", {"out", "seed", "stream", "step", "member", "start"});
  const int64_t n = a.f32Length("out");
  const uint32_t seed = (uint32_t)a.integer("seed", 0, kU32);
  const uint32_t stream = (uint32_t)a.integer("stream", 0, kU32);
  const uint32_t step = (uint32_t)a.integer("step", 0, kU32);
  const uint32_t member = (uint32_t)a.integer("member", 0, kU32);
  const int64_t start = a.integer("start", 0, int64_t(1) << 52);
  float* out = a.f32("out", n);
  gaussianFill(out, (long)n, seed, stream, step, member, (uint64_t)start);
  return a.env().Undefined();
}

Napi::Value Cancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t group = -1;  // every group
  if (info.Length() >= 1 && !info[0].IsUndefined()) {
    const double g = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : NAN;
    if (!(g >= 0 && g <= (double)kU32 && g == std::floor(g))) throw Napi::RangeError::New(env, "cancel: group must be an integer in [0, 2^32 - 1] or undefined");
    group = (int64_t)g;
  }
  return Napi::Number::New(env, AsyncJob::cancel(env, group));
}

Napi::Value PendingJobs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), AsyncJob::pending(info.Env()));
}

Napi::Value Limits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("blocks", L.blocks);
  o.Set("inChannels", L.inChannels);
  o.Set("imageSize", L.imageSize);
  o.Set("channels", L.channels);
  o.Set("way", L.way);
  o.Set("images", (double)L.images);
  o.Set("members", (double)L.members);
  o.Set("memberIndex", (double)L.memberIndex);
  o.Set("params", (double)L.params);
  o.Set("workingBytes", (double)L.workingBytes);
  o.Set("threads", L.threads);
  return o;
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("isa", isaName(activeIsa()));
  o.Set("detectedIsa", isaName(detectIsa()));
  o.Set("reason", isaReason());
  o.Set("malloc", tuneMalloc());
  o.Set("threads", poolThreads());
  o.Set("noise", noiseImpl());
  o.Set("lanes", currentIsaOps().lanes);
  o.Set("limits", Limits(info));
  auto b = Napi::Object::New(env);
  b.Set("kernel", bf16KernelName(activeBf16Kernel()));
  b.Set("detected", bf16KernelName(detectBf16Kernel()));
  auto avail = Napi::Array::New(env);
  uint32_t i = 0;
  for (Bf16Kernel k : {Bf16Kernel::amx, Bf16Kernel::avx512bf16, Bf16Kernel::emulated})
    if (bf16KernelAvailable(k)) avail.Set(i++, bf16KernelName(k));
  b.Set("available", avail);
  b.Set("reason", bf16Reason());
  o.Set("bf16", b);
  return o;
}

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "setIsa: expected 'avx512' | 'avx2' | 'scalar'");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  Isa isa;
  if (!parseIsa(name.c_str(), &isa)) throw Napi::RangeError::New(env, "setIsa: unknown instruction set '" + name + "'");
  return Napi::Boolean::New(env, setIsa(isa));
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "setThreads: expected a thread count");
  const double n = info[0].As<Napi::Number>().DoubleValue();
  if (!(n >= 1 && n <= L.threads && n == (int)n)) throw Napi::RangeError::New(env, "setThreads: count must be an integer in [1, 1024]");
  return Napi::Number::New(env, setPoolThreads((int)n));
}

Napi::Value WorkingBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)populationWorkingBytes());
}

Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  Args a(info, "fmaPeak", {"threads", "seconds"});
  const int threads = (int)a.integer("threads", 0, L.threads);
  const double seconds = a.positive("seconds");
  if (seconds > 60) a.rangeError("seconds must be at most 60");
  const FmaPeakResult p = fmaPeak(threads, seconds);
  auto o = Napi::Object::New(a.env());
  o.Set("wallGflops", p.wallGflops);
  o.Set("perCoreGflops", p.perCoreGflops);
  return o;
}

}  // namespace evometa
