// Long native calls (the population loop, the noise sum) run off the event loop as an
// AsyncJob: the request is validated and copied into plain structs on the JS thread, run()
// executes on the libuv pool, and the promise settles on the JS thread.
//
// Safe against environment teardown (a worker thread terminated, the process exiting):
//  - every job of an environment is registered there and can be cancelled (cancel(), and an
//    environment cleanup hook); the kernels check the flag between members / chunks, so a
//    cancelled job ends within one member's work and rejects with "<name>: cancelled";
//  - the completion uses the plain C API, checks every status and never throws: when Node runs
//    it for an environment that can no longer call into JavaScript (it waits for in-flight
//    work while tearing a worker down), it releases the job and returns quietly;
//  - a C++ exception inside run() (bad_alloc included) becomes the promise's rejection.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>

#include "core/cancel.h"
#include "napi/guard.h"

namespace evometa {

struct EnvJobs;

class AsyncJob {
 public:
  AsyncJob(const char* name, uint32_t group) : name_(name), group_(group) {}
  virtual ~AsyncJob() = default;
  AsyncJob(const AsyncJob&) = delete;
  AsyncJob& operator=(const AsyncJob&) = delete;

  // Queues the job and returns its promise (JS thread; throws a Napi::Error when it cannot).
  static napi_value queue(napi_env env, std::unique_ptr<AsyncJob> job);
  // Requests cancellation of this environment's jobs in `group` (every group when group < 0).
  // Returns how many were still running or queued.
  static int cancel(napi_env env, int64_t group);
  // Jobs of this environment not yet completed.
  static int pending(napi_env env);

 protected:
  // Worker thread. May throw: Cancelled, std::bad_alloc / std::length_error / std::range_error
  // (-> RangeError), anything else (-> Error).
  virtual void run(const CancelToken& cancel) = 0;
  // JS thread: the resolution value. Must not throw; return a failed status instead.
  virtual napi_status result(napi_env env, napi_value* out) noexcept = 0;

  const char* name_;

 private:
  static void execute(napi_env env, void* data) noexcept;
  static void complete(napi_env env, napi_status status, void* data) noexcept;
  void fail(ErrorKind kind, const char* what) noexcept;

  friend struct EnvJobs;
  uint32_t group_;
  CancelToken token_;
  std::shared_ptr<EnvJobs> jobs_;
  napi_async_work work_ = nullptr;
  napi_deferred deferred_ = nullptr;
  bool failed_ = false;
  ErrorKind errorKind_ = ErrorKind::error;
  char error_[400] = {0};
};

// A job whose result is a Float64Array of n values.
class VectorJob : public AsyncJob {
 public:
  VectorJob(const char* name, uint32_t group, size_t n) : AsyncJob(name, group), out_(n) {}

 protected:
  napi_status result(napi_env env, napi_value* out) noexcept override;
  std::vector<double> out_;
};

}  // namespace evometa
