// Elementwise, pooling, prototype, distance and softmax/cross-entropy kernels (float64 sums).
#include <cmath>
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/kernels.h"
#include "core/threadpool.h"
#include "isa/single_ops.h"

namespace evometa {

namespace {
// Elementwise work in fixed blocks of kBlock elements, one task each (thread-count independent).
constexpr long kBlock = 1L << 16;
template <class F>
void blocks(long n, const F& f) {
  const long tasks = (n + kBlock - 1) / kBlock;
  if (tasks <= 1) {
    f(0L, n);
    return;
  }
  parallelForOrInline((int)tasks, 0, [&](int t, int) {
    const long lo = (long)t * kBlock, hi = lo + kBlock < n ? lo + kBlock : n;
    f(lo, hi);
  });
}
}  // namespace

// ReLU in the variant's vector code (single_ops_impl.h). NaN propagates (PyTorch's semantics):
// relu(NaN) = NaN, and the gradient passes where the forward passed its input through (x > 0 or x
// is NaN). -0 maps to +0.
void relu(long n, const float* x, float* y) {
  const SingleOps& so = currentSingleOps();
  blocks(n, [&](long lo, long hi) { so.relu(x + lo, hi - lo, y + lo); });
}

void reluBackward(long n, const float* dy, const float* x, float* dx) {
  const SingleOps& so = currentSingleOps();
  blocks(n, [&](long lo, long hi) { so.reluBackward(dy + lo, x + lo, hi - lo, dx + lo); });
}

void maxpool2x2Planes(const float* x, int planes, int h, int w, long base, float* y, int32_t* argmax) {
  const SingleOps& so = currentSingleOps();
  if (so.maxpool2x2) {  // the ISA's vector kernel
    so.maxpool2x2(x, planes, h, w, base, y, argmax);
    return;
  }
  const int oh = h / 2, ow = w / 2;
  long o = 0;
  for (int p = 0; p < planes; p++) {
    const long plane = (long)p * h * w;
    for (int i = 0; i < oh; i++) {
      const long r0 = plane + 2L * i * w, r1 = r0 + w;
      for (int j = 0; j < ow; j++, o++) {
        // branch-free selects (the comparisons are unpredictable)
        const long a = r0 + 2 * j, c = r1 + 2 * j;
        const float v0 = x[a], v1 = x[a + 1], v2 = x[c], v3 = x[c + 1];
        const bool t1 = (v1 > v0) | (v1 != v1);
        const long m1 = -(long)t1;
        float best = t1 ? v1 : v0;
        long bi = (a & ~m1) | ((a + 1) & m1);
        const bool t2 = (v2 > best) | (v2 != v2);
        const long m2 = -(long)t2;
        best = t2 ? v2 : best;
        bi = (bi & ~m2) | (c & m2);
        const bool t3 = (v3 > best) | (v3 != v3);
        const long m3 = -(long)t3;
        best = t3 ? v3 : best;
        bi = (bi & ~m3) | ((c + 1) & m3);
        y[o] = best;
        argmax[o] = (int32_t)(base + bi);
      }
    }
  }
}

bool maxpool2x2BackwardPlanes(const float* dy, const int32_t* argmax, int planes, int h, int w, long base, float* dx) {
  const SingleOps& so = currentSingleOps();
  if (so.maxpool2x2Backward) return so.maxpool2x2Backward(dy, argmax, planes, h, w, base, dx);
  const int oh = h / 2, ow = w / 2;
  std::memset(dx, 0, sizeof(float) * (size_t)planes * h * w);
  long o = 0;
  for (int p = 0; p < planes; p++) {
    const long plane = (long)p * h * w;
    for (int i = 0; i < oh; i++)
      for (int j = 0; j < ow; j++, o++) {
        const long k = (long)argmax[o] - base, a = plane + 2L * i * w + 2 * j;  // read once
        if (k != a && k != a + 1 && k != a + w && k != a + w + 1) return false;
        dx[k] += dy[o];
      }
  }
  return true;
}

void maxpool(const PoolGeom& g, const float* x, float* y, int32_t* argmax) {
  // A window's maximum; the first maximum wins ties; a NaN wins over any number and a later NaN
  // over an earlier one (PyTorch's CPU kernel: take v when v > best or v is NaN).
  if (g.kernel == 2 && g.stride == 2) {  // the ConvNet-4 case: 4 candidates
    const int perTask = (int)(kBlock / ((long)g.h * g.w) + 1), tasks = (g.nc + perTask - 1) / perTask;
    parallelForOrInline(tasks, 0, [&](int t, int) {
      const long p0 = (long)t * perTask, pEnd = std::min<long>(p0 + perTask, g.nc);
      maxpool2x2Planes(x + p0 * g.h * g.w, (int)(pEnd - p0), g.h, g.w, p0 * g.h * g.w, y + p0 * g.oh * g.ow, argmax + p0 * g.oh * g.ow);
    });
    return;
  }
  long o = 0;
  for (int p = 0; p < g.nc; p++) {
    const long base = (long)p * g.h * g.w;
    for (int i = 0; i < g.oh; i++)
      for (int j = 0; j < g.ow; j++, o++) {
        float best = -INFINITY;
        long bi = -1;
        for (int a = 0; a < g.kernel; a++) {
          const long row = base + ((long)i * g.stride + a) * g.w + (long)j * g.stride;
          for (int b = 0; b < g.kernel; b++) {
            const float v = x[row + b];
            if (v > best || v != v || bi < 0) { best = v; bi = row + b; }
          }
        }
        y[o] = best;
        argmax[o] = (int32_t)bi;
      }
  }
}

void maxpoolBackward(long nOut, const float* dy, const int32_t* argmax, long nIn, float* dx, const PoolGeom* g) {
  // 2x2 windows (input planes h x w, outputs (h / 2) x (w / 2)): the ISA kernel writes each plane
  // window by window, in parallel, as long as every argmax lies in its own window (always, for
  // argmax from maxpool2d); otherwise, the scatter below redoes everything.
  if (g && g->oh == g->h / 2 && g->ow == g->w / 2 && (long)g->nc * g->h * g->w == nIn &&
      (long)g->nc * g->oh * g->ow == nOut && g->oh > 0 && g->ow > 0) {
    const long plane = (long)g->h * g->w, oplane = (long)g->oh * g->ow;
    const int perTask = (int)(kBlock / plane + 1), tasks = (g->nc + perTask - 1) / perTask;
    std::vector<char> ok(tasks, 0);
    parallelForOrInline(tasks, 0, [&](int t, int) {
      const long p0 = (long)t * perTask, p1 = std::min<long>(p0 + perTask, g->nc);
      ok[t] = maxpool2x2BackwardPlanes(dy + p0 * oplane, argmax + p0 * oplane, (int)(p1 - p0), g->h, g->w, p0 * plane, dx + p0 * plane);
    });
    bool all = true;
    for (char v : ok) all = all && v;
    if (all) return;
  }
  std::memset(dx, 0, sizeof(float) * (size_t)nIn);
  for (long i = 0; i < nOut; i++) {
    // Read once and bounds-checked here too: a SharedArrayBuffer may change after validation.
    const int32_t k = argmax[i];
    if (k >= 0 && k < nIn) dx[k] += dy[i];
  }
}

void prototypes(int rows, int e, const int32_t* labels, int way, const float* support, float* out) {
  std::vector<double> acc((size_t)way * e, 0.0);
  std::vector<int> counts(way, 0);
  for (int r = 0; r < rows; r++) {
    const int l = labels[r];
    counts[l]++;
    for (int k = 0; k < e; k++) acc[(size_t)l * e + k] += support[(long)r * e + k];
  }
  for (int l = 0; l < way; l++)
    for (int k = 0; k < e; k++) out[(long)l * e + k] = (float)(acc[(size_t)l * e + k] / counts[l]);
}

void prototypesBackward(int rows, int e, const int32_t* labels, int way, const float* dproto, float* out) {
  std::vector<int> counts(way, 0);
  for (int r = 0; r < rows; r++) counts[labels[r]]++;
  for (int r = 0; r < rows; r++) {
    const int l = labels[r];
    for (int k = 0; k < e; k++) out[(long)r * e + k] = (float)((double)dproto[(long)l * e + k] / counts[l]);
  }
}

void sqEuclidean(int m, int k, int e, const float* q, const float* p, float* out) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < k; j++) {
      double s = 0;
      for (int t = 0; t < e; t++) {
        const double d = (double)q[(long)i * e + t] - p[(long)j * e + t];
        s += d * d;
      }
      out[(long)i * k + j] = (float)s;
    }
}

void sqEuclideanBackward(int m, int k, int e, const float* dd, const float* q, const float* p, float* dq, float* dp) {
  std::vector<double> aq((size_t)m * e, 0.0), ap((size_t)k * e, 0.0);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < k; j++) {
      const double g = 2.0 * dd[(long)i * k + j];
      for (int t = 0; t < e; t++) {
        const double d = g * ((double)q[(long)i * e + t] - p[(long)j * e + t]);
        aq[(size_t)i * e + t] += d;
        ap[(size_t)j * e + t] -= d;
      }
    }
  for (size_t i = 0; i < aq.size(); i++) dq[i] = (float)aq[i];
  for (size_t i = 0; i < ap.size(); i++) dp[i] = (float)ap[i];
}

namespace {
std::vector<double> norms(const float* x, int rows, int e, double eps) {
  std::vector<double> out(rows);
  for (int i = 0; i < rows; i++) {
    double s = 0;
    for (int t = 0; t < e; t++) s += (double)x[(long)i * e + t] * x[(long)i * e + t];
    out[i] = std::fmax(std::sqrt(s), eps);
  }
  return out;
}
}  // namespace

void cosine(int m, int k, int e, double eps, const float* q, const float* p, float* out) {
  const auto nq = norms(q, m, e, eps), np = norms(p, k, e, eps);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < k; j++) {
      double s = 0;
      for (int t = 0; t < e; t++) s += (double)q[(long)i * e + t] * p[(long)j * e + t];
      out[(long)i * k + j] = (float)(s / (nq[i] * np[j]));
    }
}

void cosineBackward(int m, int k, int e, double eps, const float* dc, const float* q, const float* p, float* dq,
                    float* dp) {
  const auto nq = norms(q, m, e, eps), np = norms(p, k, e, eps);
  std::vector<double> aq((size_t)m * e, 0.0), ap((size_t)k * e, 0.0);
  for (int i = 0; i < m; i++) {
    const bool qLive = nq[i] > eps;  // a norm clamped at eps is a constant: no gradient through it
    for (int j = 0; j < k; j++) {
      const bool pLive = np[j] > eps;
      double dot = 0;
      for (int t = 0; t < e; t++) dot += (double)q[(long)i * e + t] * p[(long)j * e + t];
      const double g = dc[(long)i * k + j], inv = 1 / (nq[i] * np[j]), c = dot * inv;
      for (int t = 0; t < e; t++) {
        const double qt = q[(long)i * e + t], pt = p[(long)j * e + t];
        aq[(size_t)i * e + t] += g * (pt * inv - (qLive ? c * qt / (nq[i] * nq[i]) : 0));
        ap[(size_t)j * e + t] += g * (qt * inv - (pLive ? c * pt / (np[j] * np[j]) : 0));
      }
    }
  }
  for (size_t i = 0; i < aq.size(); i++) dq[i] = (float)aq[i];
  for (size_t i = 0; i < ap.size(); i++) dp[i] = (float)ap[i];
}

void scale(long n, double alpha, const float* x, float* y) {
  for (long i = 0; i < n; i++) y[i] = (float)(alpha * x[i]);
}

void logSoftmax(int m, int k, const float* x, float* y) {
  for (int i = 0; i < m; i++) {
    const float* xr = x + (long)i * k;
    double mx = -INFINITY;
    for (int j = 0; j < k; j++) mx = std::fmax(mx, (double)xr[j]);
    double s = 0;
    for (int j = 0; j < k; j++) s += std::exp(xr[j] - mx);
    const double lse = mx + std::log(s);
    for (int j = 0; j < k; j++) y[(long)i * k + j] = (float)(xr[j] - lse);
  }
}

void logSoftmaxBackward(int m, int k, const float* dy, const float* y, float* dx) {
  for (int i = 0; i < m; i++) {
    double s = 0;
    for (int j = 0; j < k; j++) s += dy[(long)i * k + j];
    for (int j = 0; j < k; j++) dx[(long)i * k + j] = (float)(dy[(long)i * k + j] - std::exp((double)y[(long)i * k + j]) * s);
  }
}

double crossEntropy(int m, int k, const float* logp, const int32_t* labels) {
  double s = 0;
  for (int i = 0; i < m; i++) s -= logp[(long)i * k + labels[i]];
  return s / m;
}

void crossEntropyBackward(int m, int k, double dloss, const int32_t* labels, float* d) {
  std::memset(d, 0, sizeof(float) * (size_t)m * k);
  for (int i = 0; i < m; i++) d[(long)i * k + labels[i]] = (float)(-dloss / m);
}

double accuracy(int m, int k, const float* scores, const int32_t* labels) {
  int hit = 0;
  for (int i = 0; i < m; i++) {
    int best = 0;
    for (int j = 1; j < k; j++)
      if (scores[(long)i * k + j] > scores[(long)i * k + best]) best = j;
    if (best == labels[i]) hit++;
  }
  return m == 0 ? 0 : (double)hit / m;
}

}  // namespace evometa
