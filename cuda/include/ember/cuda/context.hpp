#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>
#include <string_view>

#include <ember/host/memory_resource.hpp>
#include <ember/host/table.hpp>

namespace ember {

/// Where operators run.
enum class backend_kind : std::uint8_t { cpu, cuda };
/// What a user asks for: `automatic` is CUDA when a device is usable, else CPU.
enum class backend_choice : std::uint8_t { automatic, cpu, cuda };

[[nodiscard]] std::string_view to_string(backend_kind k) noexcept;
/// Parses "auto", "cpu" or "cuda"; throws ember::invalid_input naming the bad value.
[[nodiscard]] backend_choice parse_backend_choice(std::string_view text);

/// True when this build has the CUDA backend and a CUDA device is usable by this process.
/// Never throws and never leaves a sticky CUDA error behind.
[[nodiscard]] bool cuda_available() noexcept;
/// Why cuda_available() is false (for skip messages and errors); empty when it is true.
[[nodiscard]] std::string cuda_unavailable_reason();

/// The CUDA pieces this process sees, for benchmark reports. Versions are CUDA's integer form
/// (1000 * major + 10 * minor: 13000 is 13.0); 0 where a piece is absent (no CUDA in this build,
/// no driver installed). `devices` lists the usable GPUs (name, memory, compute capability).
struct cuda_device_info {
  std::string name;
  std::size_t memory_bytes = 0;
  int compute_major = 0, compute_minor = 0;
};
struct cuda_environment {
  int toolkit_version = 0;  ///< the toolkit ember was compiled with
  int runtime_version = 0;  ///< the CUDA runtime library loaded
  int driver_version = 0;   ///< the newest CUDA version the installed driver supports
  std::vector<cuda_device_info> devices;
};
/// Never throws and leaves no sticky CUDA error behind.
[[nodiscard]] cuda_environment query_cuda_environment() noexcept;
/// "13.0" for 13000; "" for 0.
[[nodiscard]] std::string cuda_version_text(int version);

struct context_options {
  backend_choice backend = backend_choice::automatic;
  /// CUDA device ordinal (CUDA backend only).
  int device = 0;
  /// Budget of the context's device tier in bytes (on the CPU backend: host memory standing in
  /// for the device). Operators that would exceed it throw ember::out_of_memory.
  std::size_t device_memory_limit = tracking_resource::unlimited;
  /// A device tier shared with other contexts (a worker's whole-process budget, with its
  /// partition store as reclaimer); must outlive the context and allocate from
  /// device_tier_upstream() of the same backend and device. Null: the context has a tier of its
  /// own with device_memory_limit.
  tracking_resource* device_tier = nullptr;
  /// Use backend-specific algorithms where one exists (CPU hash aggregation, radix sort, ...).
  /// false runs the portable Thrust bodies only; tests run both and compare.
  bool fast_paths = true;
  /// OpenMP threads of CPU operators; 0 uses OpenMP's default (all cores).
  int cpu_threads = 0;
  /// Names the context in logs and out-of-memory messages.
  std::string name = "worker 0";
};

/// One worker thread's backend: its device, stream, accounted memory and algorithm choices.
/// Every operator takes the context last and allocates its results and scratch from
/// resource(). A context is used by one thread at a time.
class context {
 public:
  /// Creates the backend chosen by `options`. Throws ember::invalid_input when CUDA is asked
  /// for but unavailable (the message says why), ember::cuda_error when the device fails.
  [[nodiscard]] static std::unique_ptr<context> create(const context_options& options = {});
  virtual ~context() = default;
  context(const context&) = delete;
  context& operator=(const context&) = delete;

  [[nodiscard]] backend_kind kind() const noexcept { return _kind; }
  [[nodiscard]] const context_options& options() const noexcept { return _options; }
  [[nodiscard]] bool fast_paths() const noexcept { return _options.fast_paths; }
  /// The accounted device tier: device memory on CUDA, host memory on the CPU backend.
  [[nodiscard]] tracking_resource& resource() noexcept {
    return _options.device_tier != nullptr ? *_options.device_tier : *_tracker;
  }
  /// This context's stream (null on the CPU backend).
  [[nodiscard]] virtual stream_view stream() const noexcept = 0;
  /// Memory kind of the columns this backend computes on.
  [[nodiscard]] memory_kind data_kind() const noexcept {
    return _kind == backend_kind::cuda ? memory_kind::device : memory_kind::host;
  }
  /// Copies `bytes` bytes between any two memory kinds, ordered on stream(); returns once the
  /// destination can be read by the host when `dst` is host memory.
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;
  /// Waits for all work queued on stream().
  virtual void synchronize() = 0;
  /// A line for logs and reports: "cpu (2 threads)" or "cuda: NVIDIA H100 ... (sm_90, 80 GiB)".
  [[nodiscard]] virtual std::string description() const = 0;

 protected:
  context(backend_kind kind, context_options options, memory_resource& upstream);

 private:
  backend_kind _kind;
  context_options _options;
  std::unique_ptr<tracking_resource> _tracker;
};

/// The memory a device tier of `kind` allocates from: the stream-ordered pool of CUDA device
/// `device`, or the process's host pool on the CPU backend. Lives as long as the process.
/// Throws ember::invalid_input for a CUDA device out of range or CUDA unavailable.
[[nodiscard]] memory_resource& device_tier_upstream(backend_kind kind, int device);

/// A copy of a host table in the context's memory (device memory on CUDA; a fresh accounted host
/// copy on the CPU backend). Slices are compacted.
[[nodiscard]] table to_device(const table_view& input, context& ctx);
/// A copy of a table computed by `ctx` in plain host memory, for users and tests.
[[nodiscard]] table to_host(const table_view& input, context& ctx);
/// The same copy in host memory from `mr` (e.g. pinned_host_resource() for staging to the
/// network). Slices are compacted. Waits for the copy.
[[nodiscard]] table to_host(const table_view& input, context& ctx, memory_resource& mr);

/// Page-locked (pinned) host memory, pooled so that freed blocks stay pinned for the next
/// staging copy (pinning is slow); shared by the process's CUDA contexts. The network sends
/// straight from it (UCX registers a buffer once and caches the registration). Throws
/// ember::invalid_input when CUDA is unavailable.
[[nodiscard]] memory_resource& pinned_host_resource();

}  // namespace ember
