#pragma once
// The CPU backend's execution handle for portable bodies: Thrust's OpenMP system over host
// memory, scratch from the context's accounted resource.
#include <omp.h>

#include <cstring>
#include <vector>

#include <thrust/system/omp/execution_policy.h>

#include <ember/cuda/context.hpp>
#include <ember/host/buffer.hpp>

#include "portable/allocator.hpp"

namespace ember::cpu {

class exec {
 public:
  explicit exec(context& ctx) : _ctx(ctx), _alloc{&ctx.resource(), ctx.stream()} {
    if (ctx.options().cpu_threads > 0) omp_set_num_threads(ctx.options().cpu_threads);
  }
  /// The Thrust policy for algorithms over this backend's memory.
  [[nodiscard]] auto policy() { return thrust::omp::par(_alloc); }
  [[nodiscard]] context& ctx() noexcept { return _ctx; }
  [[nodiscard]] memory_resource& mr() noexcept { return _ctx.resource(); }
  [[nodiscard]] stream_view stream() const noexcept { return {}; }
  [[nodiscard]] static constexpr bool on_device() noexcept { return false; }
  /// Uninitialised room for `n` values of T in this backend's memory.
  template <class T>
  [[nodiscard]] buffer alloc(size_type n) {
    return buffer(static_cast<std::size_t>(n) * sizeof(T), mr(), stream());
  }
  /// Copies between host memory and this backend's memory (here both are host memory).
  void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes > 0) std::memcpy(dst, src, bytes);
  }
  /// Reads one value of this backend's memory on the host.
  template <class T>
  [[nodiscard]] T read(const T* p) {
    return *p;
  }
  /// A copy of host values in this backend's memory.
  template <class T>
  [[nodiscard]] buffer upload(const std::vector<T>& values) {
    buffer b = alloc<T>(static_cast<size_type>(values.size()));
    copy(b.data(), values.data(), values.size() * sizeof(T));
    return b;
  }
  /// Host copy of `n` values of this backend's memory.
  template <class T>
  [[nodiscard]] std::vector<T> download(const T* p, size_type n) {
    return std::vector<T>(p, p + n);
  }
  void sync() {}

 private:
  context& _ctx;
  ::ember::detail::scratch_allocator _alloc;
};

}  // namespace ember::cpu
