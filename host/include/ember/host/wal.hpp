#pragma once
// ember::write_ahead_log: the scheduler's durable memory (lock tokens, durable queues, key/value,
// the dataset catalog) as an append-only log of checksummed records plus periodic snapshots.
//
// Files in the log's folder:
//   wal-<first seq, 20 digits>.log    segments of records, appended in order
//   snapshot-<seq, 20 digits>.bin     the state after record <seq>, written whole, then renamed
// Record: magic u32 "EMBL", payload_bytes u32, seq u64, checksum u64 (FNV-1a 64 of the seq and
// the payload), payload. Snapshot: magic u32 "EMBS", version u16, reserved u16, payload_bytes
// u64, seq u64, checksum u64, payload. Little-endian throughout.
//
// Opening replays: the newest snapshot whose checksum holds, then every record after it, in
// sequence order. Replay stops at the first record that is torn (the file ends inside it),
// corrupt (bad magic, length or checksum) or out of sequence: that segment is truncated there and
// any later segment removed, so the log continues from the last good record, and the report says
// how many bytes were dropped. A record appended with sync on is on disk (fdatasync) when
// append() returns.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <vector>

namespace ember {

struct wal_options {
  /// The log's folder (created when missing).
  std::filesystem::path dir;
  /// A segment is closed and a new one started past this size.
  std::size_t segment_bytes = std::size_t{64} << 20;
  /// fdatasync every append (durable on return); off: durable after the next sync() (group
  /// commit), or when the OS flushes.
  bool sync = true;
};

/// The largest payload of one record or snapshot.
inline constexpr std::size_t max_wal_record_bytes = std::size_t{64} << 20;

/// What opening found.
struct wal_replay_report {
  std::uint64_t snapshot_seq = 0;   ///< 0: no snapshot
  std::uint64_t records = 0;        ///< replayed after the snapshot
  std::uint64_t bytes = 0;          ///< their payload bytes
  std::uint64_t last_seq = 0;       ///< the last good record (or the snapshot's)
  std::uint64_t dropped_bytes = 0;  ///< torn or corrupt tail removed
  std::string dropped_reason;       ///< why replay stopped early ("" when it did not)
  double seconds = 0;
};

class write_ahead_log {
 public:
  /// Called at open: the newest good snapshot's payload (not called without one), then each
  /// record after it in order.
  using snapshot_fn = std::function<void(std::uint64_t seq, std::span<const std::uint8_t> state)>;
  using record_fn = std::function<void(std::uint64_t seq, std::span<const std::uint8_t> payload)>;

  /// Opens the log in options.dir and replays it (see the file comment). Throws ember::error
  /// naming the file on an I/O failure, ember::invalid_input for bad options; what the callbacks
  /// throw propagates (the log is then not opened).
  [[nodiscard]] static std::unique_ptr<write_ahead_log> open(const wal_options& options,
                                                             const snapshot_fn& on_snapshot,
                                                             const record_fn& on_record,
                                                             wal_replay_report* report = nullptr);
  ~write_ahead_log();
  write_ahead_log(const write_ahead_log&) = delete;
  write_ahead_log& operator=(const write_ahead_log&) = delete;

  /// Appends one record and returns its sequence number (the previous one + 1). Thread-safe.
  /// Throws ember::invalid_input for a payload over max_wal_record_bytes, ember::error on I/O
  /// failure (the log then refuses further appends: what is on disk stays consistent).
  std::uint64_t append(std::span<const std::uint8_t> payload);
  /// Makes every record appended so far durable (fdatasync), for logs opened with sync off that
  /// commit a group of records at once. A no-op when nothing is pending. Throws like append().
  void sync();
  /// Writes `state` as the snapshot after the last appended record (written whole, synced, then
  /// renamed into place), starts a new segment, and removes what is older than the previous
  /// snapshot (which stays, with the records after it, in case this one is damaged on disk). The
  /// caller must not append concurrently with building `state` if it wants the two to agree. Throws
  /// like append().
  void snapshot(std::span<const std::uint8_t> state);

  /// The last appended (or replayed) sequence number; 0 for an empty log.
  [[nodiscard]] std::uint64_t last_seq() const;
  [[nodiscard]] const std::filesystem::path& dir() const noexcept;

 private:
  struct impl;
  explicit write_ahead_log(std::unique_ptr<impl> state);
  std::unique_ptr<impl> _impl;
};

}  // namespace ember
