// A PJRT plugin and its client as plain C++ (no N-API): load, list devices,
// compile, execute host-in/host-out, destroy. Every PJRT error becomes a
// std::runtime_error carrying the plugin's message.
#ifndef EVOMETA_PJRT_RUNTIME_H_
#define EVOMETA_PJRT_RUNTIME_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pjrt/pjrt_api.h"

namespace evometa::pjrt {

/** PCI devices with Google's vendor id 0x1ae0 (TPU chips) under /sys/bus/pci/devices. */
int CountTpuChips(const std::string& sysfs = "/sys/bus/pci/devices");

/** True when the plugin path names libtpu (its file name contains "libtpu"). */
bool NamesLibtpu(const std::string& path);

struct HostArray {
  BufferType type = kInvalid;
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;
};

struct DeviceInfo { int id; std::string kind; };

class Runtime {
 public:
  /** dlopen + GetPjrtApi + version check + PJRT_Plugin_Initialize + PJRT_Client_Create. */
  explicit Runtime(const std::string& path);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  const std::string& platform() const { return platform_; }
  const std::string& platformVersion() const { return version_; }
  int apiMajor() const { return major_; }
  int apiMinor() const { return minor_; }
  const std::vector<DeviceInfo>& devices() const { return infos_; }

  /** Compile StableHLO text (format "mlir") with serialized CompileOptionsProto bytes; returns an executable id. */
  int compile(const std::string& mlir, const std::string& compileOptions);
  /** Run executable `id` on replicas 0..R-1 (inputs[r][i]); returns outputs[r][k], k < numOutputs. */
  std::vector<std::vector<HostArray>> execute(int id, const std::vector<std::vector<HostArray>>& inputs, size_t numOutputs);
  void destroyExecutable(int id);
  /** Destroys every executable and the client (the plugin stays loaded: plugins are not unloadable). */
  void close();

 private:
  void* fn(Slot s) const;
  void check(Error* e, const char* what) const;
  void awaitEvent(Event* ev, const char* what) const;
  void destroyBuffer(Buffer* b) const;

  void* handle_ = nullptr;
  const Api* api_ = nullptr;
  Client* client_ = nullptr;
  std::vector<Device*> devices_;
  std::vector<DeviceInfo> infos_;
  std::vector<LoadedExecutable*> executables_;
  std::string platform_, version_;
  int major_ = -1, minor_ = -1;
  std::mutex mu_;
};

}  // namespace evometa::pjrt

#endif  // EVOMETA_PJRT_RUNTIME_H_
