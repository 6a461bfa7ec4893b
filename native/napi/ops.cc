// Single-op bindings: arguments -> plain structs (validated by Args) -> core kernels.
// Outputs are allocated by the caller (lib/device/cpu-native/kernels.ts) and checked here.
#include <string>
#include <vector>

#include "core/kernels.h"
#include "napi/args.h"
#include "napi/bindings.h"

namespace evometa {

namespace {

constexpr int64_t kMaxInt = 2147483647;

ConvGeom convGeom(Args& a, const std::vector<int64_t>& xs, const std::vector<int64_t>& ws) {
  ConvGeom g{};
  g.n = (int)xs[0]; g.cin = (int)xs[1]; g.h = (int)xs[2]; g.w = (int)xs[3];
  g.cout = (int)ws[0]; g.kh = (int)ws[2]; g.kw = (int)ws[3];
  if (ws[1] != xs[1]) a.rangeError("input has " + std::to_string(xs[1]) + " channels but weight expects " + std::to_string(ws[1]));
  g.stride = (int)a.integer("stride", 1, 1 << 20);
  g.pad = (int)a.integer("padding", 0, 1 << 20);
  const int64_t oh = ((int64_t)g.h + 2 * g.pad - g.kh) / g.stride + 1;
  const int64_t ow = ((int64_t)g.w + 2 * g.pad - g.kw) / g.stride + 1;
  if ((int64_t)g.h + 2 * g.pad < g.kh || (int64_t)g.w + 2 * g.pad < g.kw || oh < 1 || ow < 1) a.rangeError("convolution output would be empty");
  if (Args::product({xs[0], ws[0], oh, ow}) < 0) a.rangeError("convolution output too large");
  g.oh = (int)oh; g.ow = (int)ow;
  const int64_t col = (int64_t)g.cin * g.kh * g.kw * g.oh * g.ow;
  if (col > kMaxInt || (int64_t)g.cout * g.oh * g.ow > kMaxInt) a.rangeError("convolution too large for one image");
  return g;
}

int64_t n4(const ConvGeom& g, bool out) {
  return out ? (int64_t)g.n * g.cout * g.oh * g.ow : (int64_t)g.n * g.cin * g.h * g.w;
}

Napi::Value none(const Args& a) { return a.env().Undefined(); }

BnGeom bnGeom(const std::vector<int64_t>& s) { return BnGeom{(int)s[0], (int)s[1], (long)(s[2] * s[3])}; }

struct Mk { int m, k, e; };
Mk dims3(Args& a) {
  return Mk{(int)a.integer("m", 0, kMaxInt), (int)a.integer("k", 1, kMaxInt), (int)a.integer("e", 1, kMaxInt)};
}

}  // namespace

Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  Args a(info, "conv2d", {"xShape", "wShape", "stride", "padding", "x", "w", "b", "y"});
  auto xs = a.shape("xShape", 4), ws = a.shape("wShape", 4);
  ConvGeom g = convGeom(a, xs, ws);
  const float* x = a.f32("x", n4(g, false));
  const float* w = a.f32("w", Args::product(ws));
  const float* b = a.f32Optional("b", g.cout);
  float* y = a.f32("y", n4(g, true));
  conv2dForward(g, x, w, b, y);
  return none(a);
}

Napi::Value Conv2dBackwardInput(const Napi::CallbackInfo& info) {
  Args a(info, "conv2dBackwardInput", {"xShape", "wShape", "stride", "padding", "dy", "w", "dx"});
  auto xs = a.shape("xShape", 4), ws = a.shape("wShape", 4);
  ConvGeom g = convGeom(a, xs, ws);
  const float* dy = a.f32("dy", n4(g, true));
  const float* w = a.f32("w", Args::product(ws));
  float* dx = a.f32("dx", n4(g, false));
  conv2dBackwardInput(g, dy, w, dx);
  return none(a);
}

Napi::Value Conv2dBackwardWeight(const Napi::CallbackInfo& info) {
  Args a(info, "conv2dBackwardWeight", {"xShape", "wShape", "stride", "padding", "dy", "x", "dw", "db"});
  auto xs = a.shape("xShape", 4), ws = a.shape("wShape", 4);
  ConvGeom g = convGeom(a, xs, ws);
  const float* dy = a.f32("dy", n4(g, true));
  const float* x = a.f32("x", n4(g, false));
  float* dw = a.f32("dw", Args::product(ws));
  float* db = a.f32("db", g.cout);
  conv2dBackwardWeight(g, dy, x, dw, db);
  return none(a);
}

Napi::Value BatchnormTrain(const Napi::CallbackInfo& info) {
  Args a(info, "batchnorm2dTrain", {"shape", "x", "gamma", "beta", "eps", "y", "mean", "variance", "invStd"});
  auto s = a.shape("shape", 4);
  const int64_t n = Args::product(s), c = s[1];
  BnGeom g = bnGeom(s);
  const float* x = a.f32("x", n);
  const float* gamma = a.f32("gamma", c);
  const float* beta = a.f32("beta", c);
  const double eps = a.positive("eps");
  batchnormTrain(g, x, gamma, beta, eps, a.f32("y", n), a.f32("mean", c), a.f32("variance", c), a.f32("invStd", c));
  return none(a);
}

Napi::Value BatchnormEval(const Napi::CallbackInfo& info) {
  Args a(info, "batchnorm2dEval", {"shape", "x", "gamma", "beta", "runningMean", "runningVar", "eps", "y"});
  auto s = a.shape("shape", 4);
  const int64_t n = Args::product(s), c = s[1];
  const float* x = a.f32("x", n);
  const float* gamma = a.f32("gamma", c);
  const float* beta = a.f32("beta", c);
  const float* rm = a.f32("runningMean", c);
  const float* rv = a.f32("runningVar", c);
  const double eps = a.positive("eps");
  batchnormEval(bnGeom(s), x, gamma, beta, rm, rv, eps, a.f32("y", n));
  return none(a);
}

Napi::Value BatchnormBackward(const Napi::CallbackInfo& info) {
  Args a(info, "batchnorm2dBackward", {"shape", "dy", "x", "gamma", "mean", "invStd", "dx", "dgamma", "dbeta"});
  auto s = a.shape("shape", 4);
  const int64_t n = Args::product(s), c = s[1];
  const float* dy = a.f32("dy", n);
  const float* x = a.f32("x", n);
  const float* gamma = a.f32("gamma", c);
  const float* mean = a.f32("mean", c);
  const float* invStd = a.f32("invStd", c);
  batchnormBackward(bnGeom(s), dy, x, gamma, mean, invStd, a.f32("dx", n), a.f32("dgamma", c), a.f32("dbeta", c));
  return none(a);
}

// Planes of x [N, C, H, W] pooled 2x2 / 2 (floor mode): [N, C, H / 2, W / 2].
Napi::Value BnReluPool(const Napi::CallbackInfo& info) {
  Args a(info, "bnReluPool", {"shape", "x", "gamma", "beta", "eps", "y", "argmax", "mean", "variance", "invStd"});
  auto s = a.shape("shape", 4);
  const int64_t n = Args::product(s), c = s[1], pooled = s[0] * c * (s[2] / 2) * (s[3] / 2);
  if (n > kMaxInt) a.rangeError("x has more than 2^31 - 1 elements (the argmax indices are int32)");
  const float* x = a.f32("x", n);
  const float* gamma = a.f32("gamma", c);
  const float* beta = a.f32("beta", c);
  const double eps = a.positive("eps");
  bnReluPool(bnGeom(s), (int)s[2], (int)s[3], x, gamma, beta, eps, a.f32("y", pooled), a.i32("argmax", pooled),
             a.f32("mean", c), a.f32("variance", c), a.f32("invStd", c));
  return none(a);
}

Napi::Value BnReluPoolBackward(const Napi::CallbackInfo& info) {
  Args a(info, "bnReluPoolBackward",
         {"shape", "dy", "y", "argmax", "x", "gamma", "mean", "invStd", "dx", "dgamma", "dbeta"});
  auto s = a.shape("shape", 4);
  const int64_t n = Args::product(s), c = s[1], pooled = s[0] * c * (s[2] / 2) * (s[3] / 2);
  if (n > kMaxInt) a.rangeError("x has more than 2^31 - 1 elements (the argmax indices are int32)");
  const float* dy = a.f32("dy", pooled);
  const float* y = a.f32("y", pooled);
  // each index is checked against its own window by the kernel, as it reads it
  const int32_t* argmax = a.i32("argmax", pooled);
  const float* x = a.f32("x", n);
  const float* gamma = a.f32("gamma", c);
  const float* mean = a.f32("mean", c);
  const float* invStd = a.f32("invStd", c);
  if (!bnReluPoolBackward(bnGeom(s), (int)s[2], (int)s[3], dy, y, argmax, x, gamma, mean, invStd, a.f32("dx", n),
                          a.f32("dgamma", c), a.f32("dbeta", c)))
    a.rangeError("field 'argmax' holds an index outside its own 2x2 window (it must come from bnReluPool on this x)");
  return none(a);
}

Napi::Value Relu(const Napi::CallbackInfo& info) {
  Args a(info, "relu", {"size", "x", "y"});
  const int64_t n = a.integer("size", 0, int64_t(1) << 40);
  relu((long)n, a.f32("x", n), a.f32("y", n));
  return none(a);
}

Napi::Value ReluBackward(const Napi::CallbackInfo& info) {
  Args a(info, "reluBackward", {"size", "dy", "x", "dx"});
  const int64_t n = a.integer("size", 0, int64_t(1) << 40);
  reluBackward((long)n, a.f32("dy", n), a.f32("x", n), a.f32("dx", n));
  return none(a);
}

Napi::Value Maxpool(const Napi::CallbackInfo& info) {
  Args a(info, "maxpool2d", {"shape", "kernel", "stride", "x", "y", "argmax"});
  auto s = a.shape("shape", 4);
  PoolGeom g{};
  const int64_t nc = s[0] * s[1];
  if (nc > kMaxInt) a.rangeError("too many planes");
  g.nc = (int)nc; g.h = (int)s[2]; g.w = (int)s[3];
  g.kernel = (int)a.integer("kernel", 1, 1 << 20);
  g.stride = (int)a.integer("stride", 1, 1 << 20);
  if (g.kernel > g.h || g.kernel > g.w) a.rangeError("max-pool output would be empty");
  g.oh = (g.h - g.kernel) / g.stride + 1;
  g.ow = (g.w - g.kernel) / g.stride + 1;
  const int64_t n = Args::product(s);
  if (n > kMaxInt) a.rangeError("input too large for Int32 argmax indices");
  const int64_t no = nc * g.oh * g.ow;
  maxpool(g, a.f32("x", n), a.f32("y", no), a.i32("argmax", no));
  return none(a);
}

Napi::Value MaxpoolBackward(const Napi::CallbackInfo& info) {
  Args a(info, "maxpool2dBackward", {"outputSize", "inputSize", "planes", "height", "width", "dy", "argmax", "dx"});
  const int64_t nOut = a.integer("outputSize", 0, kMaxInt);
  const int64_t nIn = a.integer("inputSize", 0, kMaxInt);
  // optional geometry (planes of height x width): enables the 2x2 window fast path
  const int64_t planes = a.integerOr("planes", 1, kMaxInt, 0);
  const int64_t h = a.integerOr("height", 1, kMaxInt, 0), w = a.integerOr("width", 1, kMaxInt, 0);
  PoolGeom g{};
  const bool geom = planes > 0 && h > 0 && w > 0;
  if (geom) {
    if (planes * h * w != nIn) a.rangeError("planes x height x width must equal inputSize");
    g.nc = (int)planes; g.h = (int)h; g.w = (int)w; g.kernel = 2; g.stride = 2;
    g.oh = (int)(h / 2); g.ow = (int)(w / 2);  // used only when planes x oh x ow == outputSize
  }
  const float* dy = a.f32("dy", nOut);
  const int32_t* arg = a.indicesChecked("argmax", nOut, 0, nIn);  // the kernels re-check each index as they read it
  maxpoolBackward((long)nOut, dy, arg, (long)nIn, a.f32("dx", nIn), geom ? &g : nullptr);
  return none(a);
}

namespace {
// Labels in [0, way) (a checked copy) and, for prototypes, every class present.
std::vector<int32_t> classLabels(Args& a, int64_t rows, int way) {
  std::vector<int32_t> labels = a.indices("labels", rows, 0, way);
  std::vector<char> seen(way, 0);
  for (int64_t i = 0; i < rows; i++) seen[labels[i]] = 1;
  for (int l = 0; l < way; l++)
    if (!seen[l]) a.rangeError("class " + std::to_string(l) + " has no support example");
  return labels;
}
}  // namespace

Napi::Value Prototypes(const Napi::CallbackInfo& info) {
  Args a(info, "prototypes", {"rows", "e", "way", "labels", "support", "out"});
  const int rows = (int)a.integer("rows", 1, kMaxInt), e = (int)a.integer("e", 1, kMaxInt);
  const int way = (int)a.integer("way", 1, 1 << 20);
  if ((int64_t)rows * e > (int64_t(1) << 40) || (int64_t)way * e > (int64_t(1) << 40)) a.rangeError("too large");
  const std::vector<int32_t> labels = classLabels(a, rows, way);
  prototypes(rows, e, labels.data(), way, a.f32("support", (int64_t)rows * e), a.f32("out", (int64_t)way * e));
  return none(a);
}

Napi::Value PrototypesBackward(const Napi::CallbackInfo& info) {
  Args a(info, "prototypesBackward", {"rows", "e", "way", "labels", "dproto", "out"});
  const int rows = (int)a.integer("rows", 1, kMaxInt), e = (int)a.integer("e", 1, kMaxInt);
  const int way = (int)a.integer("way", 1, 1 << 20);
  if ((int64_t)rows * e > (int64_t(1) << 40) || (int64_t)way * e > (int64_t(1) << 40)) a.rangeError("too large");
  const std::vector<int32_t> labels = classLabels(a, rows, way);
  prototypesBackward(rows, e, labels.data(), way, a.f32("dproto", (int64_t)way * e), a.f32("out", (int64_t)rows * e));
  return none(a);
}

Napi::Value SqEuclidean(const Napi::CallbackInfo& info) {
  Args a(info, "sqEuclidean", {"m", "k", "e", "q", "p", "out"});
  Mk d = dims3(a);
  sqEuclidean(d.m, d.k, d.e, a.f32("q", (int64_t)d.m * d.e), a.f32("p", (int64_t)d.k * d.e), a.f32("out", (int64_t)d.m * d.k));
  return none(a);
}

Napi::Value SqEuclideanBackward(const Napi::CallbackInfo& info) {
  Args a(info, "sqEuclideanBackward", {"m", "k", "e", "dd", "q", "p", "dq", "dp"});
  Mk d = dims3(a);
  sqEuclideanBackward(d.m, d.k, d.e, a.f32("dd", (int64_t)d.m * d.k), a.f32("q", (int64_t)d.m * d.e),
                      a.f32("p", (int64_t)d.k * d.e), a.f32("dq", (int64_t)d.m * d.e), a.f32("dp", (int64_t)d.k * d.e));
  return none(a);
}

Napi::Value Cosine(const Napi::CallbackInfo& info) {
  Args a(info, "cosine", {"m", "k", "e", "eps", "q", "p", "out"});
  Mk d = dims3(a);
  const double eps = a.positive("eps");
  cosine(d.m, d.k, d.e, eps, a.f32("q", (int64_t)d.m * d.e), a.f32("p", (int64_t)d.k * d.e), a.f32("out", (int64_t)d.m * d.k));
  return none(a);
}

Napi::Value CosineBackward(const Napi::CallbackInfo& info) {
  Args a(info, "cosineBackward", {"m", "k", "e", "eps", "dc", "q", "p", "dq", "dp"});
  Mk d = dims3(a);
  const double eps = a.positive("eps");
  cosineBackward(d.m, d.k, d.e, eps, a.f32("dc", (int64_t)d.m * d.k), a.f32("q", (int64_t)d.m * d.e),
                 a.f32("p", (int64_t)d.k * d.e), a.f32("dq", (int64_t)d.m * d.e), a.f32("dp", (int64_t)d.k * d.e));
  return none(a);
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  Args a(info, "scale", {"size", "alpha", "x", "y"});
  const int64_t n = a.integer("size", 0, int64_t(1) << 40);
  const double alpha = a.number("alpha");
  scale((long)n, alpha, a.f32("x", n), a.f32("y", n));
  return none(a);
}

Napi::Value LogSoftmax(const Napi::CallbackInfo& info) {
  Args a(info, "logSoftmax", {"m", "k", "x", "y"});
  const int m = (int)a.integer("m", 0, kMaxInt), k = (int)a.integer("k", 1, kMaxInt);
  logSoftmax(m, k, a.f32("x", (int64_t)m * k), a.f32("y", (int64_t)m * k));
  return none(a);
}

Napi::Value LogSoftmaxBackward(const Napi::CallbackInfo& info) {
  Args a(info, "logSoftmaxBackward", {"m", "k", "dy", "y", "dx"});
  const int m = (int)a.integer("m", 0, kMaxInt), k = (int)a.integer("k", 1, kMaxInt);
  logSoftmaxBackward(m, k, a.f32("dy", (int64_t)m * k), a.f32("y", (int64_t)m * k), a.f32("dx", (int64_t)m * k));
  return none(a);
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Args a(info, "crossEntropy", {"m", "k", "logp", "labels"});
  const int m = (int)a.integer("m", 0, kMaxInt), k = (int)a.integer("k", 1, kMaxInt);
  const float* logp = a.f32("logp", (int64_t)m * k);
  const std::vector<int32_t> labels = a.indices("labels", m, 0, k);
  return Napi::Number::New(a.env(), crossEntropy(m, k, logp, labels.data()));
}

Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  Args a(info, "crossEntropyBackward", {"m", "k", "dloss", "labels", "d"});
  const int m = (int)a.integer("m", 0, kMaxInt), k = (int)a.integer("k", 1, kMaxInt);
  const double dloss = a.number("dloss");
  const std::vector<int32_t> labels = a.indices("labels", m, 0, k);
  crossEntropyBackward(m, k, dloss, labels.data(), a.f32("d", (int64_t)m * k));
  return none(a);
}

Napi::Value Accuracy(const Napi::CallbackInfo& info) {
  Args a(info, "accuracy", {"m", "k", "scores", "labels"});
  const int m = (int)a.integer("m", 0, kMaxInt), k = (int)a.integer("k", 1, kMaxInt);
  const float* scores = a.f32("scores", (int64_t)m * k);
  const std::vector<int32_t> labels = a.indices("labels", m, 0, k);
  return Napi::Number::New(a.env(), accuracy(m, k, scores, labels.data()));
}

// Rotation: the sampling arrays come from lib/device/cpu-ts/rotate.ts (rotationSampling); index values lie in [-1, px).
Napi::Value Rotate(const Napi::CallbackInfo& info) {
  Args a(info, "rotate", {"planes", "px", "index", "weight", "x", "y"});
  const int64_t planes = a.integer("planes", 0, int64_t(1) << 31), px = a.integer("px", 1, int64_t(1) << 31);
  if (planes * px > (int64_t(1) << 40)) a.rangeError("too large");
  const std::vector<int32_t> index = a.indices("index", 4 * px, -1, px);
  rotateResample((long)planes, (long)px, index.data(), a.f64("weight", 4 * px), a.f32("x", planes * px), a.f32("y", planes * px));
  return none(a);
}

Napi::Value RotateBackward(const Napi::CallbackInfo& info) {
  Args a(info, "rotateBackward", {"planes", "px", "index", "weight", "dweight", "dy", "x", "dx"});
  const int64_t planes = a.integer("planes", 0, int64_t(1) << 31), px = a.integer("px", 1, int64_t(1) << 31);
  if (planes * px > (int64_t(1) << 40)) a.rangeError("too large");
  const std::vector<int32_t> index = a.indices("index", 4 * px, -1, px);
  const double da = rotateBackward((long)planes, (long)px, index.data(), a.f64("weight", 4 * px), a.f64("dweight", 4 * px),
                                   a.f32("dy", planes * px), a.f32("x", planes * px), a.f32("dx", planes * px));
  return Napi::Number::New(a.env(), da);
}

}  // namespace evometa
