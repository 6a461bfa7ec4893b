// Native heap statistics for the memory study (lib/memory/measure.ts).
//
// memStats({ op: 'read' })                  the malloc heap now (glibc mallinfo2 over every arena)
// memStats({ op: 'start', periodUs: 1000 }) also start a thread that samples it every periodUs
//                                           and keeps the largest in-use bytes seen
// memStats({ op: 'stop' })                  stop that thread; the result still carries its peak
//
// mallinfo2 sees every block malloc handed out and not yet freed: the addon's outputs and thread
// workspaces, Node's ArrayBuffer backing stores (typed arrays), V8's malloced memory. V8's own
// heap pages are not malloc'ed and are read on the JS side (v8.getHeapStatistics).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "napi/args.h"
#include "napi/bindings.h"

namespace evometa {

namespace {

struct HeapNow {
  bool available = false;
  double arena = 0;     // bytes obtained from the system by sbrk/arena heaps
  double mmapped = 0;   // bytes in blocks served by their own mmap
  double inUse = 0;     // allocated and not freed: in-arena in-use + mmapped blocks
  double free = 0;      // free bytes inside the arenas
  double keepcost = 0;  // releasable bytes at the top of the main arena
};

HeapNow readHeap() {
  HeapNow h;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 m = mallinfo2();
  h.available = true;
  h.arena = (double)m.arena;
  h.mmapped = (double)m.hblkhd;
  h.inUse = (double)(m.uordblks + m.hblkhd);
  h.free = (double)m.fordblks;
  h.keepcost = (double)m.keepcost;
#endif
  return h;
}

struct Sampler {
  std::atomic<bool> running{false};
  std::atomic<double> peak{0};
  std::atomic<uint64_t> samples{0};
  std::thread thread;
  int64_t periodUs = 0;
};

// Never destroyed (a joinable std::thread must not be destroyed); the env cleanup hook stops it.
Sampler& sampler() {
  static Sampler* s = new Sampler();
  return *s;
}

void raisePeak(double v) {
  Sampler& s = sampler();
  double cur = s.peak.load();
  while (v > cur && !s.peak.compare_exchange_weak(cur, v)) {
  }
}

void stopSampler() {
  Sampler& s = sampler();
  if (!s.running.exchange(false)) return;
  if (s.thread.joinable()) s.thread.join();
}

}  // namespace

Napi::Value MemStats(const Napi::CallbackInfo& info) {
  Args a(info, "memStats", {"op", "periodUs"});
  const std::string op = a.oneOf("op", {"read", "start", "stop"});
  Sampler& s = sampler();
  if (op == "start") {
    const int64_t period = a.integer("periodUs", 100, 1000000);
    stopSampler();
    s.peak = 0;
    s.samples = 0;
    s.periodUs = period;
    if (readHeap().available) {
      s.running = true;
      s.thread = std::thread([period] {
        Sampler& t = sampler();
        while (t.running.load()) {
          raisePeak(readHeap().inUse);
          t.samples++;
          std::this_thread::sleep_for(std::chrono::microseconds(period));
        }
      });
      static bool hooked = false;
      if (!hooked) {
        hooked = true;
        napi_add_env_cleanup_hook(a.env(), [](void*) { stopSampler(); }, nullptr);
      }
    }
  } else if (op == "stop") {
    stopSampler();
  }
  const HeapNow h = readHeap();
  if (h.available) raisePeak(h.inUse);
  Napi::Env env = a.env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("available", h.available);
  out.Set("arena", h.arena);
  out.Set("mmapped", h.mmapped);
  out.Set("inUse", h.inUse);
  out.Set("free", h.free);
  out.Set("keepcost", h.keepcost);
  out.Set("peakInUse", s.peak.load());
  out.Set("samples", (double)s.samples.load());
  out.Set("sampling", s.running.load());
  return out;
}

}  // namespace evometa
