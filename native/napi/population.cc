// Population-loop bindings: the request is validated and COPIED into plain structs on the JS
// thread, then evaluated off the event loop in an AsyncWorker; the promise resolves with a
// fresh Float64Array. Also the noise fill (for the bit-identity test) and device info.
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/noise.h"
#include "core/population.h"
#include "core/threadpool.h"
#include "isa/isa.h"
#include "napi/args.h"
#include "napi/bindings.h"

namespace evometa {

namespace {

constexpr int64_t kU32 = 4294967295LL;

// Resolves a promise with a Float64Array of the worker's result.
class VectorWorker : public Napi::AsyncWorker {
 public:
  VectorWorker(Napi::Env env, size_t n) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), out_(n) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void OnOK() override {
    auto arr = Napi::Float64Array::New(Env(), out_.size());
    for (size_t i = 0; i < out_.size(); i++) arr[i] = out_[i];
    deferred_.Resolve(arr);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

  Napi::Promise::Deferred deferred_;
  std::vector<double> out_;
};

class PopulationWorker : public VectorWorker {
 public:
  PopulationWorker(Napi::Env env, size_t n) : VectorWorker(env, n) {}
  PopulationSpec spec{};
  std::vector<float> mu, support, query;
  std::vector<int32_t> supportLabels, queryLabels;

  void Execute() override {
    try {
      spec.mu = mu.data();
      spec.support = support.data();
      spec.query = query.data();
      spec.supportLabels = supportLabels.data();
      spec.queryLabels = queryLabels.data();
      evaluatePopulation(spec, out_.data());
    } catch (const std::exception& e) {
      SetError(std::string("evaluatePopulation: ") + e.what());
    }
  }
};

class NoiseSumWorker : public VectorWorker {
 public:
  NoiseSumWorker(Napi::Env env, size_t n) : VectorWorker(env, n) {}
  NoiseSumSpec spec{};
  std::vector<double> weights;

  void Execute() override {
    try {
      spec.weights = weights.data();
      noiseSum(spec, out_.data());
    } catch (const std::exception& e) {
      SetError(std::string("noiseSum: ") + e.what());
    }
  }
};

template <typename T>
std::vector<T> copyOf(const T* p, int64_t n) { return std::vector<T>(p, p + n); }

}  // namespace

Napi::Value EvaluatePopulation(const Napi::CallbackInfo& info) {
  Args a(info, "evaluatePopulation");
  PopulationSpec s{};
  s.blocks = (int)a.integer("blocks", 1, 16);
  s.inChannels = (int)a.integer("inChannels", 1, 64);
  s.imageSize = (int)a.integer("imageSize", 2, 4096);
  s.channels = (int)a.integer("channels", 1, 4096);
  s.bnEps = a.positive("bnEps");
  int side = s.imageSize;
  for (int l = 0; l < s.blocks; l++) {
    side /= 2;
    if (side < 1) a.rangeError("imageSize " + std::to_string(s.imageSize) + " is too small for " + std::to_string(s.blocks) + " blocks");
  }
  s.way = (int)a.integer("way", 1, 4096);
  s.ns = (int)a.integer("supportCount", 1, 1 << 20);
  s.nq = (int)a.integer("queryCount", 1, 1 << 20);
  const int64_t img = (int64_t)s.inChannels * s.imageSize * s.imageSize;
  if ((int64_t)(s.ns + s.nq) * img * 9 > (int64_t(1) << 34)) a.rangeError("episode too large");
  const std::string dist = a.oneOf("distance", {"euclidean", "cosine"});
  s.distance = dist == "cosine" ? 1 : 0;
  s.cosineScale = s.distance == 1 ? a.number("cosineScale") : 1.0;
  s.numParams = protoNetNumParams(s.blocks, s.inChannels, s.channels);
  const std::string kind = a.oneOf("kind", {"gaussian", "coordinate"});
  s.kind = kind == "coordinate" ? 1 : 0;
  if (s.kind == 0) {
    s.sigma = a.number("sigma");
    s.antithetic = a.boolean("antithetic");
  } else {
    s.delta = a.number("delta");
  }
  s.seed = (uint32_t)a.integer("seed", 0, kU32);
  s.step = (uint32_t)a.integer("step", 0, kU32);
  s.start = (long)a.integer("start", 0, kU32);
  s.end = (long)a.integer("end", s.start, kU32);
  if (s.kind == 1 && s.end > s.numParams + 1) {
    a.rangeError("coordinate members end at numParams + 1 = " + std::to_string(s.numParams + 1) + ", got end " + std::to_string(s.end));
  }
  s.threads = (int)a.integer("threads", 0, 1024);
  auto* w = new PopulationWorker(a.env(), (size_t)(s.end - s.start));
  try {
    w->mu = copyOf(a.f32("mu", s.numParams), s.numParams);
    w->support = copyOf(a.f32("support", (int64_t)s.ns * img), (int64_t)s.ns * img);
    w->query = copyOf(a.f32("query", (int64_t)s.nq * img), (int64_t)s.nq * img);
    const int32_t* sl = a.indices("supportLabels", s.ns, 0, s.way);
    std::vector<char> seen(s.way, 0);
    for (int i = 0; i < s.ns; i++) seen[sl[i]] = 1;
    for (int l = 0; l < s.way; l++)
      if (!seen[l]) a.rangeError("class " + std::to_string(l) + " has no support example");
    w->supportLabels = copyOf(sl, s.ns);
    w->queryLabels = copyOf(a.indices("queryLabels", s.nq, 0, s.way), s.nq);
  } catch (...) {
    delete w;
    throw;
  }
  w->spec = s;
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value NoiseSum(const Napi::CallbackInfo& info) {
  Args a(info, "noiseSum");
  NoiseSumSpec s{};
  s.numParams = (long)a.integer("numParams", 0, int64_t(1) << 34);
  s.seed = (uint32_t)a.integer("seed", 0, kU32);
  s.step = (uint32_t)a.integer("step", 0, kU32);
  s.antithetic = a.boolean("antithetic");
  s.sigma = a.positive("sigma");
  s.start = (long)a.integer("start", 0, kU32);
  s.threads = (int)a.integer("threads", 0, 1024);
  Napi::Value wv = info[0].As<Napi::Object>().Get("weights");
  if (!wv.IsTypedArray() || wv.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    a.typeError("field 'weights' must be a Float64Array");
  }
  const int64_t count = (int64_t)wv.As<Napi::TypedArray>().ElementLength();
  if (s.start + count - 1 > kU32) a.rangeError("member indices exceed 2^32");
  s.count = (long)count;
  auto* w = new NoiseSumWorker(a.env(), (size_t)s.numParams);
  w->weights = copyOf(a.f64("weights", count), count);
  w->spec = s;
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value GaussianFill(const Napi::CallbackInfo& info) {
  Args a(info, "gaussianFill");
  Napi::Value ov = info[0].As<Napi::Object>().Get("out");
  if (!ov.IsTypedArray() || ov.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    a.typeError("field 'out' must be a Float32Array");
  }
  const int64_t n = (int64_t)ov.As<Napi::TypedArray>().ElementLength();
  float* out = a.f32("out", n);
  const uint32_t seed = (uint32_t)a.integer("seed", 0, kU32);
  const uint32_t stream = (uint32_t)a.integer("stream", 0, kU32);
  const uint32_t step = (uint32_t)a.integer("step", 0, kU32);
  const uint32_t member = (uint32_t)a.integer("member", 0, kU32);
  const int64_t start = a.integer("start", 0, int64_t(1) << 52);
  gaussianFill(out, (long)n, seed, stream, step, member, (uint64_t)start);
  return a.env().Undefined();
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
  if (!(n >= 1 && n <= 1024 && n == (int)n)) throw Napi::RangeError::New(env, "setThreads: count must be an integer in [1, 1024]");
  return Napi::Number::New(env, setPoolThreads((int)n));
}

Napi::Value WorkingBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)populationWorkingBytes());
}

}  // namespace evometa

namespace evometa {
Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  Args a(info, "fmaPeak");
  const int threads = (int)a.integer("threads", 0, 1024);
  const double seconds = a.positive("seconds");
  if (seconds > 60) a.rangeError("seconds must be at most 60");
  const FmaPeakResult p = fmaPeak(threads, seconds);
  auto o = Napi::Object::New(a.env());
  o.Set("wallGflops", p.wallGflops);
  o.Set("perCoreGflops", p.perCoreGflops);
  return o;
}
}  // namespace evometa
