#pragma once
// ember::queue_store: the scheduler's named message queues, as data (who waits for a message is
// the scheduler service's business, not this store's).
//
// A queue is a bounded FIFO of byte messages (a small table travels as its encoded bytes). get()
// hands the oldest ready message to a consumer and keeps it "in flight" until the consumer acks it
// or its visibility timeout passes; a message whose consumer dies (consumer_gone) or whose
// visibility timeout passes becomes ready again, ahead of younger messages (at-least-once: a
// message can be delivered twice, never lost). Each message has an id, unique and growing within
// its queue, and a count of its deliveries.
//
// Durability. A queue created durable logs its creation, every accepted message and every ack
// through the log function given at construction, before the change takes effect; apply()
// replays those records and snapshot()/restore() carry the whole durable part. After a replay
// every message accepted and not acknowledged is ready again (in-flight state is not durable).
// Queues that are not durable vanish with the process.
//
// Time is passed in (`now`). Not thread-safe: the scheduler's event loop owns it.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ember {

namespace transport {
class byte_reader;
class byte_writer;
}  // namespace transport

struct queue_options {
  /// Messages the queue holds at most (ready and in flight together).
  std::uint64_t capacity = 10'000;
  /// Survives a scheduler restart with every accepted message.
  bool durable = false;
  /// An unacknowledged message is delivered again this long after its delivery.
  std::chrono::milliseconds visibility_timeout{30'000};
  /// The largest message accepted, in bytes.
  std::uint64_t max_message_bytes = std::uint64_t{1} << 20;

  friend bool operator==(const queue_options&, const queue_options&) = default;
};

/// Limits on queue_options (create() rejects values outside them).
inline constexpr std::uint64_t max_queue_capacity = std::uint64_t{1} << 24;
inline constexpr std::uint64_t max_queue_message_bytes = std::uint64_t{64} << 20;

struct queue_message {
  std::uint64_t id = 0;
  std::vector<std::uint8_t> payload;
  std::uint32_t deliveries = 0;  ///< including this one
};

struct queue_info {
  std::string name;
  queue_options options;
  std::uint64_t ready = 0;      ///< waiting for a consumer
  std::uint64_t in_flight = 0;  ///< delivered, not yet acknowledged
  std::uint64_t bytes = 0;      ///< payload bytes held (ready and in flight)
  std::uint64_t accepted = 0;   ///< messages put since the queue was created (or restored)
  std::uint64_t acked = 0;
  std::uint64_t redelivered = 0;  ///< deliveries after the first
};

class queue_store {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  /// Receives each record of a durable queue before the change takes effect; it must make the
  /// record durable (or throw, and then the change does not happen).
  using log_fn = std::function<void(std::vector<std::uint8_t> record)>;

  /// An empty `log` keeps durable queues in memory only (tests, the embedded cluster).
  explicit queue_store(log_fn log);
  ~queue_store();
  queue_store(const queue_store&) = delete;
  queue_store& operator=(const queue_store&) = delete;

  /// Creates `name`; creating it again with the same options is a no-op that returns false.
  /// Throws ember::invalid_input for a name that is not 1..200 characters of [A-Za-z0-9._:/-],
  /// capacity outside 1..max_queue_capacity, max_message_bytes outside 1..max_queue_message_bytes,
  /// a visibility timeout <= 0, or an existing queue with other options (naming both).
  bool create(const std::string& name, const queue_options& options);
  /// Deletes `name` with its messages. Throws ember::invalid_input for an unknown queue.
  void drop(const std::string& name);

  /// Appends a message; its id, or std::nullopt when the queue is full. Throws
  /// ember::invalid_input for an unknown queue (naming it) or a message over its
  /// max_message_bytes (naming both sizes).
  std::optional<std::uint64_t> put(const std::string& name, std::span<const std::uint8_t> payload);
  /// Delivers the oldest ready message to `consumer` until now + the visibility timeout, or
  /// std::nullopt when none is ready. Throws ember::invalid_input for an unknown queue.
  std::optional<queue_message> get(const std::string& name, const std::string& consumer,
                                   time_point now);
  /// Acknowledges message `id`, delivered to `consumer`: it is gone for good. Throws
  /// ember::invalid_input for an unknown queue, or a message that is not in flight to that
  /// consumer (unknown, already acknowledged, or redelivered since to someone else).
  void ack(const std::string& name, std::uint64_t id, const std::string& consumer);

  /// Makes ready again the in-flight messages whose visibility timeout passed by `now`; returns
  /// the names of the queues that got messages back.
  std::vector<std::string> expire(time_point now);
  /// Makes ready again every message in flight to `consumer`; returns the queues that got
  /// messages back.
  std::vector<std::string> consumer_gone(const std::string& consumer);
  /// The earliest visibility deadline of any in-flight message (for the caller's timer).
  [[nodiscard]] std::optional<time_point> next_deadline() const;

  [[nodiscard]] bool exists(const std::string& name) const;
  /// Throws ember::invalid_input for an unknown queue.
  [[nodiscard]] queue_info info(const std::string& name) const;
  /// Every queue, by name.
  [[nodiscard]] std::vector<queue_info> list() const;

  // ---- durability (driven by coordination_state, which owns the log) ----------------------
  /// Replays one record that this store's log function produced. Throws ember::invalid_input
  /// for a malformed record.
  void apply(std::span<const std::uint8_t> record);
  /// Writes every durable queue with its unacknowledged messages.
  void snapshot(transport::byte_writer& w) const;
  /// Replaces the durable queues by what snapshot() wrote; their messages are all ready, their
  /// counters start at 0. Queues that are not durable stay, unless the snapshot holds a queue of
  /// the same name. Throws ember::invalid_input for a malformed snapshot (nothing changes then).
  void restore(transport::byte_reader& r);
  /// True when `record` (its first byte) is one of this store's records.
  [[nodiscard]] static bool owns_record(std::span<const std::uint8_t> record) noexcept;

 private:
  struct queue;
  std::map<std::string, std::unique_ptr<queue>> _queues;
  log_fn _log;
};

}  // namespace ember
