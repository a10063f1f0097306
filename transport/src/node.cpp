#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ucp/api/ucp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <ember/transport/byte_codec.hpp>
#include <ember/transport/node.hpp>

#include "detail/sockaddr.hpp"
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace ember::transport {
namespace {

using clock_type = std::chrono::steady_clock;

// The transport's own message types.
enum : std::uint16_t { msg_hello = 1, msg_welcome = 2, msg_reject = 3, msg_goodbye = 4 };
constexpr unsigned am_id = 7;
// Unauthenticated inbound connections allowed at once; more are refused at the listener.
constexpr std::size_t max_pending_handshakes = 256;
// Progress calls between looks at the command queue.
constexpr int max_progress_per_turn = 64;
// How long a closing connection waits for its goodbye (or reject) to leave before it is forced.
constexpr auto close_grace = std::chrono::milliseconds(500);

std::string status_text(ucs_status_t s) { return ucs_status_string(s); }

void check(ucs_status_t s, const std::string& what) {
  if (s != UCS_OK) throw transport_error(what + ": " + status_text(s));
}

using detail::resolve;
using detail::sockaddr_text;

// Token comparison whose time does not depend on where the strings differ.
bool same_token(const std::string& a, const std::string& b) noexcept {
  std::size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (std::size_t i = 0; i < n; ++i) {
    auto x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0u;
    auto y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0u;
    diff |= x ^ y;
  }
  return diff == 0;
}

}  // namespace

std::string ucx_version() {
  unsigned major = 0, minor = 0, release = 0;
  ucp_get_version(&major, &minor, &release);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
}

struct node::impl {
  enum class state { awaiting_hello, awaiting_welcome, open, closing, closed };

  struct incoming_transfer;

  struct connection {
    connection_id id = 0;
    ucp_ep_h ep = nullptr;
    std::string address;
    std::string name;
    bool inbound = false;
    bool raw = false;       // test connections: no handshake
    bool reported = false;  // on_connected was called
    state st = state::awaiting_hello;
    clock_type::time_point deadline{};
    std::shared_ptr<std::promise<void>> ready;  // outbound: completes at welcome or failure
    std::string close_reason;
    std::map<std::uint64_t, std::shared_ptr<incoming_transfer>> transfers;
  };

  // What a send keeps alive until UCX is done with it: its header and either its own body or
  // a piece of a table (whose memory the shared table keeps alive).
  struct send_state {
    impl* self = nullptr;
    connection_id to = 0;
    std::vector<std::uint8_t> header;
    std::vector<std::uint8_t> body;
    std::shared_ptr<const outgoing_table> rows;
    const void* data = nullptr;  // a table segment
    std::size_t bytes = 0;
  };

  // A table being received: its buffers and which of its segments have arrived.
  struct incoming_transfer {
    std::uint16_t type = 0;
    std::vector<std::uint8_t> header;  // the application header
    std::unique_ptr<incoming_table> rows;
    std::vector<segment> segments;  // the non-empty ones, in sending order
    std::size_t announced = 0;      // segments whose message has arrived
    std::size_t complete = 0;       // segments whose bytes have arrived
  };

  // A rendezvous receive in flight: a control message body, or one table segment.
  struct receive_state {
    impl* self = nullptr;
    connection_id from = 0;
    std::uint16_t type = 0;
    std::vector<std::uint8_t> body;
    std::uint64_t transfer = 0;
    std::shared_ptr<incoming_transfer> table;
  };

  node_options options;
  node_handler& handler;
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  int event_fd = -1;
  bool cuda = false;
  std::string description;
  std::vector<ucp_listener_h> listeners;

  std::thread thread;
  std::thread::id thread_id;
  std::mutex mutex;  // guards commands, stopping, addresses, stats
  std::deque<std::function<void()>> commands;
  bool stopping = false;
  std::unordered_map<connection_id, std::string> addresses;
  node_statistics stats;

  // Progress thread only.
  std::unordered_map<connection_id, connection> connections;
  bool tearing_down = false;   // progress thread: close requests go to `closing`
  bool refusing = false;       // progress thread: teardown began, connection requests refused
  std::vector<void*> closing;  // close requests teardown waits for
  std::unordered_map<ucp_ep_h, connection_id> by_ep;
  std::deque<std::pair<connection_id, std::string>> failed;  // from error callbacks
  std::atomic<connection_id> next_id{1};
  std::uint64_t next_transfer = 1;
  // Tables a peer may have in flight to this node at once.
  static constexpr std::size_t max_transfers_per_connection = 4096;

  impl(node_options o, node_handler& h) : options(std::move(o)), handler(h) {
    // A restarted service must bind its old port again at once, with connections of its previous
    // life still in TIME_WAIT: UCX's tcp listener sets SO_REUSEADDR only when asked, and only
    // through the environment (ucp_config_modify refuses the key). A user's own setting wins.
    ::setenv("UCX_TCP_CM_REUSEADDR", "y", 0);
    ucp_config_t* config = nullptr;
    check(ucp_config_read(nullptr, nullptr, &config), "cannot read the UCX configuration");
    if (!options.shared_memory) {
      auto interval = std::to_string(options.keepalive_interval.count()) + "ms";
      auto s = ucp_config_modify(config, "KEEPALIVE_INTERVAL", interval.c_str());
      if (s != UCS_OK)
        logger().warn("{}: cannot set the UCX keepalive interval: {}", options.name,
                      status_text(s));
    }
    ucp_params_t params{};
    params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_NAME;
    params.features = UCP_FEATURE_AM | UCP_FEATURE_WAKEUP;
    params.name = options.name.c_str();
    auto status = ucp_init(&params, config, &context);
    ucp_config_release(config);
    check(status, "cannot start UCX");
    ucp_context_attr_t attr{};
    attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
    if (ucp_context_query(context, &attr) == UCS_OK)
      cuda = (attr.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA)) != 0;
    unsigned major = 0, minor = 0, release = 0;
    ucp_get_version(&major, &minor, &release);
    description = "UCX " + std::to_string(major) + "." + std::to_string(minor) + "." +
                  std::to_string(release) + ", memory types host" + (cuda ? ", cuda" : "") +
                  (options.shared_memory ? ", shared memory allowed" : ", peer error handling");

    ucp_worker_params_t wp{};
    wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    wp.thread_mode = UCS_THREAD_MODE_SINGLE;
    status = ucp_worker_create(context, &wp, &worker);
    if (status != UCS_OK) {
      ucp_cleanup(context);
      check(status, "cannot create a UCX worker");
    }
    status = ucp_worker_get_efd(worker, &event_fd);
    if (status == UCS_OK) {
      ucp_am_handler_param_t hp{};
      hp.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                      UCP_AM_HANDLER_PARAM_FIELD_ARG;
      hp.id = am_id;
      hp.cb = &impl::am_callback;
      hp.arg = this;
      status = ucp_worker_set_am_recv_handler(worker, &hp);
    }
    if (status != UCS_OK) {
      ucp_worker_destroy(worker);
      ucp_cleanup(context);
      check(status, "cannot set up the UCX worker");
    }
    thread = std::thread([this] { run(); });
    thread_id = thread.get_id();
  }

  ~impl() { stop(); }

  // ---- the progress thread ----------------------------------------------------------------

  void run() noexcept {
    current = this;
    for (;;) {
      std::deque<std::function<void()>> batch;
      bool stop_now;
      {
        std::lock_guard lock(mutex);
        batch.swap(commands);
        stop_now = stopping;
      }
      for (auto& c : batch) run_command(c);
      // Progress is bounded per turn: while a long transfer streams, progress never runs dry,
      // and queued sends (heartbeats among them) must not wait for it to end.
      bool busy = true;
      for (int turn = 0; turn < max_progress_per_turn; ++turn) {
        if (ucp_worker_progress(worker) == 0) {
          busy = false;
          break;
        }
      }
      try {
        handler.on_turn_end();
      } catch (const std::exception& e) {
        logger().error("{}: on_turn_end threw: {}", options.name, e.what());
      }
      handle_failures();
      check_deadlines();
      if (stop_now) break;
      if (busy) continue;
      {
        std::lock_guard lock(mutex);
        if (!commands.empty() || stopping) continue;
      }
      if (!failed.empty()) continue;
      auto s = ucp_worker_arm(worker);
      if (s == UCS_ERR_BUSY) continue;
      pollfd p{event_fd, POLLIN, 0};
      (void)::poll(&p, 1, 10);
    }
    teardown();
  }

  void run_command(std::function<void()>& c) noexcept {
    try {
      c();
    } catch (const std::exception& e) {
      logger().error("{}: transport command failed: {}", options.name, e.what());
    }
  }

  // Runs `f` on the progress thread: now when called there, else queued. False once the node
  // is stopping (`f` is dropped).
  bool post(std::function<void()> f) {
    if (std::this_thread::get_id() == thread_id) {
      f();
      return true;
    }
    {
      std::lock_guard lock(mutex);
      if (stopping) return false;
      commands.push_back(std::move(f));
    }
    (void)ucp_worker_signal(worker);
    return true;
  }

  void teardown() noexcept {
    // Connection requests that arrive from here on are refused. The listeners live until no
    // more progress is made: UCX 1.13 delivers a request already in its handshake to the
    // listener's callback during a later progress even when the listener is gone (a crash in
    // ucp_cm_server_conn_request_cb when a worker reconnected while the scheduler stopped).
    refusing = true;
    for (auto& [id, c] : connections) {
      if (c.st == state::open && !c.raw) send_frame(c, msg_goodbye, {}, {});
    }
    for (int i = 0; i < 20; ++i) (void)ucp_worker_progress(worker);
    std::vector<connection_id> ids;
    for (auto& [id, c] : connections) ids.push_back(id);
    tearing_down = true;
    for (auto id : ids) drop(id, "the node shut down", false);
    // Force-closed endpoints complete their close requests during progress: wait for those
    // (at most 200 ms), not a fixed time, so that a short-lived client exits at once.
    auto until = clock_type::now() + std::chrono::milliseconds(200);
    auto busy = [&] {
      return std::any_of(closing.begin(), closing.end(),
                         [](void* r) { return ucp_request_check_status(r) == UCS_INPROGRESS; });
    };
    while (busy() && clock_type::now() < until) {
      if (ucp_worker_progress(worker) == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (int i = 0; i < 20; ++i) (void)ucp_worker_progress(worker);
    for (auto* r : closing) ucp_request_free(r);
    closing.clear();
    for (auto* l : listeners) ucp_listener_destroy(l);
    listeners.clear();
    ucp_worker_destroy(worker);
    ucp_cleanup(context);
    worker = nullptr;
    context = nullptr;
  }

  void stop() noexcept {
    {
      std::lock_guard lock(mutex);
      if (stopping) {
        if (!thread.joinable()) return;
      }
      stopping = true;
    }
    if (thread.joinable()) {
      (void)ucp_worker_signal(worker);
      thread.join();
    }
  }

  // ---- connections ------------------------------------------------------------------------

  connection* find(connection_id id) {
    auto it = connections.find(id);
    return it == connections.end() ? nullptr : &it->second;
  }

  ucp_ep_h create_ep(const ucp_ep_params_t& base, connection& c) {
    ucp_ep_params_t p = base;
    p.field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLER | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
    p.err_mode = options.shared_memory ? UCP_ERR_HANDLING_MODE_NONE : UCP_ERR_HANDLING_MODE_PEER;
    p.err_handler.cb = &impl::error_callback;
    p.err_handler.arg = reinterpret_cast<void*>(static_cast<std::uintptr_t>(c.id));
    ucp_ep_h ep = nullptr;
    check(ucp_ep_create(worker, &p, &ep), "cannot create an endpoint to " + c.address);
    return ep;
  }

  connection& add(connection c) {
    {
      std::lock_guard lock(mutex);
      addresses[c.id] = c.address;
    }
    by_ep[c.ep] = c.id;
    auto id = c.id;
    return connections.emplace(id, std::move(c)).first->second;
  }

  // Closes the endpoint at once and forgets the connection; reports it when it was reported
  // connected. `graceful`: the peer said goodbye or we did; otherwise this is a failure.
  void drop(connection_id id, std::string reason, bool report = true) {
    auto it = connections.find(id);
    if (it == connections.end()) return;
    auto c = std::move(it->second);
    connections.erase(it);
    by_ep.erase(c.ep);
    {
      std::lock_guard lock(mutex);
      addresses.erase(id);
    }
    if (c.ep != nullptr) {
      ucp_request_param_t p{};
      p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
      p.flags = UCP_EP_CLOSE_FLAG_FORCE;
      auto* r = ucp_ep_close_nbx(c.ep, &p);
      if (UCS_PTR_IS_PTR(r)) {
        if (tearing_down)
          closing.push_back(r);  // teardown waits for it
        else
          ucp_request_free(r);
      }
    }
    if (c.ready) {
      c.ready->set_exception(std::make_exception_ptr(
          transport_error("connection to " + c.address + " failed: " + reason)));
    }
    if (c.reported && report) {
      try {
        handler.on_disconnected(id, reason);
      } catch (const std::exception& e) {
        logger().error("{}: on_disconnected threw: {}", options.name, e.what());
      }
    }
  }

  // Rejects input from a peer: logs it, tells the peer why when it can, and drops it.
  void reject(connection& c, const std::string& why) {
    logger().warn("{}: dropping peer {}: {}", options.name, c.address, why);
    {
      std::lock_guard lock(mutex);
      ++stats.rejected_connections;
    }
    if (c.st == state::closing || c.st == state::closed) return;
    byte_writer w;
    w.put_string(why);
    send_frame(c, msg_reject, std::move(w.bytes()), {});
    begin_close(c, why);
  }

  // Stops reading from the connection and drops it after close_grace, so that a goodbye or a
  // reject that was just queued can still leave.
  void begin_close(connection& c, const std::string& reason) {
    c.st = state::closing;
    c.close_reason = reason;
    c.deadline = clock_type::now() + close_grace;
  }

  void check_deadlines() {
    auto now = clock_type::now();
    std::vector<std::pair<connection_id, std::string>> expired;
    for (auto& [id, c] : connections) {
      if (c.deadline == clock_type::time_point{} || now < c.deadline) continue;
      if (c.st == state::closing) {
        expired.emplace_back(id, c.close_reason);
      } else if (c.st == state::awaiting_hello || c.st == state::awaiting_welcome) {
        logger().warn("{}: dropping peer {}: no handshake within {} ms", options.name, c.address,
                      options.handshake_timeout.count());
        std::lock_guard lock(mutex);
        ++stats.rejected_connections;
        expired.emplace_back(id, "no handshake in time");
      }
    }
    for (auto& [id, why] : expired) drop(id, why);
  }

  void handle_failures() {
    while (!failed.empty()) {
      auto [id, why] = failed.front();
      failed.pop_front();
      auto* c = find(id);
      if (c == nullptr) continue;
      if (c->st == state::closing) {
        drop(id, c->close_reason);
      } else {
        logger().info("{}: peer {} failed: {}", options.name, c->address, why);
        drop(id, "peer " + c->address + " failed: " + why);
      }
    }
  }

  static void error_callback(void* arg, ucp_ep_h, ucs_status_t status) noexcept {
    // Only ever called during progress, on the progress thread; the endpoint is closed later,
    // outside UCX's callback.
    auto id = static_cast<connection_id>(reinterpret_cast<std::uintptr_t>(arg));
    current->failed.emplace_back(id, status_text(status));
  }

  static thread_local impl* current;

  // ---- listening and connecting -----------------------------------------------------------

  static void conn_callback(ucp_conn_request_h request, void* arg) noexcept {
    auto* self = static_cast<impl*>(arg);
    try {
      self->accept(request);
    } catch (const std::exception& e) {
      logger().warn("{}: refused a connection: {}", self->options.name, e.what());
    }
  }

  void accept(ucp_conn_request_h request) {
    ucp_conn_request_attr_t attr{};
    attr.field_mask = UCP_CONN_REQUEST_ATTR_FIELD_CLIENT_ADDR;
    std::string address = "unknown";
    if (ucp_conn_request_query(request, &attr) == UCS_OK)
      address = sockaddr_text(attr.client_address);
    if (refusing) {
      for (auto* l : listeners) (void)ucp_listener_reject(l, request);
      return;
    }
    std::size_t pending = 0;
    for (auto& [id, c] : connections) pending += c.st == state::awaiting_hello ? 1 : 0;
    if (pending >= max_pending_handshakes) {
      logger().warn("{}: refusing {}: {} connections are still in their handshake", options.name,
                    address, pending);
      for (auto* l : listeners) (void)ucp_listener_reject(l, request);
      return;
    }
    connection c;
    c.id = next_id++;
    c.address = address;
    c.inbound = true;
    c.st = state::awaiting_hello;
    c.deadline = clock_type::now() + options.handshake_timeout;
    ucp_ep_params_t p{};
    p.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST;
    p.conn_request = request;
    c.ep = create_ep(p, c);
    add(std::move(c));
  }

  int listen_now(const std::string& host, int port) {
    auto addr = resolve(host, port);
    ucp_listener_params_t p{};
    p.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
    p.sockaddr.addr = reinterpret_cast<const sockaddr*>(&addr);
    p.sockaddr.addrlen = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    p.conn_handler.cb = &impl::conn_callback;
    p.conn_handler.arg = this;
    ucp_listener_h listener = nullptr;
    check(ucp_listener_create(worker, &p, &listener),
          "cannot listen on " + host + ":" + std::to_string(port));
    listeners.push_back(listener);
    ucp_listener_attr_t attr{};
    attr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
    check(ucp_listener_query(listener, &attr), "cannot query the listener");
    auto bound = sockaddr_text(attr.sockaddr);
    return std::stoi(bound.substr(bound.rfind(':') + 1));
  }

  connection_id connect_now(const std::string& host, int port, bool raw,
                            std::shared_ptr<std::promise<void>> ready) {
    auto addr = resolve(host, port);
    connection c;
    c.id = next_id++;
    c.address = host + ":" + std::to_string(port);
    c.inbound = false;
    c.raw = raw;
    c.st = raw ? state::open : state::awaiting_welcome;
    c.deadline = raw ? clock_type::time_point{} : clock_type::now() + options.connect_timeout;
    ucp_ep_params_t p{};
    p.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR;
    p.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
    p.sockaddr.addr = reinterpret_cast<const sockaddr*>(&addr);
    p.sockaddr.addrlen = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    c.ep = create_ep(p, c);
    if (!raw) c.ready = ready;
    auto& added = add(std::move(c));
    if (raw) {
      added.reported = false;
      ready->set_value();
    } else {
      byte_writer w;
      w.put(protocol_version);
      w.put_string(options.token);
      w.put_string(options.name);
      send_frame(added, msg_hello, std::move(w.bytes()), {});
    }
    return added.id;
  }

  // ---- sending ------------------------------------------------------------------------------

  static void send_callback(void* request, ucs_status_t status, void* user) noexcept {
    auto* s = static_cast<send_state*>(user);
    if (status != UCS_OK && status != UCS_ERR_CANCELED) {
      s->self->failed.emplace_back(s->to, "send failed: " + status_text(status));
    }
    delete s;  // NOLINT: UCX hands ownership back through user data
    ucp_request_free(request);
  }

  // Sends one active message: AM header = frame header + `meta`, payload = `body`.
  void send_frame(connection& c, std::uint16_t type, std::vector<std::uint8_t> body,
                  std::vector<std::uint8_t> meta, std::uint16_t flags = 0) {
    auto s = std::make_unique<send_state>();
    s->self = this;
    s->to = c.id;
    s->header = frame_bytes(type, flags, meta, body.size());
    s->body = std::move(body);
    send_am(c, std::move(s), memory_kind::host);
  }

  static std::vector<std::uint8_t> frame_bytes(std::uint16_t type, std::uint16_t flags,
                                               const std::vector<std::uint8_t>& meta,
                                               std::uint64_t body_bytes) {
    frame_header h;
    h.type = type;
    h.flags = flags;
    h.meta_bytes = static_cast<std::uint32_t>(meta.size());
    h.body_bytes = body_bytes;
    auto fh = encode_frame_header(h);
    std::vector<std::uint8_t> out(fh.begin(), fh.end());
    out.insert(out.end(), meta.begin(), meta.end());
    return out;
  }

  // A table goes as one message with its layout, then one message per non-empty buffer, each a
  // contiguous payload (UCX 1.13 moves contiguous rendezvous data about three times faster over
  // tcp than an I/O vector), received straight into the new column's buffer.
  void send_table_now(connection& c, std::uint16_t type,
                      const std::vector<std::uint8_t>& app_header,
                      std::shared_ptr<const outgoing_table> rows) {
    auto id = next_transfer++;
    byte_writer meta;
    meta.put(id);
    meta.put<std::uint64_t>(rows->body_bytes);
    meta.put_count(app_header.size());
    meta.put_bytes(app_header.data(), app_header.size());
    meta.put_bytes(rows->layout.data(), rows->layout.size());
    send_frame(c, type, {}, std::move(meta.bytes()), frame_flag_table);
    std::uint32_t index = 0;
    for (const auto& seg : rows->segments) {
      if (seg.bytes == 0) continue;
      byte_writer m;
      m.put(id);
      m.put(index++);
      auto s = std::make_unique<send_state>();
      s->self = this;
      s->to = c.id;
      s->header = frame_bytes(type, frame_flag_segment, m.bytes(), seg.bytes);
      s->rows = rows;
      s->data = seg.data;
      s->bytes = seg.bytes;
      send_am(c, std::move(s), rows->kind);
    }
  }

  void send_am(connection& c, std::unique_ptr<send_state> s, memory_kind kind) {
    ucp_request_param_t p{};
    p.op_attr_mask =
        UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
    p.cb.send = &impl::send_callback;
    p.user_data = s.get();
    p.flags = UCP_AM_SEND_FLAG_REPLY;
    const void* payload = s->rows ? s->data : s->body.data();
    std::size_t bytes = s->rows ? s->bytes : s->body.size();
    if (kind == memory_kind::device) {
      p.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMORY_TYPE;
      p.memory_type = UCS_MEMORY_TYPE_CUDA;
    }
    {
      std::lock_guard lock(mutex);
      ++stats.messages_sent;
      stats.bytes_sent += bytes;
    }
    auto* r = ucp_am_send_nbx(c.ep, am_id, s->header.data(), s->header.size(), payload, bytes, &p);
    if (UCS_PTR_IS_ERR(r)) {
      failed.emplace_back(c.id, "send failed: " + status_text(UCS_PTR_STATUS(r)));
      return;
    }
    if (r == nullptr) return;  // completed in place: `s` can go
    (void)s.release();         // send_callback deletes it
  }

  // ---- receiving ----------------------------------------------------------------------------

  static ucs_status_t am_callback(void* arg, const void* header, size_t header_length, void* data,
                                  size_t length, const ucp_am_recv_param_t* param) noexcept {
    auto* self = static_cast<impl*>(arg);
    try {
      return self->receive(static_cast<const std::uint8_t*>(header), header_length, data, length,
                           param);
    } catch (const std::exception& e) {
      logger().error("{}: receive failed: {}", self->options.name, e.what());
      return UCS_OK;
    }
  }

  ucs_status_t receive(const std::uint8_t* header, std::size_t header_length, void* data,
                       std::size_t length, const ucp_am_recv_param_t* param) {
    ucp_ep_h ep = (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) ? param->reply_ep : nullptr;
    auto found = ep ? by_ep.find(ep) : by_ep.end();
    bool rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
    if (found == by_ep.end()) {
      logger().warn("{}: dropped a message from an unknown endpoint", options.name);
      return rndv ? UCS_ERR_REJECTED : UCS_OK;
    }
    auto& c = connections.at(found->second);
    if (c.st == state::closing || c.st == state::closed) return rndv ? UCS_ERR_CANCELED : UCS_OK;
    frame_header h;
    try {
      h = decode_frame_header({header, header_length}, length, options.limits, c.address);
    } catch (const invalid_input& e) {
      reject(c, e.what());
      return rndv ? UCS_ERR_REJECTED : UCS_OK;
    }
    std::span<const std::uint8_t> meta{header + frame_header_bytes, h.meta_bytes};
    {
      std::lock_guard lock(mutex);
      ++stats.messages_received;
      stats.bytes_received += length;
    }
    auto refuse = [&](const std::string& why) {
      reject(c, why);
      return rndv ? UCS_ERR_REJECTED : UCS_OK;
    };
    if (h.type < first_application_type) {
      if (rndv || h.flags != 0 || !meta.empty())
        return refuse("transport message " + std::to_string(h.type) + " with a table or metadata");
      handle_transport_message(c, h.type, {static_cast<const std::uint8_t*>(data), length});
      return UCS_OK;
    }
    if (c.st != state::open)
      return refuse("message type " + std::to_string(h.type) + " before the handshake");
    try {
      if (h.flags == frame_flag_table) return begin_table(c, h, meta, rndv);
      if (h.flags == frame_flag_segment) return receive_segment(c, h, meta, data, length, rndv);
    } catch (const invalid_input& e) {
      return refuse(e.what());
    }
    if (!meta.empty()) return refuse("a control message with metadata");
    if (!rndv) {
      deliver_message(c.id, h.type, {static_cast<const std::uint8_t*>(data), length});
      return UCS_OK;
    }
    auto r = std::make_unique<receive_state>();
    r->self = this;
    r->from = c.id;
    r->type = h.type;
    r->body.resize(length);
    return receive_rndv(c, std::move(r), data, r->body.data(), length);
  }

  // The first message of a table: its layout. Allocates the table's buffers (after checking the
  // layout against the announced size and the limits).
  ucs_status_t begin_table(connection& c, const frame_header& h, std::span<const std::uint8_t> meta,
                           bool rndv) {
    byte_reader mr(meta, "table metadata from peer " + c.address);
    auto id = mr.get<std::uint64_t>("transfer id");
    auto total = mr.get<std::uint64_t>("table bytes");
    auto header_bytes = mr.get_count("application header", 1);
    auto app = mr.get_bytes(header_bytes, "application header");
    auto layout = mr.get_bytes(mr.remaining(), "table layout");
    if (rndv || h.body_bytes != 0) mr.fail("a table's first message carries no body");
    if (total > options.limits.max_table_bytes) {
      mr.fail("a table of " + std::to_string(total) + " bytes exceeds the limit of " +
              std::to_string(options.limits.max_table_bytes));
    }
    if (c.transfers.size() >= max_transfers_per_connection) mr.fail("too many tables in flight");
    if (c.transfers.count(id) != 0) mr.fail("transfer " + std::to_string(id) + " started twice");
    auto t = std::make_shared<incoming_transfer>();
    t->type = h.type;
    t->header.assign(app.begin(), app.end());
    auto* mres = options.receive_resource ? options.receive_resource : &default_host_resource();
    t->rows = std::make_unique<incoming_table>(layout, total, *mres, "peer " + c.address);
    for (const auto& seg : t->rows->segments())
      if (seg.bytes > 0) t->segments.push_back(seg);
    if (t->segments.empty()) {
      deliver_table(c.id, *t);
    } else {
      c.transfers[id] = std::move(t);
    }
    return UCS_OK;
  }

  // One buffer of a table, in sending order, straight into its place.
  ucs_status_t receive_segment(connection& c, const frame_header& h,
                               std::span<const std::uint8_t> meta, void* data, std::size_t length,
                               bool rndv) {
    byte_reader mr(meta, "table segment from peer " + c.address);
    auto id = mr.get<std::uint64_t>("transfer id");
    auto index = mr.get<std::uint32_t>("segment index");
    if (mr.remaining() != 0) mr.fail("trailing metadata");
    auto it = c.transfers.find(id);
    if (it == c.transfers.end()) mr.fail("a segment of unknown transfer " + std::to_string(id));
    auto t = it->second;
    if (t->type != h.type) mr.fail("a segment whose type differs from its table's");
    if (index != t->announced || index >= t->segments.size())
      mr.fail("segment " + std::to_string(index) + " arrived out of order");
    const auto& seg = t->segments[index];
    if (length != seg.bytes) {
      mr.fail("segment " + std::to_string(index) + " has " + std::to_string(length) +
              " bytes where the layout says " + std::to_string(seg.bytes));
    }
    ++t->announced;
    if (!rndv) {
      std::memcpy(const_cast<void*>(seg.data), data, length);
      segment_arrived(c.id, id, *t);
      return UCS_OK;
    }
    auto r = std::make_unique<receive_state>();
    r->self = this;
    r->from = c.id;
    r->type = h.type;
    r->transfer = id;
    r->table = t;
    return receive_rndv(c, std::move(r), data, const_cast<void*>(seg.data), length);
  }

  ucs_status_t receive_rndv(connection& c, std::unique_ptr<receive_state> r, void* desc,
                            void* target, std::size_t length) {
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    p.cb.recv_am = &impl::receive_callback;
    p.user_data = r.get();
    auto* req = ucp_am_recv_data_nbx(worker, desc, target, length, &p);
    if (UCS_PTR_IS_ERR(req)) {
      logger().warn("{}: receive from {} failed: {}", options.name, c.address,
                    status_text(UCS_PTR_STATUS(req)));
      return UCS_INPROGRESS;
    }
    if (req == nullptr) {
      complete_receive(*r);
    } else {
      (void)r.release();  // receive_callback deletes it
    }
    return UCS_INPROGRESS;
  }

  static void receive_callback(void* request, ucs_status_t status, size_t, void* user) noexcept {
    std::unique_ptr<receive_state> r(static_cast<receive_state*>(user));
    if (status == UCS_OK) {
      r->self->complete_receive(*r);
    } else {
      logger().warn("{}: a transfer failed: {}", r->self->options.name, status_text(status));
    }
    ucp_request_free(request);
  }

  void complete_receive(receive_state& r) noexcept {
    if (r.table) {
      segment_arrived(r.from, r.transfer, *r.table);
    } else {
      deliver_message(r.from, r.type, r.body);
    }
  }

  void segment_arrived(connection_id from, std::uint64_t id, incoming_transfer& t) noexcept {
    if (++t.complete < t.segments.size()) return;
    auto* c = find(from);
    if (c == nullptr) return;
    c->transfers.erase(id);
    deliver_table(from, t);
  }

  void deliver_message(connection_id from, std::uint16_t type,
                       std::span<const std::uint8_t> body) noexcept {
    deliver(from, type, [&] { handler.on_message(from, type, body); });
  }

  void deliver_table(connection_id from, incoming_transfer& t) noexcept {
    deliver(from, t.type, [&] { handler.on_table(from, t.type, t.header, t.rows->finish()); });
  }

  template <class F>
  void deliver(connection_id from, std::uint16_t type, F&& f) noexcept {
    auto* c = find(from);
    if (c == nullptr || c->st != state::open) return;
    try {
      f();
    } catch (const invalid_input& e) {
      reject(*c, e.what());
    } catch (const std::exception& e) {
      logger().error("{}: handling message {} from {} failed: {}", options.name, type, c->address,
                     e.what());
    }
  }

  void handle_transport_message(connection& c, std::uint16_t type,
                                std::span<const std::uint8_t> body) {
    try {
      byte_reader r(body, "handshake from peer " + c.address);
      switch (type) {
        case msg_hello: {
          if (!c.inbound || c.st != state::awaiting_hello) return reject(c, "unexpected hello");
          auto version = r.get<std::uint16_t>("version");
          auto token = r.get_string("token");
          auto name = r.get_string("name");
          if (version != protocol_version) {
            return reject(c, "protocol version " + std::to_string(version) + " is not supported");
          }
          if (!same_token(token, options.token)) return reject(c, "wrong cluster token");
          c.name = name;
          c.st = state::open;
          c.deadline = {};
          byte_writer w;
          w.put_string(options.name);
          send_frame(c, msg_welcome, std::move(w.bytes()), {});
          report_connected(c);
          return;
        }
        case msg_welcome: {
          if (c.inbound || c.st != state::awaiting_welcome) return reject(c, "unexpected welcome");
          c.name = r.get_string("name");
          c.st = state::open;
          c.deadline = {};
          report_connected(c);
          if (c.ready) {
            c.ready->set_value();
            c.ready.reset();
          }
          return;
        }
        case msg_reject: {
          auto why = r.get_string("reason");
          logger().warn("{}: peer {} refused us: {}", options.name, c.address, why);
          auto id = c.id;
          if (c.ready) {
            c.ready->set_exception(std::make_exception_ptr(
                transport_error("peer " + c.address + " refused the connection: " + why)));
            c.ready.reset();
          }
          drop(id, "refused by the peer: " + why);
          return;
        }
        case msg_goodbye: {
          begin_close(c, "peer " + c.address + " said goodbye");
          c.deadline = clock_type::now();
          return;
        }
        default:
          return reject(c, "unknown transport message type " + std::to_string(type));
      }
    } catch (const invalid_input& e) {
      reject(c, e.what());
    }
  }

  void report_connected(connection& c) {
    c.reported = true;
    try {
      handler.on_connected(peer_info{c.id, c.address, c.name, c.inbound});
    } catch (const std::exception& e) {
      logger().error("{}: on_connected threw: {}", options.name, e.what());
    }
  }

  // Blocks the calling (non-progress) thread until `f` ran on the progress thread.
  template <class F>
  auto call(F f) -> decltype(f()) {
    using result = decltype(f());
    auto promise = std::make_shared<std::promise<result>>();
    auto future = promise->get_future();
    bool posted = post([promise, f = std::move(f)]() mutable {
      try {
        if constexpr (std::is_void_v<result>) {
          f();
          promise->set_value();
        } else {
          promise->set_value(f());
        }
      } catch (...) {
        promise->set_exception(std::current_exception());
      }
    });
    if (!posted) throw transport_error(options.name + ": the node has shut down");
    if (future.wait_for(options.connect_timeout + std::chrono::seconds(5)) !=
        std::future_status::ready) {
      throw timeout(options.name + ": the transport thread did not answer");
    }
    return future.get();
  }
};

thread_local node::impl* node::impl::current = nullptr;

node::node(node_options options, node_handler& handler)
    : _impl(std::make_unique<impl>(std::move(options), handler)) {}

node::~node() { shutdown(); }

void node::shutdown() noexcept {
  if (_impl) _impl->stop();
}

int node::listen(const std::string& host, int port) {
  return _impl->call([&, host, port] { return _impl->listen_now(host, port); });
}

connection_id node::connect(const std::string& host, int port) {
  auto ready = std::make_shared<std::promise<void>>();
  auto done = ready->get_future();
  auto id =
      _impl->call([&, host, port, ready] { return _impl->connect_now(host, port, false, ready); });
  auto address = host + ":" + std::to_string(port);
  if (done.wait_for(_impl->options.connect_timeout) != std::future_status::ready) {
    close(id);
    throw timeout("no handshake with " + address + " within " +
                  std::to_string(_impl->options.connect_timeout.count()) + " ms");
  }
  done.get();
  return id;
}

connection_id node::connect_raw(const std::string& host, int port) {
  auto ready = std::make_shared<std::promise<void>>();
  return _impl->call(
      [&, host, port, ready] { return _impl->connect_now(host, port, true, ready); });
}

bool node::send(connection_id to, std::uint16_t type, std::vector<std::uint8_t> body) {
  EMBER_EXPECTS(type >= first_application_type, invalid_input,
                "message type " + std::to_string(type) + " is reserved for the transport");
  {
    std::lock_guard lock(_impl->mutex);
    if (_impl->addresses.find(to) == _impl->addresses.end()) return false;
  }
  _impl->post([impl = _impl.get(), to, type, body = std::move(body)]() mutable {
    auto* c = impl->find(to);
    if (c != nullptr && c->st == impl::state::open) impl->send_frame(*c, type, std::move(body), {});
  });
  return true;
}

bool node::send_table(connection_id to, std::uint16_t type, std::vector<std::uint8_t> header,
                      outgoing_table rows) {
  EMBER_EXPECTS(type >= first_application_type, invalid_input,
                "message type " + std::to_string(type) + " is reserved for the transport");
  EMBER_EXPECTS(rows.kind == memory_kind::host || _impl->cuda, invalid_input,
                "UCX here cannot read device memory: stage the table on the host");
  {
    std::lock_guard lock(_impl->mutex);
    if (_impl->addresses.find(to) == _impl->addresses.end()) return false;
  }
  auto shared = std::make_shared<const outgoing_table>(std::move(rows));
  _impl->post([impl = _impl.get(), to, type, header = std::move(header), shared]() mutable {
    auto* c = impl->find(to);
    if (c == nullptr || c->st != impl::state::open) return;
    impl->send_table_now(*c, type, header, std::move(shared));
  });
  return true;
}

bool node::send_raw(connection_id to, std::vector<std::uint8_t> am_header,
                    std::vector<std::uint8_t> body) {
  _impl->post([impl = _impl.get(), to, h = std::move(am_header), b = std::move(body)]() mutable {
    auto* c = impl->find(to);
    if (c == nullptr) return;
    auto s = std::make_unique<impl::send_state>();
    s->self = impl;
    s->to = to;
    s->header = std::move(h);
    s->body = std::move(b);
    impl->send_am(*c, std::move(s), memory_kind::host);
  });
  return true;
}

void node::close(connection_id id) noexcept {
  try {
    _impl->post([impl = _impl.get(), id] {
      auto* c = impl->find(id);
      if (c == nullptr || c->st == impl::state::closing) return;
      if (c->st == impl::state::open && !c->raw) impl->send_frame(*c, msg_goodbye, {}, {});
      impl->begin_close(*c, "closed by " + impl->options.name);
    });
  } catch (...) {
  }
}

std::string node::peer_address(connection_id id) const {
  std::lock_guard lock(_impl->mutex);
  auto it = _impl->addresses.find(id);
  return it == _impl->addresses.end() ? std::string() : it->second;
}

bool node::cuda_aware() const noexcept { return _impl->cuda; }

std::string node::describe() const { return _impl->description; }

node_statistics node::statistics() const {
  std::lock_guard lock(_impl->mutex);
  return _impl->stats;
}

const node_options& node::options() const noexcept { return _impl->options; }

}  // namespace ember::transport
