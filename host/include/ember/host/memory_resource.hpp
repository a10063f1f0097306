#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>

#include <ember/host/types.hpp>

namespace ember {

/// Where a buffer's bytes live. On the CPU backend the "device" tier is host memory with its own
/// budget, so that everything about tiers is exercised without a GPU.
enum class memory_kind : std::uint8_t { host, pinned_host, device };

[[nodiscard]] std::string_view to_string(memory_kind k) noexcept;

/// A non-owning stream handle: a cudaStream_t on the CUDA backend, null on the CPU backend.
/// Kept opaque so that headers compile without CUDA.
struct stream_view {
  void* handle = nullptr;
};

/// Allocates and frees bytes of one memory kind (RMM's device_memory_resource, simplified).
/// Allocation is stream-ordered on the CUDA backend: memory freed on stream S may be reused by
/// later work on S without synchronisation. Thread-safe.
class memory_resource {
 public:
  virtual ~memory_resource() = default;

  /// Returns `bytes` bytes aligned to at least 64 bytes, or throws ember::out_of_memory.
  /// A request for 0 bytes returns a valid, unique pointer.
  [[nodiscard]] void* allocate(std::size_t bytes, stream_view stream = {}) {
    return do_allocate(bytes, stream);
  }
  /// Frees memory returned by allocate() with the same size. Never throws.
  void deallocate(void* p, std::size_t bytes, stream_view stream = {}) noexcept {
    do_deallocate(p, bytes, stream);
  }
  [[nodiscard]] virtual memory_kind kind() const noexcept = 0;

 protected:
  virtual void* do_allocate(std::size_t bytes, stream_view stream) = 0;
  virtual void do_deallocate(void* p, std::size_t bytes, stream_view stream) noexcept = 0;
};

/// Plain host memory from the C++ heap, 64-byte aligned.
class host_memory_resource final : public memory_resource {
 public:
  [[nodiscard]] memory_kind kind() const noexcept override { return memory_kind::host; }

 private:
  void* do_allocate(std::size_t bytes, stream_view stream) override;
  void do_deallocate(void* p, std::size_t bytes, stream_view stream) noexcept override;
};

/// Host memory that keeps freed large blocks (>= 1 MiB) for reuse, up to a cap. A fresh block of
/// host memory costs a page fault per 4 KiB on first touch (about half the time of a join on a
/// 2-core VM); operators that run again and again on a worker reuse warm blocks instead, as
/// database engines do with their buffer pools. Small requests go straight to the upstream.
/// Thread-safe (one mutex around the free lists).
class host_pool_resource final : public memory_resource {
 public:
  /// `upstream` must outlive the pool. At most `max_cached_bytes` are kept free.
  explicit host_pool_resource(memory_resource& upstream, std::size_t max_cached_bytes);
  ~host_pool_resource() override;
  host_pool_resource(const host_pool_resource&) = delete;
  host_pool_resource& operator=(const host_pool_resource&) = delete;

  [[nodiscard]] memory_kind kind() const noexcept override { return memory_kind::host; }
  /// Bytes held in free blocks right now.
  [[nodiscard]] std::size_t cached_bytes() const noexcept;
  /// Returns every cached block to the upstream.
  void release_cached() noexcept;

 private:
  void* do_allocate(std::size_t bytes, stream_view stream) override;
  void do_deallocate(void* p, std::size_t bytes, stream_view stream) noexcept override;
  struct state;
  memory_resource& _upstream;
  std::size_t _max_cached;
  std::unique_ptr<state> _state;
};

/// The process-wide host pool (cap: a quarter of physical memory) that CPU contexts allocate
/// their "device" tier from.
[[nodiscard]] memory_resource& default_host_pool() noexcept;

/// The process-wide unaccounted host resource (for tests, inputs and results handed to users).
[[nodiscard]] memory_resource& default_host_resource() noexcept;

/// Accounts every byte that goes through it and enforces a budget: the worker's promise that a
/// tier never holds more than its limit. Counters are atomic, so one tracking_resource may be
/// shared by several threads.
class tracking_resource final : public memory_resource {
 public:
  static constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();

  /// `upstream` must outlive this resource. `name` appears in out-of-memory messages
  /// (for example "device tier of worker 1").
  tracking_resource(memory_resource& upstream, std::string name,
                    std::size_t limit_bytes = unlimited);

  [[nodiscard]] memory_kind kind() const noexcept override { return _upstream.kind(); }
  /// Bytes allocated and not yet freed.
  [[nodiscard]] std::size_t used() const noexcept { return _used.load(std::memory_order_relaxed); }
  /// The largest value used() has reached since construction or the last reset_peak().
  [[nodiscard]] std::size_t peak() const noexcept { return _peak.load(std::memory_order_relaxed); }
  [[nodiscard]] std::size_t limit() const noexcept { return _limit; }
  [[nodiscard]] std::uint64_t allocations() const noexcept {
    return _allocations.load(std::memory_order_relaxed);
  }
  [[nodiscard]] const std::string& name() const noexcept { return _name; }
  void reset_peak() noexcept { _peak.store(used(), std::memory_order_relaxed); }

  /// Frees memory of this resource when an allocation would exceed the budget: called with the
  /// bytes the allocation needs, on the allocating thread and outside any lock of this
  /// resource; returns false when it could free nothing more. A worker's partition store
  /// spills partitions this way, so that an operator's scratch makes room for itself.
  using reclaimer = std::function<bool(std::size_t bytes)>;
  /// Installs `r` (empty: none). Allocations that would exceed the budget call it, then try
  /// again, until the allocation fits or it returns false; then they throw out_of_memory.
  void set_reclaimer(reclaimer r);
  /// Allocations that the reclaimer let through after freeing memory.
  [[nodiscard]] std::uint64_t reclaimed_allocations() const noexcept {
    return _reclaimed.load(std::memory_order_relaxed);
  }

 private:
  // Reserves `bytes` when they fit the budget; returns the bytes in use before.
  [[nodiscard]] bool try_reserve(std::size_t bytes, std::size_t& before) noexcept;

  void* do_allocate(std::size_t bytes, stream_view stream) override;
  void do_deallocate(void* p, std::size_t bytes, stream_view stream) noexcept override;

  memory_resource& _upstream;
  std::string _name;
  std::size_t _limit;
  std::atomic<std::size_t> _used{0};
  std::atomic<std::size_t> _peak{0};
  std::atomic<std::uint64_t> _allocations{0};
  std::atomic<std::uint64_t> _reclaimed{0};
  mutable std::mutex _reclaimer_mutex;  // guards _reclaimer (a copy is called outside it)
  std::shared_ptr<const reclaimer> _reclaimer;
};

}  // namespace ember
