#pragma once
// A client's connection for the coordination services: request/reply calls with timeouts, a
// reconnect after the scheduler goes away (calls in flight are sent again once it is back), and
// the background renewal of the leases this client holds.
//
// Threads: the transport's progress thread delivers replies; a reconnect thread re-establishes
// the connection; a renewal thread renews leases. Callers block in call() on a condition
// variable. Thread-safe.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ember/scheduler/client.hpp>
#include <ember/transport/node.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "protocol.hpp"

namespace ember::detail {

class coordination_session;

/// What a lease handle shares with the renewal thread.
struct lease_state {
  std::weak_ptr<coordination_session> session;
  std::string name;
  std::string owner;
  fencing_token token = 0;
  std::chrono::milliseconds ttl{0};
  std::atomic<bool> held{true};
  std::atomic<bool> renewing{true};  // false once released or detached
};

/// What a subscription handle keeps between polls.
struct subscription_state {
  std::shared_ptr<coordination_session> session;
  std::string topic;
  std::uint32_t buffer = 0;
  std::uint64_t id = 0;     // the scheduler's subscription id
  std::uint64_t epoch = 0;  // the connection it was made on
  std::vector<topic_message> ready;
  std::size_t next = 0;
  std::uint64_t lost = 0;
  std::mutex mutex;
};

class coordination_session final : public transport::node_handler,
                                   public std::enable_shared_from_this<coordination_session> {
 public:
  /// Connects to the scheduler at `address`. Throws ember::transport_error naming it.
  coordination_session(std::string address, const client_options& options);
  ~coordination_session() override;

  /// Sends `r` and waits for the reply: up to `wait` (the scheduler's own wait, such as a lock
  /// acquire timeout) plus the time a reconnect may take. Throws the reply's error with its type,
  /// ember::transport_error when the scheduler stays away, ember::timeout without an answer.
  coord_reply_msg call(coord_request_msg r, std::chrono::milliseconds wait = {});
  /// A call that gives up after `limit` in all and does not wait for a reconnect (for
  /// destructors, which must not hang on a scheduler that is away).
  coord_reply_msg call_briefly(coord_request_msg r, std::chrono::milliseconds limit);
  /// A new lease identity: "<host>:<pid>:<random>/<n>".
  [[nodiscard]] std::string new_owner();
  /// Renews `lease` in the background every third of its ttl until it is released.
  void track(const std::shared_ptr<lease_state>& lease);
  /// Bumped on every reconnect (subscriptions made on an older connection are gone).
  [[nodiscard]] std::uint64_t epoch() const noexcept { return _epoch.load(); }
  [[nodiscard]] const std::string& address() const noexcept { return _address; }

  void on_message(transport::connection_id from, std::uint16_t type,
                  std::span<const std::uint8_t> body) override;
  void on_table(transport::connection_id from, std::uint16_t type,
                std::span<const std::uint8_t> header, table rows) override;
  void on_disconnected(transport::connection_id id, const std::string& reason) override;

 private:
  struct pending {
    std::vector<std::uint8_t> body;  // the encoded request, sent again after a reconnect
    std::optional<coord_reply_msg> reply;
    std::optional<std::string> lost;  // the connection could not be re-established
  };

  coord_reply_msg call(coord_request_msg r, std::chrono::milliseconds wait,
                       std::optional<std::chrono::milliseconds> limit);
  void reconnect_loop();
  void renew_loop();

  std::string _address;
  client_options _options;
  std::string _client_id;
  std::atomic<std::uint64_t> _next_owner{1};
  std::unique_ptr<transport::node> _net;

  std::mutex _mutex;  // guards everything below
  std::condition_variable _cv;
  transport::connection_id _conn = 0;
  bool _connected = false;
  bool _stopping = false;
  std::string _lost_reason;
  std::map<std::uint64_t, pending> _pending;
  std::uint64_t _next_request = 1;
  std::chrono::steady_clock::time_point _down_since;
  // Leases to renew, with when each is due next.
  std::vector<std::pair<std::weak_ptr<lease_state>, std::chrono::steady_clock::time_point>>
      _lease_renewals;
  std::atomic<std::uint64_t> _epoch{0};

  std::thread _reconnect;
  std::thread _renew;
};

}  // namespace ember::detail
