// PJRT runtime: see runtime.h.
#include "pjrt/runtime.h"

#include <dirent.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace evometa::pjrt {

namespace {

template <typename T>
T zeroed(size_t size) {
  T t;
  std::memset(&t, 0, sizeof t);
  t.struct_size = size;
  return t;
}

size_t bytesOf(BufferType t) {
  switch (t) {
    case kPred: case kS8: case kU8: return 1;
    case kS16: case kU16: case kF16: return 2;
    case kS32: case kU32: case kF32: return 4;
    case kS64: case kU64: case kF64: return 8;
    default: return 0;
  }
}

std::string baseName(const std::string& p) {
  const auto at = p.find_last_of('/');
  return at == std::string::npos ? p : p.substr(at + 1);
}

}  // namespace

int CountTpuChips(const std::string& sysfs) {
  DIR* d = opendir(sysfs.c_str());
  if (!d) return 0;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(sysfs + "/" + e->d_name + "/vendor");
    std::string v;
    if (f >> v && (v == "0x1ae0" || v == "0x1AE0")) n++;
  }
  closedir(d);
  return n;
}

bool NamesLibtpu(const std::string& path) { return baseName(path).find("libtpu") != std::string::npos; }

void* Runtime::fn(Slot s) const {
  const size_t need = kApiHeaderSize + (static_cast<size_t>(s) + 1) * sizeof(void*);
  if (api_->struct_size < need) {
    throw std::runtime_error("PJRT plugin's API table is too short (struct_size " + std::to_string(api_->struct_size) +
                             ", need " + std::to_string(need) + " for slot " + std::to_string(s) + ")");
  }
  void* f = reinterpret_cast<void* const*>(reinterpret_cast<const char*>(api_) + kApiHeaderSize)[s];
  if (!f) throw std::runtime_error("PJRT plugin does not implement API slot " + std::to_string(s));
  return f;
}

void Runtime::check(Error* e, const char* what) const {
  if (!e) return;
  auto m = zeroed<ErrorMessageArgs>(EVM_STRUCT_SIZE(ErrorMessageArgs, message_size));
  m.error = e;
  reinterpret_cast<void (*)(ErrorMessageArgs*)>(fn(kErrorMessage))(&m);
  std::string msg = m.message ? std::string(m.message, m.message_size) : std::string("(no message)");
  auto c = zeroed<ErrorGetCodeArgs>(EVM_STRUCT_SIZE(ErrorGetCodeArgs, code));
  c.error = e;
  Error* ce = reinterpret_cast<Error* (*)(ErrorGetCodeArgs*)>(fn(kErrorGetCode))(&c);
  auto d = zeroed<ErrorDestroyArgs>(EVM_STRUCT_SIZE(ErrorDestroyArgs, error));
  d.error = e;
  reinterpret_cast<void (*)(ErrorDestroyArgs*)>(fn(kErrorDestroy))(&d);
  if (ce) { d.error = ce; reinterpret_cast<void (*)(ErrorDestroyArgs*)>(fn(kErrorDestroy))(&d); }
  throw std::runtime_error(std::string(what) + ": " + msg + (ce ? "" : " (PJRT error code " + std::to_string(c.code) + ")"));
}

void Runtime::awaitEvent(Event* ev, const char* what) const {
  if (!ev) return;
  auto a = zeroed<EventAwaitArgs>(EVM_STRUCT_SIZE(EventAwaitArgs, event));
  a.event = ev;
  Error* e = reinterpret_cast<Error* (*)(EventAwaitArgs*)>(fn(kEventAwait))(&a);
  auto d = zeroed<EventDestroyArgs>(EVM_STRUCT_SIZE(EventDestroyArgs, event));
  d.event = ev;
  Error* de = reinterpret_cast<Error* (*)(EventDestroyArgs*)>(fn(kEventDestroy))(&d);
  check(e, what);
  check(de, "PJRT_Event_Destroy");
}

void Runtime::destroyBuffer(Buffer* b) const {
  if (!b) return;
  auto d = zeroed<BufferDestroyArgs>(EVM_STRUCT_SIZE(BufferDestroyArgs, buffer));
  d.buffer = b;
  Error* e = reinterpret_cast<Error* (*)(BufferDestroyArgs*)>(fn(kBufferDestroy))(&d);
  check(e, "PJRT_Buffer_Destroy");
}

Runtime::Runtime(const std::string& path) {
  if (NamesLibtpu(path)) {
    if (CountTpuChips() == 0) throw std::runtime_error("no TPU found: refusing to load " + path + " (no PCI device with vendor 0x1ae0)");
    setenv("TPU_SKIP_MDS_QUERY", "1", 0);
  }
  handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle_) {
    const char* err = dlerror();
    throw std::runtime_error("cannot load PJRT plugin " + path + ": " + (err ? err : "dlopen failed"));
  }
  auto get = reinterpret_cast<GetPjrtApiFn>(dlsym(handle_, "GetPjrtApi"));
  if (!get) throw std::runtime_error(path + " is not a PJRT plugin: it exports no GetPjrtApi");
  api_ = get();
  if (!api_) throw std::runtime_error(path + ": GetPjrtApi returned null");
  if (api_->struct_size < kApiHeaderSize) throw std::runtime_error(path + ": PJRT_Api struct_size " + std::to_string(api_->struct_size) + " is too small");
  major_ = api_->pjrt_api_version.major_version;
  minor_ = api_->pjrt_api_version.minor_version;
  if (major_ != 0) throw std::runtime_error(path + ": PJRT C API major version " + std::to_string(major_) + " is not supported (expected 0)");
  fn(kBufferToHostBuffer);  // the highest slot we use: the table must reach it

  auto init = zeroed<PluginInitializeArgs>(EVM_STRUCT_SIZE(PluginInitializeArgs, priv));
  check(reinterpret_cast<Error* (*)(PluginInitializeArgs*)>(fn(kPluginInitialize))(&init), "PJRT_Plugin_Initialize");

  auto cc = zeroed<ClientCreateArgs>(EVM_STRUCT_SIZE(ClientCreateArgs, client));
  check(reinterpret_cast<Error* (*)(ClientCreateArgs*)>(fn(kClientCreate))(&cc), "PJRT_Client_Create");
  client_ = cc.client;

  auto pn = zeroed<ClientPlatformNameArgs>(EVM_STRUCT_SIZE(ClientPlatformNameArgs, platform_name_size));
  pn.client = client_;
  check(reinterpret_cast<Error* (*)(ClientPlatformNameArgs*)>(fn(kClientPlatformName))(&pn), "PJRT_Client_PlatformName");
  platform_.assign(pn.platform_name ? pn.platform_name : "", pn.platform_name_size);
  auto pv = zeroed<ClientPlatformVersionArgs>(EVM_STRUCT_SIZE(ClientPlatformVersionArgs, platform_version_size));
  pv.client = client_;
  check(reinterpret_cast<Error* (*)(ClientPlatformVersionArgs*)>(fn(kClientPlatformVersion))(&pv), "PJRT_Client_PlatformVersion");
  version_.assign(pv.platform_version ? pv.platform_version : "", pv.platform_version_size);

  auto ad = zeroed<ClientAddressableDevicesArgs>(EVM_STRUCT_SIZE(ClientAddressableDevicesArgs, num_addressable_devices));
  ad.client = client_;
  check(reinterpret_cast<Error* (*)(ClientAddressableDevicesArgs*)>(fn(kClientAddressableDevices))(&ad), "PJRT_Client_AddressableDevices");
  devices_.assign(ad.addressable_devices, ad.addressable_devices + ad.num_addressable_devices);
  for (Device* dev : devices_) {
    auto gd = zeroed<DeviceGetDescriptionArgs>(EVM_STRUCT_SIZE(DeviceGetDescriptionArgs, device_description));
    gd.device = dev;
    check(reinterpret_cast<Error* (*)(DeviceGetDescriptionArgs*)>(fn(kDeviceGetDescription))(&gd), "PJRT_Device_GetDescription");
    auto id = zeroed<DeviceDescriptionIdArgs>(EVM_STRUCT_SIZE(DeviceDescriptionIdArgs, id));
    id.device_description = gd.device_description;
    check(reinterpret_cast<Error* (*)(DeviceDescriptionIdArgs*)>(fn(kDeviceDescriptionId))(&id), "PJRT_DeviceDescription_Id");
    auto kd = zeroed<DeviceDescriptionKindArgs>(EVM_STRUCT_SIZE(DeviceDescriptionKindArgs, device_kind_size));
    kd.device_description = gd.device_description;
    check(reinterpret_cast<Error* (*)(DeviceDescriptionKindArgs*)>(fn(kDeviceDescriptionKind))(&kd), "PJRT_DeviceDescription_Kind");
    infos_.push_back({id.id, std::string(kd.device_kind ? kd.device_kind : "", kd.device_kind_size)});
  }
}

Runtime::~Runtime() {
  try { close(); } catch (...) {}
  // The plugin library stays loaded: PJRT plugins are not designed to be unloaded.
}

int Runtime::compile(const std::string& mlir, const std::string& compileOptions) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!client_) throw std::runtime_error("PJRT client is closed");
  std::string code = mlir;
  static const char kFormat[] = "mlir";
  auto prog = zeroed<Program>(EVM_STRUCT_SIZE(Program, format_size));
  prog.code = code.data();
  prog.code_size = code.size();
  prog.format = kFormat;
  prog.format_size = sizeof kFormat - 1;
  auto a = zeroed<ClientCompileArgs>(EVM_STRUCT_SIZE(ClientCompileArgs, executable));
  a.client = client_;
  a.program = &prog;
  a.compile_options = compileOptions.data();
  a.compile_options_size = compileOptions.size();
  check(reinterpret_cast<Error* (*)(ClientCompileArgs*)>(fn(kClientCompile))(&a), "PJRT_Client_Compile");
  executables_.push_back(a.executable);
  return static_cast<int>(executables_.size() - 1);
}

std::vector<std::vector<HostArray>> Runtime::execute(int id, const std::vector<std::vector<HostArray>>& inputs, size_t numOutputs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!client_) throw std::runtime_error("PJRT client is closed");
  if (id < 0 || static_cast<size_t>(id) >= executables_.size() || !executables_[id]) throw std::runtime_error("unknown or destroyed executable " + std::to_string(id));
  const size_t reps = inputs.size();
  if (reps == 0 || reps > devices_.size()) throw std::runtime_error(std::to_string(reps) + " replicas requested, the plugin has " + std::to_string(devices_.size()) + " devices");
  const size_t nargs = inputs[0].size();
  std::vector<std::vector<Buffer*>> args(reps, std::vector<Buffer*>(nargs, nullptr));
  std::vector<std::vector<Buffer*>> outs;
  auto release = [&]() {
    for (auto& l : args) for (Buffer* b : l) try { destroyBuffer(b); } catch (...) {}
    for (auto& l : outs) for (Buffer* b : l) try { destroyBuffer(b); } catch (...) {}
  };
  try {
    for (size_t r = 0; r < reps; r++) {
      if (inputs[r].size() != nargs) throw std::runtime_error("replica " + std::to_string(r) + " has " + std::to_string(inputs[r].size()) + " inputs, replica 0 has " + std::to_string(nargs));
      for (size_t i = 0; i < nargs; i++) {
        const HostArray& h = inputs[r][i];
        size_t n = 1;
        for (int64_t d : h.dims) n *= static_cast<size_t>(d);
        if (n * bytesOf(h.type) != h.bytes.size()) throw std::runtime_error("input " + std::to_string(i) + " of replica " + std::to_string(r) + ": " + std::to_string(h.bytes.size()) + " bytes do not match its shape and type");
        auto b = zeroed<ClientBufferFromHostBufferArgs>(EVM_STRUCT_SIZE(ClientBufferFromHostBufferArgs, buffer));
        b.client = client_;
        b.data = h.bytes.data();
        b.type = h.type;
        b.dims = h.dims.data();
        b.num_dims = h.dims.size();
        b.host_buffer_semantics = kImmutableUntilTransferCompletes;
        b.device = devices_[r];
        check(reinterpret_cast<Error* (*)(ClientBufferFromHostBufferArgs*)>(fn(kClientBufferFromHostBuffer))(&b), "PJRT_Client_BufferFromHostBuffer");
        args[r][i] = b.buffer;
        awaitEvent(b.done_with_host_buffer, "host-to-device transfer");
      }
    }
    outs.assign(reps, std::vector<Buffer*>(numOutputs, nullptr));
    std::vector<Buffer**> argPtrs(reps), outPtrs(reps);
    for (size_t r = 0; r < reps; r++) { argPtrs[r] = args[r].data(); outPtrs[r] = outs[r].data(); }
    auto opts = zeroed<ExecuteOptions>(EVM_STRUCT_SIZE(ExecuteOptions, launch_id));
    auto e = zeroed<LoadedExecutableExecuteArgs>(EVM_STRUCT_SIZE(LoadedExecutableExecuteArgs, execute_device));
    e.executable = executables_[id];
    e.options = &opts;
    e.argument_lists = argPtrs.data();
    e.num_devices = reps;
    e.num_args = nargs;
    e.output_lists = outPtrs.data();
    check(reinterpret_cast<Error* (*)(LoadedExecutableExecuteArgs*)>(fn(kLoadedExecutableExecute))(&e), "PJRT_LoadedExecutable_Execute");
    std::vector<std::vector<HostArray>> result(reps);
    for (size_t r = 0; r < reps; r++) {
      for (Buffer* b : outs[r]) {
        if (!b) throw std::runtime_error("PJRT_LoadedExecutable_Execute returned fewer outputs than the program declares");
        HostArray h;
        auto et = zeroed<BufferElementTypeArgs>(EVM_STRUCT_SIZE(BufferElementTypeArgs, type));
        et.buffer = b;
        check(reinterpret_cast<Error* (*)(BufferElementTypeArgs*)>(fn(kBufferElementType))(&et), "PJRT_Buffer_ElementType");
        h.type = et.type;
        auto dm = zeroed<BufferDimensionsArgs>(EVM_STRUCT_SIZE(BufferDimensionsArgs, num_dims));
        dm.buffer = b;
        check(reinterpret_cast<Error* (*)(BufferDimensionsArgs*)>(fn(kBufferDimensions))(&dm), "PJRT_Buffer_Dimensions");
        h.dims.assign(dm.dims, dm.dims + dm.num_dims);
        auto th = zeroed<BufferToHostBufferArgs>(EVM_STRUCT_SIZE(BufferToHostBufferArgs, event));
        th.src = b;
        check(reinterpret_cast<Error* (*)(BufferToHostBufferArgs*)>(fn(kBufferToHostBuffer))(&th), "PJRT_Buffer_ToHostBuffer (size query)");
        h.bytes.resize(th.dst_size);
        th.dst = h.bytes.data();
        th.event = nullptr;
        check(reinterpret_cast<Error* (*)(BufferToHostBufferArgs*)>(fn(kBufferToHostBuffer))(&th), "PJRT_Buffer_ToHostBuffer");
        awaitEvent(th.event, "device-to-host transfer");
        result[r].push_back(std::move(h));
      }
    }
    release();
    return result;
  } catch (...) {
    release();
    throw;
  }
}

void Runtime::destroyExecutable(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (id < 0 || static_cast<size_t>(id) >= executables_.size() || !executables_[id]) return;
  auto d = zeroed<LoadedExecutableDestroyArgs>(EVM_STRUCT_SIZE(LoadedExecutableDestroyArgs, executable));
  d.executable = executables_[id];
  executables_[id] = nullptr;
  check(reinterpret_cast<Error* (*)(LoadedExecutableDestroyArgs*)>(fn(kLoadedExecutableDestroy))(&d), "PJRT_LoadedExecutable_Destroy");
}

void Runtime::close() {
  for (size_t i = 0; i < executables_.size(); i++) destroyExecutable(static_cast<int>(i));
  std::lock_guard<std::mutex> lock(mu_);
  if (!client_) return;
  auto d = zeroed<ClientDestroyArgs>(EVM_STRUCT_SIZE(ClientDestroyArgs, client));
  d.client = client_;
  client_ = nullptr;
  devices_.clear();
  check(reinterpret_cast<Error* (*)(ClientDestroyArgs*)>(fn(kClientDestroy))(&d), "PJRT_Client_Destroy");
}

}  // namespace evometa::pjrt
