#pragma once
// The coordination services of a cluster, as a client sees them: locks and semaphores with
// fencing tokens, queues, topics and a versioned key/value store. All are hosted by the scheduler
// (coordination.hpp, queue_store.hpp) and reached through an ember::client:
//
//   auto c = ember::client::connect("127.0.0.1:4242");
//   auto lease = c.lock("nightly-load").acquire(std::chrono::seconds(5));
//   c.kv().set("watermark", bytes, ember::fence{lease.name(), lease.token()});
//   lease.release();
//
// Every call blocks the calling thread and has a timeout. Handles are cheap to copy and
// thread-safe; they keep the client's connection alive. After a scheduler restart the connection
// comes back by itself (within client_options::reconnect_timeout) and calls in flight are sent
// again: queue puts and key/value sets are then at-least-once.
//
// Errors: ember::invalid_input names the object and the problem (an unknown queue, a message
// over the queue's limit, a release by a non-holder, a stale fencing token, a negative timeout);
// ember::timeout when a wait runs out; ember::transport_error when the scheduler stays
// unreachable.
#include <chrono>
#include <cstdint>
#include <ember/host/table.hpp>
#include <ember/scheduler/coordination.hpp>
#include <ember/scheduler/queue_store.hpp>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ember {

namespace detail {
class coordination_session;
struct lease_state;
struct subscription_state;
}  // namespace detail

/// A write protected by a lock presents the holder's fencing token; the scheduler refuses it
/// when a newer token was issued for that lock since (ember::invalid_input, "stale fencing
/// token ...").
struct fence {
  std::string lock;
  fencing_token token = 0;
};

// ---- locks ------------------------------------------------------------------------------------

/// A held lock (or one permit of a semaphore). A background thread of the client renews it every
/// third of its ttl; if a renewal fails (the scheduler expired it, say after this process was
/// paused), held() turns false and the token is stale for any newer holder's writes.
/// Move-only; the destructor releases (errors ignored).
class lease {
 public:
  lease() = default;
  lease(lease&&) noexcept;
  lease& operator=(lease&&) noexcept;
  ~lease();

  [[nodiscard]] const std::string& name() const;
  /// The lease's identity at the scheduler ("<client id>/<n>"): `ember lock release` takes it.
  [[nodiscard]] const std::string& owner() const;
  [[nodiscard]] fencing_token token() const;
  [[nodiscard]] std::chrono::milliseconds ttl() const;
  /// False once released, or once a renewal found the lease expired.
  [[nodiscard]] bool held() const;
  /// Renews now (the background thread does this too). False when the lease was lost.
  bool renew();
  /// Gives the lock back. Throws ember::invalid_input when the scheduler says this lease does not
  /// hold it (it expired); the lease is released locally either way. Idempotent.
  void release();
  /// Stops renewing without releasing: the lease then ends at its ttl (the CLI's `acquire`
  /// without a command).
  void detach();

 private:
  friend class distributed_lock;
  explicit lease(std::shared_ptr<detail::lease_state> state);
  std::shared_ptr<detail::lease_state> _state;
};

/// A named lock (`permits` 1) or semaphore. Locks exist from their first acquire.
class distributed_lock {
 public:
  /// Waits up to `timeout` (0: do not wait) for a lease of `ttl`. Waiters are served first come,
  /// first served. Throws ember::timeout when none came in time, ember::invalid_input for a
  /// negative timeout, ttl <= 0, a bad name or permits that disagree with the lock's.
  [[nodiscard]] lease acquire(std::chrono::milliseconds timeout,
                              std::chrono::milliseconds ttl = std::chrono::seconds(10));
  /// Like acquire() but returns an empty optional instead of throwing ember::timeout.
  [[nodiscard]] std::optional<lease> try_acquire(
      std::chrono::milliseconds timeout, std::chrono::milliseconds ttl = std::chrono::seconds(10));
  /// Checks `token` as a write protected by this lock would: throws ember::invalid_input when it
  /// is stale (for storage outside ember that wants the same protection).
  void check(fencing_token token);
  /// Releases the lease `owner` holds (one detached by another process, see lease::owner()).
  /// Throws ember::invalid_input when `owner` neither holds nor waits for this lock.
  void release(const std::string& owner);
  [[nodiscard]] const std::string& name() const noexcept { return _name; }

 private:
  friend class client;
  distributed_lock(std::shared_ptr<detail::coordination_session> session, std::string name,
                   int permits);
  std::shared_ptr<detail::coordination_session> _session;
  std::string _name;
  int _permits = 1;
};

struct lock_holder_info {
  std::string owner;
  fencing_token token = 0;
  std::int64_t expires_in_ms = 0;
};
struct lock_info {
  std::string name;
  int permits = 1;
  std::vector<lock_holder_info> holders;
  std::int64_t waiters = 0;
  fencing_token newest_token = 0;  ///< the newest issued or accepted
};

// ---- queues -------------------------------------------------------------------------------------

struct received_message {
  std::string queue;
  std::uint64_t id = 0;
  std::vector<std::uint8_t> payload;
  std::uint32_t deliveries = 1;  ///< > 1: delivered before and not acknowledged in time
  [[nodiscard]] std::string text() const { return {payload.begin(), payload.end()}; }
  /// The table a put(table_view) sent, in fresh host memory. Throws ember::invalid_input when
  /// the payload is not an encoded table (naming the queue and the message).
  [[nodiscard]] table to_table() const;
};

/// A small host table as a message payload (the plan codec's checked binary form, so a
/// consumer validates what it decodes). Throws ember::invalid_input for a table that is not in
/// host memory.
[[nodiscard]] std::vector<std::uint8_t> encode_table_message(const table_view& t);
/// The table in such a payload; `what` names it in errors.
[[nodiscard]] table decode_table_message(std::span<const std::uint8_t> payload,
                                         const std::string& what);

/// A named bounded FIFO queue (queue_store.hpp). Queues must be created before use.
class message_queue {
 public:
  /// Creates the queue; with the same options again, a no-op. Throws ember::invalid_input for bad
  /// options or an existing queue with other options.
  void create(const queue_options& options = {});
  /// Deletes the queue and its messages.
  void drop();
  /// Appends a message, waiting up to `timeout` for room (0: fail at once when full). Returns
  /// its id. A durable queue's message is on disk when this returns.
  std::uint64_t put(std::span<const std::uint8_t> payload,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));
  std::uint64_t put(const std::string& text,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// A small host table (received_message::to_table() turns it back); it counts against the
  /// queue's max_message_bytes like any message.
  std::uint64_t put(const table_view& rows,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// Takes the oldest message, waiting up to `timeout`; empty when none came. The message must be
  /// acknowledged before its visibility timeout, or it is delivered again.
  std::optional<received_message> get(std::chrono::milliseconds timeout);
  /// Acknowledges a message from get(). Throws ember::invalid_input when it is no longer this
  /// consumer's (its visibility timeout passed and it went to another).
  void ack(const received_message& m);
  void ack(std::uint64_t id);
  /// ack(done), then get(timeout), in one round trip (a consumer's loop). Throws like ack()
  /// when `done` is no longer this consumer's; nothing is taken then.
  std::optional<received_message> ack_and_get(const received_message& done,
                                              std::chrono::milliseconds timeout);
  [[nodiscard]] queue_info info();
  [[nodiscard]] const std::string& name() const noexcept { return _name; }

 private:
  friend class client;
  message_queue(std::shared_ptr<detail::coordination_session> session, std::string name);
  std::shared_ptr<detail::coordination_session> _session;
  std::string _name;
};

// ---- topics -------------------------------------------------------------------------------------

/// The system topics the scheduler publishes to (messages are JSON objects).
inline constexpr const char* jobs_topic = "ember.jobs";        ///< job progress and ends
inline constexpr const char* failures_topic = "ember.tasks";   ///< task failures
inline constexpr const char* workers_topic = "ember.workers";  ///< joined / left
inline constexpr const char* spills_topic = "ember.spills";    ///< partitions moving tiers

struct topic_message {
  std::string topic;
  std::vector<std::uint8_t> payload;
  /// Messages this subscriber lost just before this one because its buffer was full.
  std::uint64_t lost_before = 0;
  [[nodiscard]] std::string text() const { return {payload.begin(), payload.end()}; }
};

/// A subscriber's bounded buffer at the scheduler: when it is full the oldest message is dropped
/// and counted; the publisher never waits. Move-only; unsubscribes on destruction.
class subscription {
 public:
  subscription() = default;
  subscription(subscription&&) noexcept;
  subscription& operator=(subscription&&) noexcept;
  ~subscription();
  /// The next message, waiting up to `timeout`; empty when none came.
  std::optional<topic_message> next(std::chrono::milliseconds timeout);
  /// Messages lost so far in all.
  [[nodiscard]] std::uint64_t lost() const;

 private:
  friend class message_topic;
  explicit subscription(std::shared_ptr<detail::subscription_state> state);
  std::shared_ptr<detail::subscription_state> _state;
};

/// A named pub/sub topic. Topics exist while they have subscribers; a message published to a
/// topic without subscribers is dropped.
class message_topic {
 public:
  /// Publishes; returns how many subscribers it reached. Never waits for subscribers.
  std::uint64_t publish(std::span<const std::uint8_t> payload);
  std::uint64_t publish(const std::string& text);
  /// Subscribes with a buffer of `buffer` messages (1..1,000,000).
  [[nodiscard]] subscription subscribe(std::uint32_t buffer = 1024);
  [[nodiscard]] const std::string& name() const noexcept { return _name; }

 private:
  friend class client;
  message_topic(std::shared_ptr<detail::coordination_session> session, std::string name);
  std::shared_ptr<detail::coordination_session> _session;
  std::string _name;
};

// ---- key/value ----------------------------------------------------------------------------------

struct kv_item {
  std::string key;
  std::vector<std::uint8_t> value;
  std::uint64_t version = 0;
  [[nodiscard]] std::string text() const { return {value.begin(), value.end()}; }
};

/// The cluster's versioned key/value store. Every write bumps the key's version; writes can be
/// fenced by a lock's token.
class key_value {
 public:
  [[nodiscard]] std::optional<kv_item> get(const std::string& key);
  /// Writes; returns the new version.
  std::uint64_t set(const std::string& key, std::span<const std::uint8_t> value,
                    const std::optional<fence>& guard = {});
  std::uint64_t set(const std::string& key, const std::string& value,
                    const std::optional<fence>& guard = {});
  /// Writes when the key is at `expected_version` (0: absent). The new version, or empty.
  std::optional<std::uint64_t> compare_and_set(const std::string& key,
                                               std::uint64_t expected_version,
                                               std::span<const std::uint8_t> value,
                                               const std::optional<fence>& guard = {});
  /// Removes the key (when at `expected_version`, if given). False when it did not.
  bool erase(const std::string& key, std::optional<std::uint64_t> expected_version = {},
             const std::optional<fence>& guard = {});
  /// Keys starting with `prefix`, with versions (values left empty).
  [[nodiscard]] std::vector<kv_item> list(const std::string& prefix = {});

 private:
  friend class client;
  explicit key_value(std::shared_ptr<detail::coordination_session> session);
  std::shared_ptr<detail::coordination_session> _session;
};

}  // namespace ember
