#pragma once
// Where a task runs: on the live worker that holds most of its input, unless that worker is
// much busier than another; with no input to follow, on the least loaded worker. A pure function
// of what the scheduler knows, so that the policy is tested on its own.
#include <cstdint>
#include <map>
#include <optional>
#include <span>

namespace ember {

/// One live worker as placement sees it.
struct worker_load {
  int id = 0;
  /// Tasks it runs at once.
  int slots = 1;
  /// Tasks given to it that have not finished (running or queued there).
  int assigned = 0;
};

struct placement_policy {
  /// Tasks a worker may hold per slot beyond the one running, so it never idles between tasks.
  int queue_depth_per_slot = 16;
  /// Locality gives way when the holder has this many more tasks per slot than the least loaded
  /// worker.
  int max_imbalance_per_slot = 2;
};

/// Bytes of a task's input on one worker, by memory tier (from the residency catalog).
struct input_residency {
  std::int64_t device = 0, host = 0, disk = 0;
};

/// The input bytes choose_worker weighs, from where the input lies: device bytes count 4 times,
/// host bytes twice, disk bytes once. So a task goes where its input is on the GPU, else where
/// it is in host memory, else on disk, and anywhere else only with a transfer.
[[nodiscard]] std::map<int, std::int64_t> tier_weighted_bytes(
    const std::map<int, input_residency>& residency);

/// The worker for a task whose input bytes are held as `input_bytes` (worker id -> bytes; empty
/// for sources), among `workers`: the one with room that holds the most bytes (ties: the less
/// loaded, then the lower id), unless it is more than max_imbalance_per_slot tasks per slot
/// busier than the least loaded worker with room, which then gets it. std::nullopt when no
/// worker has room.
[[nodiscard]] std::optional<int> choose_worker(const std::map<int, std::int64_t>& input_bytes,
                                               std::span<const worker_load> workers,
                                               const placement_policy& policy = {});

}  // namespace ember
