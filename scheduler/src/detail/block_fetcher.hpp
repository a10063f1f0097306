#pragma once
// A worker's client side of the shuffle: fetching blocks from the workers that hold them.
//
// Connections to peers are made on first use, on the fetcher's own thread (connecting waits for
// a handshake, which the transport's progress thread must never do), and reused. Every fetch
// ends exactly once through the `done` callback, with the block's rows or the reason it could
// not be had (the peer has no such block, the connection failed, the deadline passed), unless it
// was cancelled first. Thread-safe: one mutex guards its state and is never held while calling
// out.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <ember/host/table.hpp>
#include <ember/transport/node.hpp>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "protocol.hpp"

namespace ember::detail {

class block_fetcher {
 public:
  /// Which block: what map task (stage, map) wrote for reduce partition `reduce` of `job`.
  struct block_id {
    std::uint64_t job = 0;
    int stage = 0, map = 0, reduce = 0;
  };
  /// The outcome of fetch `ticket`: rows, or std::nullopt and why; `gone` when the holder
  /// answered that it does not have the block (its map task must run again), not when the
  /// holder could not be reached.
  using done_fn = std::function<void(std::uint64_t ticket, std::optional<table> rows,
                                     const std::string& why, bool gone)>;

  /// `net` must outlive the fetcher; `name` prefixes log lines.
  block_fetcher(transport::node& net, std::chrono::milliseconds timeout, done_fn done,
                std::string name);
  /// stop().
  ~block_fetcher();
  block_fetcher(const block_fetcher&) = delete;
  block_fetcher& operator=(const block_fetcher&) = delete;

  /// Where the workers listen for fetches (the scheduler's peer list).
  void set_peers(const peers_msg& peers);
  /// Asks worker `holder` for block `id`. `ticket` is the caller's (unique) name for it; `done`
  /// follows later, never from inside this call.
  void fetch(std::uint64_t ticket, const block_id& id, int holder);
  /// Forgets these fetches: their `done` will not be called.
  void cancel(const std::vector<std::uint64_t>& tickets);

  // ---- from the worker's node handler (the progress thread) --------------------------------
  void on_block(const block_reply_msg& reply, table rows);
  void on_missing(const block_reply_msg& reply, const std::string& peer);
  /// A connection closed; fetches waiting on it fail. False when it was not a peer connection.
  bool on_disconnected(transport::connection_id id, const std::string& reason);

  /// Forgets the peer list and closes the connections to peers (a new scheduler numbers the
  /// workers anew). Pending fetches fail as their connections close.
  void forget_peers();

  /// Fails the fetches past their deadline (call it periodically).
  void expire();
  /// Stops the connecting thread; pending fetches are dropped without `done`. Idempotent.
  void stop() noexcept;

 private:
  struct pending {
    block_id id;
    int holder = 0;
    std::chrono::steady_clock::time_point deadline;
  };
  void send_request(std::uint64_t ticket);
  void fail(std::uint64_t ticket, const std::string& why, bool gone = false);
  void connect_loop() noexcept;

  transport::node& _net;
  std::chrono::milliseconds _timeout;
  done_fn _done;
  std::string _name;

  std::mutex _mutex;  // guards everything below
  std::condition_variable _cv;
  bool _stopping = false;
  std::map<std::uint64_t, pending> _pending;
  std::map<int, transport::host_port> _addresses;
  std::map<int, transport::connection_id> _connections;
  std::map<transport::connection_id, int> _peer_of;
  std::map<int, std::vector<std::uint64_t>> _waiting_for;  // tickets per peer being connected
  std::deque<int> _to_connect;
  std::set<int> _connecting;
  std::thread _connector;
};

}  // namespace ember::detail
