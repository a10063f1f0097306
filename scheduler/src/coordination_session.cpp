#include <unistd.h>

#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <random>
#include <tuple>

#include "detail/coordination_session.hpp"
#include "detail/scheduler_connection.hpp"

namespace ember::detail {
namespace {

using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long past the scheduler's own wait a call waits for the reply on a healthy connection.
constexpr milliseconds answer_grace{10'000};

std::string make_client_id() {
  char host[64] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::random_device rd;
  char tail[16];
  std::snprintf(tail, sizeof tail, "%04x", rd() & 0xffffu);
  return std::string(host) + ":" + std::to_string(::getpid()) + ":" + tail;
}

}  // namespace

coordination_session::coordination_session(std::string address, const client_options& options)
    : _address(std::move(address)), _options(options), _client_id(make_client_id()) {
  EMBER_EXPECTS(options.reconnect_timeout.count() >= 0, invalid_input,
                "negative reconnect timeout");
  std::tie(_net, _conn) = connect_to_scheduler(_address, options, "coordination client", *this);
  _connected = true;
  _reconnect = std::thread([this] { reconnect_loop(); });
  _renew = std::thread([this] { renew_loop(); });
}

coordination_session::~coordination_session() {
  {
    std::lock_guard lock(_mutex);
    _stopping = true;
  }
  _cv.notify_all();
  if (_reconnect.joinable()) _reconnect.join();
  if (_renew.joinable()) _renew.join();
  _net->shutdown();
}

std::string coordination_session::new_owner() {
  return _client_id + "/" + std::to_string(_next_owner++);
}

// ---- calls --------------------------------------------------------------------------------------

coord_reply_msg coordination_session::call_briefly(coord_request_msg r, milliseconds limit) {
  {
    std::lock_guard lock(_mutex);
    if (!_connected)
      throw transport_error("the scheduler at " + _address + " is away (" + _lost_reason + ")");
  }
  return call(std::move(r), {}, limit);
}

coord_reply_msg coordination_session::call(coord_request_msg r, milliseconds wait) {
  return call(std::move(r), wait, std::nullopt);
}

coord_reply_msg coordination_session::call(coord_request_msg r, milliseconds wait,
                                           std::optional<milliseconds> limit) {
  std::unique_lock lock(_mutex);
  EMBER_EXPECTS(!_stopping, invalid_input, "the client is shut down");
  r.request = _next_request++;
  auto id = r.request;
  auto body = encode(r);
  auto& slot = _pending[id];
  slot.body = body;
  if (_connected) {
    auto conn = _conn;
    lock.unlock();
    _net->send(conn, static_cast<std::uint16_t>(msg::coord_request), std::move(body));
    lock.lock();
  }
  struct forget {
    coordination_session* self;
    std::uint64_t id;
    ~forget() { self->_pending.erase(id); }  // runs with the lock held
  } cleanup{this, id};
  auto deadline = clock_type::now() + (limit ? *limit
                                             : std::max(wait, milliseconds(0)) + answer_grace +
                                                   _options.reconnect_timeout);
  for (;;) {
    // The reply may have come while the lock was released for the send: look before waiting.
    _cv.wait_until(lock, std::min(deadline, clock_type::now() + milliseconds(100)),
                   [&] { return _pending.at(id).reply.has_value() || _stopping; });
    auto& p = _pending.at(id);
    if (p.reply) {
      auto reply = std::move(*p.reply);
      if (!reply.ok) throw_error(reply.kind, reply.message);
      return reply;
    }
    if (_stopping) throw transport_error("the client is shut down");
    auto now = clock_type::now();
    if (!_connected && (limit || now - _down_since > _options.reconnect_timeout))
      throw transport_error("lost the scheduler at " + _address + " (" + _lost_reason +
                            ") and could not reach it again within " +
                            std::to_string(_options.reconnect_timeout.count()) + " ms");
    if (now > deadline)
      throw timeout("the scheduler at " + _address + " did not answer a " +
                    std::string(to_string(r.op)) + " request");
  }
}

void coordination_session::on_message(transport::connection_id, std::uint16_t type,
                                      std::span<const std::uint8_t> body) {
  auto m = static_cast<msg>(type);
  if (m != msg::coord_reply)
    throw invalid_input("unexpected message '" + std::string(to_string(m)) +
                        "' from the scheduler");
  auto reply = decode<coord_reply_msg>(m, body, _address);
  {
    std::lock_guard lock(_mutex);
    auto it = _pending.find(reply.request);
    if (it == _pending.end()) return;  // its caller gave up
    it->second.reply = std::move(reply);
  }
  _cv.notify_all();
}

void coordination_session::on_table(transport::connection_id, std::uint16_t type,
                                    std::span<const std::uint8_t>, table) {
  throw invalid_input("unexpected table message '" +
                      std::string(to_string(static_cast<msg>(type))) + "' from the scheduler");
}

void coordination_session::on_disconnected(transport::connection_id id, const std::string& reason) {
  {
    std::lock_guard lock(_mutex);
    if (id != _conn || !_connected) return;
    _connected = false;
    _down_since = clock_type::now();
    _lost_reason = reason;
  }
  _cv.notify_all();
}

// ---- reconnecting -------------------------------------------------------------------------------

void coordination_session::reconnect_loop() {
  auto where = transport::parse_host_port(_address);
  std::unique_lock lock(_mutex);
  for (;;) {
    _cv.wait(lock, [&] { return _stopping || !_connected; });
    if (_stopping) return;
    lock.unlock();
    transport::connection_id conn = 0;
    try {
      conn = _net->connect(where.host, where.port);
    } catch (const std::exception&) {
      // The scheduler is not back yet: try again shortly.
    }
    lock.lock();
    if (conn == 0) {
      _cv.wait_for(lock, milliseconds(200), [&] { return _stopping; });
      continue;
    }
    if (_stopping) return;
    _conn = conn;
    _connected = true;
    ++_epoch;
    std::vector<std::vector<std::uint8_t>> resend;
    for (auto& [id, p] : _pending)
      if (!p.reply) resend.push_back(p.body);
    logger().info("coordination: reconnected to the scheduler at {}; sending {} calls again",
                  _address, resend.size());
    lock.unlock();
    for (auto& body : resend)
      _net->send(conn, static_cast<std::uint16_t>(msg::coord_request), std::move(body));
    lock.lock();
    // Leases are renewed at once: a restarted scheduler gives them back only while nobody else
    // took the lock.
    for (auto& l : _lease_renewals) l.second = clock_type::now();
    _cv.notify_all();
  }
}

// ---- leases -------------------------------------------------------------------------------------

void coordination_session::track(const std::shared_ptr<lease_state>& lease) {
  {
    std::lock_guard lock(_mutex);
    _lease_renewals.emplace_back(lease, clock_type::now() + lease->ttl / 3);
  }
  _cv.notify_all();
}

void coordination_session::renew_loop() {
  std::unique_lock lock(_mutex);
  while (!_stopping) {
    std::erase_if(_lease_renewals, [](const auto& l) {
      auto s = l.first.lock();
      return !s || !s->renewing.load();
    });
    auto now = clock_type::now();
    auto next = now + milliseconds(1000);
    std::vector<std::shared_ptr<lease_state>> due;
    for (auto& [weak, at] : _lease_renewals) {
      if (at <= now) {
        if (auto s = weak.lock()) {
          due.push_back(s);
          at = now + std::max(milliseconds(1), s->ttl / 3);
        }
      }
      next = std::min(next, at);
    }
    if (due.empty()) {
      _cv.wait_until(lock, next);
      continue;
    }
    lock.unlock();
    for (const auto& s : due) {
      if (!s->renewing.load()) continue;
      coord_request_msg r;
      r.op = coord_op::lock_renew;
      r.name = s->name;
      r.owner = s->owner;
      r.token = s->token;
      r.ttl_ms = s->ttl.count();
      try {
        if (!call(r).found && s->renewing.load()) {
          s->held = false;
          s->renewing = false;
          logger().warn("coordination: the lease on lock '{}' (token {}) was lost", s->name,
                        s->token);
        }
      } catch (const std::exception& e) {
        // The scheduler is away: renewing goes on once it is back.
        if (_stopping) break;
        logger().debug("coordination: renewing lock '{}': {}", s->name, e.what());
      }
    }
    lock.lock();
  }
}

}  // namespace ember::detail
