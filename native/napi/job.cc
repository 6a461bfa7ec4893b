#include "napi/job.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <vector>

namespace evometa {

// The jobs of one environment (main thread or a worker thread), kept as instance data.
struct EnvJobs {
  std::mutex m;
  std::vector<AsyncJob*> live;

  int cancel(int64_t group) {
    std::lock_guard<std::mutex> g(m);
    int n = 0;
    for (AsyncJob* j : live) {
      if (group < 0 || (int64_t)j->group_ == group) {
        j->token_.requested.store(true);
        n++;
      }
    }
    return n;
  }
  void add(AsyncJob* j) {
    std::lock_guard<std::mutex> g(m);
    live.push_back(j);
  }
  void remove(AsyncJob* j) {
    std::lock_guard<std::mutex> g(m);
    live.erase(std::remove(live.begin(), live.end(), j), live.end());
  }
  int size() {
    std::lock_guard<std::mutex> g(m);
    return (int)live.size();
  }
};

namespace {

struct Holder {
  std::shared_ptr<EnvJobs> jobs;
};

// Environment teardown: stop whatever is still running (Node waits for in-flight work before it
// runs these hooks, so this mostly matters to embedders that order teardown differently).
void cleanupHook(void* arg) { static_cast<EnvJobs*>(arg)->cancel(-1); }

void finalizeHolder(napi_env env, void* data, void*) {
  auto* h = static_cast<Holder*>(data);
  napi_remove_env_cleanup_hook(env, cleanupHook, h->jobs.get());  // never called after this
  delete h;
}

// This environment's job list, created on first use (JS thread).
std::shared_ptr<EnvJobs> envJobs(napi_env env) {
  void* data = nullptr;
  if (napi_get_instance_data(env, &data) == napi_ok && data != nullptr) return static_cast<Holder*>(data)->jobs;
  auto* h = new Holder{std::make_shared<EnvJobs>()};
  if (napi_set_instance_data(env, h, finalizeHolder, nullptr) != napi_ok) {
    auto jobs = h->jobs;
    delete h;
    return jobs;  // not remembered: cancel() will not see these jobs, the jobs still run safely
  }
  napi_add_env_cleanup_hook(env, cleanupHook, h->jobs.get());  // the holder outlives the hooks
  return h->jobs;
}

}  // namespace

void AsyncJob::fail(ErrorKind kind, const char* what) noexcept {
  failed_ = true;
  errorKind_ = kind;
  std::snprintf(error_, sizeof error_, "%s: %s", name_, what ? what : "native error");
}

void AsyncJob::execute(napi_env, void* data) noexcept {
  AsyncJob* job = static_cast<AsyncJob*>(data);
  try {
    throwIfCancelled(&job->token_);
    job->run(job->token_);
  } catch (const Cancelled&) {
    job->fail(ErrorKind::error, "cancelled");
  } catch (const std::bad_alloc&) {
    job->fail(ErrorKind::range, "out of memory (an allocation failed)");
  } catch (const std::length_error& e) {
    job->fail(ErrorKind::range, e.what());
  } catch (const std::range_error& e) {
    job->fail(ErrorKind::range, e.what());
  } catch (const std::exception& e) {
    job->fail(ErrorKind::error, e.what());
  } catch (...) {
    job->fail(ErrorKind::error, "unknown native exception");
  }
}

void AsyncJob::complete(napi_env env, napi_status status, void* data) noexcept {
  AsyncJob* job = static_cast<AsyncJob*>(data);
  if (job->jobs_) job->jobs_->remove(job);
  napi_handle_scope scope = nullptr;
  const bool scoped = napi_open_handle_scope(env, &scope) == napi_ok;
  bool settled = false;
  if (status == napi_ok && !job->failed_) {
    napi_value v = nullptr;
    if (job->result(env, &v) == napi_ok && v != nullptr) settled = napi_resolve_deferred(env, job->deferred_, v) == napi_ok;
  }
  if (!settled) {
    if (!job->failed_) job->fail(ErrorKind::error, status == napi_cancelled ? "cancelled" : "the result could not be delivered");
    napi_value msg = nullptr, err = nullptr;
    if (napi_create_string_utf8(env, job->error_, NAPI_AUTO_LENGTH, &msg) == napi_ok) {
      const napi_status s = job->errorKind_ == ErrorKind::range ? napi_create_range_error(env, nullptr, msg, &err)
                                                                : napi_create_error(env, nullptr, msg, &err);
      // Fails quietly when the environment is being torn down: nobody is left to tell.
      if (s == napi_ok) napi_reject_deferred(env, job->deferred_, err);
    }
  }
  if (scoped) napi_close_handle_scope(env, scope);
  napi_delete_async_work(env, job->work_);
  delete job;
}

napi_value AsyncJob::queue(napi_env env, std::unique_ptr<AsyncJob> job) {
  napi_value promise = nullptr, name = nullptr;
  if (napi_create_promise(env, &job->deferred_, &promise) != napi_ok) throw Napi::Error::New(env);
  auto rejectAndThrow = [&](const char* what) {
    napi_value msg = nullptr, err = nullptr;
    if (napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &msg) == napi_ok && napi_create_error(env, nullptr, msg, &err) == napi_ok) {
      napi_reject_deferred(env, job->deferred_, err);
    }
    throw Napi::Error::New(env, std::string(job->name_) + ": " + what);
  };
  if (napi_create_string_utf8(env, job->name_, NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, nullptr, name, execute, complete, job.get(), &job->work_) != napi_ok) {
    rejectAndThrow("cannot create the asynchronous work");
  }
  job->jobs_ = envJobs(env);
  job->jobs_->add(job.get());
  if (napi_queue_async_work(env, job->work_) != napi_ok) {
    job->jobs_->remove(job.get());
    napi_delete_async_work(env, job->work_);
    rejectAndThrow("cannot queue the asynchronous work");
  }
  job.release();  // owned by the async work now: deleted in complete()
  return promise;
}

int AsyncJob::cancel(napi_env env, int64_t group) { return envJobs(env)->cancel(group); }

int AsyncJob::pending(napi_env env) { return envJobs(env)->size(); }

napi_status VectorJob::result(napi_env env, napi_value* out) noexcept {
  void* data = nullptr;
  napi_value ab = nullptr;
  const size_t bytes = out_.size() * sizeof(double);
  napi_status s = napi_create_arraybuffer(env, bytes, &data, &ab);
  if (s != napi_ok) return s;
  if (bytes > 0) std::memcpy(data, out_.data(), bytes);
  return napi_create_typedarray(env, napi_float64_array, out_.size(), ab, 0, out);
}

}  // namespace evometa
