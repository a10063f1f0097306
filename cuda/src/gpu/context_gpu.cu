#include <cuda_runtime_api.h>

#include <string>

#include <ember/cuda/context.hpp>
#include <ember/host/error.hpp>

#include "gpu/cuda_try.hpp"

namespace ember::gpu {

int usable_device_count(std::string& reason) noexcept {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    reason = std::string("no usable CUDA device: ") + cudaGetErrorName(status) + " (" +
             cudaGetErrorString(status) + ")";
    cudaGetLastError();
    return 0;
  }
  if (count == 0) reason = "no CUDA device is present";
  return count;
}

void query_environment(cuda_environment& env) noexcept {
  env.toolkit_version = CUDART_VERSION;
  if (cudaRuntimeGetVersion(&env.runtime_version) != cudaSuccess) env.runtime_version = 0;
  if (cudaDriverGetVersion(&env.driver_version) != cudaSuccess) env.driver_version = 0;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) continue;
    try {
      env.devices.push_back({prop.name, prop.totalGlobalMem, prop.major, prop.minor});
    } catch (...) {
      break;  // out of host memory while describing devices: report what was gathered
    }
  }
  cudaGetLastError();
}

namespace {

// Stream-ordered device memory (cudaMallocAsync on the device's default pool): frees on a
// stream are reused by later allocations on it without a device-wide synchronisation.
class async_device_resource final : public memory_resource {
 public:
  explicit async_device_resource(int device) : _device(device) {}
  [[nodiscard]] memory_kind kind() const noexcept override { return memory_kind::device; }

 private:
  void* do_allocate(std::size_t bytes, stream_view stream) override {
    void* p = nullptr;
    cudaError_t status =
        cudaMallocAsync(&p, bytes == 0 ? 1 : bytes, static_cast<cudaStream_t>(stream.handle));
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw out_of_memory("CUDA device " + std::to_string(_device) + ": cannot allocate " +
                          std::to_string(bytes) + " bytes");
    }
    EMBER_CUDA_TRY(status);
    return p;
  }
  void do_deallocate(void* p, std::size_t, stream_view stream) noexcept override {
    // Destructors never throw: a failed free is left to the driver's teardown.
    if (cudaFreeAsync(p, static_cast<cudaStream_t>(stream.handle)) != cudaSuccess)
      cudaGetLastError();
  }
  int _device;
};

}  // namespace

// One stream-ordered resource per device for the process: contexts and workers' shared device
// tiers allocate from it.
memory_resource& device_resource(int device) {
  static async_device_resource resources[16] = {
      async_device_resource(0),  async_device_resource(1),  async_device_resource(2),
      async_device_resource(3),  async_device_resource(4),  async_device_resource(5),
      async_device_resource(6),  async_device_resource(7),  async_device_resource(8),
      async_device_resource(9),  async_device_resource(10), async_device_resource(11),
      async_device_resource(12), async_device_resource(13), async_device_resource(14),
      async_device_resource(15)};
  if (device < 0 || device >= 16)
    throw invalid_input("CUDA device ordinal " + std::to_string(device) + " is out of range");
  return resources[device];
}

namespace {

struct device_setup {
  explicit device_setup(int device) { EMBER_CUDA_TRY(cudaSetDevice(device)); }
};

class cuda_context final : public context {
 public:
  explicit cuda_context(const context_options& options)
      : context(backend_kind::cuda, options, device_resource(options.device)),
        _setup(options.device) {
    EMBER_CUDA_TRY(cudaStreamCreateWithFlags(&_stream, cudaStreamNonBlocking));
  }
  ~cuda_context() override {
    if (_stream != nullptr) {
      cudaStreamSynchronize(_stream);
      cudaStreamDestroy(_stream);
    }
  }
  [[nodiscard]] stream_view stream() const noexcept override { return stream_view{_stream}; }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    if (bytes == 0) return;
    EMBER_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, _stream));
    cudaPointerAttributes attr{};
    EMBER_CUDA_TRY(cudaPointerGetAttributes(&attr, dst));
    if (attr.type != cudaMemoryTypeDevice) EMBER_CUDA_TRY(cudaStreamSynchronize(_stream));
  }
  void synchronize() override { EMBER_CUDA_TRY(cudaStreamSynchronize(_stream)); }
  [[nodiscard]] std::string description() const override {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, options().device) != cudaSuccess) {
      cudaGetLastError();
      return "cuda (device " + std::to_string(options().device) + ")";
    }
    return "cuda: " + std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
           std::to_string(prop.minor) + ", " + std::to_string(prop.totalGlobalMem >> 30) + " GiB)";
  }

 private:
  device_setup _setup;
  cudaStream_t _stream = nullptr;
};

// Page-locked host memory: device-to-host copies into it run at full PCIe/NVLink speed and
// asynchronously, and the network can send from it without another bounce.
class pinned_resource final : public memory_resource {
 public:
  [[nodiscard]] memory_kind kind() const noexcept override { return memory_kind::pinned_host; }

 private:
  void* do_allocate(std::size_t bytes, stream_view) override {
    void* p = nullptr;
    cudaError_t status = cudaHostAlloc(&p, bytes == 0 ? 1 : bytes, cudaHostAllocPortable);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw out_of_memory("cannot allocate " + std::to_string(bytes) +
                          " bytes of pinned host memory");
    }
    EMBER_CUDA_TRY(status);
    return p;
  }
  void do_deallocate(void* p, std::size_t, stream_view) noexcept override {
    if (cudaFreeHost(p) != cudaSuccess) cudaGetLastError();
  }
};

}  // namespace

std::unique_ptr<context> make_context(const context_options& options) {
  return std::make_unique<cuda_context>(options);
}

memory_resource& pinned_upstream() {
  static pinned_resource resource;
  return resource;
}

}  // namespace ember::gpu
