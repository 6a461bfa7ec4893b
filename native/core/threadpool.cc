#include "core/threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace evometa {

namespace {

class Pool {
 public:
  ~Pool() { resize(0); }

  int size() {
    std::lock_guard<std::mutex> g(callMutex_);
    ensure();
    return static_cast<int>(workers_.size()) + 1;
  }

  int resize(int n) {
    std::lock_guard<std::mutex> g(callMutex_);
    stopAll();
    target_ = n;
    if (n > 0) start(n - 1);
    return n;
  }

  void run(int tasks, int maxThreads, const std::function<void(int, int)>& fn) {
    std::lock_guard<std::mutex> g(callMutex_);
    runLocked(tasks, maxThreads, fn);
  }

  int runOrInline(int tasks, int maxThreads, const std::function<void(int, int)>& fn) {
    std::unique_lock<std::mutex> g(callMutex_, std::try_to_lock);
    if (!g.owns_lock()) {
      for (int t = 0; t < tasks; t++) fn(t, 0);
      return 1;
    }
    return runLocked(tasks, maxThreads, fn);
  }

 private:
  int runLocked(int tasks, int maxThreads, const std::function<void(int, int)>& fn) {
    ensure();
    int helpers = static_cast<int>(workers_.size());
    if (maxThreads > 0) helpers = std::min(helpers, maxThreads - 1);
    helpers = std::max(0, std::min(helpers, tasks - 1));
    std::exception_ptr error;
    std::mutex errorMutex;
    std::atomic<int> next{0};
    auto body = [&](int worker) {
      for (;;) {
        int t = next.fetch_add(1);
        if (t >= tasks) break;
        try {
          fn(t, worker);
        } catch (...) {
          std::lock_guard<std::mutex> eg(errorMutex);
          if (!error) error = std::current_exception();
          next.store(tasks);
        }
      }
    };
    const std::function<void(int)> bodyFn(body);
    {
      std::unique_lock<std::mutex> lk(m_);
      job_ = &bodyFn;
      active_ = helpers;
      pending_ = helpers;
      ++generation_;
    }
    cv_.notify_all();
    body(0);
    {
      std::unique_lock<std::mutex> lk(m_);
      done_.wait(lk, [&] { return pending_ == 0; });
      job_ = nullptr;
    }
    if (error) std::rethrow_exception(error);
    return helpers + 1;
  }

  void ensure() {
    if (target_ == 0) {
      unsigned hc = std::thread::hardware_concurrency();
      target_ = hc == 0 ? 1 : static_cast<int>(hc);
      start(target_ - 1);
    }
  }

  void start(int n) {
    stop_ = false;
    // A new worker has seen every job so far: starting from generation 0 after an earlier run, it
    // would take the finished job's (null) pointer as work (a SIGSEGV after setNativeThreads).
    const unsigned long seen = generation_;
    for (int i = 0; i < n; i++) workers_.emplace_back([this, i, seen] { loop(i + 1, seen); });
  }

  void stopAll() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void loop(int id, unsigned long seen) {
    for (;;) {
      const std::function<void(int)>* job;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (id > active_) continue;
        job = job_;
      }
      (*job)(id);
      {
        std::lock_guard<std::mutex> lk(m_);
        if (--pending_ == 0) done_.notify_all();
      }
    }
  }

  std::mutex callMutex_, m_;
  std::condition_variable cv_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  unsigned long generation_ = 0;
  int active_ = 0, pending_ = 0, target_ = 0;
  bool stop_ = false;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: workers may outlive static destruction order
  return *p;
}

}  // namespace

int poolThreads() { return pool().size(); }
int setPoolThreads(int n) { return pool().resize(std::max(1, n)); }
void parallelFor(int tasks, int maxThreads, const std::function<void(int, int)>& fn) {
  if (tasks <= 0) return;
  pool().run(tasks, maxThreads, fn);
}
int parallelForOrInline(int tasks, int maxThreads, const std::function<void(int, int)>& fn) {
  if (tasks <= 0) return 1;
  return pool().runOrInline(tasks, maxThreads, fn);
}

}  // namespace evometa
