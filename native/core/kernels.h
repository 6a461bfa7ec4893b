// Single-op kernels of the op contract (lib/ops/contract.ts), float32, on plain structs.
// Shapes and index ranges are validated at the boundary (native/napi); kernels assume valid input.
#pragma once
#include <cstdint>

namespace evometa {

struct ConvGeom {
  int n, cin, h, w, cout, kh, kw, stride, pad, oh, ow;
};
void conv2dForward(const ConvGeom& g, const float* x, const float* w, const float* b, float* y);
void conv2dBackwardInput(const ConvGeom& g, const float* dy, const float* w, float* dx);
void conv2dBackwardWeight(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db);

struct BnGeom {
  int n, c;
  long hw;
};
void batchnormTrain(const BnGeom& g, const float* x, const float* gamma, const float* beta, double eps, float* y,
                    float* mean, float* var, float* invStd);
void batchnormEval(const BnGeom& g, const float* x, const float* gamma, const float* beta, const float* runningMean,
                   const float* runningVar, double eps, float* y);
void batchnormBackward(const BnGeom& g, const float* dy, const float* x, const float* gamma, const float* mean,
                       const float* invStd, float* dx, float* dgamma, float* dbeta);

void relu(long n, const float* x, float* y);
void reluBackward(long n, const float* dy, const float* x, float* dx);

struct PoolGeom {
  int nc, h, w, kernel, stride, oh, ow;
};
void maxpool(const PoolGeom& g, const float* x, float* y, int32_t* argmax);
// g (optional; its kernel and stride are ignored): the planes and their sizes, for the 2x2 fast path.
void maxpoolBackward(long nOut, const float* dy, const int32_t* argmax, long nIn, float* dx, const PoolGeom* g = nullptr);

// 2x2 / 2 max-pool of `planes` consecutive h x w planes (outputs floor(h/2) x floor(w/2) each), argmax
// = base + the flat index within x; and its backward, which overwrites the planes of dx and returns
// false (dx then unspecified) when an argmax is not in its own window. The ISA's vector kernels where
// it has them.
void maxpool2x2Planes(const float* x, int planes, int h, int w, long base, float* y, int32_t* argmax);
bool maxpool2x2BackwardPlanes(const float* dy, const int32_t* argmax, int planes, int h, int w, long base, float* dx);

// BN (training mode) + ReLU + 2x2 / 2 max-pool, fused: one pass for the statistics and one that
// pools, the BN and ReLU outputs living only in per-plane scratch. Bitwise equal to
// batchnormTrain, relu and maxpool in sequence. The backward returns false when an argmax is not
// in its window (nothing meaningful written then).
void bnReluPool(const BnGeom& g, int h, int w, const float* x, const float* gamma, const float* beta, double eps,
                float* y, int32_t* argmax, float* mean, float* var, float* invStd);
bool bnReluPoolBackward(const BnGeom& g, int h, int w, const float* dy, const float* y, const int32_t* argmax,
                        const float* x, const float* gamma, const float* mean, const float* invStd, float* dx,
                        float* dgamma, float* dbeta);

void prototypes(int rows, int e, const int32_t* labels, int way, const float* support, float* out);
void prototypesBackward(int rows, int e, const int32_t* labels, int way, const float* dproto, float* out);
void sqEuclidean(int m, int k, int e, const float* q, const float* p, float* out);
void sqEuclideanBackward(int m, int k, int e, const float* dd, const float* q, const float* p, float* dq, float* dp);
void cosine(int m, int k, int e, double eps, const float* q, const float* p, float* out);
void cosineBackward(int m, int k, int e, double eps, const float* dc, const float* q, const float* p, float* dq,
                    float* dp);
void scale(long n, double alpha, const float* x, float* y);
void logSoftmax(int m, int k, const float* x, float* y);
void logSoftmaxBackward(int m, int k, const float* dy, const float* y, float* dx);
double crossEntropy(int m, int k, const float* logp, const int32_t* labels);
void crossEntropyBackward(int m, int k, double dloss, const int32_t* labels, float* d);
double accuracy(int m, int k, const float* scores, const int32_t* labels);

// Rotation: the per-pixel sampling (index[4 px], weight[4 px], dweight[4 px]) applied to `planes` planes of px pixels.
void rotateResample(long planes, long px, const int32_t* index, const double* weight, const float* x, float* y);
// dx (overwritten) and the returned d angle = sum dy * dweight-resampled x.
double rotateBackward(long planes, long px, const int32_t* index, const double* weight, const double* dweight,
                      const float* dy, const float* x, float* dx);

}  // namespace evometa
