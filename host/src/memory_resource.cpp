#include <ember/host/error.hpp>
#include <ember/host/memory_resource.hpp>

#include <new>
#include <string>

namespace ember {
namespace {
constexpr std::align_val_t host_alignment{64};
}

void* host_memory_resource::do_allocate(std::size_t bytes, stream_view) {
  try {
    // A zero-byte request still gets a unique pointer, as the interface promises.
    return ::operator new(bytes == 0 ? 1 : bytes, host_alignment);
  } catch (const std::bad_alloc&) {
    throw out_of_memory("host memory: cannot allocate " + std::to_string(bytes) + " bytes");
  }
}

void host_memory_resource::do_deallocate(void* p, std::size_t, stream_view) noexcept {
  ::operator delete(p, host_alignment);
}

memory_resource& default_host_resource() noexcept {
  static host_memory_resource resource;
  return resource;
}

tracking_resource::tracking_resource(memory_resource& upstream, std::string name,
                                     std::size_t limit_bytes)
    : _upstream(upstream), _name(std::move(name)), _limit(limit_bytes) {}

bool tracking_resource::try_reserve(std::size_t bytes, std::size_t& before) noexcept {
  // Reserve first, so that two threads racing for the last bytes cannot both pass the check.
  before = _used.fetch_add(bytes, std::memory_order_relaxed);
  if (_limit != unlimited && before + bytes > _limit) {
    _used.fetch_sub(bytes, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void tracking_resource::set_reclaimer(reclaimer r) {
  std::lock_guard lock(_reclaimer_mutex);
  _reclaimer = r ? std::make_shared<const reclaimer>(std::move(r)) : nullptr;
}

void* tracking_resource::do_allocate(std::size_t bytes, stream_view stream) {
  std::size_t before = 0;
  if (!try_reserve(bytes, before)) {
    std::shared_ptr<const reclaimer> reclaim;
    {
      std::lock_guard lock(_reclaimer_mutex);
      reclaim = _reclaimer;
    }
    bool reserved = false;
    // Other threads may take what the reclaimer freed: try a few rounds, not forever.
    for (int round = 0; reclaim && !reserved && round < 8; ++round) {
      if (!(*reclaim)(bytes)) break;
      reserved = try_reserve(bytes, before);
    }
    if (!reserved) {
      throw out_of_memory(_name + ": allocating " + std::to_string(bytes) +
                          " bytes would exceed the budget of " + std::to_string(_limit) +
                          " bytes (in use: " + std::to_string(used()) + ")");
    }
    _reclaimed.fetch_add(1, std::memory_order_relaxed);
  }
  void* p = nullptr;
  try {
    p = _upstream.allocate(bytes, stream);
  } catch (...) {
    _used.fetch_sub(bytes, std::memory_order_relaxed);
    throw;
  }
  std::size_t now = before + bytes;
  std::size_t peak = _peak.load(std::memory_order_relaxed);
  while (now > peak && !_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  _allocations.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void tracking_resource::do_deallocate(void* p, std::size_t bytes, stream_view stream) noexcept {
  _upstream.deallocate(p, bytes, stream);
  _used.fetch_sub(bytes, std::memory_order_relaxed);
}

}  // namespace ember
