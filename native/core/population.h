// The ES hot loop: fitness of a range of population members on one episode, each member's
// parameters regenerated from (mu, sigma, noise key), and the weighted noise sum.
// Semantics: lib/es/population.ts. Plain structs; no N-API here.
#pragma once
#include <cstdint>

namespace evometa {

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
  int kind;  // 0: gaussian, 1: coordinate
  double sigma;
  bool antithetic;
  double delta;
  uint32_t seed, step;
  long start, end;  // global member indices [start, end)
  int threads;      // 0: the whole pool
};

// Number of parameters of the model (ProtoNetLayout.numParams).
long protoNetNumParams(int blocks, int inChannels, int channels);

// fitness[m - start] = -(mean query cross-entropy) of member m. Throws std::runtime_error on bad input.
void evaluatePopulation(const PopulationSpec& spec, double* fitness);

struct NoiseSumSpec {
  long numParams;
  uint32_t seed, step;
  bool antithetic;
  double sigma;
  long start;  // global index of weights[0]
  const double* weights;
  long count;
  int threads;
};

// out[j] = sum_i weights[i] * s_i * f32(sigma * z_i[j]) in float64, members in order.
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
}  // namespace evometa
