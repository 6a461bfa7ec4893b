#include "napi/args.h"

#include <cmath>

namespace evometa {

Args::Args(const Napi::CallbackInfo& info, const char* fn) : env_(info.Env()), fn_(fn) {
  if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray() || info[0].IsTypedArray()) {
    throw Napi::TypeError::New(env_, std::string(fn) + ": expected one argument object");
  }
  obj_ = info[0].As<Napi::Object>();
}

void Args::typeError(const std::string& msg) const { throw Napi::TypeError::New(env_, std::string(fn_) + ": " + msg); }
void Args::rangeError(const std::string& msg) const { throw Napi::RangeError::New(env_, std::string(fn_) + ": " + msg); }

Napi::Value Args::get(const char* key) const { return obj_.Get(key); }

template <typename T, napi_typedarray_type Type>
T* Args::typed(const char* key, int64_t length, const char* typeName, bool optional) {
  Napi::Value v = get(key);
  if (optional && (v.IsUndefined() || v.IsNull())) return nullptr;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != Type) {
    typeError(std::string("field '") + key + "' must be a " + typeName);
  }
  auto arr = v.As<Napi::TypedArrayOf<T>>();
  const int64_t have = (int64_t)arr.ElementLength();
  if (have != length) {
    rangeError(std::string("field '") + key + "' has " + std::to_string(have) + " elements, expected " +
               std::to_string(length));
  }
  if (length > 0 && arr.Data() == nullptr) rangeError(std::string("field '") + key + "' is detached");
  return arr.Data();
}

float* Args::f32(const char* key, int64_t length) {
  return typed<float, napi_float32_array>(key, length, "Float32Array", false);
}
float* Args::f32Optional(const char* key, int64_t length) {
  return typed<float, napi_float32_array>(key, length, "Float32Array", true);
}
double* Args::f64(const char* key, int64_t length) {
  return typed<double, napi_float64_array>(key, length, "Float64Array", false);
}
int32_t* Args::i32(const char* key, int64_t length) {
  return typed<int32_t, napi_int32_array>(key, length, "Int32Array", false);
}

int32_t* Args::indices(const char* key, int64_t length, int64_t lo, int64_t hi) {
  int32_t* a = i32(key, length);
  for (int64_t i = 0; i < length; i++) {
    if (a[i] < lo || a[i] >= hi) {
      rangeError(std::string("field '") + key + "'[" + std::to_string(i) + "] = " + std::to_string(a[i]) +
                 " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + ")");
    }
  }
  return a;
}

int64_t Args::integer(const char* key, int64_t lo, int64_t hi) {
  Napi::Value v = get(key);
  if (!v.IsNumber()) typeError(std::string("field '") + key + "' must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d == std::floor(d)) || d < (double)lo || d > (double)hi) {
    rangeError(std::string("field '") + key + "' must be an integer in [" + std::to_string(lo) + ", " +
               std::to_string(hi) + "], got " + v.ToString().Utf8Value());
  }
  return (int64_t)d;
}

double Args::number(const char* key) {
  Napi::Value v = get(key);
  if (!v.IsNumber()) typeError(std::string("field '") + key + "' must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) rangeError(std::string("field '") + key + "' must be finite, got " + v.ToString().Utf8Value());
  return d;
}

double Args::positive(const char* key) {
  const double d = number(key);
  if (!(d > 0)) rangeError(std::string("field '") + key + "' must be > 0, got " + std::to_string(d));
  return d;
}

bool Args::boolean(const char* key) {
  Napi::Value v = get(key);
  if (!v.IsBoolean()) typeError(std::string("field '") + key + "' must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string Args::oneOf(const char* key, const std::vector<std::string>& allowed) {
  Napi::Value v = get(key);
  if (!v.IsString()) typeError(std::string("field '") + key + "' must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  std::string list;
  for (const auto& a : allowed) {
    if (a == s) return s;
    list += (list.empty() ? "" : ", ") + a;
  }
  rangeError(std::string("field '") + key + "' must be one of " + list + ", got '" + s + "'");
}

std::vector<int64_t> Args::shape(const char* key, int rank) {
  Napi::Value v = get(key);
  if (!v.IsArray()) typeError(std::string("field '") + key + "' must be an array of " + std::to_string(rank) + " integers");
  auto a = v.As<Napi::Array>();
  if ((int)a.Length() != rank) {
    rangeError(std::string("field '") + key + "' must have " + std::to_string(rank) + " dimensions, got " +
               std::to_string(a.Length()));
  }
  std::vector<int64_t> dims(rank);
  for (int i = 0; i < rank; i++) {
    Napi::Value d = a.Get((uint32_t)i);
    const double x = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : NAN;
    if (!(x == std::floor(x)) || x < 1 || x >= 2147483648.0) {
      rangeError(std::string("field '") + key + "'[" + std::to_string(i) + "] must be an integer in [1, 2^31), got " +
                 d.ToString().Utf8Value());
    }
    dims[i] = (int64_t)x;
  }
  if (product(dims) < 0) rangeError(std::string("field '") + key + "' describes more than 2^40 elements");
  return dims;
}

int64_t Args::product(const std::vector<int64_t>& dims) {
  int64_t p = 1;
  for (int64_t d : dims) {
    if (d < 0 || (d > 0 && p > (int64_t(1) << 40) / d)) return -1;
    p *= d;
  }
  return p;
}

}  // namespace evometa
