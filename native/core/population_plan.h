// The population loop's per-call plan: parameter offsets, the episode's block-0 patches and
// their covariance, pixel maps of blocks 1..; and a per-thread cache of the last plan.
// Internal to native/core/population.cc (and population_plan.cc).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/bf16.h"
#include "core/population.h"
#include "isa/isa_bf16.h"

namespace evometa {
namespace plan {

constexpr int kMaxBlocks = 16;

struct ParamOffsets {
  long w[kMaxBlocks], b[kMaxBlocks], gamma[kMaxBlocks], beta[kMaxBlocks];
  long total;
};

ParamOffsets paramOffsets(int blocks, int cin, int c);

// Everything shared by all members of one call.
struct Plan {
  int blocks, cin, c, cp, n, ns, nq, way;
  int side[kMaxBlocks + 1];  // side[l]: input side of block l; side[blocks]: embedding side
  int k1;                    // 9 * cin
  std::vector<float> patches;  // block 0, pooling-window pixels, centered: [n * win0 * 4][k1]
  // precision bf16: the patches rounded to bf16, as fp32 (kernels without a bf16 block 0), or as
  // bf16 rows of kp1 = k1 rounded up to 32 plus 32 zero rows (a kernel's layer1)
  std::vector<float> patchesRounded;
  std::vector<uint16_t> patchesBf16;
  int kp1 = 0;
  std::vector<double> cov;     // [k1][k1] patch covariance over all pixels of block 0
  std::vector<double> patchMean;  // [k1] mean patch over all pixels of block 0
  std::vector<int32_t> pixOff[kMaxBlocks];  // per image: window offsets in the padded input, pooling order
  std::vector<int32_t> virtMap[kMaxBlocks];  // per image: virtual pixel (rows of the padded grid) -> pixOff index or -1
  int32_t tapOff[kMaxBlocks][9];
  int chunk[kMaxBlocks];                    // images per chunk whose block-l input stays in cache
  long emb;  // embedding row length (cp * side^2)
  ParamOffsets off;
};

void buildPlan(const PopulationSpec& s, Plan& p);

// How blocks 1.. multiply: fp32 (kernel none), bf16-rounded operands on the fp32 kernels
// (emulated), or a hardware bf16 kernel (ops).
struct ConvMode {
  Bf16Kernel kernel = Bf16Kernel::none;
  const Bf16Ops* ops = nullptr;
};

ConvMode convMode(int bf16);

// The plan of s's episode, built once and shared by every thread of the process: the shards of
// one ES step (on any worker thread) and the mean model's batch statistics share an episode, so
// the first call builds the plan and the others, arriving meanwhile (they wait for it) or later,
// use it. Entries match on geometry, precision and the episode's image bytes; the two most
// recent are kept (one step's and the previous one's), none larger than 64 MiB.
std::shared_ptr<const Plan> sharedPlan(const PopulationSpec& s, const ConvMode& mode);

// Bytes held by the kept plans and their episodes' images.
double sharedPlanBytes();

}  // namespace plan
}  // namespace evometa
