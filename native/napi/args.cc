#include "napi/args.h"

#include <cmath>
#include <cstdio>
#include <cstring>

namespace evometa {

namespace {
constexpr uint32_t kMaxSnapshotElements = 16;  // longer arrays are never valid shapes

napi_valuetype typeOf(napi_env env, napi_value v) {
  napi_valuetype t = napi_undefined;
  if (napi_typeof(env, v, &t) != napi_ok) return napi_undefined;
  return t;
}

bool isArray(napi_env env, napi_value v) {
  bool r = false;
  return napi_is_array(env, v, &r) == napi_ok && r;
}

bool isTypedArray(napi_env env, napi_value v) {
  bool r = false;
  return napi_is_typedarray(env, v, &r) == napi_ok && r;
}

struct TypedInfo {
  napi_typedarray_type type;
  size_t length;
  void* data;
};

bool typedInfo(napi_env env, napi_value v, TypedInfo* out) {
  if (!isTypedArray(env, v)) return false;
  napi_value ab;
  size_t offset = 0;
  return napi_get_typedarray_info(env, v, &out->type, &out->length, &out->data, &ab, &offset) == napi_ok;
}

const char* typedName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "typed array";
  }
}
}  // namespace

std::string formatNumber(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[40];
  for (int prec = 1; prec <= 17; prec++) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  return buf;
}

std::string describe(napi_env env, napi_value v) {
  switch (typeOf(env, v)) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: {
      bool b = false;
      napi_get_value_bool(env, v, &b);
      return b ? "true" : "false";
    }
    case napi_number: {
      double d = 0;
      napi_get_value_double(env, v, &d);
      return formatNumber(d);
    }
    case napi_string: {
      char buf[64];
      size_t n = 0;
      if (napi_get_value_string_utf8(env, v, buf, sizeof buf, &n) != napi_ok) return "a string";
      return "'" + std::string(buf, n) + (n + 1 >= sizeof buf ? "...'" : "'");
    }
    case napi_bigint: return "a bigint";
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    default: {
      TypedInfo ti{};
      if (typedInfo(env, v, &ti)) return std::string("a ") + typedName(ti.type) + " of " + std::to_string(ti.length);
      if (isArray(env, v)) return "an array";
      return "an object";
    }
  }
}

Args::Args(const Napi::CallbackInfo& info, const char* fn, std::initializer_list<const char*> fields)
    : env_(info.Env()), fn_(fn) {
  if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray() || info[0].IsTypedArray()) {
    throw Napi::TypeError::New(env_, std::string(fn) + ": expected one argument object");
  }
  Napi::Object obj = info[0].As<Napi::Object>();
  fields_.reserve(fields.size());
  // Phase 1: every read that may run user JavaScript (getters, Proxy traps), in order.
  for (const char* key : fields) {
    Field f;
    f.key = key;
    f.value = obj.Get(key);
    if (isArray(env_, f.value)) {
      f.isArray = true;
      napi_get_array_length(env_, f.value, &f.arrayLength);
      if (f.arrayLength <= kMaxSnapshotElements) {
        Napi::Array a(env_, f.value);
        for (uint32_t i = 0; i < f.arrayLength; i++) f.elements.push_back(a.Get(i));
      }
    }
    fields_.push_back(std::move(f));
  }
}

const Args::Field& Args::field(const char* key) const {
  for (const auto& f : fields_)
    if (std::strcmp(f.key, key) == 0) return f;
  throw Napi::Error::New(env_, std::string(fn_) + ": internal error: field '" + key + "' read but not declared");
}

void Args::typeError(const std::string& msg) const { throw Napi::TypeError::New(env_, std::string(fn_) + ": " + msg); }
void Args::rangeError(const std::string& msg) const { throw Napi::RangeError::New(env_, std::string(fn_) + ": " + msg); }

bool Args::present(const char* key) const {
  const napi_valuetype t = typeOf(env_, field(key).value);
  return t != napi_undefined && t != napi_null;
}

template <typename T, napi_typedarray_type Type>
T* Args::typed(const char* key, int64_t length, const char* typeName, bool optional) {
  const Field& f = field(key);
  if (optional && !present(key)) return nullptr;
  TypedInfo ti{};
  if (!typedInfo(env_, f.value, &ti) || ti.type != Type) {
    typeError(std::string("field '") + key + "' must be a " + typeName + ", got " + describe(env_, f.value));
  }
  const int64_t have = (int64_t)ti.length;
  if (have != length) {
    rangeError(std::string("field '") + key + "' has " + std::to_string(have) + " elements, expected " +
               std::to_string(length));
  }
  if (length > 0 && ti.data == nullptr) rangeError(std::string("field '") + key + "' is detached");
  return static_cast<T*>(ti.data);
}

int64_t Args::typedLength(const char* key, napi_typedarray_type type, const char* typeName) {
  const Field& f = field(key);
  TypedInfo ti{};
  if (!typedInfo(env_, f.value, &ti) || ti.type != type) {
    typeError(std::string("field '") + key + "' must be a " + typeName + ", got " + describe(env_, f.value));
  }
  return (int64_t)ti.length;
}

int64_t Args::f32Length(const char* key) { return typedLength(key, napi_float32_array, "Float32Array"); }
int64_t Args::f64Length(const char* key) { return typedLength(key, napi_float64_array, "Float64Array"); }

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

std::vector<int32_t> Args::indices(const char* key, int64_t length, int64_t lo, int64_t hi) {
  const int32_t* src = i32(key, length);
  std::vector<int32_t> a(src, src + length);
  for (int64_t i = 0; i < length; i++) {
    if (a[i] < lo || a[i] >= hi) {
      rangeError(std::string("field '") + key + "'[" + std::to_string(i) + "] = " + std::to_string(a[i]) +
                 " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + ")");
    }
  }
  return a;
}

const int32_t* Args::indicesChecked(const char* key, int64_t length, int64_t lo, int64_t hi) {
  const int32_t* a = i32(key, length);
  for (int64_t i = 0; i < length; i++) {
    const int32_t v = a[i];
    if (v < lo || v >= hi) {
      rangeError(std::string("field '") + key + "'[" + std::to_string(i) + "] = " + std::to_string(v) +
                 " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + ")");
    }
  }
  return a;
}

int64_t Args::integer(const char* key, int64_t lo, int64_t hi) {
  const Field& f = field(key);
  if (typeOf(env_, f.value) != napi_number) typeError(std::string("field '") + key + "' must be a number, got " + describe(env_, f.value));
  double d = 0;
  napi_get_value_double(env_, f.value, &d);
  if (!(d == std::floor(d)) || d < (double)lo || d > (double)hi) {
    rangeError(std::string("field '") + key + "' must be an integer in [" + std::to_string(lo) + ", " +
               std::to_string(hi) + "], got " + formatNumber(d));
  }
  return (int64_t)d;
}

int64_t Args::integerOr(const char* key, int64_t lo, int64_t hi, int64_t fallback) {
  return present(key) ? integer(key, lo, hi) : fallback;
}

double Args::number(const char* key) {
  const Field& f = field(key);
  if (typeOf(env_, f.value) != napi_number) typeError(std::string("field '") + key + "' must be a number, got " + describe(env_, f.value));
  double d = 0;
  napi_get_value_double(env_, f.value, &d);
  if (!std::isfinite(d)) rangeError(std::string("field '") + key + "' must be finite, got " + formatNumber(d));
  return d;
}

double Args::positive(const char* key) {
  const double d = number(key);
  if (!(d > 0)) rangeError(std::string("field '") + key + "' must be > 0, got " + formatNumber(d));
  return d;
}

bool Args::boolean(const char* key) {
  const Field& f = field(key);
  if (typeOf(env_, f.value) != napi_boolean) typeError(std::string("field '") + key + "' must be a boolean, got " + describe(env_, f.value));
  bool b = false;
  napi_get_value_bool(env_, f.value, &b);
  return b;
}

std::string Args::oneOf(const char* key, const std::vector<std::string>& allowed) {
  const Field& f = field(key);
  if (typeOf(env_, f.value) != napi_string) typeError(std::string("field '") + key + "' must be a string, got " + describe(env_, f.value));
  size_t n = 0;
  napi_get_value_string_utf8(env_, f.value, nullptr, 0, &n);
  std::string s(n, '\0');
  napi_get_value_string_utf8(env_, f.value, &s[0], n + 1, &n);
  s.resize(n);
  std::string list;
  for (const auto& a : allowed) {
    if (a == s) return s;
    list += (list.empty() ? "" : ", ") + a;
  }
  rangeError(std::string("field '") + key + "' must be one of " + list + ", got " + describe(env_, f.value));
}

std::string Args::oneOfOr(const char* key, const std::vector<std::string>& allowed, const std::string& fallback) {
  return present(key) ? oneOf(key, allowed) : fallback;
}

std::vector<int64_t> Args::shape(const char* key, int rank) {
  const Field& f = field(key);
  if (!f.isArray) typeError(std::string("field '") + key + "' must be an array of " + std::to_string(rank) + " integers, got " + describe(env_, f.value));
  if ((int64_t)f.arrayLength != rank) {
    rangeError(std::string("field '") + key + "' must have " + std::to_string(rank) + " dimensions, got " +
               std::to_string(f.arrayLength));
  }
  std::vector<int64_t> dims(rank);
  for (int i = 0; i < rank; i++) {
    napi_value d = f.elements[i];
    double x = NAN;
    if (typeOf(env_, d) == napi_number) napi_get_value_double(env_, d, &x);
    if (!(x == std::floor(x)) || x < 1 || x >= 2147483648.0) {
      rangeError(std::string("field '") + key + "'[" + std::to_string(i) + "] must be an integer in [1, 2^31), got " +
                 describe(env_, d));
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
