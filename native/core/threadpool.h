// A persistent thread pool: parallelFor(tasks, fn) runs fn(task, worker) on the
// calling thread plus the pool's workers, handing out tasks by an atomic counter.
#pragma once
#include <functional>

namespace evometa {

// Number of threads used by parallelFor (the caller included). Default: hardware cores.
int poolThreads();
// Resize the pool (n >= 1). Returns the new size.
int setPoolThreads(int n);
// Runs fn(task, worker) for task in [0, tasks) using up to `maxThreads` threads
// (0 = all); worker is in [0, threads). Calls are serialized.
void parallelFor(int tasks, int maxThreads, const std::function<void(int task, int worker)>& fn);
// The same, but when the pool is busy (a population evaluation is running) all tasks run
// inline on the calling thread as worker 0 instead of waiting. Returns the threads used.
int parallelForOrInline(int tasks, int maxThreads, const std::function<void(int task, int worker)>& fn);

}  // namespace evometa
