#pragma once
// ember::distributed_cache: named tables kept in the workers' partition stores, cluster-wide.
//
//   auto cache = client.cache();
//   cache.put("users", users.view());       // to the worker with the most room (see put)
//   auto again = cache.get("users");         // from wherever it is now (any tier), or nullopt
//   for (auto& e : cache.entries()) ...      // worker, tier, bytes, pins; lost entries too
//
// Entries live in the workers' stores under "cache/KEY" and spill and come back like every
// other partition; the scheduler finds them through its residency catalog. An entry whose worker
// died is reported lost (get throws ember::data_lost naming the worker and why), never served
// stale, until it is erased or put again. With client::local() the entries live in one
// partition store of the embedded cluster's process (a device tier with the client's budget
// for all its workers together, an unlimited host tier, a private spill folder).
//
// Thread-safe; every call has a timeout (10 s for lookups, 60 s for puts and gets, which move
// the table) and throws ember::timeout past it, ember::transport_error when the scheduler cannot
// be reached.
#include <chrono>
#include <ember/host/partition_store.hpp>
#include <ember/host/table.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ember {

/// One partition of a worker's store as the residency catalog knows it (for the named cache:
/// its entries, keyed by the user's key).
struct cache_entry {
  std::string key;
  int worker = -1;
  std::string worker_name;
  memory_tier tier = memory_tier::device;
  std::int64_t bytes = 0;
  std::int64_t rows = 0;
  int pins = 0;
  std::chrono::system_clock::time_point last_use{};
  /// Its worker died: the entry is gone.
  bool lost = false;
  std::string lost_reason;
};

namespace detail {
/// Where a cache's entries live: the scheduler's workers, or the embedded cluster's store.
class cache_backend {
 public:
  virtual ~cache_backend() = default;
  virtual int put(const std::string& key, const table_view& rows) = 0;
  virtual std::optional<table> get(const std::string& key) = 0;
  virtual bool erase(const std::string& key) = 0;
  virtual std::vector<cache_entry> entries() = 0;
  virtual std::vector<cache_entry> residency() = 0;
};
}  // namespace detail

class distributed_cache {
 public:
  explicit distributed_cache(std::shared_ptr<detail::cache_backend> backend);

  /// Stores a copy of the host table `rows` under `key`, replacing what was there (on the same
  /// worker), and returns the worker that holds it: for a new key, the live worker with the most
  /// free device tier, then the fewest cached bytes. The entry arrives in that worker's host
  /// tier (pinned host on CUDA), where the network delivered it; tasks that read it bring it to
  /// the device tier. Throws ember::invalid_input for an empty key or a table not in host
  /// memory, ember::out_of_memory when no worker has room (after spilling).
  int put(const std::string& key, const table_view& rows);
  /// A copy of the entry (host memory), or std::nullopt when there is none. Throws
  /// ember::data_lost when it was lost with its worker.
  [[nodiscard]] std::optional<table> get(const std::string& key);
  /// Removes the entry (a lost one is forgotten). False when there was none.
  bool erase(const std::string& key);
  /// Keys of the live entries, sorted.
  [[nodiscard]] std::vector<std::string> keys();
  /// Every entry, lost ones included, by key.
  [[nodiscard]] std::vector<cache_entry> entries();

 private:
  std::shared_ptr<detail::cache_backend> _backend;
};

}  // namespace ember
