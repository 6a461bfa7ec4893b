// The ES hot loop: fitness of a range of population members on one episode, each member's
// parameters regenerated from (mu, sigma, noise key), and the weighted noise sum.
// Semantics: lib/es/population.ts. Plain structs; no N-API here.
#pragma once
#include <cstdint>

#include "core/cancel.h"

namespace evometa {

// What the population loop supports; the boundary refuses larger requests with a RangeError
// naming the field (and lib/device/cpu-native exposes these as `limits`).
struct PopulationLimits {
  int blocks = 16;
  int inChannels = 64;
  int imageSize = 4096;
  int channels = 4096;
  int way = 65536;                           // classes per episode
  int64_t images = int64_t(1) << 20;         // support + query images per episode
  int64_t members = int64_t(1) << 26;        // members per call (end - start; weights per noise sum)
  int64_t memberIndex = 4294967295LL;        // global member indices (the noise id is a uint32)
  int64_t params = 2147483647LL;             // D, parameters of the model / length of mu
  int64_t workingBytes = int64_t(1) << 34;   // plan + all workspaces of one call (16 GiB)
  int threads = 1024;
};
inline constexpr PopulationLimits kPopulationLimits{};

struct PopulationSpec {
  // model (lib/model/layout.ts): blocks x [conv3x3 pad 1, BN, ReLU, maxpool 2]
  int blocks, inChannels, imageSize, channels;
  double bnEps;
  // episode: support [ns][inChannels][S][S] then query [nq][...]
  int ns, nq, way;
  const float* support;
  const float* query;
  const int32_t* supportLabels;
  const int32_t* queryLabels;
  int distance;  // 0: negative squared Euclidean, 1: cosine
  double cosineScale;
  // parameters and perturbation
  const float* mu;
  long numParams;
  int kind;  // 0: gaussian, 1: coordinate, 2: diagonal (per-parameter sigmas)
  double sigma;
  const float* sigmas;  // kind 2: [numParams], finite and > 0
  bool antithetic;
  double delta;
  uint32_t seed, step;
  long start, end;  // global member indices [start, end)
  int threads;      // 0: the whole pool
  const CancelToken* cancel;  // checked between members; nullable
  // Precision of the convolutions' products: 0 (Bf16Kernel::none) fp32; otherwise the Bf16Kernel
  // (core/bf16.h) that multiplies bf16-rounded operands with fp32 accumulation (block 0: its
  // centered patches and BN-folded weights; blocks 1..: activations and weights).
  // Everything else (noise, theta, block 0, BN, ReLU, pool, distances, loss) stays fp32/fp64.
  int bf16;
};

// Number of parameters of the model (ProtoNetLayout.numParams).
long protoNetNumParams(int blocks, int inChannels, int channels);

// Bytes of working memory evaluatePopulation needs for `spec` on `threads` threads (the shared
// plan plus one workspace per thread), as a double so that it cannot overflow.
double populationBytes(const PopulationSpec& spec, int threads);

// fitness[m - start] = -(mean query cross-entropy) of member m. NaN or inf in the parameters or
// the images gives a non-finite fitness (ReLU and max-pool propagate NaN). Throws
// std::runtime_error on bad input, Cancelled when spec.cancel is set, std::bad_alloc.
void evaluatePopulation(const PopulationSpec& spec, double* fitness);

// The unperturbed model mu (the spec's perturbation fields are ignored) on the spec's episode in
// batch-statistics mode, on the calling thread: returns its query cross-entropy and writes, per
// block l and channel c at [l * channels + c], the batch mean of the convolution's outputs (bias
// included) and their biased variance, float64 (what a PyTorch train() forward feeds its
// running statistics).
double populationBatchStats(const PopulationSpec& spec, double* mean, double* var);

// Builds (or finds) the shared plan of the spec's episode for its precision on the calling thread,
// so that later calls on that episode, from any thread, start at once.
void preparePopulationPlan(const PopulationSpec& spec);

struct NoiseSumSpec {
  long numParams;
  uint32_t seed, step;
  bool antithetic;
  double sigma;
  const float* sigmas;  // nullable: per-parameter sigmas replacing sigma
  int kind;             // 0: linear, 1: square
  long start;  // global index of weights[0]
  const double* weights;
  long count;
  int threads;
  const CancelToken* cancel;
};

// kind 0 (linear): out[j] = sum_i weights[i] * s_i * eps_i[j], eps = f32(sigma * z) or, with
//   sigmas, f32(sigmas[j] * z) (a float32 product);
// kind 1 (square): out[j] = sum_i weights[i] * (z_i[j]^2 - 1), z^2 exact in float64;
// float64, members in order for every element (bit-identical to lib/es/noise.ts).
void noiseSum(const NoiseSumSpec& spec, double* out);

// Bytes held by the population workspaces (all workers).
long populationWorkingBytes();

}  // namespace evometa

namespace evometa {
// Measured fp32 FMA throughput of the active ISA on `threads` threads over about `seconds`
// (an FMA counts 2 FLOPs): wall-clock GFLOP/s of all threads, and GFLOP per CPU-second of one
// thread (the per-core peak, unaffected by other processes sharing the cores).
struct FmaPeakResult {
  double wallGflops;
  double perCoreGflops;
};
FmaPeakResult fmaPeak(int threads, double seconds);
// The same for a bf16 kernel (core/bf16.h) on the calling thread: GFLOP per CPU-second of its
// dot-product instruction (VDPBF16PS, TDPBF16PS); 0 for the emulated kernel.
enum class Bf16Kernel;
double bf16PeakGflops(Bf16Kernel kernel, double seconds);
}  // namespace evometa
