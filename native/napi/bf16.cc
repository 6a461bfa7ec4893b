// bf16 controls and test drivers: choose the bf16 kernel (setBf16Kernel), and run the rounding
// (bf16Round) or one block's convolution (bf16Conv) through a given kernel, synchronously, for
// the tests (test/native-bf16.test.ts) to check against a reference.
#include <string>

#include "core/bf16.h"
#include "core/population.h"
#include "napi/args.h"
#include "napi/bindings.h"

namespace evometa {

namespace {

// 'fp32' -> none (the fp32 path; for bf16Round: the scalar reference), else the kernel, which
// this CPU must have.
Bf16Kernel kernelField(Args& a, const char* fp32Name) {
  const std::string name = a.oneOf("kernel", {fp32Name, "emulated", "avx512bf16", "amx"});
  if (name == fp32Name) return Bf16Kernel::none;
  Bf16Kernel k = Bf16Kernel::none;
  parseBf16Kernel(name.c_str(), &k);
  if (!bf16KernelAvailable(k)) a.rangeError("field 'kernel' is '" + name + "', which this CPU cannot run (" + bf16Reason() + ")");
  return k;
}

}  // namespace

Napi::Value SetBf16Kernel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "setBf16Kernel: expected 'auto' | 'amx' | 'avx512bf16' | 'emulated'";
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, usage);
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  Bf16Kernel k;
  if (!parseBf16Kernel(name.c_str(), &k)) throw Napi::RangeError::New(env, std::string(usage) + ", got '" + name + "'");
  return Napi::Boolean::New(env, setBf16Kernel(k));
}

Napi::Value Bf16Round(const Napi::CallbackInfo& info) {
  Args a(info, "bf16Round", {"kernel", "x", "out"});
  const Bf16Kernel k = kernelField(a, "reference");
  const int64_t n = a.f32Length("x");
  const float* x = a.f32("x", n);
  float* out = a.f32("out", n);
  roundBf16ForTest(k, x, out, (long)n);
  return a.env().Undefined();
}

Napi::Value Bf16Conv(const Napi::CallbackInfo& info) {
  Args a(info, "bf16Conv", {"kernel", "images", "side", "channels", "act", "w", "out", "sum", "sumsq"});
  const Bf16Kernel k = kernelField(a, "fp32");
  const int n = (int)a.integer("images", 1, 4096);
  const int side = (int)a.integer("side", 1, 256);
  const int c = (int)a.integer("channels", 1, 512);
  const int64_t pixels = (int64_t)n * side * side * c;
  const float* act = a.f32("act", pixels);
  const float* w = a.f32("w", (int64_t)c * c * 9);
  float* out = a.f32("out", pixels);
  double* sum = a.f64("sum", c);
  double* sumsq = a.f64("sumsq", c);
  convForTest(k, n, side, c, act, w, out, sum, sumsq);
  return a.env().Undefined();
}

Napi::Value Bf16Peak(const Napi::CallbackInfo& info) {
  Args a(info, "bf16Peak", {"kernel", "seconds"});
  const Bf16Kernel k = kernelField(a, "fp32");
  const double seconds = a.positive("seconds");
  if (seconds > 60) a.rangeError("seconds must be at most 60");
  if (k == Bf16Kernel::none || k == Bf16Kernel::emulated) a.rangeError("field 'kernel' must be a hardware bf16 kernel (amx, avx512bf16)");
  return Napi::Number::New(a.env(), bf16PeakGflops(k, seconds));
}

}  // namespace evometa
