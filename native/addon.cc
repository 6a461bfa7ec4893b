// evometa native addon: the exports table only. Every function is registered through
// `guarded` (napi/guard.h): no C++ exception ever crosses into Node.
#include <napi.h>

#include "core/cpu.h"
#include "napi/bindings.h"
#include "napi/guard.h"

namespace {

napi_value Init(napi_env env, napi_value exports) {
  using namespace evometa;
  tuneMalloc();
  const struct { const char* name; napi_callback fn; } table[] = {
      {"conv2d", guarded<Conv2d>},
      {"conv2dBackwardInput", guarded<Conv2dBackwardInput>},
      {"conv2dBackwardWeight", guarded<Conv2dBackwardWeight>},
      {"batchnorm2dTrain", guarded<BatchnormTrain>},
      {"batchnorm2dEval", guarded<BatchnormEval>},
      {"batchnorm2dBackward", guarded<BatchnormBackward>},
      {"relu", guarded<Relu>},
      {"reluBackward", guarded<ReluBackward>},
      {"maxpool2d", guarded<Maxpool>},
      {"maxpool2dBackward", guarded<MaxpoolBackward>},
      {"bnReluPool", guarded<BnReluPool>},
      {"bnReluPoolBackward", guarded<BnReluPoolBackward>},
      {"prototypes", guarded<Prototypes>},
      {"prototypesBackward", guarded<PrototypesBackward>},
      {"sqEuclidean", guarded<SqEuclidean>},
      {"sqEuclideanBackward", guarded<SqEuclideanBackward>},
      {"cosine", guarded<Cosine>},
      {"cosineBackward", guarded<CosineBackward>},
      {"scale", guarded<Scale>},
      {"logSoftmax", guarded<LogSoftmax>},
      {"logSoftmaxBackward", guarded<LogSoftmaxBackward>},
      {"crossEntropy", guarded<CrossEntropy>},
      {"crossEntropyBackward", guarded<CrossEntropyBackward>},
      {"accuracy", guarded<Accuracy>},
      {"rotate", guarded<Rotate>},
      {"rotateBackward", guarded<RotateBackward>},
      {"evaluatePopulation", guarded<EvaluatePopulation>},
      {"noiseSum", guarded<NoiseSum>},
      {"populationBatchStats", guarded<PopulationBatchStats>},
      {"populationPreparePlan", guarded<PopulationPreparePlan>},
      {"gaussianFill", guarded<GaussianFill>},
      {"cancel", guarded<Cancel>},
      {"pendingJobs", guarded<PendingJobs>},
      {"limits", guarded<Limits>},
      {"info", guarded<Info>},
      {"setIsa", guarded<SetIsa>},
      {"setThreads", guarded<SetThreads>},
      {"workingBytes", guarded<WorkingBytes>},
      {"fmaPeak", guarded<FmaPeak>},
      {"memStats", guarded<MemStats>},
      {"setBf16Kernel", guarded<SetBf16Kernel>},
      {"bf16Round", guarded<Bf16Round>},
      {"bf16Conv", guarded<Bf16Conv>},
      {"bf16Peak", guarded<Bf16Peak>},
  };
  for (const auto& e : table) {
    if (!exportFunction(env, exports, e.name, e.fn)) return nullptr;
  }
  return exports;
}

}  // namespace

NAPI_MODULE(evometa_native, Init)
