// evometa native addon: the exports table only.
#include <napi.h>

#include "core/cpu.h"
#include "napi/bindings.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace evometa;
  tuneMalloc();
  const struct { const char* name; Napi::Function::Callback fn; } table[] = {
      {"conv2d", Conv2d},
      {"conv2dBackwardInput", Conv2dBackwardInput},
      {"conv2dBackwardWeight", Conv2dBackwardWeight},
      {"batchnorm2dTrain", BatchnormTrain},
      {"batchnorm2dEval", BatchnormEval},
      {"batchnorm2dBackward", BatchnormBackward},
      {"relu", Relu},
      {"reluBackward", ReluBackward},
      {"maxpool2d", Maxpool},
      {"maxpool2dBackward", MaxpoolBackward},
      {"prototypes", Prototypes},
      {"prototypesBackward", PrototypesBackward},
      {"sqEuclidean", SqEuclidean},
      {"sqEuclideanBackward", SqEuclideanBackward},
      {"cosine", Cosine},
      {"cosineBackward", CosineBackward},
      {"scale", Scale},
      {"logSoftmax", LogSoftmax},
      {"logSoftmaxBackward", LogSoftmaxBackward},
      {"crossEntropy", CrossEntropy},
      {"crossEntropyBackward", CrossEntropyBackward},
      {"accuracy", Accuracy},
      {"rotate", Rotate},
      {"rotateBackward", RotateBackward},
      {"evaluatePopulation", EvaluatePopulation},
      {"noiseSum", NoiseSum},
      {"gaussianFill", GaussianFill},
      {"info", Info},
      {"setIsa", SetIsa},
      {"setThreads", SetThreads},
      {"workingBytes", WorkingBytes},
      {"fmaPeak", FmaPeak},
  };
  for (const auto& e : table) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
  return exports;
}

}  // namespace

NODE_API_MODULE(evometa_native, Init)
