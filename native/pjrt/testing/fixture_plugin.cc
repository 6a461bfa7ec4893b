// A test fixture, NOT a PJRT implementation: a tiny plugin that speaks the
// PJRT C API calling convention (GetPjrtApi, the function table, argument
// structs with struct_size) so test/xla-pjrt.test.ts can exercise the
// evometa_pjrt binding end to end on machines without a real plugin. Its
// "executable" ignores the program text and returns, per replica, one f32
// output: the element-wise sum of all f32 inputs plus the replica index. A
// program text containing "FAIL" makes compile return a PJRT error. Every
// call checks struct_size and fails with a message when it is too small.
// Built by the test with: c++ -shared -fPIC -I native fixture_plugin.cc
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "pjrt/pjrt_api.h"

using namespace evometa::pjrt;

namespace evometa::pjrt {
struct Error { std::string msg; int code; };
struct Event { int unused; };
struct DeviceDescription { int id; };
struct Device { DeviceDescription desc; };
struct Client { Device devs[2]; Device* ptrs[2]; };
struct LoadedExecutable { int unused; };
struct Buffer { BufferType type; std::vector<int64_t> dims; std::vector<uint8_t> bytes; };
}  // namespace evometa::pjrt

namespace {

Error* fail(const std::string& m, int code = 3) { return new Error{m, code}; }
#define NEED(args, T, last) \
  if ((args)->struct_size < EVM_STRUCT_SIZE(T, last)) return fail(std::string("fixture: ") + #T + " struct_size too small")

void ErrorDestroy(ErrorDestroyArgs* a) { delete a->error; }
void ErrorMessage(ErrorMessageArgs* a) { a->message = a->error->msg.c_str(); a->message_size = a->error->msg.size(); }
Error* ErrorGetCode(ErrorGetCodeArgs* a) { a->code = a->error->code; return nullptr; }
Error* PluginInitialize(PluginInitializeArgs* a) { NEED(a, PluginInitializeArgs, priv); return nullptr; }
Error* EventDestroy(EventDestroyArgs* a) { NEED(a, EventDestroyArgs, event); delete a->event; return nullptr; }
Error* EventAwait(EventAwaitArgs* a) { NEED(a, EventAwaitArgs, event); return nullptr; }
Error* ClientCreate(ClientCreateArgs* a) {
  NEED(a, ClientCreateArgs, client);
  if (std::getenv("EVOMETA_FIXTURE_CREATE_FAILS")) return fail("fixture: no devices here (client creation refused)", 14);
  auto* c = new Client;
  for (int i = 0; i < 2; i++) { c->devs[i].desc.id = 10 + i; c->ptrs[i] = &c->devs[i]; }
  a->client = c;
  return nullptr;
}
Error* ClientDestroy(ClientDestroyArgs* a) { NEED(a, ClientDestroyArgs, client); delete a->client; return nullptr; }
Error* ClientPlatformName(ClientPlatformNameArgs* a) { NEED(a, ClientPlatformNameArgs, platform_name_size); a->platform_name = "fixture"; a->platform_name_size = 7; return nullptr; }
Error* ClientPlatformVersion(ClientPlatformVersionArgs* a) { NEED(a, ClientPlatformVersionArgs, platform_version_size); a->platform_version = "0"; a->platform_version_size = 1; return nullptr; }
Error* ClientAddressableDevices(ClientAddressableDevicesArgs* a) {
  NEED(a, ClientAddressableDevicesArgs, num_addressable_devices);
  a->addressable_devices = a->client->ptrs;
  a->num_addressable_devices = 2;
  return nullptr;
}
Error* ClientCompile(ClientCompileArgs* a) {
  NEED(a, ClientCompileArgs, executable);
  NEED(a->program, Program, format_size);
  if (std::string(a->program->format, a->program->format_size) != "mlir") return fail("fixture: program format must be mlir");
  if (std::string(a->program->code, a->program->code_size).find("FAIL") != std::string::npos) return fail("fixture: compilation failed as asked");
  if (a->compile_options_size == 0) return fail("fixture: empty compile options");
  a->executable = new LoadedExecutable{0};
  return nullptr;
}
Error* BufferFromHost(ClientBufferFromHostBufferArgs* a) {
  NEED(a, ClientBufferFromHostBufferArgs, buffer);
  size_t n = 1;
  for (size_t i = 0; i < a->num_dims; i++) n *= static_cast<size_t>(a->dims[i]);
  const size_t w = a->type == kF64 || a->type == kS64 || a->type == kU64 ? 8 : a->type == kPred ? 1 : 4;
  auto* b = new Buffer{a->type, std::vector<int64_t>(a->dims, a->dims + a->num_dims), {}};
  const auto* p = static_cast<const uint8_t*>(a->data);
  b->bytes.assign(p, p + n * w);
  a->buffer = b;
  a->done_with_host_buffer = new Event{0};
  return nullptr;
}
Error* DeviceGetDescription(DeviceGetDescriptionArgs* a) { NEED(a, DeviceGetDescriptionArgs, device_description); a->device_description = &a->device->desc; return nullptr; }
Error* DescriptionId(DeviceDescriptionIdArgs* a) { NEED(a, DeviceDescriptionIdArgs, id); a->id = a->device_description->id; return nullptr; }
Error* DescriptionKind(DeviceDescriptionKindArgs* a) { NEED(a, DeviceDescriptionKindArgs, device_kind_size); a->device_kind = "fixture-device"; a->device_kind_size = 14; return nullptr; }
Error* ExecutableDestroy(LoadedExecutableDestroyArgs* a) { NEED(a, LoadedExecutableDestroyArgs, executable); delete a->executable; return nullptr; }
Error* Execute(LoadedExecutableExecuteArgs* a) {
  NEED(a, LoadedExecutableExecuteArgs, execute_device);
  NEED(a->options, ExecuteOptions, launch_id);
  for (size_t r = 0; r < a->num_devices; r++) {
    std::vector<float> acc;
    std::vector<int64_t> dims;
    for (size_t i = 0; i < a->num_args; i++) {
      Buffer* b = a->argument_lists[r][i];
      if (b->type != kF32) continue;
      const float* v = reinterpret_cast<const float*>(b->bytes.data());
      const size_t n = b->bytes.size() / 4;
      if (acc.empty()) { acc.assign(n, static_cast<float>(r)); dims = b->dims; }
      if (n != acc.size()) return fail("fixture: f32 inputs of different sizes");
      for (size_t k = 0; k < n; k++) acc[k] += v[k];
    }
    auto* out = new Buffer{kF32, dims, std::vector<uint8_t>(acc.size() * 4)};
    if (!acc.empty()) std::memcpy(out->bytes.data(), acc.data(), acc.size() * 4);
    a->output_lists[r][0] = out;
  }
  return nullptr;
}
Error* BufferDestroy(BufferDestroyArgs* a) { NEED(a, BufferDestroyArgs, buffer); delete a->buffer; return nullptr; }
Error* BufferElementType(BufferElementTypeArgs* a) { NEED(a, BufferElementTypeArgs, type); a->type = a->buffer->type; return nullptr; }
Error* BufferDimensions(BufferDimensionsArgs* a) { NEED(a, BufferDimensionsArgs, num_dims); a->dims = a->buffer->dims.data(); a->num_dims = a->buffer->dims.size(); return nullptr; }
Error* ToHost(BufferToHostBufferArgs* a) {
  NEED(a, BufferToHostBufferArgs, event);
  if (!a->dst) { a->dst_size = a->src->bytes.size(); return nullptr; }
  if (a->dst_size < a->src->bytes.size()) return fail("fixture: destination too small");
  std::memcpy(a->dst, a->src->bytes.data(), a->src->bytes.size());
  a->event = new Event{0};
  return nullptr;
}

struct Table {
  size_t struct_size;
  void* extension_start;
  ApiVersion version;
  void* fn[kSlotsUsed];
};

Table table;

}  // namespace

extern "C" __attribute__((visibility("default"))) const Api* GetPjrtApi() {
  std::memset(&table, 0, sizeof table);
  const bool shortTable = std::getenv("EVOMETA_FIXTURE_SHORT_TABLE") != nullptr;
  table.struct_size = shortTable ? offsetof(Table, fn) + 4 * sizeof(void*) : sizeof table;
  table.version = {sizeof(ApiVersion), nullptr, 0, 33};
  table.fn[kErrorDestroy] = reinterpret_cast<void*>(ErrorDestroy);
  table.fn[kErrorMessage] = reinterpret_cast<void*>(ErrorMessage);
  table.fn[kErrorGetCode] = reinterpret_cast<void*>(ErrorGetCode);
  table.fn[kPluginInitialize] = reinterpret_cast<void*>(PluginInitialize);
  table.fn[kEventDestroy] = reinterpret_cast<void*>(EventDestroy);
  table.fn[kEventAwait] = reinterpret_cast<void*>(EventAwait);
  table.fn[kClientCreate] = reinterpret_cast<void*>(ClientCreate);
  table.fn[kClientDestroy] = reinterpret_cast<void*>(ClientDestroy);
  table.fn[kClientPlatformName] = reinterpret_cast<void*>(ClientPlatformName);
  table.fn[kClientPlatformVersion] = reinterpret_cast<void*>(ClientPlatformVersion);
  table.fn[kClientAddressableDevices] = reinterpret_cast<void*>(ClientAddressableDevices);
  table.fn[kClientCompile] = reinterpret_cast<void*>(ClientCompile);
  table.fn[kClientBufferFromHostBuffer] = reinterpret_cast<void*>(BufferFromHost);
  table.fn[kDeviceDescriptionId] = reinterpret_cast<void*>(DescriptionId);
  table.fn[kDeviceDescriptionKind] = reinterpret_cast<void*>(DescriptionKind);
  table.fn[kDeviceGetDescription] = reinterpret_cast<void*>(DeviceGetDescription);
  table.fn[kLoadedExecutableDestroy] = reinterpret_cast<void*>(ExecutableDestroy);
  table.fn[kLoadedExecutableExecute] = reinterpret_cast<void*>(Execute);
  table.fn[kBufferDestroy] = reinterpret_cast<void*>(BufferDestroy);
  table.fn[kBufferElementType] = reinterpret_cast<void*>(BufferElementType);
  table.fn[kBufferDimensions] = reinterpret_cast<void*>(BufferDimensions);
  table.fn[kBufferToHostBuffer] = reinterpret_cast<void*>(ToHost);
  return reinterpret_cast<const Api*>(&table);
}
