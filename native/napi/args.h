// The boundary: the ONE place where JS values become plain C++ values. Every typed array is
// checked for its type and exact length, every number for its range; a bad argument throws
// a JS TypeError or RangeError naming the function, the field and the value.
//
// Two phases, so that no user JavaScript can run once a data pointer has been taken:
//   1. the constructor reads every field the function declares, once, in order (a getter or a
//      Proxy trap on the argument object, or on an element of an array field, runs now and
//      only now);
//   2. the accessors below work on that snapshot and run no JavaScript (type checks, lengths,
//      numbers; error messages never call toString on a JS value).
// A getter that shrinks, resizes or detaches an earlier field's buffer therefore acts before
// any pointer exists, and the length check sees the new length. Reading a field that was not
// declared is an internal error.
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace evometa {

class Args {
 public:
  // info[0] must be a plain object; `fields` are all the fields the function will read.
  Args(const Napi::CallbackInfo& info, const char* fn, std::initializer_list<const char*> fields);

  Napi::Env env() const { return env_; }
  const char* fn() const { return fn_; }

  float* f32(const char* key, int64_t length);
  float* f32Optional(const char* key, int64_t length);  // nullptr when absent
  double* f64(const char* key, int64_t length);
  int32_t* i32(const char* key, int64_t length);
  // The element count of a typed array field of the given type (for fields whose length the
  // caller does not know in advance).
  int64_t f32Length(const char* key);
  int64_t f64Length(const char* key);
  bool present(const char* key) const;  // not undefined / null
  // A COPY of an Int32Array of `length` whose values all lie in [lo, hi): validated after the
  // copy, so a SharedArrayBuffer written by another thread cannot change a checked index.
  std::vector<int32_t> indices(const char* key, int64_t length, int64_t lo, int64_t hi);
  // The same check in place, without a copy: only for kernels that bounds-check every index
  // again as they read it (maxpool2dBackward's argmax).
  const int32_t* indicesChecked(const char* key, int64_t length, int64_t lo, int64_t hi);

  int64_t integer(const char* key, int64_t lo, int64_t hi);
  int64_t integerOr(const char* key, int64_t lo, int64_t hi, int64_t fallback);  // fallback when absent
  double number(const char* key);    // finite
  double positive(const char* key);  // finite and > 0
  bool boolean(const char* key);
  std::string oneOf(const char* key, const std::vector<std::string>& allowed);
  std::string oneOfOr(const char* key, const std::vector<std::string>& allowed, const std::string& fallback);
  // An array of `rank` integers in [1, 2^31); their product must stay below 2^40.
  std::vector<int64_t> shape(const char* key, int rank);

  // Product of dims, or -1 when it reaches 2^40 (or a dim is negative).
  static int64_t product(const std::vector<int64_t>& dims);

  [[noreturn]] void typeError(const std::string& msg) const;
  [[noreturn]] void rangeError(const std::string& msg) const;

 private:
  struct Field {
    const char* key = nullptr;
    napi_value value = nullptr;
    bool isArray = false;
    uint32_t arrayLength = 0;
    std::vector<napi_value> elements;  // snapshot of a short array field (shapes)
  };
  const Field& field(const char* key) const;
  template <typename T, napi_typedarray_type Type>
  T* typed(const char* key, int64_t length, const char* typeName, bool optional);
  int64_t typedLength(const char* key, napi_typedarray_type type, const char* typeName);

  Napi::Env env_;
  const char* fn_;
  std::vector<Field> fields_;
};

// A JS value described for an error message without running JavaScript.
std::string describe(napi_env env, napi_value v);
// A double as the shortest text that reads back exactly.
std::string formatNumber(double d);

}  // namespace evometa
