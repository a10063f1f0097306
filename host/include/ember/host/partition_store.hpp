#pragma once
// ember::partition_store: a worker's partitions (shuffle blocks, cached tables, scanned dataset
// partitions) across its memory tiers, spilled by LRU under the tiers' budgets and brought back
// on use.
//
// Tiers. The device tier is the worker's accounted device memory (host memory standing in for
// it on the CPU backend), the host tier its accounted host memory, the disk tier files in the
// spill folder. Each memory tier is a tracking_resource with a budget that the worker owns and
// shares with its operators; the store registers itself as their reclaimer, so an allocation
// that would break a budget (an operator's scratch included) first spills partitions to make
// room. Partitions move one tier down at a time (device -> host -> disk) and come back up on
// acquire().
//
// Pins. acquire() returns a pinned_partition; while one is alive the partition is never moved
// or freed (a running task pins its inputs). Only unpinned partitions are spilled, least
// recently used first.
//
// Disk. A spilled partition is written as a spill file (spill_file.hpp: its buffers as they are
// in memory, a checksum each), without fsync: a spill file only has to survive this process. A
// file that comes back damaged (truncated, a flipped byte, missing) is reported by acquire() as
// ember::invalid_input naming the key and the file, and the partition is dropped, so the caller
// recomputes it or fails its job with that message.
//
// Threads. Every member is thread-safe. The store's mutex guards its bookkeeping only: copies
// and file I/O run outside it, with the partition marked as moving, so a spill triggered by an
// allocation inside another spill (device -> host needing host room) cannot deadlock.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ember/host/memory_resource.hpp>
#include <ember/host/table.hpp>

namespace ember {

/// A worker's memory tiers, fastest first.
enum class memory_tier : std::uint8_t { device, pinned_host, host, disk };

/// "device", "pinned_host", "host" or "disk".
[[nodiscard]] std::string_view to_string(memory_tier t) noexcept;

/// Moves tables between the device tier and host memory. The CPU backend's device tier is host
/// memory, so host_tier_copier copies within host memory; a CUDA worker supplies one that copies
/// over PCIe. Called from any thread, concurrently: an implementation must be thread-safe and
/// must not hold a lock of its own while it allocates (an allocation may spill through the
/// store, which calls the copier again).
class tier_copier {
 public:
  virtual ~tier_copier() = default;
  /// A compact copy of `rows` (device tier) in host memory allocated from `mr`; returns once
  /// the copy can be read by the host.
  [[nodiscard]] virtual table to_host(const table_view& rows, memory_resource& mr) = 0;
  /// A compact copy of the host table `rows` in device-tier memory allocated from `mr`.
  [[nodiscard]] virtual table to_device(const table_view& rows, memory_resource& mr) = 0;
};

/// Copies within host memory (copy_table): the CPU backend's tier copier.
class host_tier_copier final : public tier_copier {
 public:
  [[nodiscard]] table to_host(const table_view& rows, memory_resource& mr) override;
  [[nodiscard]] table to_device(const table_view& rows, memory_resource& mr) override;
};

struct partition_store_options {
  /// The device tier (required; must outlive the store). The store becomes its reclaimer.
  tracking_resource* device = nullptr;
  /// The host tier (required; must outlive the store). The store becomes its reclaimer.
  tracking_resource* host = nullptr;
  /// Where spill files go: the store makes a folder of its own inside it (created when
  /// missing; empty: the system's temporary folder), which the destructor removes. Several
  /// stores (workers) may share one spill folder.
  std::filesystem::path spill_dir;
  /// Bytes the spill files may take together.
  std::size_t disk_limit = tracking_resource::unlimited;
  /// Device <-> host copies; null: a host_tier_copier (the CPU backend).
  std::shared_ptr<tier_copier> copier;
  /// Names the store in messages ("worker 2").
  std::string name = "partition store";
  /// Fault injection for tests: flips one byte in the middle of each of the first this many
  /// spill files written, so that tests see damage detected end to end. `ember worker` takes it
  /// from $EMBER_FAULT_CORRUPT_SPILLS. 0 in any real use.
  int corrupt_first_spills = 0;
};

/// One partition as the store holds it now.
struct partition_info {
  std::string key;
  memory_tier tier = memory_tier::device;
  /// Bytes of its rows in memory (table_bytes as the producer counted them).
  std::int64_t bytes = 0;
  /// Size of its spill file (disk tier only).
  std::int64_t file_bytes = 0;
  std::int64_t rows = 0;
  /// Live pinned_partition handles.
  int pins = 0;
  /// When it was last put or acquired.
  std::chrono::system_clock::time_point last_use{};
};

/// One tier's occupancy.
struct tier_usage {
  memory_tier tier = memory_tier::device;
  /// Accounted bytes now (memory tiers: everything allocated from the tier, operator scratch
  /// included; disk: the spill files), their peak, and the budget (tracking_resource::unlimited
  /// when none).
  std::size_t used = 0, peak = 0, limit = tracking_resource::unlimited;
  /// Partitions held in the tier and their bytes.
  std::size_t partitions = 0;
  std::int64_t partition_bytes = 0;
};

/// What the store has done since it was created.
struct partition_store_stats {
  tier_usage device, host, disk;
  /// Bytes (and partitions) moved down: device -> host, host -> disk; and up: host -> device,
  /// disk -> host.
  std::int64_t spilled_to_host_bytes = 0, spilled_to_disk_bytes = 0;
  std::int64_t unspilled_from_host_bytes = 0, unspilled_from_disk_bytes = 0;
  std::int64_t spills = 0, unspills = 0;
  /// Seconds spent copying and writing/reading files for those moves.
  double spill_seconds = 0, unspill_seconds = 0;
  /// acquire() calls that found the key (in any tier), found it already in the tier asked for,
  /// and did not find it.
  std::int64_t hits = 0, tier_hits = 0, misses = 0;
  /// Partitions whose spill file came back damaged (and were dropped).
  std::int64_t corrupt_spills = 0;
  /// Droppable partitions dropped under pressure instead of spilled to disk.
  std::int64_t dropped = 0;
};

/// Partitions that changed (put, moved, pinned or unpinned) or went away since the last
/// take_changes(): what a worker reports to the scheduler's residency catalog in one batch.
struct residency_changes {
  std::vector<partition_info> changed;
  std::vector<std::string> removed;
};

class partition_store;

/// A partition pinned in memory: its rows stay where they are until the handle is destroyed.
/// Move-only; may outlive neither the store nor be used after the store is destroyed.
class pinned_partition {
 public:
  pinned_partition() = default;
  pinned_partition(pinned_partition&&) noexcept;
  pinned_partition& operator=(pinned_partition&&) noexcept;
  pinned_partition(const pinned_partition&) = delete;
  pinned_partition& operator=(const pinned_partition&) = delete;
  /// Unpins.
  ~pinned_partition();

  [[nodiscard]] explicit operator bool() const noexcept { return _store != nullptr; }
  [[nodiscard]] const std::string& key() const noexcept { return _key; }
  /// The rows, in memory of `tier()`.
  [[nodiscard]] const table_view& rows() const noexcept { return _rows; }
  /// Keeps the rows' memory alive (also after the handle is gone).
  [[nodiscard]] const std::shared_ptr<const void>& owner() const noexcept { return _owner; }
  [[nodiscard]] memory_tier tier() const noexcept { return _tier; }
  [[nodiscard]] std::int64_t bytes() const noexcept { return _bytes; }

 private:
  friend class partition_store;
  partition_store* _store = nullptr;
  std::shared_ptr<void> _entry;  // the store's record, to unpin exactly the partition pinned
  std::string _key;
  std::shared_ptr<const void> _owner;
  table_view _rows;
  memory_tier _tier = memory_tier::device;
  std::int64_t _bytes = 0;
};

class partition_store {
 public:
  /// Throws ember::invalid_input when a tier is missing or the spill folder cannot be created
  /// (naming it).
  explicit partition_store(partition_store_options options);
  /// Removes the spill files (and the private spill folder) and stops reclaiming for the tiers.
  /// Pinned handles must be gone by then.
  ~partition_store();
  partition_store(const partition_store&) = delete;
  partition_store& operator=(const partition_store&) = delete;

  /// Stores `rows`, whose memory `owner` keeps alive, under `key` in `tier` (device or host:
  /// the tier whose resource allocated them). `bytes` is table_bytes(rows) as the producer
  /// counted it (device memory is not read here). Several partitions may share one owner
  /// (slices of one table): its memory is freed once every one of them has moved or gone.
  /// `droppable`: the rows are a copy of data that lives elsewhere (a dataset's file): under
  /// pressure in the host tier they are dropped instead of written to disk (counted in
  /// partition_store_stats::dropped). Throws ember::logic_error when `key` is taken,
  /// ember::invalid_input for the disk tier.
  void put(const std::string& key, std::shared_ptr<const void> owner, table_view rows,
           memory_tier tier, std::int64_t bytes, bool droppable = false);
  /// Stores a table allocated from `tier`'s resource; `bytes` as above.
  void put(const std::string& key, table rows, memory_tier tier, std::int64_t bytes);

  /// Pins the partition at `key`, first moving it up to `tier` (device or host) when it lies
  /// lower: from disk through host, making room by spilling others. A partition already in a
  /// higher tier than asked stays there. std::nullopt when the key is unknown. Throws
  /// ember::invalid_input naming the key and file when its spill file is damaged (the partition
  /// is dropped), ember::out_of_memory when the tier cannot make room.
  [[nodiscard]] std::optional<pinned_partition> acquire(const std::string& key,
                                                        memory_tier tier = memory_tier::device);
  /// Brings the partition at `key` up to `tier` as acquire() does, without keeping it pinned
  /// and without counting a lookup (the acquire() that follows counts): a worker readying the
  /// inputs of its next task. Returns the partition's bytes, std::nullopt when the key is
  /// unknown; throws like acquire().
  std::optional<std::int64_t> prefetch(const std::string& key,
                                       memory_tier tier = memory_tier::device);
  /// True when `key` is stored (in any tier).
  [[nodiscard]] bool contains(const std::string& key) const;
  /// Forgets `key` (its memory is freed when its last pin goes). False when unknown.
  bool erase(const std::string& key);
  /// Forgets every key that starts with `prefix`; returns how many.
  std::size_t erase_prefix(std::string_view prefix);

  /// Spills least recently used unpinned partitions out of `tier` (device or host) until its
  /// used() + `bytes` fits its budget. True when it fits afterwards.
  bool make_room(memory_tier tier, std::size_t bytes);
  /// Spills every unpinned partition of `tier` one tier down; returns the bytes moved.
  std::int64_t spill_all(memory_tier tier);

  /// Every partition, by key.
  [[nodiscard]] std::vector<partition_info> partitions() const;
  [[nodiscard]] std::optional<partition_info> find(const std::string& key) const;
  [[nodiscard]] partition_store_stats stats() const;
  /// What changed since the previous call (see residency_changes).
  [[nodiscard]] residency_changes take_changes();
  /// The store's own folder of spill files (inside options.spill_dir).
  [[nodiscard]] const std::filesystem::path& spill_dir() const noexcept;

 private:
  friend class pinned_partition;
  // acquire(), counting the lookup in stats() when `lookup`.
  std::optional<pinned_partition> take(const std::string& key, memory_tier tier, bool lookup);
  void unpin(const std::shared_ptr<void>& entry) noexcept;
  struct state;
  std::unique_ptr<state> _state;
};

}  // namespace ember
