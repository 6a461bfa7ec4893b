// Minimal declarations of the PJRT C API (xla/pjrt/c/pjrt_c_api.h, openxla/xla),
// written for evometa: only the argument structs we call, and the PJRT_Api
// function table as ordered slots. The C API is append-only within major
// version 0: fields and functions are only ever added at the end, and every
// argument struct starts with struct_size so a plugin knows which fields its
// caller filled. We set struct_size on every call (offset of our last field +
// its size) and check the plugin's PJRT_Api.struct_size covers every slot used.
#ifndef EVOMETA_PJRT_API_H_
#define EVOMETA_PJRT_API_H_

#include <cstddef>
#include <cstdint>

namespace evometa::pjrt {

#define EVM_STRUCT_SIZE(T, last) (offsetof(T, last) + sizeof(((T*)nullptr)->last))

struct Error;
struct Event;
struct Client;
struct Device;
struct DeviceDescription;
struct LoadedExecutable;
struct Buffer;
struct Memory;

struct ApiVersion { size_t struct_size; void* priv; int major_version; int minor_version; };

struct ErrorDestroyArgs { size_t struct_size; void* priv; Error* error; };
struct ErrorMessageArgs { size_t struct_size; void* priv; const Error* error; const char* message; size_t message_size; };
struct ErrorGetCodeArgs { size_t struct_size; void* priv; const Error* error; int code; };

struct PluginInitializeArgs { size_t struct_size; void* priv; };

struct EventDestroyArgs { size_t struct_size; void* priv; Event* event; };
struct EventAwaitArgs { size_t struct_size; void* priv; Event* event; };

struct NamedValue;
struct ClientCreateArgs {
  size_t struct_size; void* priv;
  NamedValue* create_options; size_t num_options;
  void* kv_get_callback; void* kv_get_user_arg; void* kv_put_callback; void* kv_put_user_arg;
  Client* client;
};
struct ClientDestroyArgs { size_t struct_size; void* priv; Client* client; };
struct ClientPlatformNameArgs { size_t struct_size; void* priv; Client* client; const char* platform_name; size_t platform_name_size; };
struct ClientPlatformVersionArgs { size_t struct_size; void* priv; Client* client; const char* platform_version; size_t platform_version_size; };
struct ClientAddressableDevicesArgs { size_t struct_size; void* priv; Client* client; Device** addressable_devices; size_t num_addressable_devices; };

struct Program { size_t struct_size; void* priv; char* code; size_t code_size; const char* format; size_t format_size; };
struct ClientCompileArgs {
  size_t struct_size; void* priv; Client* client; Program* program;
  const char* compile_options; size_t compile_options_size;
  LoadedExecutable* executable;
};

enum BufferType : int {
  kInvalid = 0, kPred = 1, kS8, kS16, kS32, kS64, kU8, kU16, kU32, kU64, kF16, kF32, kF64,
};
enum HostBufferSemantics : int { kImmutableOnlyDuringCall = 0, kImmutableUntilTransferCompletes = 1, kZeroCopy = 2 };

struct ClientBufferFromHostBufferArgs {
  size_t struct_size; void* priv; Client* client;
  const void* data; BufferType type; const int64_t* dims; size_t num_dims;
  const int64_t* byte_strides; size_t num_byte_strides;
  HostBufferSemantics host_buffer_semantics;
  Device* device; Memory* memory; void* device_layout;
  Event* done_with_host_buffer;
  Buffer* buffer;
};

struct DeviceDescriptionIdArgs { size_t struct_size; void* priv; DeviceDescription* device_description; int id; };
struct DeviceDescriptionKindArgs { size_t struct_size; void* priv; DeviceDescription* device_description; const char* device_kind; size_t device_kind_size; };
struct DeviceGetDescriptionArgs { size_t struct_size; void* priv; Device* device; DeviceDescription* device_description; };

struct LoadedExecutableDestroyArgs { size_t struct_size; void* priv; LoadedExecutable* executable; };
struct ExecuteOptions {
  size_t struct_size; void* priv;
  void** send_callbacks; void** recv_callbacks; size_t num_send_ops; size_t num_recv_ops;
  int launch_id;
};
struct LoadedExecutableExecuteArgs {
  size_t struct_size; void* priv; LoadedExecutable* executable; ExecuteOptions* options;
  Buffer*** argument_lists; size_t num_devices; size_t num_args;
  Buffer*** output_lists; Event** device_complete_events; Device* execute_device;
};

struct BufferDestroyArgs { size_t struct_size; void* priv; Buffer* buffer; };
struct BufferElementTypeArgs { size_t struct_size; void* priv; Buffer* buffer; BufferType type; };
struct BufferDimensionsArgs { size_t struct_size; void* priv; Buffer* buffer; const int64_t* dims; size_t num_dims; };
struct BufferToHostBufferArgs { size_t struct_size; void* priv; Buffer* src; void* host_layout; void* dst; size_t dst_size; Event* event; };

// Slot indices of PJRT_Api's function table (after struct_size, extension_start, pjrt_api_version).
enum Slot : size_t {
  kErrorDestroy = 0, kErrorMessage = 1, kErrorGetCode = 2,
  kPluginInitialize = 3, kPluginAttributes = 4,
  kEventDestroy = 5, kEventIsReady = 6, kEventError = 7, kEventAwait = 8, kEventOnReady = 9,
  kClientCreate = 10, kClientDestroy = 11, kClientPlatformName = 12, kClientProcessIndex = 13,
  kClientPlatformVersion = 14, kClientDevices = 15, kClientAddressableDevices = 16,
  kClientLookupDevice = 17, kClientLookupAddressableDevice = 18, kClientAddressableMemories = 19,
  kClientCompile = 20, kClientDefaultDeviceAssignment = 21, kClientBufferFromHostBuffer = 22,
  kDeviceDescriptionId = 23, kDeviceDescriptionProcessIndex = 24, kDeviceDescriptionAttributes = 25,
  kDeviceDescriptionKind = 26, kDeviceDescriptionDebugString = 27, kDeviceDescriptionToString = 28,
  kDeviceGetDescription = 29,
  kLoadedExecutableDestroy = 50, kLoadedExecutableExecute = 55,
  kBufferDestroy = 58, kBufferElementType = 59, kBufferDimensions = 60, kBufferToHostBuffer = 70,
  kSlotsUsed = 71,
};

struct Api {
  size_t struct_size;
  void* extension_start;
  ApiVersion pjrt_api_version;
  void* fn[1];  // the function table; its true length follows from struct_size
};

constexpr size_t kApiHeaderSize = offsetof(Api, fn);

using GetPjrtApiFn = const Api* (*)();

}  // namespace evometa::pjrt

#endif  // EVOMETA_PJRT_API_H_
