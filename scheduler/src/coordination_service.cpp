#include <algorithm>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <ember/host/wal.hpp>
#include <spdlog/fmt/fmt.h>

#include "detail/coordination_service.hpp"

namespace ember::detail {
namespace {

using std::chrono::milliseconds;

// Past this many records since the last snapshot, the log is snapshotted and trimmed, so a
// restart replays at most about this many records.
constexpr std::uint64_t checkpoint_records = 100'000;
constexpr std::int64_t max_wait_ms = 24LL * 3600 * 1000;
constexpr std::size_t max_name_bytes = 200;
constexpr std::size_t max_key_bytes = 1024;
constexpr std::size_t max_value_bytes = std::size_t{16} << 20;
constexpr std::size_t max_topic_message_bytes = std::size_t{1} << 20;
constexpr std::uint32_t max_subscriber_buffer = 1'000'000;
// A subscriber's buffer also holds at most this many bytes (its oldest messages go first).
constexpr std::size_t max_subscriber_bytes = std::size_t{64} << 20;

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > max_name_bytes) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '/' || c == '-';
  });
}

void expect_name(const std::string& name, const char* what) {
  EMBER_EXPECTS(valid_name(name), invalid_input,
                std::string(what) + " name '" + name.substr(0, 64) +
                    "' is not 1 to 200 characters of letters, digits and . _ : / -");
}

milliseconds wait_of(const coord_request_msg& r) {
  EMBER_EXPECTS(r.timeout_ms >= 0, invalid_input,
                std::string(to_string(r.op)) + ": a negative timeout (" +
                    std::to_string(r.timeout_ms) + " ms)");
  return milliseconds(std::min(r.timeout_ms, max_wait_ms));
}

std::string consumer_of(transport::connection_id conn) { return "conn-" + std::to_string(conn); }

std::int64_t ms_until(coordination_service::time_point at, coordination_service::time_point now) {
  return std::chrono::duration_cast<milliseconds>(at - now).count();
}

}  // namespace

coordination_service::coordination_service(const std::filesystem::path& dir, send_fn send)
    : _state(dir.empty() ? std::make_unique<coordination_state>()
                         : std::make_unique<coordination_state>(dir, true)),
      _send(std::move(send)) {
  if (!dir.empty()) {
    const auto& r = _state->replay_report();
    _recovery = fmt::format(
        "coordination state {}: replayed snapshot {} and {} records ({} bytes) in {:.3f} s",
        dir.string(), r.snapshot_seq, r.records, r.bytes, r.seconds);
    if (r.dropped_bytes > 0)
      _recovery += fmt::format("; dropped a damaged tail of {} bytes ({})", r.dropped_bytes,
                               r.dropped_reason);
    logger().info("{}", _recovery);
  }
}

// ---- replies ------------------------------------------------------------------------------------

void coordination_service::reply(const reply_to& to, coord_reply_msg m) {
  m.request = to.request;
  _outbox.emplace_back(to.conn, std::move(m));
}

void coordination_service::fail(const reply_to& to, error_kind kind, const std::string& message) {
  coord_reply_msg m;
  m.ok = false;
  m.kind = kind;
  m.message = message;
  reply(to, std::move(m));
}

void coordination_service::flush() {
  if (_outbox.empty()) return;
  try {
    _state->sync();
  } catch (const std::exception& e) {
    // Nothing that is not on disk may be acknowledged.
    logger().error("coordination: the log could not be synced: {}", e.what());
    for (auto& [conn, m] : _outbox) {
      if (!m.ok) continue;
      coord_reply_msg failed;
      failed.request = m.request;
      failed.ok = false;
      failed.message = std::string("the scheduler's log failed: ") + e.what();
      m = std::move(failed);
    }
  }
  auto out = std::move(_outbox);
  _outbox.clear();
  for (const auto& [conn, m] : out) _send(conn, m);
}

// ---- requests -----------------------------------------------------------------------------------

void coordination_service::handle(connection_id from, coord_request_msg request, time_point now) {
  coord_reply_msg reply_msg;
  reply_to to{from, request.request};
  try {
    dispatch(from, request, reply_msg, now);
  } catch (const invalid_input& e) {
    return fail(to, error_kind::invalid_input, e.what());
  } catch (const timeout& e) {
    return fail(to, error_kind::timeout, e.what());
  } catch (const std::exception& e) {
    logger().error("coordination: {} of '{}' failed: {}", to_string(request.op), request.name,
                   e.what());
    return fail(to, error_kind::error, e.what());
  }
}

void coordination_service::dispatch(connection_id from, coord_request_msg& r, coord_reply_msg& m,
                                    time_point now) {
  reply_to to{from, r.request};
  switch (r.op) {
    case coord_op::lock_acquire:
      return lock_acquire(from, r, now);
    case coord_op::lock_renew: {
      expect_name(r.name, "lock");
      m.found = _state->renew(r.name, r.owner, now);
      if (!m.found)
        m.found =
            _state->reclaim(r.name, r.owner, r.token, milliseconds(r.ttl_ms), now).has_value();
      return reply(to, std::move(m));
    }
    case coord_op::lock_release: {
      expect_name(r.name, "lock");
      EMBER_EXPECTS(_state->lock_exists(r.name), invalid_input,
                    "there is no lock '" + r.name + "'");
      auto granted = _state->release(r.name, r.owner, now);
      if (auto w = _lock_waits.find(r.owner); w != _lock_waits.end()) {
        // A waiter withdrawn by `ember lock release`: its acquire ends, not granted.
        reply(w->second.to, coord_reply_msg{});
        _lock_waits.erase(w);
      }
      reply(to, std::move(m));
      return grant(granted);
    }
    case coord_op::lock_check:
      expect_name(r.name, "lock");
      _state->accept_token(r.name, r.token);
      return reply(to, std::move(m));
    case coord_op::lock_list:
      if (!r.name.empty()) {
        expect_name(r.name, "lock");
        EMBER_EXPECTS(_state->lock_exists(r.name), invalid_input,
                      "there is no lock '" + r.name + "'");
      }
      m.items = lock_list(r.name, now);
      return reply(to, std::move(m));

    case coord_op::kv_get: {
      auto e = _state->get(r.name);
      if (e) {
        m.found = true;
        m.version = e->version;
        m.value = std::move(e->value);
      }
      return reply(to, std::move(m));
    }
    case coord_op::kv_set:
    case coord_op::kv_cas: {
      EMBER_EXPECTS(!r.name.empty() && r.name.size() <= max_key_bytes, invalid_input,
                    "a key must have 1 to 1024 bytes, not " + std::to_string(r.name.size()));
      EMBER_EXPECTS(r.value.size() <= max_value_bytes, invalid_input,
                    "the value of key '" + r.name + "' has " + std::to_string(r.value.size()) +
                        " bytes, over the limit of " + std::to_string(max_value_bytes));
      if (r.op == coord_op::kv_cas) {
        auto current = _state->get(r.name);
        auto version = current ? current->version : 0;
        m.version = version;
        if (version != r.expected_version) return reply(to, std::move(m));
      }
      fence(r);
      m.found = true;
      m.version = _state->set(r.name, r.value);
      return reply(to, std::move(m));
    }
    case coord_op::kv_erase: {
      auto current = _state->get(r.name);
      if (!current || (r.has_expected && current->version != r.expected_version))
        return reply(to, std::move(m));
      fence(r);
      m.found = _state->erase(r.name);
      return reply(to, std::move(m));
    }
    case coord_op::kv_list: {
      transport::byte_writer w;
      auto keys = _state->keys(r.name);
      w.put_count(keys.size());
      for (const auto& k : keys) {
        auto e = _state->get(k);
        w.put_string(k);
        w.put<std::uint64_t>(e->version);
        w.put<std::uint64_t>(e->value.size());
      }
      m.items = std::move(w.bytes());
      return reply(to, std::move(m));
    }

    case coord_op::queue_create:
      m.found = _state->queues().create(r.name, r.queue);
      return reply(to, std::move(m));
    case coord_op::queue_drop: {
      _state->queues().drop(r.name);
      reply(to, std::move(m));
      // Whoever waited on it hears that it is gone.
      for (auto& w : _get_waits[r.name])
        fail(w.to, error_kind::invalid_input, "queue '" + r.name + "' was dropped");
      for (auto& w : _put_waits[r.name])
        fail(w.to, error_kind::invalid_input, "queue '" + r.name + "' was dropped");
      _get_waits.erase(r.name);
      _put_waits.erase(r.name);
      return;
    }
    case coord_op::queue_put:
      return queue_put(from, r, now);
    case coord_op::queue_get:
      return queue_get(from, r, now);
    case coord_op::queue_ack_get:
      // One round trip for a consumer's loop: the ack fails the call before anything is taken,
      // and a bad timeout fails it before the ack.
      (void)wait_of(r);
      _state->queues().ack(r.name, r.id, consumer_of(from));
      serve_queue(r.name, now);
      return queue_get(from, r, now);
    case coord_op::queue_ack:
      _state->queues().ack(r.name, r.id, consumer_of(from));
      reply(to, std::move(m));
      return serve_queue(r.name, now);
    case coord_op::queue_list:
      if (!r.name.empty())
        EMBER_EXPECTS(_state->queues().exists(r.name), invalid_input,
                      "queue '" + r.name + "' does not exist");
      m.items = queue_list(r.name);
      return reply(to, std::move(m));

    case coord_op::topic_publish:
      expect_name(r.name, "topic");
      EMBER_EXPECTS(r.value.size() <= max_topic_message_bytes, invalid_input,
                    "a message of " + std::to_string(r.value.size()) + " bytes to topic '" +
                        r.name + "' is over the limit of " +
                        std::to_string(max_topic_message_bytes));
      m.count = topic_publish(r.name, r.value);
      return reply(to, std::move(m));
    case coord_op::topic_subscribe: {
      expect_name(r.name, "topic");
      EMBER_EXPECTS(
          r.buffer >= 1 && r.buffer <= max_subscriber_buffer, invalid_input,
          "a subscriber buffer of " + std::to_string(r.buffer) + " messages (1 to 1000000)");
      auto id = _next_subscription++;
      auto& s = _subscribers[id];
      s.conn = from;
      s.topic = r.name;
      s.buffer = r.buffer;
      _topics[r.name].insert(id);
      m.id = id;
      return reply(to, std::move(m));
    }
    case coord_op::topic_poll:
      return topic_poll(from, r, now);
    case coord_op::topic_unsubscribe: {
      auto it = _subscribers.find(r.id);
      EMBER_EXPECTS(it != _subscribers.end() && it->second.conn == from, invalid_input,
                    "no subscription " + std::to_string(r.id) + " of this client");
      if (it->second.poll) fail(*it->second.poll, error_kind::cancelled, "unsubscribed");
      _topics[it->second.topic].erase(r.id);
      if (_topics[it->second.topic].empty()) _topics.erase(it->second.topic);
      _subscribers.erase(it);
      return reply(to, std::move(m));
    }
  }
  throw invalid_input("unknown coordination operation");
}

// ---- locks --------------------------------------------------------------------------------------

void coordination_service::lock_acquire(connection_id from, coord_request_msg& r, time_point now) {
  expect_name(r.name, "lock");
  auto wait = wait_of(r);
  EMBER_EXPECTS(!r.owner.empty() && r.owner.size() <= max_name_bytes, invalid_input,
                "a lock's owner must have 1 to 200 bytes");
  EMBER_EXPECTS(
      r.ttl_ms > 0 && r.ttl_ms <= max_wait_ms, invalid_input,
      "lock '" + r.name + "': a lease of " + std::to_string(r.ttl_ms) + " ms (1 ms to 24 h)");
  EMBER_EXPECTS(!_lock_waits.contains(r.owner), invalid_input,
                "'" + r.owner + "' already waits for lock '" + r.name + "'");
  auto granted = _state->acquire(r.name, r.owner, r.permits, milliseconds(r.ttl_ms), now);
  if (granted) {
    coord_reply_msg m;
    m.found = true;
    m.token = granted->token;
    m.ttl_ms = r.ttl_ms;
    return reply({from, r.request}, std::move(m));
  }
  if (wait.count() == 0) {
    (void)_state->release(r.name, r.owner, now);         // leaves the queue it just joined
    return reply({from, r.request}, coord_reply_msg{});  // found = false: not granted
  }
  _lock_waits[r.owner] = lock_wait{{from, r.request}, r.name, now + wait};
}

void coordination_service::grant(const std::vector<lock_grant>& grants) {
  for (const auto& g : grants) {
    auto it = _lock_waits.find(g.owner);
    if (it == _lock_waits.end()) continue;  // granted to nobody waiting: expires at its ttl
    coord_reply_msg m;
    m.found = true;
    m.token = g.token;
    auto now = std::chrono::steady_clock::now();
    m.ttl_ms = std::max<std::int64_t>(1, ms_until(g.expires, now));
    reply(it->second.to, std::move(m));
    _lock_waits.erase(it);
  }
}

void coordination_service::fence(const coord_request_msg& r) {
  if (r.fence_lock.empty()) return;
  expect_name(r.fence_lock, "lock");
  _state->accept_token(r.fence_lock, r.fence_token);
}

std::vector<std::uint8_t> coordination_service::lock_list(const std::string& name,
                                                          time_point now) const {
  transport::byte_writer w;
  auto locks = _state->locks();
  if (!name.empty()) std::erase_if(locks, [&](const lock_summary& l) { return l.name != name; });
  w.put_count(locks.size());
  for (const auto& l : locks) {
    w.put_string(l.name);
    w.put<std::int32_t>(l.permits);
    w.put<std::uint64_t>(l.waiters);
    w.put<std::uint64_t>(l.newest_token);
    w.put_count(l.holders.size());
    for (const auto& h : l.holders) {
      w.put_string(h.owner);
      w.put<std::uint64_t>(h.token);
      w.put<std::int64_t>(ms_until(h.expires, now));
    }
  }
  return std::move(w.bytes());
}

// ---- queues -------------------------------------------------------------------------------------

void coordination_service::queue_put(connection_id from, coord_request_msg& r, time_point now) {
  auto wait = wait_of(r);
  auto& queues = _state->queues();
  // Earlier puts that wait for room go first.
  bool behind = !_put_waits[r.name].empty();
  if (!behind) {
    if (auto id = queues.put(r.name, r.value)) {
      coord_reply_msg m;
      m.id = *id;
      reply({from, r.request}, std::move(m));
      return serve_queue(r.name, now);
    }
  } else {
    (void)queues.info(r.name);  // an unknown queue fails here
  }
  if (wait.count() == 0)
    return fail({from, r.request}, error_kind::timeout, "queue '" + r.name + "' is full");
  EMBER_EXPECTS(r.value.size() <= queues.info(r.name).options.max_message_bytes, invalid_input,
                "queue '" + r.name + "': a message of " + std::to_string(r.value.size()) +
                    " bytes is over its limit");
  _put_waits[r.name].push_back(put_wait{{from, r.request}, std::move(r.value), now + wait});
}

void coordination_service::queue_get(connection_id from, coord_request_msg& r, time_point now) {
  auto wait = wait_of(r);
  auto& waits = _get_waits[r.name];
  if (waits.empty()) {
    if (auto msg = _state->queues().get(r.name, consumer_of(from), now)) {
      coord_reply_msg m;
      m.found = true;
      m.id = msg->id;
      m.deliveries = msg->deliveries;
      m.value = std::move(msg->payload);
      reply({from, r.request}, std::move(m));
      return serve_queue(r.name, now);
    }
  } else {
    (void)_state->queues().info(r.name);
  }
  if (wait.count() == 0) return reply({from, r.request}, coord_reply_msg{});
  waits.push_back(get_wait{{from, r.request}, now + wait});
}

void coordination_service::serve_queue(const std::string& queue, time_point now) {
  auto& queues = _state->queues();
  if (!queues.exists(queue)) return;
  // Room first: a put that waited becomes a message a waiting get can take.
  auto& puts = _put_waits[queue];
  while (!puts.empty()) {
    auto id = queues.put(queue, puts.front().payload);
    if (!id) break;
    coord_reply_msg m;
    m.id = *id;
    reply(puts.front().to, std::move(m));
    puts.pop_front();
  }
  auto& gets = _get_waits[queue];
  while (!gets.empty()) {
    auto msg = queues.get(queue, consumer_of(gets.front().to.conn), now);
    if (!msg) break;
    coord_reply_msg m;
    m.found = true;
    m.id = msg->id;
    m.deliveries = msg->deliveries;
    m.value = std::move(msg->payload);
    reply(gets.front().to, std::move(m));
    gets.pop_front();
  }
  if (puts.empty()) _put_waits.erase(queue);
  if (gets.empty()) _get_waits.erase(queue);
}

std::vector<std::uint8_t> coordination_service::queue_list(const std::string& name) const {
  auto& queues = _state->queues();
  std::vector<queue_info> list =
      name.empty() ? queues.list() : std::vector<queue_info>{queues.info(name)};
  transport::byte_writer w;
  w.put_count(list.size());
  for (const auto& q : list) {
    w.put_string(q.name);
    w.put<std::uint64_t>(q.options.capacity);
    w.put<std::uint8_t>(q.options.durable ? 1 : 0);
    w.put<std::int64_t>(q.options.visibility_timeout.count());
    w.put<std::uint64_t>(q.options.max_message_bytes);
    for (auto v : {q.ready, q.in_flight, q.bytes, q.accepted, q.acked, q.redelivered})
      w.put<std::uint64_t>(v);
  }
  return std::move(w.bytes());
}

// ---- topics -------------------------------------------------------------------------------------

std::uint64_t coordination_service::topic_publish(const std::string& topic,
                                                  const std::vector<std::uint8_t>& payload) {
  auto it = _topics.find(topic);
  if (it == _topics.end()) return 0;
  for (auto id : it->second) {
    auto& s = _subscribers.at(id);
    // A full buffer drops its oldest message: a slow subscriber never holds the publisher up.
    s.messages.push_back(payload);
    s.bytes += payload.size();
    while (s.messages.size() > s.buffer || s.bytes > max_subscriber_bytes) {
      s.bytes -= s.messages.front().size();
      s.messages.pop_front();
      ++s.lost;
    }
    if (s.poll) deliver(s);
  }
  return it->second.size();
}

void coordination_service::publish(const std::string& topic, const std::string& payload,
                                   time_point) {
  if (!_topics.contains(topic)) return;
  (void)topic_publish(topic, std::vector<std::uint8_t>(payload.begin(), payload.end()));
  flush();
}

void coordination_service::topic_poll(connection_id from, coord_request_msg& r, time_point now) {
  auto wait = wait_of(r);
  auto it = _subscribers.find(r.id);
  if (it == _subscribers.end() || it->second.conn != from) {
    // Not this connection's (the scheduler restarted, or the client reconnected): found = false
    // tells the client to subscribe again.
    return reply({from, r.request}, coord_reply_msg{});
  }
  auto& s = it->second;
  if (s.poll) fail(*s.poll, error_kind::cancelled, "a newer poll replaced this one");
  s.poll = reply_to{from, r.request};
  s.poll_max = std::max<std::uint32_t>(1, r.max_messages);
  s.poll_deadline = now + wait;
  if (!s.messages.empty() || wait.count() == 0) deliver(s);
}

void coordination_service::deliver(subscriber& s) {
  coord_reply_msg m;
  m.found = true;  // the subscription exists (it may have no messages)
  transport::byte_writer w;
  auto n = std::min<std::size_t>(s.messages.size(), s.poll_max);
  w.put_count(n);
  for (std::size_t i = 0; i < n; ++i) {
    w.put<std::uint64_t>(i == 0 ? s.lost : 0);
    w.put<std::uint64_t>(s.messages.front().size());
    w.put_bytes(s.messages.front().data(), s.messages.front().size());
    s.bytes -= s.messages.front().size();
    s.messages.pop_front();
  }
  m.lost = n > 0 ? s.lost : 0;
  if (n > 0) s.lost = 0;
  m.count = n;
  m.items = std::move(w.bytes());
  reply(*s.poll, std::move(m));
  s.poll.reset();
}

// ---- time and departures ------------------------------------------------------------------------

void coordination_service::disconnected(connection_id conn, time_point now) {
  // Its lock waits leave their queues (its leases stay until their ttl: a holder whose link
  // blinked can still renew).
  for (auto it = _lock_waits.begin(); it != _lock_waits.end();) {
    if (it->second.to.conn == conn) {
      try {
        (void)_state->release(it->second.name, it->first, now);
      } catch (const invalid_input&) {
      }
      it = _lock_waits.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [queue, list] : _get_waits)
    std::erase_if(list, [&](const get_wait& w) { return w.to.conn == conn; });
  for (auto& [queue, list] : _put_waits)
    std::erase_if(list, [&](const put_wait& w) { return w.to.conn == conn; });
  for (const auto& queue : _state->queues().consumer_gone(consumer_of(conn)))
    serve_queue(queue, now);
  for (auto it = _subscribers.begin(); it != _subscribers.end();) {
    if (it->second.conn == conn) {
      _topics[it->second.topic].erase(it->first);
      if (_topics[it->second.topic].empty()) _topics.erase(it->second.topic);
      it = _subscribers.erase(it);
    } else {
      ++it;
    }
  }
  // Lock releases above may have granted leases to waiters of other clients.
  grant(_state->expire(now));
}

void coordination_service::tick(time_point now) {
  grant(_state->expire(now));
  for (auto it = _lock_waits.begin(); it != _lock_waits.end();) {
    if (it->second.deadline <= now) {
      try {
        (void)_state->release(it->second.name, it->first, now);
      } catch (const invalid_input&) {
      }
      reply(it->second.to, coord_reply_msg{});  // found = false: not granted in time
      it = _lock_waits.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& queue : _state->queues().expire(now)) serve_queue(queue, now);
  for (auto& [queue, list] : _get_waits) {
    // Any waiter may be past its deadline (timeouts differ): found = false, nothing came.
    std::erase_if(list, [&](const get_wait& w) {
      if (w.deadline > now) return false;
      reply(w.to, coord_reply_msg{});
      return true;
    });
  }
  for (auto& [queue, list] : _put_waits) {
    std::erase_if(list, [&](const put_wait& w) {
      if (w.deadline > now) return false;
      fail(w.to, error_kind::timeout, "queue '" + queue + "' stayed full for the timeout");
      return true;
    });
  }
  for (auto& [id, s] : _subscribers)
    if (s.poll && s.poll_deadline <= now) deliver(s);
  if (_state->records_since_checkpoint() >= checkpoint_records) {
    auto started = std::chrono::steady_clock::now();
    _state->checkpoint();
    logger().info(
        "coordination: snapshot written in {:.3f} s",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  flush();
}

}  // namespace ember::detail
