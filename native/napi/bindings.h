// N-API functions exported by the addon (the table is in native/addon.cc).
#pragma once
#include <napi.h>

namespace evometa {

// single ops (synchronous; lib/device/cpu-native/kernels.ts calls them)
Napi::Value Conv2d(const Napi::CallbackInfo& info);
Napi::Value Conv2dBackwardInput(const Napi::CallbackInfo& info);
Napi::Value Conv2dBackwardWeight(const Napi::CallbackInfo& info);
Napi::Value BatchnormTrain(const Napi::CallbackInfo& info);
Napi::Value BatchnormEval(const Napi::CallbackInfo& info);
Napi::Value BatchnormBackward(const Napi::CallbackInfo& info);
Napi::Value Relu(const Napi::CallbackInfo& info);
Napi::Value ReluBackward(const Napi::CallbackInfo& info);
Napi::Value Maxpool(const Napi::CallbackInfo& info);
Napi::Value MaxpoolBackward(const Napi::CallbackInfo& info);
Napi::Value BnReluPool(const Napi::CallbackInfo& info);
Napi::Value BnReluPoolBackward(const Napi::CallbackInfo& info);
Napi::Value Prototypes(const Napi::CallbackInfo& info);
Napi::Value PrototypesBackward(const Napi::CallbackInfo& info);
Napi::Value SqEuclidean(const Napi::CallbackInfo& info);
Napi::Value SqEuclideanBackward(const Napi::CallbackInfo& info);
Napi::Value Cosine(const Napi::CallbackInfo& info);
Napi::Value CosineBackward(const Napi::CallbackInfo& info);
Napi::Value Scale(const Napi::CallbackInfo& info);
Napi::Value LogSoftmax(const Napi::CallbackInfo& info);
Napi::Value LogSoftmaxBackward(const Napi::CallbackInfo& info);
Napi::Value CrossEntropy(const Napi::CallbackInfo& info);
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info);
Napi::Value Accuracy(const Napi::CallbackInfo& info);
Napi::Value Rotate(const Napi::CallbackInfo& info);
Napi::Value RotateBackward(const Napi::CallbackInfo& info);

// population loop, noise, and device info
Napi::Value EvaluatePopulation(const Napi::CallbackInfo& info);  // Promise<Float64Array>
Napi::Value NoiseSum(const Napi::CallbackInfo& info);            // Promise<Float64Array>
Napi::Value PopulationBatchStats(const Napi::CallbackInfo& info);  // synchronous: loss, writes mean/variance
Napi::Value PopulationPreparePlan(const Napi::CallbackInfo& info);  // synchronous: builds an episode's shared plan
Napi::Value GaussianFill(const Napi::CallbackInfo& info);
Napi::Value Cancel(const Napi::CallbackInfo& info);       // cancel(group?): cancels this thread's jobs
Napi::Value PendingJobs(const Napi::CallbackInfo& info);  // jobs of this thread not yet settled
Napi::Value Limits(const Napi::CallbackInfo& info);       // the population loop's limits
Napi::Value Info(const Napi::CallbackInfo& info);
Napi::Value SetIsa(const Napi::CallbackInfo& info);
Napi::Value SetThreads(const Napi::CallbackInfo& info);
Napi::Value WorkingBytes(const Napi::CallbackInfo& info);
Napi::Value FmaPeak(const Napi::CallbackInfo& info);  // GFLOP/s of an FMA loop
Napi::Value MemStats(const Napi::CallbackInfo& info);  // malloc heap statistics (memstats.cc)

// bf16 (napi/bf16.cc): the kernel choice and the test drivers
Napi::Value SetBf16Kernel(const Napi::CallbackInfo& info);
Napi::Value Bf16Round(const Napi::CallbackInfo& info);
Napi::Value Bf16Conv(const Napi::CallbackInfo& info);
Napi::Value Bf16Peak(const Napi::CallbackInfo& info);  // GFLOP per CPU-second of a bf16 dot loop

}  // namespace evometa
