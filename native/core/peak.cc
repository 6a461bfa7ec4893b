// The peak-FLOP probe of the active ISA (the benchmarks quote every figure against it).
#include <algorithm>
#include <chrono>
#include <ctime>
#include <vector>

#include "core/bf16.h"
#include "core/cpu.h"
#include "core/population.h"
#include "core/threadpool.h"
#include "isa/isa.h"
#include "isa/isa_bf16.h"

namespace evometa {

namespace {
double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
}  // namespace

FmaPeakResult fmaPeak(int threads, double seconds) {
  const IsaOps& isa = currentIsaOps();
  const long chunk = 1L << 22;
  const int t = threads > 0 ? threads : poolThreads();
  std::vector<double> flops(t, 0.0), cpu(t, 0.0);
  volatile float sink = 0;
  const auto start = std::chrono::steady_clock::now();
  parallelFor(t, t, [&](int task, int) {
    double done = 0;
    float keep = 0;
    const double c0 = threadCpuSeconds();
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
      keep += isa.fmaLoop(chunk);
      done += (double)chunk * (isa.lanes == 16 ? 16 : 12) * isa.lanes * 2;
    }
    flops[task] = done;
    cpu[task] = threadCpuSeconds() - c0;
    sink = sink + keep;
  });
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double total = 0, perCpu = 0;
  for (int i = 0; i < t; i++) {
    total += flops[i];
    if (cpu[i] > 0) perCpu = std::max(perCpu, flops[i] / cpu[i]);
  }
  return FmaPeakResult{total / dt / 1e9, perCpu / 1e9};
}

double bf16PeakGflops(Bf16Kernel kernel, double seconds) {
  const Bf16Ops* ops = bf16Ops(kernel);
  if (ops == nullptr) return 0;
  const long chunk = 1L << 16;
  double done = 0;
  volatile float sink = 0;
  const double c0 = threadCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
    sink = sink + ops->peakLoop(chunk);
    done += (double)chunk * ops->peakFlops;
  }
  const double cpu = threadCpuSeconds() - c0;
  return cpu > 0 ? done / cpu / 1e9 : 0;
}

}  // namespace evometa
