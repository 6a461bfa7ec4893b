// The boundary: the ONE place where JS values become plain C++ values. Every typed array is
// checked for its type and exact length, every number for its range; a bad argument throws
// a JS TypeError or RangeError naming the function, the field and the value.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace evometa {

class Args {
 public:
  // info[0] must be a plain object holding the named fields.
  Args(const Napi::CallbackInfo& info, const char* fn);

  Napi::Env env() const { return env_; }

  float* f32(const char* key, int64_t length);
  float* f32Optional(const char* key, int64_t length);  // nullptr when absent
  double* f64(const char* key, int64_t length);
  int32_t* i32(const char* key, int64_t length);
  // Int32Array of `length` whose values all lie in [lo, hi).
  int32_t* indices(const char* key, int64_t length, int64_t lo, int64_t hi);

  int64_t integer(const char* key, int64_t lo, int64_t hi);
  double number(const char* key);
  double positive(const char* key);  // finite and > 0
  bool boolean(const char* key);
  std::string oneOf(const char* key, const std::vector<std::string>& allowed);
  // An array of `rank` integers in [1, 2^31); their product must stay below 2^40.
  std::vector<int64_t> shape(const char* key, int rank);

  static int64_t product(const std::vector<int64_t>& dims);

  [[noreturn]] void typeError(const std::string& msg) const;
  [[noreturn]] void rangeError(const std::string& msg) const;

 private:
  Napi::Value get(const char* key) const;
  template <typename T, napi_typedarray_type Type>
  T* typed(const char* key, int64_t length, const char* typeName, bool optional);

  Napi::Env env_;
  Napi::Object obj_;
  const char* fn_;
};

}  // namespace evometa
