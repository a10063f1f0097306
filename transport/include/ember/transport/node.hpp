#pragma once
// ember::transport::node: one process's endpoint on the cluster network, over UCX.
//
// A node owns a UCX context and worker and one progress thread, which is the only thread that
// ever calls UCX. Other threads hand it work (listen, connect, send, close) through a queue and
// wake it with ucp_worker_signal; it waits on the worker's event fd in between (no busy spin).
//
// Connections. Every connection starts with a handshake before anything else is parsed: the
// connecting side sends `hello` (protocol version, cluster token, its name); the listening side
// compares the token in constant time and answers `welcome`, or `reject` with the reason, and
// drops the connection. A peer that sends anything else first, a malformed frame, or nothing
// within handshake_timeout is dropped and logged; the node keeps serving everyone else. After
// the handshake, every message is checked (frame.hpp, table_wire.hpp) before it is delivered.
//
// Failure. Endpoints use UCX peer error handling with keepalive, so a dead peer surfaces as
// on_disconnected (never a hang). With shared_memory = true, endpoints are created without peer
// error handling (UCX 1.13 only picks shared memory transports between processes then): a dead
// peer is then found by the application's heartbeats, which call close().
//
// Handlers. node_handler's callbacks run on the progress thread, in arrival order per
// connection. They must not block (queue the work elsewhere); they may call send() and close(),
// which then run at once.
#include <chrono>
#include <cstdint>
#include <ember/host/memory_resource.hpp>
#include <ember/host/table.hpp>
#include <ember/transport/address.hpp>
#include <ember/transport/frame.hpp>
#include <ember/transport/table_wire.hpp>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace ember::transport {

/// Identifies one connection of a node; never reused within the node's life.
using connection_id = std::uint64_t;

/// Message types below this belong to the transport (hello, welcome, reject, goodbye);
/// applications number theirs from here.
inline constexpr std::uint16_t first_application_type = 16;

/// The version of the UCX library this process loaded ("1.13.1"), for reports.
[[nodiscard]] std::string ucx_version();

struct node_options {
  /// Names this node in logs and in its hello ("scheduler", "worker 127.0.0.1:4101").
  std::string name = "ember";
  /// The cluster token every connection presents (and every inbound one must match).
  std::string token;
  /// Let UCX use shared memory between processes on one host (see above).
  bool shared_memory = false;
  /// What this node accepts from its peers.
  frame_limits limits;
  /// An inbound connection that has not said a valid hello by then is dropped.
  std::chrono::milliseconds handshake_timeout{5'000};
  /// connect() gives up after this long.
  std::chrono::milliseconds connect_timeout{10'000};
  /// UCX keepalive interval of endpoints with peer error handling.
  std::chrono::milliseconds keepalive_interval{1'000};
  /// Where received tables are allocated (host memory); null: the default host resource.
  memory_resource* receive_resource = nullptr;
};

/// Who is at the other end of a connection.
struct peer_info {
  connection_id id = 0;
  /// "127.0.0.1:41234" (the socket address UCX reports).
  std::string address;
  /// The name the peer gave in its hello (or welcome).
  std::string name;
  /// True when the peer connected to this node's listener.
  bool inbound = false;
};

/// Receives a node's events on its progress thread (see the file comment).
class node_handler {
 public:
  virtual ~node_handler() = default;
  /// The handshake completed.
  virtual void on_connected(const peer_info& peer) { (void)peer; }
  /// A control message. `body` is valid during the call only.
  virtual void on_message(connection_id from, std::uint16_t type,
                          std::span<const std::uint8_t> body) = 0;
  /// A table message: the application's header and the table (host memory, owned).
  virtual void on_table(connection_id from, std::uint16_t type,
                        std::span<const std::uint8_t> header, table rows) = 0;
  /// The connection is gone (peer failure, goodbye, rejected or malformed input, close()).
  /// Called once per connection that was reported connected, never for others.
  virtual void on_disconnected(connection_id id, const std::string& reason) {
    (void)id;
    (void)reason;
  }
  /// After each turn of progress (a bounded number of UCX progress calls, which delivered zero
  /// or more messages): a handler that answers messages on the progress thread can send the
  /// turn's replies together here (one log sync for all of them, say). Must not block long:
  /// the node makes no progress meanwhile.
  virtual void on_turn_end() {}
};

/// Counters since the node started.
struct node_statistics {
  std::uint64_t messages_sent = 0, messages_received = 0;
  std::uint64_t bytes_sent = 0, bytes_received = 0;  ///< bodies, including tables
  std::uint64_t rejected_connections = 0;            ///< failed handshakes and bad input
};

class node {
 public:
  /// Creates the UCX context and worker and starts the progress thread. `handler` must outlive
  /// the node. Throws ember::transport_error when UCX cannot start.
  node(node_options options, node_handler& handler);
  /// shutdown().
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Listens on host:port (port 0: any free port) and returns the port. Throws
  /// ember::transport_error naming the address (in use, unresolvable).
  int listen(const std::string& host, int port);
  /// Connects to host:port and completes the handshake. Throws ember::transport_error naming
  /// the peer (unreachable, rejected: wrong token, other protocol version) or ember::timeout.
  connection_id connect(const std::string& host, int port);

  /// Sends a control message (type >= first_application_type). Asynchronous: a failure
  /// surfaces as on_disconnected. Sending on a closed connection is a no-op (returns false).
  bool send(connection_id to, std::uint16_t type, std::vector<std::uint8_t> body);
  /// Sends a table with an application header; the table's memory is kept alive (through
  /// `rows.keepalive`) until the transfer completes. Large bodies go by rendezvous, zero copy.
  bool send_table(connection_id to, std::uint16_t type, std::vector<std::uint8_t> header,
                  outgoing_table rows);
  /// Says goodbye and closes the connection; on_disconnected follows. Never throws.
  void close(connection_id id) noexcept;
  /// Closes every connection and the listener, stops the progress thread, destroys the UCX
  /// worker and context. Idempotent; never throws.
  void shutdown() noexcept;

  /// The peer's address, or "" for an unknown connection.
  [[nodiscard]] std::string peer_address(connection_id id) const;
  /// True when UCX can read and write CUDA device memory directly (a CUDA-aware build).
  [[nodiscard]] bool cuda_aware() const noexcept;
  /// "UCX 1.13.1, memory types host".
  [[nodiscard]] std::string describe() const;
  [[nodiscard]] node_statistics statistics() const;
  [[nodiscard]] const node_options& options() const noexcept;

  // ---- for tests of what peers accept -----------------------------------------------------
  /// Connects without the handshake.
  connection_id connect_raw(const std::string& host, int port);
  /// Sends `am_header` and `body` as one active message exactly as given (no frame added).
  bool send_raw(connection_id to, std::vector<std::uint8_t> am_header,
                std::vector<std::uint8_t> body);

 private:
  struct impl;
  std::unique_ptr<impl> _impl;
};

}  // namespace ember::transport
