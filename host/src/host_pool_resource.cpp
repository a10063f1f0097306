#include <unistd.h>

#include <map>
#include <mutex>

#include <ember/host/memory_resource.hpp>

namespace ember {
namespace {
constexpr std::size_t pooled_minimum = std::size_t{1} << 20;
constexpr std::size_t granularity = std::size_t{64} << 10;

std::size_t round_up(std::size_t bytes) {
  return (bytes + granularity - 1) / granularity * granularity;
}
}  // namespace

struct host_pool_resource::state {
  std::mutex mutex;                               // guards free_blocks and cached
  std::multimap<std::size_t, void*> free_blocks;  // block size -> block
  std::size_t cached = 0;
};

host_pool_resource::host_pool_resource(memory_resource& upstream, std::size_t max_cached_bytes)
    : _upstream(upstream), _max_cached(max_cached_bytes), _state(std::make_unique<state>()) {}

host_pool_resource::~host_pool_resource() { release_cached(); }

std::size_t host_pool_resource::cached_bytes() const noexcept {
  std::lock_guard lock(_state->mutex);
  return _state->cached;
}

void host_pool_resource::release_cached() noexcept {
  std::lock_guard lock(_state->mutex);
  for (auto& [size, p] : _state->free_blocks) _upstream.deallocate(p, size);
  _state->free_blocks.clear();
  _state->cached = 0;
}

void* host_pool_resource::do_allocate(std::size_t bytes, stream_view stream) {
  if (bytes < pooled_minimum) return _upstream.allocate(bytes, stream);
  std::size_t size = round_up(bytes);
  {
    // Exact sizes only (after rounding to 64 KiB): an operator that runs again asks for the
    // same sizes, and a larger block handed out for a smaller request would be freed under the
    // smaller size and lose its tail.
    std::lock_guard lock(_state->mutex);
    auto it = _state->free_blocks.find(size);
    if (it != _state->free_blocks.end()) {
      void* p = it->second;
      _state->cached -= size;
      _state->free_blocks.erase(it);
      return p;
    }
  }
  return _upstream.allocate(size, stream);
}

void host_pool_resource::do_deallocate(void* p, std::size_t bytes, stream_view stream) noexcept {
  if (bytes < pooled_minimum) {
    _upstream.deallocate(p, bytes, stream);
    return;
  }
  std::size_t size = round_up(bytes);
  std::lock_guard lock(_state->mutex);
  if (_state->cached + size > _max_cached) {
    _upstream.deallocate(p, size, stream);
    return;
  }
  _state->free_blocks.emplace(size, p);
  _state->cached += size;
}

memory_resource& default_host_pool() noexcept {
  static host_pool_resource pool(default_host_resource(),
                                 static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) *
                                     static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) / 4);
  return pool;
}

}  // namespace ember
