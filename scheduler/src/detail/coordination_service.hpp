#pragma once
// The scheduler's coordination services behind the wire: it answers coord_request messages from
// the state (coordination_state: locks, key/value, queues) and the topics it keeps itself, and
// holds the requests that wait (a lock acquire, a get from an empty queue, a put into a full one,
// a topic poll) until they can be answered or their timeout passes.
//
// Group commit: replies are not sent while a batch of requests is handled but collected, and
// flush() makes the log durable once (one fdatasync for the whole batch) before sending them, so
// an acknowledged change is always on disk.
//
// Not thread-safe: every caller (the transport's progress thread answering requests, the event
// loop driving timers, the metrics snapshot reading locks() and queues()) holds the scheduler's
// coordination_mutex.
#include <chrono>
#include <deque>
#include <ember/scheduler/coordination.hpp>
#include <ember/transport/node.hpp>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "protocol.hpp"

namespace ember::detail {

class coordination_service {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using connection_id = transport::connection_id;
  using send_fn = std::function<void(connection_id, const coord_reply_msg&)>;

  /// Durable under `dir` (the scheduler's data folder + "/coordination"); in memory when empty.
  /// Throws what coordination_state throws (an unreadable log).
  coordination_service(const std::filesystem::path& dir, send_fn send);

  /// Answers (or parks) one request from `from`.
  void handle(connection_id from, coord_request_msg request, time_point now);
  /// `conn` went away: its waits end, its topic subscriptions go, and the queue messages it held
  /// unacknowledged are delivered again.
  void disconnected(connection_id conn, time_point now);
  /// Leases and visibility timeouts that ran out, waits past their timeout, checkpoints.
  void tick(time_point now);
  /// Publishes a system event (a JSON object) to `topic`.
  void publish(const std::string& topic, const std::string& payload, time_point now);
  /// Makes the batch's changes durable, then sends its replies.
  void flush();
  /// Every lock (holders, waiters) and every queue (depths), for the scheduler's metrics and
  /// dashboard, which call these from their own threads under the scheduler's coordination mutex.
  [[nodiscard]] std::vector<lock_summary> locks() const { return _state->locks(); }
  [[nodiscard]] std::vector<queue_info> queues() const { return _state->queues().list(); }
  /// What the replay at start found and how long it took (one line; "" when not durable).
  [[nodiscard]] const std::string& recovery() const noexcept { return _recovery; }

 private:
  struct reply_to {
    connection_id conn = 0;
    std::uint64_t request = 0;
  };
  struct lock_wait {
    reply_to to;
    std::string name;
    time_point deadline;
  };
  struct get_wait {
    reply_to to;
    time_point deadline;
  };
  struct put_wait {
    reply_to to;
    std::vector<std::uint8_t> payload;
    time_point deadline;
  };
  struct subscriber {
    connection_id conn = 0;
    std::string topic;
    std::uint32_t buffer = 0;
    std::deque<std::vector<std::uint8_t>> messages;
    std::size_t bytes = 0;   // payload bytes in `messages`
    std::uint64_t lost = 0;  // dropped since the last delivery
    std::optional<reply_to> poll;
    std::uint32_t poll_max = 0;
    time_point poll_deadline;
  };

  void dispatch(connection_id from, coord_request_msg& r, coord_reply_msg& reply, time_point now);
  void reply(const reply_to& to, coord_reply_msg m);
  void fail(const reply_to& to, error_kind kind, const std::string& message);

  void lock_acquire(connection_id from, coord_request_msg& r, time_point now);
  void grant(const std::vector<lock_grant>& grants);
  void fence(const coord_request_msg& r);
  std::vector<std::uint8_t> lock_list(const std::string& name, time_point now) const;

  void queue_put(connection_id from, coord_request_msg& r, time_point now);
  void queue_get(connection_id from, coord_request_msg& r, time_point now);
  std::vector<std::uint8_t> queue_list(const std::string& name) const;
  /// Serves parked gets and puts of `queue` as far as its messages and room allow.
  void serve_queue(const std::string& queue, time_point now);

  std::uint64_t topic_publish(const std::string& topic, const std::vector<std::uint8_t>& payload);
  void topic_poll(connection_id from, coord_request_msg& r, time_point now);
  void deliver(subscriber& s);

  std::unique_ptr<coordination_state> _state;
  send_fn _send;
  std::vector<std::pair<connection_id, coord_reply_msg>> _outbox;
  std::map<std::string, lock_wait> _lock_waits;            // by owner
  std::map<std::string, std::deque<get_wait>> _get_waits;  // by queue
  std::map<std::string, std::deque<put_wait>> _put_waits;  // by queue
  std::map<std::uint64_t, subscriber> _subscribers;        // by subscription id
  std::map<std::string, std::set<std::uint64_t>> _topics;  // topic -> subscriptions
  std::uint64_t _next_subscription = 1;
  std::string _recovery;
};

}  // namespace ember::detail
