#pragma once
// The state behind the scheduler's coordination services (groundwork: not yet reachable from
// clients): locks and semaphores that hand out fencing tokens, and a versioned key/value store,
// made durable by a write-ahead log.
//
// Locks. acquire() grants a lease of `ttl` with a fencing token, a number that only grows per
// lock name, across restarts too; or queues the caller (first in, first out). A lease lives while
// its holder renews it; release() or expiry hands the lock to the next waiter with a larger
// token. A lock with `permits` > 1 is a semaphore. Leases themselves are not durable: after a
// restart nobody holds anything, and the next holder's token is still larger than any before:
// tokens are reserved in durable blocks of 1024 (one synced record per block, so an acquire does
// not wait for the disk), and a restart continues after the last block.
//
// Fencing. A write that a lock protects carries the holder's token; accept_token() rejects a
// token older than the newest one seen for that lock, so a holder that paused past its lease
// cannot overwrite the work of the one after it.
//
// Key/value. Every write bumps the key's version; compare_and_set() and erase() can require the
// version the caller read.
//
// Time is passed in (`now`), so tests drive it. Not thread-safe: the scheduler's event loop owns
// it.
#include <chrono>
#include <ember/scheduler/queue_store.hpp>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ember {

using fencing_token = std::uint64_t;

struct lock_grant {
  std::string name;
  std::string owner;
  fencing_token token = 0;
  std::chrono::steady_clock::time_point expires;
};

struct kv_entry {
  std::vector<std::uint8_t> value;
  std::uint64_t version = 0;
};

class write_ahead_log;
struct wal_replay_report;

/// One lock as `ember lock ls` shows it.
struct lock_summary {
  std::string name;
  int permits = 1;
  std::vector<lock_grant> holders;
  std::size_t waiters = 0;
  fencing_token newest_token = 0;
};

class coordination_state {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  /// In memory only (tests, the embedded cluster).
  coordination_state();
  /// Durable under `dir`: replays the log there (snapshot, then records) and appends every
  /// change that must survive a restart (tokens issued and seen, key/value writes, durable
  /// queues) before it takes effect. With `group_commit`, appends are not synced one by one: the
  /// caller calls sync() before it acknowledges the changes. Throws what write_ahead_log::open
  /// throws.
  explicit coordination_state(const std::filesystem::path& dir, bool group_commit = false);
  ~coordination_state();
  coordination_state(const coordination_state&) = delete;
  coordination_state& operator=(const coordination_state&) = delete;

  // ---- locks ------------------------------------------------------------------------------
  /// Grants `owner` a lease on `name` (one of `permits` at once) until now + ttl, or queues it
  /// behind earlier waiters and returns std::nullopt. Asking again while holding renews.
  /// Throws ember::invalid_input for an empty name or owner, permits < 1, a ttl <= 0, or permits
  /// that disagree with the lock's.
  std::optional<lock_grant> acquire(const std::string& name, const std::string& owner, int permits,
                                    std::chrono::milliseconds ttl, time_point now);
  /// Extends `owner`'s lease by its ttl from now. False when it holds none (it expired).
  bool renew(const std::string& name, const std::string& owner, time_point now);
  /// Gives `owner` its lease back after a scheduler restart (leases are not durable): granted
  /// when `token` is still the newest token of `name` the log recorded, a permit is free and
  /// nobody waits.
  std::optional<lock_grant> reclaim(const std::string& name, const std::string& owner,
                                    fencing_token token, std::chrono::milliseconds ttl,
                                    time_point now);
  /// Gives up `owner`'s lease, or its place in the queue; returns the leases granted to waiters
  /// as a result. Throws ember::invalid_input when `owner` neither holds nor waits for `name`.
  std::vector<lock_grant> release(const std::string& name, const std::string& owner,
                                  time_point now);
  /// Ends the leases past their expiry; returns the leases granted to waiters as a result.
  std::vector<lock_grant> expire(time_point now);
  /// The current holders of `name`.
  [[nodiscard]] std::vector<lock_grant> holders(const std::string& name) const;
  /// Every lock that is held, waited for or has issued a token, by name.
  [[nodiscard]] std::vector<lock_summary> locks() const;
  /// True when `name` has holders or waiters, or issued a token.
  [[nodiscard]] bool lock_exists(const std::string& name) const;

  /// A write protected by lock `name` presents `token`: accepted when no newer token was issued
  /// for the lock nor seen by an accepted write. Throws ember::invalid_input naming both tokens
  /// otherwise, or for a lock that never issued `token`.
  void accept_token(const std::string& name, fencing_token token);
  /// The newest token issued for `name` (0: none yet).
  [[nodiscard]] fencing_token newest_token(const std::string& name) const;

  // ---- key/value ----------------------------------------------------------------------------
  [[nodiscard]] std::optional<kv_entry> get(const std::string& key) const;
  /// Writes `value` and returns the new version.
  std::uint64_t set(const std::string& key, std::span<const std::uint8_t> value);
  /// Writes when the key is at `expected_version` (0: absent); the new version, or std::nullopt.
  std::optional<std::uint64_t> compare_and_set(const std::string& key,
                                               std::uint64_t expected_version,
                                               std::span<const std::uint8_t> value);
  /// Removes the key (when at `expected_version`, if given). False when it did not.
  bool erase(const std::string& key, std::optional<std::uint64_t> expected_version = {});
  /// Keys that start with `prefix`, in order.
  [[nodiscard]] std::vector<std::string> keys(const std::string& prefix = {}) const;

  // ---- queues ------------------------------------------------------------------------------
  /// The queues, whose durable ones log through this state's log.
  [[nodiscard]] queue_store& queues() noexcept { return _queues; }

  /// Writes a snapshot of the durable state and trims the log (durable states only; a no-op
  /// otherwise).
  void checkpoint();
  /// Makes every change so far durable (group commit; a no-op without a log or pending changes).
  void sync();
  /// Records appended since the last checkpoint (the caller checkpoints past a threshold).
  [[nodiscard]] std::uint64_t records_since_checkpoint() const noexcept {
    return _since_checkpoint;
  }
  /// What opening the log found (zeros for an in-memory state).
  [[nodiscard]] const wal_replay_report& replay_report() const noexcept { return *_replay; }

 private:
  struct lock_state;
  struct durable;
  void apply(std::span<const std::uint8_t> record);
  /// `durable`: the change must be on disk before it is acknowledged (sync() does that).
  void log_and_apply(std::vector<std::uint8_t> record, bool durable = true);
  void after_replay();
  std::vector<lock_grant> grant_waiters(lock_state& lock, const std::string& name, time_point now);
  std::vector<std::uint8_t> snapshot_bytes() const;
  void restore(std::span<const std::uint8_t> bytes);

  std::map<std::string, std::unique_ptr<lock_state>> _locks;
  std::map<std::string, fencing_token> _tokens;    // newest issued or accepted, per lock
  std::map<std::string, fencing_token> _reserved;  // durable: tokens up to here may be out
  std::map<std::string, fencing_token> _floor;     // since opening, tokens come after this
  bool _sync_needed = false;                       // a durable change awaits sync()
  std::map<std::string, kv_entry> _kv;
  std::unique_ptr<write_ahead_log> _log;
  std::unique_ptr<wal_replay_report> _replay;
  std::uint64_t _since_checkpoint = 0;
  queue_store _queues;
};

}  // namespace ember
