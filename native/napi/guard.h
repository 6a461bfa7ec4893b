// No C++ exception ever leaves the addon, and no JS exception is thrown into an environment
// that cannot take one (a worker thread being terminated, or the process exiting).
//
// node-addon-api's own wrapper rethrows a failed napi_throw as a C++ exception out of a
// callback that must not throw, which ends in std::terminate ("terminate called after throwing
// an instance of 'Napi::Error'") when a worker is terminated while a native call is running.
// Every exported function is therefore registered through `guarded<F>` instead: it catches
// everything, turns it into a JS error with the plain C API, and gives up quietly when the
// environment refuses (there is nobody left to tell).
#pragma once
#include <napi.h>

namespace evometa {

enum class ErrorKind { error, type, range };

// Throws a new JS error of `kind` with `message` into env, unless an exception is already
// pending or the environment is shutting down. Never throws.
void throwSafely(napi_env env, ErrorKind kind, const char* message) noexcept;
// Rethrows an existing JS value (an Error object) the same way. Never throws.
void throwValueSafely(napi_env env, napi_value value) noexcept;

// Runs fn and converts any C++ exception into a pending JS exception (see above).
// `name` prefixes messages of non-JS exceptions (bad_alloc: "<name>: out of memory").
napi_value runGuarded(napi_env env, const char* name, napi_value (*fn)(napi_env, napi_callback_info),
                      napi_callback_info info) noexcept;

using Exported = Napi::Value (*)(const Napi::CallbackInfo&);

template <Exported F>
napi_value callExported(napi_env env, napi_callback_info info) {
  Napi::CallbackInfo ci(env, info);
  Napi::Value r = F(ci);
  return r;
}

template <Exported F>
napi_value guarded(napi_env env, napi_callback_info info) noexcept {
  void* data = nullptr;
  napi_get_cb_info(env, info, nullptr, nullptr, nullptr, &data);
  return runGuarded(env, static_cast<const char*>(data), &callExported<F>, info);
}

// exports[name] = a function calling cb with `name` as its data. Returns false on failure.
bool exportFunction(napi_env env, napi_value exports, const char* name, napi_callback cb) noexcept;

}  // namespace evometa
