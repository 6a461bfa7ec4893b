#include "napi/guard.h"

#include <cstdio>
#include <new>
#include <stdexcept>

namespace evometa {

void throwValueSafely(napi_env env, napi_value value) noexcept {
  if (value == nullptr) return;
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || pending) return;
  napi_throw(env, value);  // fails (harmlessly) while the environment is shutting down
}

void throwSafely(napi_env env, ErrorKind kind, const char* message) noexcept {
  napi_value msg = nullptr, err = nullptr;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok) return;
  napi_status s = kind == ErrorKind::range  ? napi_create_range_error(env, nullptr, msg, &err)
                  : kind == ErrorKind::type ? napi_create_type_error(env, nullptr, msg, &err)
                                            : napi_create_error(env, nullptr, msg, &err);
  if (s == napi_ok) throwValueSafely(env, err);
}

namespace {
void throwPrefixed(napi_env env, ErrorKind kind, const char* name, const char* what) noexcept {
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s: %s", name ? name : "evometa_native", what ? what : "native error");
  throwSafely(env, kind, buf);
}
}  // namespace

napi_value runGuarded(napi_env env, const char* name, napi_value (*fn)(napi_env, napi_callback_info),
                      napi_callback_info info) noexcept {
  try {
    return fn(env, info);
  } catch (const Napi::Error& e) {
    // The JS error object behind the C++ exception (its message already names the function).
    napi_value v = nullptr;
    try {
      v = e.Value();  // unwraps a thrown primitive; itself throws when the environment refuses
    } catch (...) {
      v = nullptr;
    }
    if (v != nullptr) throwValueSafely(env, v);
    else throwPrefixed(env, ErrorKind::error, name, "native error (the environment is shutting down)");
  } catch (const std::bad_alloc&) {
    throwPrefixed(env, ErrorKind::range, name, "out of memory (an allocation failed)");
  } catch (const std::length_error& e) {
    throwPrefixed(env, ErrorKind::range, name, e.what());
  } catch (const std::exception& e) {
    throwPrefixed(env, ErrorKind::error, name, e.what());
  } catch (...) {
    throwPrefixed(env, ErrorKind::error, name, "unknown native exception");
  }
  return nullptr;
}

bool exportFunction(napi_env env, napi_value exports, const char* name, napi_callback cb) noexcept {
  napi_value fn = nullptr;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, const_cast<char*>(name), &fn) != napi_ok) return false;
  return napi_set_named_property(env, exports, name, fn) == napi_ok;
}

}  // namespace evometa
