// evometa_pjrt addon: the exports table and the JS <-> C++ boundary for the
// PJRT runtime (runtime.h). Arguments become plain structs here; long calls
// (plugin load, compile, execute) run in AsyncWorkers, off the event loop.
#include <napi.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pjrt/runtime.h"

namespace {

using evometa::pjrt::HostArray;
using evometa::pjrt::Runtime;
using Batch = std::vector<std::vector<HostArray>>;

Batch ReadBatch(const Napi::Env& env, const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, "execute: inputs must be an array (one array of inputs per replica)");
  auto reps = v.As<Napi::Array>();
  Batch out(reps.Length());
  for (uint32_t r = 0; r < reps.Length(); r++) {
    Napi::Value rv = reps.Get(r);
    if (!rv.IsArray()) throw Napi::TypeError::New(env, "execute: inputs[" + std::to_string(r) + "] must be an array");
    auto ins = rv.As<Napi::Array>();
    for (uint32_t i = 0; i < ins.Length(); i++) {
      Napi::Value iv = ins.Get(i);
      const std::string where = "execute: inputs[" + std::to_string(r) + "][" + std::to_string(i) + "]";
      if (!iv.IsObject()) throw Napi::TypeError::New(env, where + " must be {type, dims, data}");
      auto o = iv.As<Napi::Object>();
      HostArray h;
      Napi::Value t = o.Get("type"), d = o.Get("dims"), data = o.Get("data");
      if (!t.IsNumber()) throw Napi::TypeError::New(env, where + ".type must be a PJRT buffer type number");
      h.type = static_cast<evometa::pjrt::BufferType>(t.As<Napi::Number>().Int32Value());
      if (!d.IsArray()) throw Napi::TypeError::New(env, where + ".dims must be an array");
      auto da = d.As<Napi::Array>();
      for (uint32_t k = 0; k < da.Length(); k++) h.dims.push_back(da.Get(k).As<Napi::Number>().Int64Value());
      if (!data.IsTypedArray()) throw Napi::TypeError::New(env, where + ".data must be a typed array");
      auto ta = data.As<Napi::TypedArray>();
      const uint8_t* p = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      h.bytes.assign(p, p + ta.ByteLength());
      out[r].push_back(std::move(h));
    }
  }
  return out;
}

Napi::Value WriteBatch(const Napi::Env& env, const Batch& b) {
  auto reps = Napi::Array::New(env, b.size());
  for (size_t r = 0; r < b.size(); r++) {
    auto outs = Napi::Array::New(env, b[r].size());
    for (size_t k = 0; k < b[r].size(); k++) {
      const HostArray& h = b[r][k];
      auto o = Napi::Object::New(env);
      o.Set("type", Napi::Number::New(env, h.type));
      auto dims = Napi::Array::New(env, h.dims.size());
      for (size_t i = 0; i < h.dims.size(); i++) dims.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(h.dims[i])));
      o.Set("dims", dims);
      auto buf = Napi::ArrayBuffer::New(env, h.bytes.size());
      if (!h.bytes.empty()) std::memcpy(buf.Data(), h.bytes.data(), h.bytes.size());
      o.Set("data", buf);
      outs.Set(static_cast<uint32_t>(k), o);
    }
    reps.Set(static_cast<uint32_t>(r), outs);
  }
  return reps;
}

/** Runs `work` off the event loop; resolves with `done(env)` or rejects with the runtime's message. */
class Task : public Napi::AsyncWorker {
 public:
  Task(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)), done_(std::move(done)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }
  void Execute() override {
    try { work_(); } catch (const std::exception& e) { SetError(e.what()); }
  }
  void OnOK() override {
    try { deferred_.Resolve(done_(Env())); } catch (const Napi::Error& e) { deferred_.Reject(e.Value()); }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
};

class Client : public Napi::ObjectWrap<Client> {
 public:
  static Napi::FunctionReference ctor;
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PjrtClient", {
      InstanceMethod("info", &Client::Info),
      InstanceMethod("compile", &Client::Compile),
      InstanceMethod("compileSync", &Client::CompileSync),
      InstanceMethod("execute", &Client::Execute),
      InstanceMethod("executeSync", &Client::ExecuteSync),
      InstanceMethod("destroyExecutable", &Client::DestroyExecutable),
      InstanceMethod("close", &Client::Close),
    });
  }
  explicit Client(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Client>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "PjrtClient is created by openPlugin()");
    rt_ = *info[0].As<Napi::External<std::shared_ptr<Runtime>>>().Data();
  }

 private:
  Runtime& rt(const Napi::Env& env) {
    if (!rt_) throw Napi::Error::New(env, "PJRT client is closed");
    return *rt_;
  }
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Runtime& r = rt(info.Env());
    auto o = Napi::Object::New(info.Env());
    o.Set("platform", r.platform());
    o.Set("platformVersion", r.platformVersion());
    o.Set("apiVersion", std::to_string(r.apiMajor()) + "." + std::to_string(r.apiMinor()));
    auto devs = Napi::Array::New(info.Env(), r.devices().size());
    for (size_t i = 0; i < r.devices().size(); i++) {
      auto d = Napi::Object::New(info.Env());
      d.Set("id", r.devices()[i].id);
      d.Set("kind", r.devices()[i].kind);
      devs.Set(static_cast<uint32_t>(i), d);
    }
    o.Set("devices", devs);
    return o;
  }
  static std::pair<std::string, std::string> CompileArgs(const Napi::CallbackInfo& info) {
    if (info.Length() != 2 || !info[0].IsString() || !info[1].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "compile(mlirText: string, compileOptions: Uint8Array)");
    auto ta = info[1].As<Napi::Uint8Array>();
    return {info[0].As<Napi::String>().Utf8Value(), std::string(reinterpret_cast<const char*>(ta.Data()), ta.ByteLength())};
  }
  Napi::Value Compile(const Napi::CallbackInfo& info) {
    auto [text, opts] = CompileArgs(info);
    auto rt = rt_;
    if (!rt) throw Napi::Error::New(info.Env(), "PJRT client is closed");
    auto id = std::make_shared<int>(-1);
    auto* t = new Task(info.Env(), [rt, text = std::move(text), opts = std::move(opts), id]() { *id = rt->compile(text, opts); },
                       [id](Napi::Env env) { return Napi::Number::New(env, *id); });
    auto p = t->Promise();
    t->Queue();
    return p;
  }
  Napi::Value CompileSync(const Napi::CallbackInfo& info) {
    auto [text, opts] = CompileArgs(info);
    try { return Napi::Number::New(info.Env(), rt(info.Env()).compile(text, opts)); }
    catch (const std::runtime_error& e) { throw Napi::Error::New(info.Env(), e.what()); }
  }
  static size_t NumOutputs(const Napi::CallbackInfo& info) {
    if (info.Length() != 3 || !info[0].IsNumber() || !info[2].IsNumber()) throw Napi::TypeError::New(info.Env(), "execute(executable: number, inputs: HostArray[][], numOutputs: number)");
    return static_cast<size_t>(info[2].As<Napi::Number>().Int64Value());
  }
  Napi::Value Execute(const Napi::CallbackInfo& info) {
    size_t nout = NumOutputs(info);
    int id = info[0].As<Napi::Number>().Int32Value();
    auto in = std::make_shared<Batch>(ReadBatch(info.Env(), info[1]));
    auto rt = rt_;
    if (!rt) throw Napi::Error::New(info.Env(), "PJRT client is closed");
    auto out = std::make_shared<Batch>();
    auto* t = new Task(info.Env(), [rt, id, in, out, nout]() { *out = rt->execute(id, *in, nout); },
                       [out](Napi::Env env) { return WriteBatch(env, *out); });
    auto p = t->Promise();
    t->Queue();
    return p;
  }
  Napi::Value ExecuteSync(const Napi::CallbackInfo& info) {
    size_t nout = NumOutputs(info);
    Batch in = ReadBatch(info.Env(), info[1]);
    try { return WriteBatch(info.Env(), rt(info.Env()).execute(info[0].As<Napi::Number>().Int32Value(), in, nout)); }
    catch (const std::runtime_error& e) { throw Napi::Error::New(info.Env(), e.what()); }
  }
  Napi::Value DestroyExecutable(const Napi::CallbackInfo& info) {
    if (info.Length() != 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "destroyExecutable(executable: number)");
    try { rt(info.Env()).destroyExecutable(info[0].As<Napi::Number>().Int32Value()); }
    catch (const std::runtime_error& e) { throw Napi::Error::New(info.Env(), e.what()); }
    return info.Env().Undefined();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (rt_) {
      try { rt_->close(); } catch (const std::runtime_error& e) { rt_.reset(); throw Napi::Error::New(info.Env(), e.what()); }
      rt_.reset();
    }
    return info.Env().Undefined();
  }

  std::shared_ptr<Runtime> rt_;
};

Napi::FunctionReference Client::ctor;

/** openPlugin(path): Promise<PjrtClient>. Refuses libtpu without TPU chips before loading anything. */
Napi::Value OpenPlugin(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "openPlugin(path: string)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  auto rt = std::make_shared<std::shared_ptr<Runtime>>();
  auto* t = new Task(info.Env(), [path, rt]() { *rt = std::make_shared<Runtime>(path); },
                     [rt](Napi::Env env) -> Napi::Value {
                       auto ext = Napi::External<std::shared_ptr<Runtime>>::New(env, new std::shared_ptr<Runtime>(*rt),
                                                                                [](Napi::Env, std::shared_ptr<Runtime>* p) { delete p; });
                       return Client::ctor.New({ext});
                     });
  auto p = t->Promise();
  t->Queue();
  return p;
}

/** openPluginSync(path): PjrtClient (for lazy device creation, which is synchronous). */
Napi::Value OpenPluginSync(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "openPluginSync(path: string)");
  std::shared_ptr<Runtime> rt;
  try { rt = std::make_shared<Runtime>(info[0].As<Napi::String>().Utf8Value()); }
  catch (const std::runtime_error& e) { throw Napi::Error::New(info.Env(), e.what()); }
  auto ext = Napi::External<std::shared_ptr<Runtime>>::New(info.Env(), new std::shared_ptr<Runtime>(rt),
                                                           [](Napi::Env, std::shared_ptr<Runtime>* p) { delete p; });
  return Client::ctor.New({ext});
}

Napi::Value TpuChips(const Napi::CallbackInfo& info) {
  std::string dir = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "/sys/bus/pci/devices";
  return Napi::Number::New(info.Env(), evometa::pjrt::CountTpuChips(dir));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function c = Client::Define(env);
  Client::ctor = Napi::Persistent(c);
  Client::ctor.SuppressDestruct();
  exports.Set("PjrtClient", c);
  exports.Set("openPlugin", Napi::Function::New(env, OpenPlugin, "openPlugin"));
  exports.Set("openPluginSync", Napi::Function::New(env, OpenPluginSync, "openPluginSync"));
  exports.Set("tpuChips", Napi::Function::New(env, TpuChips, "tpuChips"));
  return exports;
}

}  // namespace

NODE_API_MODULE(evometa_pjrt, Init)
