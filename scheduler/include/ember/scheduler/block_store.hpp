#pragma once
// The in-process shuffle block store of the local executor: what a map task wrote for each
// reduce partition, until the consumers have read it.
#include <cstdint>
#include <ember/host/table.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <vector>

namespace ember {

/// Identifies one block: stage `stage`'s task `map_partition` wrote it for consumer partition
/// `reduce_partition`.
struct block_key {
  int stage = 0;
  int map_partition = 0;
  int reduce_partition = 0;
  friend auto operator<=>(const block_key&, const block_key&) = default;
};

/// One block: a view of rows and the owner that keeps their memory alive (blocks of one map task
/// are slices of one partitioned table, so they share an owner). The memory is the producing
/// worker's (host memory for CPU workers, device memory for a CUDA worker) and is accounted by
/// its context for as long as any block or reader holds the owner.
struct block {
  std::shared_ptr<const void> owner;
  table_view rows;
  /// The CUDA device the rows live on, or -1 for host memory.
  int device = -1;
  /// table_bytes() of the rows, counted by the producer (which can read device memory).
  std::int64_t bytes = 0;
};

/// Blocks keyed by (stage, map partition, reduce partition). Thread-safe: workers put and get
/// concurrently (one mutex guards the map; blocks themselves are immutable). The memory
/// behind the blocks is freed when the last holder lets go of the owner, so a reader may keep
/// a block after it is erased.
class block_store {
 public:
  /// Stores a block. Throws ember::logic_error when the key is already taken (a task ran twice).
  void put(const block_key& key, block b);
  /// The block at `key`, or std::nullopt.
  [[nodiscard]] std::optional<block> get(const block_key& key) const;
  /// The blocks that stage `stage` wrote for `reduce_partition`, in map-partition order.
  [[nodiscard]] std::vector<block> reduce_input(int stage, int reduce_partition) const;
  /// Drops every block of `stage`.
  void erase_stage(int stage);
  /// Drops the blocks that map task (stage, map_partition) wrote, so that a task that runs again
  /// (after a lost worker) can write them anew.
  void erase_task(int stage, int map_partition);
  /// Drops everything.
  void clear();
  /// Number of blocks held.
  [[nodiscard]] std::size_t size() const;
  /// Sum of the blocks' `bytes`: the shuffle data held, as table_bytes() counts it.
  [[nodiscard]] std::int64_t bytes() const;

 private:
  mutable std::mutex _mutex;  // guards _blocks and _bytes
  std::map<block_key, block> _blocks;
  std::int64_t _bytes = 0;
};

}  // namespace ember
