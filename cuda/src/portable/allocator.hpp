#pragma once
// Thrust's temporary storage (sort buffers, scan partials) comes from the context's accounted
// resource, so operator scratch counts against the worker's budget like everything else.
#include <cstddef>

#include <ember/host/memory_resource.hpp>

namespace ember::detail {

struct scratch_allocator {
  using value_type = char;
  memory_resource* mr;
  stream_view stream;

  char* allocate(std::ptrdiff_t bytes) {
    return static_cast<char*>(mr->allocate(static_cast<std::size_t>(bytes), stream));
  }
  void deallocate(char* p, std::size_t bytes) noexcept { mr->deallocate(p, bytes, stream); }
};

}  // namespace ember::detail
