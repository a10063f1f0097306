#include <cstring>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/coordination_client.hpp>
#include <ember/scheduler/plan.hpp>
#include <ember/scheduler/plan_codec.hpp>
#include <ember/transport/byte_codec.hpp>

#include "detail/coordination_session.hpp"

namespace ember {
namespace {

using detail::coord_op;
using detail::coord_reply_msg;
using detail::coord_request_msg;
using std::chrono::milliseconds;

coord_request_msg request(coord_op op, const std::string& name) {
  coord_request_msg r;
  r.op = op;
  r.name = name;
  return r;
}

void expect_wait(milliseconds timeout, const char* what) {
  EMBER_EXPECTS(
      timeout.count() >= 0, invalid_input,
      std::string(what) + ": a negative timeout (" + std::to_string(timeout.count()) + " ms)");
}

void set_fence(coord_request_msg& r, const std::optional<fence>& guard) {
  if (!guard) return;
  EMBER_EXPECTS(!guard->lock.empty(), invalid_input, "a fence needs the name of its lock");
  r.fence_lock = guard->lock;
  r.fence_token = guard->token;
}

std::vector<std::uint8_t> bytes_of(const std::string& s) {
  std::vector<std::uint8_t> out(s.size());
  if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());
  return out;
}

std::shared_ptr<detail::coordination_session> expect_session(
    const std::shared_ptr<detail::coordination_session>& s, const char* what) {
  EMBER_EXPECTS(s != nullptr, invalid_input, std::string("an empty ") + what + " handle");
  return s;
}

}  // namespace

// ---- lease --------------------------------------------------------------------------------------

lease::lease(std::shared_ptr<detail::lease_state> state) : _state(std::move(state)) {}
lease::lease(lease&&) noexcept = default;
lease& lease::operator=(lease&& other) noexcept {
  if (this != &other) {
    lease replaced(std::move(*this));  // let go as its destructor does
    _state = std::move(other._state);
  }
  return *this;
}
namespace {
// Ends a lease locally; the session and request that give it back to the scheduler, or nothing
// when it was not renewing any more (released, detached or lost) or the client is gone.
std::optional<std::pair<std::shared_ptr<detail::coordination_session>, coord_request_msg>>
take_release(detail::lease_state* s) {
  if (s == nullptr) return std::nullopt;
  bool renewing = s->renewing.exchange(false);
  bool was_held = s->held.exchange(false);
  auto session = s->session.lock();
  if (!renewing || !was_held || !session) return std::nullopt;
  auto r = request(coord_op::lock_release, s->name);
  r.owner = s->owner;
  return std::pair{std::move(session), std::move(r)};
}
}  // namespace

lease::~lease() {
  auto give_back = take_release(_state.get());
  if (!give_back) return;
  try {
    // Briefly: a destructor must not hang on a scheduler that is away (the lease then ends at
    // its ttl).
    give_back->first->call_briefly(give_back->second, std::chrono::seconds(2));
  } catch (...) {
    // A lease that expired or a scheduler that is gone: nothing left to give back.
  }
}

const std::string& lease::name() const {
  EMBER_EXPECTS(_state, invalid_input, "an empty lease");
  return _state->name;
}
const std::string& lease::owner() const {
  EMBER_EXPECTS(_state, invalid_input, "an empty lease");
  return _state->owner;
}
fencing_token lease::token() const {
  EMBER_EXPECTS(_state, invalid_input, "an empty lease");
  return _state->token;
}
std::chrono::milliseconds lease::ttl() const {
  EMBER_EXPECTS(_state, invalid_input, "an empty lease");
  return _state->ttl;
}
bool lease::held() const { return _state && _state->held.load(); }

bool lease::renew() {
  if (!held()) return false;
  auto session = _state->session.lock();
  if (!session) return false;
  auto r = request(coord_op::lock_renew, _state->name);
  r.owner = _state->owner;
  r.token = _state->token;
  r.ttl_ms = _state->ttl.count();
  if (!session->call(r).found) {
    _state->held = false;
    _state->renewing = false;
  }
  return _state->held.load();
}

void lease::release() {
  if (auto give_back = take_release(_state.get())) give_back->first->call(give_back->second);
}

void lease::detach() {
  if (_state) _state->renewing = false;
}

// ---- distributed_lock ---------------------------------------------------------------------------

distributed_lock::distributed_lock(std::shared_ptr<detail::coordination_session> session,
                                   std::string name, int permits)
    : _session(std::move(session)), _name(std::move(name)), _permits(permits) {}

std::optional<lease> distributed_lock::try_acquire(milliseconds timeout, milliseconds ttl) {
  expect_wait(timeout, ("lock '" + _name + "'").c_str());
  auto session = expect_session(_session, "lock");
  auto r = request(coord_op::lock_acquire, _name);
  r.owner = session->new_owner();
  r.permits = _permits;
  r.ttl_ms = ttl.count();
  r.timeout_ms = timeout.count();
  auto reply = session->call(r, timeout);
  if (!reply.found) return std::nullopt;  // not free within the timeout
  auto state = std::make_shared<detail::lease_state>();
  state->session = session;
  state->name = _name;
  state->owner = r.owner;
  state->token = reply.token;
  state->ttl = milliseconds(reply.ttl_ms);
  session->track(state);
  return lease(std::move(state));
}

lease distributed_lock::acquire(milliseconds timeout, milliseconds ttl) {
  auto l = try_acquire(timeout, ttl);
  if (!l)
    throw ember::timeout("lock '" + _name + "' was not free within " +
                         std::to_string(timeout.count()) + " ms");
  return std::move(*l);
}

void distributed_lock::check(fencing_token token) {
  auto r = request(coord_op::lock_check, _name);
  r.token = token;
  expect_session(_session, "lock")->call(r);
}

void distributed_lock::release(const std::string& owner) {
  auto r = request(coord_op::lock_release, _name);
  r.owner = owner;
  expect_session(_session, "lock")->call(r);
}

// ---- message_queue ------------------------------------------------------------------------------

message_queue::message_queue(std::shared_ptr<detail::coordination_session> session,
                             std::string name)
    : _session(std::move(session)), _name(std::move(name)) {}

void message_queue::create(const queue_options& options) {
  auto r = request(coord_op::queue_create, _name);
  r.queue = options;
  expect_session(_session, "queue")->call(r);
}

void message_queue::drop() {
  expect_session(_session, "queue")->call(request(coord_op::queue_drop, _name));
}

std::uint64_t message_queue::put(std::span<const std::uint8_t> payload, milliseconds timeout) {
  expect_wait(timeout, ("queue '" + _name + "'").c_str());
  auto r = request(coord_op::queue_put, _name);
  r.value.assign(payload.begin(), payload.end());
  r.timeout_ms = timeout.count();
  return expect_session(_session, "queue")->call(r, timeout).id;
}

std::uint64_t message_queue::put(const std::string& text, milliseconds timeout) {
  auto b = bytes_of(text);
  return put(std::span<const std::uint8_t>(b), timeout);
}

std::uint64_t message_queue::put(const table_view& rows, milliseconds timeout) {
  auto b = encode_table_message(rows);
  return put(std::span<const std::uint8_t>(b), timeout);
}

std::vector<std::uint8_t> encode_table_message(const table_view& t) {
  // A plan of one in-memory table source: the plan codec's framing, checksum and checks.
  plan p;
  p.add(table_source{std::make_shared<const table>(copy_table(t)), 1});
  return encode_plan(p);
}

table decode_table_message(std::span<const std::uint8_t> payload, const std::string& what) {
  plan p;
  try {
    p = decode_plan(payload);
  } catch (const invalid_input& e) {
    throw invalid_input(what + " is not a table: " + e.what());
  }
  const auto* source = p.nodes.size() == 1 ? std::get_if<table_source>(&p.nodes[0].op) : nullptr;
  EMBER_EXPECTS(source != nullptr && source->data != nullptr, invalid_input,
                what + " is not a table message");
  return copy_table(source->data->view());
}

table received_message::to_table() const {
  return decode_table_message(payload,
                              "message " + std::to_string(id) + " of queue '" + queue + "'");
}

std::optional<received_message> message_queue::get(milliseconds timeout) {
  expect_wait(timeout, ("queue '" + _name + "'").c_str());
  auto r = request(coord_op::queue_get, _name);
  r.timeout_ms = timeout.count();
  auto reply = expect_session(_session, "queue")->call(r, timeout);
  if (!reply.found) return std::nullopt;
  return received_message{_name, reply.id, std::move(reply.value), reply.deliveries};
}

std::optional<received_message> message_queue::ack_and_get(const received_message& done,
                                                           milliseconds timeout) {
  expect_wait(timeout, ("queue '" + _name + "'").c_str());
  EMBER_EXPECTS(done.queue == _name, invalid_input,
                "a message of queue '" + done.queue + "' acknowledged on queue '" + _name + "'");
  auto r = request(coord_op::queue_ack_get, _name);
  r.id = done.id;
  r.timeout_ms = timeout.count();
  auto reply = expect_session(_session, "queue")->call(r, timeout);
  if (!reply.found) return std::nullopt;
  return received_message{_name, reply.id, std::move(reply.value), reply.deliveries};
}

void message_queue::ack(const received_message& m) {
  EMBER_EXPECTS(m.queue == _name, invalid_input,
                "a message of queue '" + m.queue + "' acknowledged on queue '" + _name + "'");
  ack(m.id);
}

void message_queue::ack(std::uint64_t id) {
  auto r = request(coord_op::queue_ack, _name);
  r.id = id;
  expect_session(_session, "queue")->call(r);
}

namespace detail {
std::vector<queue_info> decode_queue_list(std::span<const std::uint8_t> items) {
  transport::byte_reader rd(items, "queue list");
  auto n = rd.get_count("queues", 8);
  std::vector<queue_info> out;
  for (std::size_t i = 0; i < n; ++i) {
    queue_info q;
    q.name = rd.get_string("name");
    q.options.capacity = rd.get<std::uint64_t>("capacity");
    q.options.durable = rd.get_bool("durable");
    q.options.visibility_timeout = milliseconds(rd.get<std::int64_t>("visibility timeout"));
    q.options.max_message_bytes = rd.get<std::uint64_t>("max message bytes");
    for (auto* v : {&q.ready, &q.in_flight, &q.bytes, &q.accepted, &q.acked, &q.redelivered})
      *v = rd.get<std::uint64_t>("counter");
    out.push_back(std::move(q));
  }
  return out;
}

std::vector<lock_info> decode_lock_list(std::span<const std::uint8_t> items) {
  transport::byte_reader rd(items, "lock list");
  auto n = rd.get_count("locks", 8);
  std::vector<lock_info> out;
  for (std::size_t i = 0; i < n; ++i) {
    lock_info l;
    l.name = rd.get_string("name");
    l.permits = rd.get<std::int32_t>("permits");
    l.waiters = static_cast<std::int64_t>(rd.get<std::uint64_t>("waiters"));
    l.newest_token = rd.get<std::uint64_t>("newest token");
    auto h = rd.get_count("holders", 8);
    for (std::size_t j = 0; j < h; ++j) {
      lock_holder_info x;
      x.owner = rd.get_string("owner");
      x.token = rd.get<std::uint64_t>("token");
      x.expires_in_ms = rd.get<std::int64_t>("expires in");
      l.holders.push_back(std::move(x));
    }
    out.push_back(std::move(l));
  }
  return out;
}
}  // namespace detail

queue_info message_queue::info() {
  auto reply = expect_session(_session, "queue")->call(request(coord_op::queue_list, _name));
  auto list = detail::decode_queue_list(reply.items);
  EMBER_EXPECTS(list.size() == 1, invalid_input, "queue '" + _name + "' does not exist");
  return list.front();
}

// ---- topics -------------------------------------------------------------------------------------

message_topic::message_topic(std::shared_ptr<detail::coordination_session> session,
                             std::string name)
    : _session(std::move(session)), _name(std::move(name)) {}

std::uint64_t message_topic::publish(std::span<const std::uint8_t> payload) {
  auto r = request(coord_op::topic_publish, _name);
  r.value.assign(payload.begin(), payload.end());
  return expect_session(_session, "topic")->call(r).count;
}

std::uint64_t message_topic::publish(const std::string& text) {
  auto b = bytes_of(text);
  return publish(std::span<const std::uint8_t>(b));
}

namespace {
void subscribe_now(detail::subscription_state& s) {
  auto r = request(coord_op::topic_subscribe, s.topic);
  r.buffer = s.buffer;
  auto epoch = s.session->epoch();
  s.id = s.session->call(r).id;
  s.epoch = epoch;
}
}  // namespace

subscription message_topic::subscribe(std::uint32_t buffer) {
  auto state = std::make_shared<detail::subscription_state>();
  state->session = expect_session(_session, "topic");
  state->topic = _name;
  state->buffer = buffer;
  subscribe_now(*state);
  return subscription(std::move(state));
}

subscription::subscription(std::shared_ptr<detail::subscription_state> state)
    : _state(std::move(state)) {}
subscription::subscription(subscription&&) noexcept = default;
subscription& subscription::operator=(subscription&&) noexcept = default;
subscription::~subscription() {
  if (!_state || _state.use_count() > 1) return;
  try {
    if (_state->epoch == _state->session->epoch()) {
      auto r = request(coord_op::topic_unsubscribe, _state->topic);
      r.id = _state->id;
      _state->session->call_briefly(r, std::chrono::seconds(2));
    }
  } catch (...) {
    // Gone with its connection anyway.
  }
}

std::optional<topic_message> subscription::next(milliseconds timeout) {
  EMBER_EXPECTS(_state, invalid_input, "an empty subscription");
  expect_wait(timeout, "a topic subscription");
  auto& s = *_state;
  std::lock_guard lock(s.mutex);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (s.next < s.ready.size()) return std::move(s.ready[s.next++]);
    s.ready.clear();
    s.next = 0;
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) left = milliseconds(0);
    // A reconnect means a new scheduler connection (perhaps a restarted scheduler): subscribe
    // again; what was published in between is lost.
    if (s.epoch != s.session->epoch()) subscribe_now(s);
    auto r = request(coord_op::topic_poll, s.topic);
    r.id = s.id;
    r.max_messages = s.buffer;
    r.timeout_ms = left.count();
    auto reply = s.session->call(r, left);
    if (!reply.found) {  // the scheduler does not know this subscription (any more)
      subscribe_now(s);
      continue;
    }
    transport::byte_reader rd(reply.items, "topic messages");
    auto n = rd.get_count("messages", 16);
    for (std::size_t i = 0; i < n; ++i) {
      topic_message m;
      m.topic = s.topic;
      m.lost_before = rd.get<std::uint64_t>("lost");
      auto bytes = rd.get<std::uint64_t>("payload bytes");
      if (bytes > rd.remaining()) rd.fail("a payload longer than the message");
      auto p = rd.get_bytes(static_cast<std::size_t>(bytes), "payload");
      m.payload.assign(p.begin(), p.end());
      s.lost += m.lost_before;
      s.ready.push_back(std::move(m));
    }
    if (s.ready.empty() && std::chrono::steady_clock::now() >= deadline) return std::nullopt;
  }
}

std::uint64_t subscription::lost() const { return _state ? _state->lost : 0; }

// ---- key/value ----------------------------------------------------------------------------------

key_value::key_value(std::shared_ptr<detail::coordination_session> session)
    : _session(std::move(session)) {}

std::optional<kv_item> key_value::get(const std::string& key) {
  auto reply = expect_session(_session, "key/value")->call(request(coord_op::kv_get, key));
  if (!reply.found) return std::nullopt;
  return kv_item{key, std::move(reply.value), reply.version};
}

std::uint64_t key_value::set(const std::string& key, std::span<const std::uint8_t> value,
                             const std::optional<fence>& guard) {
  auto r = request(coord_op::kv_set, key);
  r.value.assign(value.begin(), value.end());
  set_fence(r, guard);
  return expect_session(_session, "key/value")->call(r).version;
}

std::uint64_t key_value::set(const std::string& key, const std::string& value,
                             const std::optional<fence>& guard) {
  auto b = bytes_of(value);
  return set(key, std::span<const std::uint8_t>(b), guard);
}

std::optional<std::uint64_t> key_value::compare_and_set(const std::string& key,
                                                        std::uint64_t expected_version,
                                                        std::span<const std::uint8_t> value,
                                                        const std::optional<fence>& guard) {
  auto r = request(coord_op::kv_cas, key);
  r.expected_version = expected_version;
  r.value.assign(value.begin(), value.end());
  set_fence(r, guard);
  auto reply = expect_session(_session, "key/value")->call(r);
  if (!reply.found) return std::nullopt;
  return reply.version;
}

bool key_value::erase(const std::string& key, std::optional<std::uint64_t> expected_version,
                      const std::optional<fence>& guard) {
  auto r = request(coord_op::kv_erase, key);
  r.has_expected = expected_version.has_value();
  r.expected_version = expected_version.value_or(0);
  set_fence(r, guard);
  return expect_session(_session, "key/value")->call(r).found;
}

std::vector<kv_item> key_value::list(const std::string& prefix) {
  auto reply = expect_session(_session, "key/value")->call(request(coord_op::kv_list, prefix));
  transport::byte_reader rd(reply.items, "key list");
  auto n = rd.get_count("keys", 20);
  std::vector<kv_item> out;
  for (std::size_t i = 0; i < n; ++i) {
    kv_item item;
    item.key = rd.get_string("key");
    item.version = rd.get<std::uint64_t>("version");
    (void)rd.get<std::uint64_t>("value bytes");
    out.push_back(std::move(item));
  }
  return out;
}

}  // namespace ember
