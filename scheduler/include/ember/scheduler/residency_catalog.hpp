#pragma once
// The scheduler's residency catalog: which partition lies in which tier of which worker.
//
// Workers report their partition stores in batches with their heartbeats (everything after they
// register, then what changed); the catalog keeps the latest word of each. Placement reads it
// (a task goes where its input is resident, fastest tier first), `ember cache ls` lists it, and
// the named cache finds its entries through it. When a worker dies its partitions leave the
// catalog; those of the named cache ("cache/" keys) are remembered as lost, with the reason, so
// that a get says so instead of serving anything stale. A pure data structure: the event loop
// owns it (not thread-safe).
#include <cstdint>
#include <ember/host/partition_store.hpp>
#include <ember/scheduler/placement.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember {

/// One partition as the catalog knows it.
struct residency_record {
  std::string key;
  int worker = -1;
  memory_tier tier = memory_tier::device;
  std::int64_t bytes = 0;
  std::int64_t rows = 0;
  int pins = 0;
  std::int64_t last_use_ms = 0;  ///< since the Unix epoch
};

class residency_catalog {
 public:
  /// Keys with this prefix belong to the named cache: they are remembered when lost.
  static constexpr std::string_view cache_prefix = "cache/";

  /// Replaces everything known of `worker` with `records` (a full report).
  void replace_worker(int worker, std::vector<residency_record> records);
  /// Applies a batch of `worker`: records that changed or appeared, keys that went away (a key
  /// now held by another worker is left to that one).
  void update(int worker, std::vector<residency_record> changed,
              const std::vector<std::string>& removed);
  /// `worker` died: its partitions leave; its named-cache entries become lost with `reason`.
  void worker_lost(int worker, const std::string& worker_name, const std::string& reason);
  /// Forgets that `key` was lost (after an erase, or a new put under that key).
  void forget_lost(const std::string& key);

  [[nodiscard]] std::optional<residency_record> find(const std::string& key) const;
  /// Why `key` is gone ("worker 2 (worker@...) died: ..."), when it was lost with its worker.
  [[nodiscard]] std::optional<std::string> lost_reason(const std::string& key) const;
  /// Every live record, by key.
  [[nodiscard]] std::vector<residency_record> records() const;
  /// Live records whose key starts with `prefix`, by key.
  [[nodiscard]] std::vector<residency_record> with_prefix(std::string_view prefix) const;
  /// Lost keys with `prefix` and their reasons, by key.
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> lost_with_prefix(
      std::string_view prefix) const;
  /// Bytes of the partitions at `keys`, per worker and tier (unknown keys are left out).
  [[nodiscard]] std::map<int, input_residency> residency_of(
      const std::vector<std::string>& keys) const;
  [[nodiscard]] std::size_t size() const noexcept { return _records.size(); }

 private:
  std::map<std::string, residency_record> _records;
  std::map<std::string, std::string> _lost;
};

}  // namespace ember
