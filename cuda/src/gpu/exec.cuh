#pragma once
// The CUDA backend's execution handle for portable bodies: Thrust's CUDA system on the
// context's stream, without implicit synchronisation, scratch from the accounted device pool.
#include <cuda_runtime_api.h>

#include <vector>

#include <thrust/system/cuda/execution_policy.h>

#include <ember/cuda/context.hpp>
#include <ember/host/buffer.hpp>

#include "gpu/cuda_try.hpp"
#include "portable/allocator.hpp"

namespace ember::gpu {

class exec {
 public:
  explicit exec(context& ctx) : _ctx(ctx), _alloc{&ctx.resource(), ctx.stream()} {}
  [[nodiscard]] auto policy() { return thrust::cuda::par_nosync(_alloc).on(raw_stream()); }
  [[nodiscard]] context& ctx() noexcept { return _ctx; }
  [[nodiscard]] memory_resource& mr() noexcept { return _ctx.resource(); }
  [[nodiscard]] stream_view stream() const noexcept { return _ctx.stream(); }
  [[nodiscard]] cudaStream_t raw_stream() const noexcept {
    return static_cast<cudaStream_t>(_ctx.stream().handle);
  }
  [[nodiscard]] static constexpr bool on_device() noexcept { return true; }
  template <class T>
  [[nodiscard]] buffer alloc(size_type n) {
    return buffer(static_cast<std::size_t>(n) * sizeof(T), mr(), stream());
  }
  void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes == 0) return;
    EMBER_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, raw_stream()));
  }
  template <class T>
  [[nodiscard]] T read(const T* p) {
    T value{};
    EMBER_CUDA_TRY(cudaMemcpyAsync(&value, p, sizeof(T), cudaMemcpyDefault, raw_stream()));
    sync();
    return value;
  }
  template <class T>
  [[nodiscard]] buffer upload(const std::vector<T>& values) {
    buffer b = alloc<T>(static_cast<size_type>(values.size()));
    copy(b.data(), values.data(), values.size() * sizeof(T));
    // The host vector may die when the caller returns: the copy must have read it by then.
    sync();
    return b;
  }
  template <class T>
  [[nodiscard]] std::vector<T> download(const T* p, size_type n) {
    std::vector<T> out(static_cast<std::size_t>(n));
    copy(out.data(), p, static_cast<std::size_t>(n) * sizeof(T));
    sync();
    return out;
  }
  void sync() { EMBER_CUDA_TRY(cudaStreamSynchronize(raw_stream())); }

 private:
  context& _ctx;
  ::ember::detail::scratch_allocator _alloc;
};

}  // namespace ember::gpu
