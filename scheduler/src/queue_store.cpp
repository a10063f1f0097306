#include <algorithm>
#include <ember/host/error.hpp>
#include <ember/scheduler/queue_store.hpp>
#include <ember/transport/byte_codec.hpp>
#include <set>
#include <utility>

namespace ember {
namespace {

using transport::byte_reader;
using transport::byte_writer;

// Log records: what a durable queue must survive a restart with, each applied the same way live
// and on replay. Op codes 32..47 belong to this store (coordination_state forwards them here).
enum class op : std::uint8_t { created = 32, dropped = 33, put = 34, acked = 35 };
constexpr std::uint8_t first_op = 32;
constexpr std::uint8_t last_op = 47;

// Snapshot layout version, first byte of what snapshot() writes.
constexpr std::uint8_t snapshot_version = 1;
constexpr std::size_t max_name_chars = 200;

std::string queue_text(const std::string& name) { return "queue '" + name + "'"; }

std::string options_text(const queue_options& o) {
  return "capacity " + std::to_string(o.capacity) + ", " + (o.durable ? "durable" : "not durable") +
         ", visibility timeout " + std::to_string(o.visibility_timeout.count()) +
         " ms, max message " + std::to_string(o.max_message_bytes) + " bytes";
}

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '/' || c == '-';
}

void check_name(const std::string& name) {
  if (!name.empty() && name.size() <= max_name_chars &&
      std::all_of(name.begin(), name.end(), name_char))
    return;
  // A bad name may be long or hold anything: show a bounded prefix.
  constexpr std::size_t shown = 64;
  auto text = name.size() > shown ? name.substr(0, shown) + "..." : name;
  throw invalid_input("bad queue name '" + text + "' (" + std::to_string(name.size()) +
                      " characters): a queue name is 1.." + std::to_string(max_name_chars) +
                      " characters of [A-Za-z0-9._:/-]");
}

void check_options(const std::string& name, const queue_options& o) {
  EMBER_EXPECTS(o.capacity >= 1 && o.capacity <= max_queue_capacity, invalid_input,
                queue_text(name) + ": capacity " + std::to_string(o.capacity) + " is outside 1.." +
                    std::to_string(max_queue_capacity));
  EMBER_EXPECTS(o.max_message_bytes >= 1 && o.max_message_bytes <= max_queue_message_bytes,
                invalid_input,
                queue_text(name) + ": max_message_bytes " + std::to_string(o.max_message_bytes) +
                    " is outside 1.." + std::to_string(max_queue_message_bytes));
  EMBER_EXPECTS(o.visibility_timeout.count() > 0, invalid_input,
                queue_text(name) + ": a visibility timeout of " +
                    std::to_string(o.visibility_timeout.count()) + " ms (it must be positive)");
}

void put_options(byte_writer& w, const queue_options& o) {
  w.put(o.capacity);
  w.put_bool(o.durable);
  w.put<std::int64_t>(o.visibility_timeout.count());
  w.put(o.max_message_bytes);
}

queue_options get_options(byte_reader& r) {
  queue_options o;
  o.capacity = r.get<std::uint64_t>("capacity");
  o.durable = r.get_bool("durable");
  o.visibility_timeout = std::chrono::milliseconds(r.get<std::int64_t>("visibility timeout"));
  o.max_message_bytes = r.get<std::uint64_t>("max message bytes");
  return o;
}

// now + timeout, saturated: a visibility timeout of years must not overflow the clock.
std::chrono::steady_clock::time_point deadline_after(std::chrono::steady_clock::time_point now,
                                                     std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  auto room = std::chrono::duration_cast<std::chrono::milliseconds>(clock::time_point::max() - now);
  if (timeout >= room) return clock::time_point::max();
  return now + std::chrono::duration_cast<clock::duration>(timeout);
}

template <class Queues>
auto& find_queue(Queues& queues, const std::string& name) {
  auto it = queues.find(name);
  EMBER_EXPECTS(it != queues.end(), invalid_input, "there is no " + queue_text(name));
  return *it->second;
}

}  // namespace

struct queue_store::queue {
  struct delivery {
    std::string consumer;
    time_point deadline;
    queue_message message;
  };

  queue_options options;
  std::uint64_t next_id = 1;
  // Keyed by id, so a message that comes back goes ahead of younger ones.
  std::map<std::uint64_t, queue_message> ready;
  std::map<std::uint64_t, delivery> in_flight;
  // Indexes over in_flight, so expiry and consumer_gone touch only the messages they move.
  std::set<std::pair<time_point, std::uint64_t>> deadlines;
  std::set<std::pair<std::string, std::uint64_t>> by_consumer;
  std::uint64_t bytes = 0;
  std::uint64_t accepted = 0;
  std::uint64_t acked = 0;
  std::uint64_t redelivered = 0;

  [[nodiscard]] std::uint64_t held() const { return ready.size() + in_flight.size(); }

  // Takes `it` out of flight: its index entries go and its message is returned.
  queue_message land(std::map<std::uint64_t, delivery>::iterator it) {
    deadlines.erase({it->second.deadline, it->first});
    by_consumer.erase({it->second.consumer, it->first});
    auto m = std::move(it->second.message);
    in_flight.erase(it);
    return m;
  }

  void make_ready(std::map<std::uint64_t, delivery>::iterator it) {
    auto id = it->first;
    ready.emplace(id, land(it));
  }

  queue_message deliver(const std::string& consumer, time_point now) {
    auto node = ready.extract(ready.begin());
    auto& m = node.mapped();
    ++m.deliveries;
    if (m.deliveries > 1) ++redelivered;
    auto deadline = deadline_after(now, options.visibility_timeout);
    deadlines.emplace(deadline, m.id);
    by_consumer.emplace(consumer, m.id);
    auto out = m;
    in_flight.emplace(m.id, delivery{consumer, deadline, std::move(m)});
    return out;
  }
};

queue_store::queue_store(log_fn log) : _log(std::move(log)) {}

queue_store::~queue_store() = default;

// ---- the durable part ------------------------------------------------------------------------

bool queue_store::owns_record(std::span<const std::uint8_t> record) noexcept {
  return !record.empty() && record[0] >= first_op && record[0] <= last_op;
}

void queue_store::apply(std::span<const std::uint8_t> record) {
  // Live changes come through here too (after validation and logging), so replay rebuilds
  // exactly the state the live path built. Everything is checked before anything changes.
  byte_reader r(record, "queue log record");
  auto kind = r.get<std::uint8_t>("operation");
  switch (static_cast<op>(kind)) {
    case op::created: {
      auto name = r.get_string("queue name");
      auto options = get_options(r);
      if (r.remaining() != 0) r.fail("trailing bytes");
      check_name(name);
      check_options(name, options);
      if (_queues.contains(name)) r.fail(queue_text(name) + " already exists");
      auto q = std::make_unique<queue>();
      q->options = options;
      _queues.emplace(std::move(name), std::move(q));
      return;
    }
    case op::dropped: {
      auto name = r.get_string("queue name");
      if (r.remaining() != 0) r.fail("trailing bytes");
      if (_queues.erase(name) == 0) r.fail("there is no " + queue_text(name));
      return;
    }
    case op::put: {
      auto name = r.get_string("queue name");
      auto id = r.get<std::uint64_t>("message id");
      auto n = r.get<std::uint64_t>("payload bytes");
      auto payload = r.get_bytes(static_cast<std::size_t>(n), "payload");
      if (r.remaining() != 0) r.fail("trailing bytes");
      auto it = _queues.find(name);
      if (it == _queues.end()) r.fail("there is no " + queue_text(name));
      auto& q = *it->second;
      if (id < q.next_id)
        r.fail(queue_text(name) + ": message " + std::to_string(id) + " is not after message " +
               std::to_string(q.next_id - 1));
      if (n > q.options.max_message_bytes)
        r.fail(queue_text(name) + ": a message of " + std::to_string(n) + " bytes");
      q.ready.emplace(id, queue_message{id, {payload.begin(), payload.end()}, 0});
      q.next_id = id + 1;
      q.bytes += n;
      ++q.accepted;
      return;
    }
    case op::acked: {
      auto name = r.get_string("queue name");
      auto id = r.get<std::uint64_t>("message id");
      if (r.remaining() != 0) r.fail("trailing bytes");
      auto it = _queues.find(name);
      if (it == _queues.end()) r.fail("there is no " + queue_text(name));
      auto& q = *it->second;
      // Live, the message is in flight; on replay everything is ready.
      std::uint64_t n = 0;
      if (auto f = q.in_flight.find(id); f != q.in_flight.end()) {
        n = q.land(f).payload.size();
      } else if (auto m = q.ready.find(id); m != q.ready.end()) {
        n = m->second.payload.size();
        q.ready.erase(m);
      } else {
        r.fail(queue_text(name) + ": there is no message " + std::to_string(id));
      }
      q.bytes -= n;
      ++q.acked;
      return;
    }
  }
  r.fail("unknown operation " + std::to_string(kind));
}

void queue_store::snapshot(transport::byte_writer& w) const {
  w.put(snapshot_version);
  std::size_t durable = 0;
  for (const auto& [name, q] : _queues) durable += q->options.durable ? 1 : 0;
  w.put_count(durable);
  for (const auto& [name, q] : _queues) {
    if (!q->options.durable) continue;
    w.put_string(name);
    put_options(w, q->options);
    w.put(q->next_id);
    w.put_count(q->held());
    // Ready and in-flight messages merged by id: restored, all are ready in their original order.
    auto put_message = [&](const queue_message& m) {
      w.put(m.id);
      w.put<std::uint64_t>(m.payload.size());
      w.put_bytes(m.payload.data(), m.payload.size());
    };
    auto r = q->ready.begin();
    auto f = q->in_flight.begin();
    while (r != q->ready.end() || f != q->in_flight.end()) {
      if (f == q->in_flight.end() || (r != q->ready.end() && r->first < f->first)) {
        put_message((r++)->second);
      } else {
        put_message((f++)->second.message);
      }
    }
  }
}

void queue_store::restore(transport::byte_reader& r) {
  // Read whole before anything changes, so a malformed snapshot leaves the store as it was.
  auto version = r.get<std::uint8_t>("queue snapshot version");
  if (version != snapshot_version)
    r.fail("queue snapshot version " + std::to_string(version) + " (this build reads version " +
           std::to_string(snapshot_version) + ")");
  // The smallest queue: a 1-character name, its options, next id and an empty message count.
  constexpr std::size_t min_queue_bytes = 4 + 1 + 8 + 1 + 8 + 8 + 8 + 4;
  constexpr std::size_t min_message_bytes = 8 + 8;
  auto queues = r.get_count("queues", min_queue_bytes);
  std::map<std::string, std::unique_ptr<queue>> restored;
  for (std::size_t i = 0; i < queues; ++i) {
    auto name = r.get_string("queue name");
    auto q = std::make_unique<queue>();
    q->options = get_options(r);
    check_name(name);
    check_options(name, q->options);
    if (!q->options.durable) r.fail(queue_text(name) + " is not durable");
    q->next_id = r.get<std::uint64_t>("next message id");
    auto messages = r.get_count("messages", min_message_bytes);
    std::uint64_t last = 0;
    for (std::size_t k = 0; k < messages; ++k) {
      auto id = r.get<std::uint64_t>("message id");
      auto n = r.get<std::uint64_t>("payload bytes");
      auto payload = r.get_bytes(static_cast<std::size_t>(n), "payload");
      if (id <= last || id >= q->next_id)
        r.fail(queue_text(name) + ": message " + std::to_string(id) + " out of order (after " +
               std::to_string(last) + ", next id " + std::to_string(q->next_id) + ")");
      last = id;
      q->ready.emplace_hint(q->ready.end(), id,
                            queue_message{id, {payload.begin(), payload.end()}, 0});
      q->bytes += n;
    }
    if (restored.contains(name)) r.fail(queue_text(name) + " appears twice");
    restored.emplace(std::move(name), std::move(q));
  }
  // Non-durable queues stay (they are not in any snapshot), unless a durable queue of the
  // snapshot takes their name.
  std::erase_if(_queues, [&](const auto& e) {
    return e.second->options.durable || restored.contains(e.first);
  });
  _queues.merge(restored);
}

// ---- queues ----------------------------------------------------------------------------------

bool queue_store::create(const std::string& name, const queue_options& options) {
  check_name(name);
  check_options(name, options);
  if (auto it = _queues.find(name); it != _queues.end()) {
    const auto& have = it->second->options;
    EMBER_EXPECTS(have == options, invalid_input,
                  queue_text(name) + " exists with other options (" + options_text(have) +
                      "), not " + options_text(options));
    return false;
  }
  byte_writer rec;
  rec.put(static_cast<std::uint8_t>(op::created));
  rec.put_string(name);
  put_options(rec, options);
  if (options.durable && _log) _log(rec.bytes());
  apply(rec.bytes());
  return true;
}

void queue_store::drop(const std::string& name) {
  auto& q = find_queue(_queues, name);
  byte_writer rec;
  rec.put(static_cast<std::uint8_t>(op::dropped));
  rec.put_string(name);
  if (q.options.durable && _log) _log(rec.bytes());
  apply(rec.bytes());
}

std::optional<std::uint64_t> queue_store::put(const std::string& name,
                                              std::span<const std::uint8_t> payload) {
  auto& q = find_queue(_queues, name);
  EMBER_EXPECTS(payload.size() <= q.options.max_message_bytes, invalid_input,
                queue_text(name) + ": a message of " + std::to_string(payload.size()) +
                    " bytes is over the limit of " + std::to_string(q.options.max_message_bytes) +
                    " bytes");
  if (q.held() >= q.options.capacity) return std::nullopt;
  auto id = q.next_id;
  byte_writer rec;
  rec.put(static_cast<std::uint8_t>(op::put));
  rec.put_string(name);
  rec.put(id);
  rec.put<std::uint64_t>(payload.size());
  rec.put_bytes(payload.data(), payload.size());
  if (q.options.durable && _log) _log(rec.bytes());
  apply(rec.bytes());
  return id;
}

std::optional<queue_message> queue_store::get(const std::string& name, const std::string& consumer,
                                              time_point now) {
  auto& q = find_queue(_queues, name);
  if (q.ready.empty()) return std::nullopt;
  return q.deliver(consumer, now);
}

void queue_store::ack(const std::string& name, std::uint64_t id, const std::string& consumer) {
  auto& q = find_queue(_queues, name);
  auto it = q.in_flight.find(id);
  EMBER_EXPECTS(it != q.in_flight.end(), invalid_input,
                queue_text(name) + ": message " + std::to_string(id) +
                    " is not in flight (unknown, already acknowledged or waiting for redelivery)");
  EMBER_EXPECTS(it->second.consumer == consumer, invalid_input,
                queue_text(name) + ": message " + std::to_string(id) + " is in flight to '" +
                    it->second.consumer + "', not to '" + consumer + "'");
  byte_writer rec;
  rec.put(static_cast<std::uint8_t>(op::acked));
  rec.put_string(name);
  rec.put(id);
  if (q.options.durable && _log) _log(rec.bytes());
  apply(rec.bytes());
}

std::vector<std::string> queue_store::expire(time_point now) {
  std::vector<std::string> out;
  for (auto& [name, q] : _queues) {
    bool moved = false;
    while (!q->deadlines.empty() && q->deadlines.begin()->first <= now) {
      q->make_ready(q->in_flight.find(q->deadlines.begin()->second));
      moved = true;
    }
    if (moved) out.push_back(name);
  }
  return out;
}

std::vector<std::string> queue_store::consumer_gone(const std::string& consumer) {
  std::vector<std::string> out;
  for (auto& [name, q] : _queues) {
    bool moved = false;
    for (auto it = q->by_consumer.lower_bound({consumer, 0});
         it != q->by_consumer.end() && it->first == consumer;
         it = q->by_consumer.lower_bound({consumer, 0})) {
      q->make_ready(q->in_flight.find(it->second));
      moved = true;
    }
    if (moved) out.push_back(name);
  }
  return out;
}

std::optional<queue_store::time_point> queue_store::next_deadline() const {
  // One look per queue: each queue keeps its in-flight deadlines sorted.
  std::optional<time_point> out;
  for (const auto& [name, q] : _queues) {
    if (q->deadlines.empty()) continue;
    auto d = q->deadlines.begin()->first;
    if (!out || d < *out) out = d;
  }
  return out;
}

bool queue_store::exists(const std::string& name) const { return _queues.contains(name); }

queue_info queue_store::info(const std::string& name) const {
  const auto& q = find_queue(_queues, name);
  queue_info i;
  i.name = name;
  i.options = q.options;
  i.ready = q.ready.size();
  i.in_flight = q.in_flight.size();
  i.bytes = q.bytes;
  i.accepted = q.accepted;
  i.acked = q.acked;
  i.redelivered = q.redelivered;
  return i;
}

std::vector<queue_info> queue_store::list() const {
  std::vector<queue_info> out;
  out.reserve(_queues.size());
  for (const auto& [name, q] : _queues) out.push_back(info(name));
  return out;
}

}  // namespace ember
