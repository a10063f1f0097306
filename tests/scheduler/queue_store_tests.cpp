// Named message queues driven with a manual clock: FIFO delivery, capacity, visibility timeouts
// and redelivery, acknowledgements, and durability through a real write-ahead log (replay,
// snapshot and restore).
#include <gtest/gtest.h>

#include <cstring>
#include <ember/host/error.hpp>
#include <ember/host/wal.hpp>
#include <ember/scheduler/queue_store.hpp>
#include <ember/transport/byte_codec.hpp>
#include <memory>
#include <string>
#include <vector>

#include "common/temp_dir.hpp"

namespace ember {
namespace {

using namespace std::chrono_literals;
using time_point = queue_store::time_point;
using record = std::vector<std::uint8_t>;

const time_point t0{};

// Copied with memcpy: GCC 12 warns (-Wstringop-overflow, a false positive) about the iterator
// constructor once the literal strings are inlined.
std::vector<std::uint8_t> bytes_of(const std::string& s) {
  std::vector<std::uint8_t> out(s.size());
  if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());
  return out;
}

// Built with += rather than "a" + std::to_string(i): GCC 12 warns (-Wrestrict, a false positive)
// about the inlined operator+.
std::string numbered(std::string prefix, std::uint64_t i) {
  prefix += std::to_string(i);
  return prefix;
}

std::string text_of(const std::vector<std::uint8_t>& b) { return {b.begin(), b.end()}; }

queue_options durable_options() {
  queue_options o;
  o.durable = true;
  return o;
}

// Runs `f`, which must throw ember::invalid_input with every one of `parts` in its message.
template <class F>
void expect_invalid(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one naming " << parts.front();
  } catch (const invalid_input& e) {
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

// A store whose log is a real write_ahead_log in a temporary folder; reopen() starts a fresh
// store and replays the log into it, as the scheduler does at start.
class durable_store {
 public:
  durable_store() { reopen(); }

  void reopen() {
    _store.reset();
    _wal.reset();
    _store = std::make_unique<queue_store>([this](record r) { _wal->append(r); });
    wal_options o;
    o.dir = _dir.path();
    o.sync = false;
    _wal = write_ahead_log::open(
        o,
        [&](std::uint64_t, std::span<const std::uint8_t> state) {
          transport::byte_reader r(state, "queue snapshot");
          _store->restore(r);
          EXPECT_EQ(r.remaining(), 0u);
        },
        [&](std::uint64_t, std::span<const std::uint8_t> rec) {
          EXPECT_TRUE(queue_store::owns_record(rec));
          _store->apply(rec);
        });
  }

  void checkpoint() {
    transport::byte_writer w;
    _store->snapshot(w);
    _wal->snapshot(w.bytes());
  }

  queue_store& operator*() { return *_store; }
  queue_store* operator->() { return _store.get(); }
  [[nodiscard]] std::uint64_t last_seq() const { return _wal->last_seq(); }

 private:
  test::temp_dir _dir{"ember-queue-store"};
  std::unique_ptr<queue_store> _store;
  std::unique_ptr<write_ahead_log> _wal;
};

// Takes every ready message of `name` (as consumer "drain") and returns their payloads in order.
std::vector<std::string> drain(queue_store& s, const std::string& name) {
  std::vector<std::string> out;
  while (auto m = s.get(name, "drain", t0)) out.push_back(text_of(m->payload));
  return out;
}

TEST(queue_store, delivers_in_fifo_order_with_growing_ids) {
  queue_store s(nullptr);
  EXPECT_TRUE(s.create("jobs", {}));
  EXPECT_FALSE(s.get("jobs", "c", t0));
  EXPECT_EQ(s.put("jobs", bytes_of("a")), 1u);
  EXPECT_EQ(s.put("jobs", bytes_of("b")), 2u);
  EXPECT_EQ(s.put("jobs", bytes_of("c")), 3u);
  for (std::uint64_t id = 1; id <= 3; ++id) {
    auto m = s.get("jobs", "c", t0);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->id, id);
    EXPECT_EQ(m->deliveries, 1u);
    EXPECT_EQ(m->payload, bytes_of(std::string(1, static_cast<char>('a' + id - 1))));
    s.ack("jobs", id, "c");
  }
  EXPECT_FALSE(s.get("jobs", "c", t0));
  EXPECT_EQ(s.put("jobs", bytes_of("d")), 4u);
  EXPECT_EQ(s.put("jobs", {}), 5u);  // an empty message is a message
}

TEST(queue_store, a_full_queue_refuses_until_an_ack_frees_a_place) {
  queue_store s(nullptr);
  queue_options o;
  o.capacity = 2;
  s.create("q", o);
  ASSERT_TRUE(s.put("q", bytes_of("1")));
  ASSERT_TRUE(s.put("q", bytes_of("2")));
  EXPECT_FALSE(s.put("q", bytes_of("3")));
  // In flight still counts against the capacity.
  auto m = s.get("q", "c", t0);
  ASSERT_TRUE(m);
  EXPECT_FALSE(s.put("q", bytes_of("3")));
  s.ack("q", m->id, "c");
  EXPECT_EQ(s.put("q", bytes_of("3")), 3u);
  EXPECT_FALSE(s.put("q", bytes_of("4")));
  auto i = s.info("q");
  EXPECT_EQ(i.ready, 2u);
  EXPECT_EQ(i.accepted, 3u);
}

TEST(queue_store, a_visibility_timeout_redelivers_ahead_of_younger_messages) {
  queue_store s(nullptr);
  queue_options o;
  o.visibility_timeout = 100ms;
  s.create("q", o);
  s.put("q", bytes_of("old"));
  s.put("q", bytes_of("young"));
  EXPECT_FALSE(s.next_deadline());
  auto first = s.get("q", "a", t0);
  ASSERT_TRUE(first);
  EXPECT_EQ(s.next_deadline(), t0 + 100ms);
  auto second = s.get("q", "b", t0 + 10ms);
  ASSERT_TRUE(second);
  EXPECT_EQ(s.next_deadline(), t0 + 100ms);
  s.put("q", bytes_of("youngest"));
  EXPECT_TRUE(s.expire(t0 + 99ms).empty());
  EXPECT_EQ(s.expire(t0 + 100ms), std::vector<std::string>{"q"});
  EXPECT_EQ(s.next_deadline(), t0 + 110ms);
  // The expired message comes back before "youngest", with its second delivery counted.
  auto again = s.get("q", "c", t0 + 120ms);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, first->id);
  EXPECT_EQ(text_of(again->payload), "old");
  EXPECT_EQ(again->deliveries, 2u);
  // The first consumer lost it: its late ack is refused; the new holder's goes through.
  expect_invalid([&] { s.ack("q", first->id, "a"); }, {"queue 'q'", "'c'", "'a'"});
  s.ack("q", first->id, "c");
  s.ack("q", second->id, "b");
  auto next = s.get("q", "c", t0 + 130ms);
  ASSERT_TRUE(next);
  EXPECT_EQ(text_of(next->payload), "youngest");
  auto i = s.info("q");
  EXPECT_EQ(i.redelivered, 1u);
  EXPECT_EQ(i.acked, 2u);
  // A timeout of centuries saturates instead of overflowing the clock.
  o.visibility_timeout = std::chrono::milliseconds(INT64_MAX);
  s.create("forever", o);
  s.put("forever", bytes_of("x"));
  ASSERT_TRUE(s.get("forever", "c", t0 + 1s));
  EXPECT_EQ(s.next_deadline(), t0 + 230ms);  // "youngest", delivered at 130 ms
  s.ack("q", next->id, "c");
  EXPECT_EQ(s.next_deadline(), time_point::max());
  EXPECT_TRUE(s.expire(t0 + 24h * 365 * 100).empty());
}

TEST(queue_store, consumer_gone_makes_its_messages_ready_again) {
  queue_store s(nullptr);
  s.create("a", {});
  s.create("b", {});
  s.create("c", {});
  for (int i = 0; i < 3; ++i) {
    s.put("a", bytes_of(numbered("a", i)));
    s.put("b", bytes_of(numbered("b", i)));
  }
  auto a1 = s.get("a", "w1", t0);
  auto a2 = s.get("a", "w2", t0);
  auto a3 = s.get("a", "w1", t0);
  auto b1 = s.get("b", "w2", t0);
  ASSERT_TRUE(a1 && a2 && a3 && b1);
  EXPECT_TRUE(s.consumer_gone("nobody").empty());
  EXPECT_EQ(s.consumer_gone("w1"), std::vector<std::string>{"a"});
  EXPECT_EQ(s.info("a").ready, 2u);
  EXPECT_EQ(s.info("a").in_flight, 1u);
  EXPECT_EQ(s.consumer_gone("w2"), (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(s.next_deadline());
  EXPECT_EQ(drain(s, "a"), (std::vector<std::string>{"a0", "a1", "a2"}));
  EXPECT_EQ(drain(s, "b"), (std::vector<std::string>{"b0", "b1", "b2"}));
}

TEST(queue_store, bad_acks_are_refused_naming_the_queue) {
  queue_store s(nullptr);
  s.create("jobs", {});
  s.put("jobs", bytes_of("x"));
  auto m = s.get("jobs", "a", t0);
  ASSERT_TRUE(m);
  expect_invalid([&] { s.ack("jobs", m->id, "b"); }, {"queue 'jobs'", "in flight to 'a'"});
  expect_invalid([&] { s.ack("jobs", 42, "a"); }, {"queue 'jobs'", "message 42"});
  s.ack("jobs", m->id, "a");
  expect_invalid([&] { s.ack("jobs", m->id, "a"); }, {"queue 'jobs'", "not in flight"});
  expect_invalid([&] { s.ack("other", m->id, "a"); }, {"queue 'other'"});
  EXPECT_EQ(s.info("jobs").acked, 1u);
}

TEST(queue_store, an_oversized_message_is_refused_naming_both_sizes) {
  queue_store s(nullptr);
  queue_options o;
  o.max_message_bytes = 8;
  s.create("small", o);
  EXPECT_TRUE(s.put("small", std::vector<std::uint8_t>(8, 1)));
  expect_invalid([&] { (void)s.put("small", std::vector<std::uint8_t>(9, 1)); },
                 {"queue 'small'", "9 bytes", "8 bytes"});
  EXPECT_EQ(s.info("small").accepted, 1u);
}

TEST(queue_store, bad_names_and_options_are_refused) {
  queue_store s(nullptr);
  expect_invalid([&] { s.create("", {}); }, {"bad queue name"});
  expect_invalid([&] { s.create(std::string(201, 'x'), {}); }, {"201 characters"});
  expect_invalid([&] { s.create("has space", {}); }, {"'has space'"});
  expect_invalid([&] { s.create("caf\xc3\xa9", {}); }, {"bad queue name"});
  EXPECT_TRUE(s.create(std::string(200, 'x'), {}));
  EXPECT_TRUE(s.create("Az09._:/-", {}));
  auto bad = [&](auto change, const std::string& what) {
    queue_options o;
    change(o);
    expect_invalid([&] { s.create("q", o); }, {"queue 'q'", what});
  };
  bad([](queue_options& o) { o.capacity = 0; }, "capacity 0");
  bad([](queue_options& o) { o.capacity = max_queue_capacity + 1; }, "capacity");
  bad([](queue_options& o) { o.max_message_bytes = 0; }, "max_message_bytes 0");
  bad([](queue_options& o) { o.max_message_bytes = max_queue_message_bytes + 1; },
      "max_message_bytes");
  bad([](queue_options& o) { o.visibility_timeout = 0ms; }, "visibility timeout");
  bad([](queue_options& o) { o.visibility_timeout = -1ms; }, "visibility timeout");
  EXPECT_FALSE(s.exists("q"));
  // Unknown queues.
  expect_invalid([&] { (void)s.put("nope", bytes_of("x")); }, {"queue 'nope'"});
  expect_invalid([&] { (void)s.get("nope", "c", t0); }, {"queue 'nope'"});
  expect_invalid([&] { s.drop("nope"); }, {"queue 'nope'"});
  expect_invalid([&] { (void)s.info("nope"); }, {"queue 'nope'"});
}

TEST(queue_store, creating_again_with_the_same_options_is_a_no_op) {
  queue_store s(nullptr);
  queue_options o;
  o.capacity = 5;
  EXPECT_TRUE(s.create("q", o));
  s.put("q", bytes_of("kept"));
  EXPECT_FALSE(s.create("q", o));
  EXPECT_EQ(s.info("q").ready, 1u);
  auto other = o;
  other.capacity = 6;
  expect_invalid([&] { s.create("q", other); }, {"queue 'q'", "capacity 5", "capacity 6"});
  EXPECT_EQ(s.info("q").options, o);
  s.drop("q");
  EXPECT_FALSE(s.exists("q"));
  EXPECT_TRUE(s.create("q", other));
  EXPECT_EQ(s.info("q").ready, 0u);
}

TEST(queue_store, info_and_list_fill_every_field) {
  queue_store s(nullptr);
  queue_options o;
  o.capacity = 7;
  o.visibility_timeout = 50ms;
  o.max_message_bytes = 100;
  s.create("b", o);
  s.create("a", {});
  s.put("b", bytes_of("12345"));
  s.put("b", bytes_of("123"));
  s.put("b", bytes_of("1"));
  auto m = s.get("b", "c", t0);
  s.ack("b", m->id, "c");
  s.get("b", "c", t0);
  s.expire(t0 + 50ms);
  s.get("b", "c", t0 + 60ms);
  auto i = s.info("b");
  EXPECT_EQ(i.name, "b");
  EXPECT_EQ(i.options, o);
  EXPECT_EQ(i.ready, 1u);
  EXPECT_EQ(i.in_flight, 1u);
  EXPECT_EQ(i.bytes, 4u);
  EXPECT_EQ(i.accepted, 3u);
  EXPECT_EQ(i.acked, 1u);
  EXPECT_EQ(i.redelivered, 1u);
  auto all = s.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "a");
  EXPECT_EQ(all[0].options, queue_options{});
  EXPECT_EQ(all[1].name, "b");
  EXPECT_EQ(all[1].bytes, 4u);
}

TEST(queue_store, replay_brings_back_exactly_the_unacked_messages_and_ids_continue) {
  durable_store s;
  s->create("jobs", durable_options());
  for (int i = 0; i < 6; ++i) s->put("jobs", bytes_of(numbered("m", i)));
  auto m1 = s->get("jobs", "c", t0);
  auto m2 = s->get("jobs", "c", t0);
  auto m3 = s->get("jobs", "c", t0);
  s->ack("jobs", m1->id, "c");
  s->ack("jobs", m3->id, "c");  // m2 stays in flight: ready again after the restart
  s->create("gone", durable_options());
  s->put("gone", bytes_of("x"));
  s->drop("gone");
  s.reopen();
  EXPECT_FALSE(s->exists("gone"));
  auto i = s->info("jobs");
  EXPECT_EQ(i.options, durable_options());
  EXPECT_EQ(i.ready, 4u);
  EXPECT_EQ(i.in_flight, 0u);
  EXPECT_EQ(i.accepted, 6u);
  EXPECT_EQ(i.acked, 2u);
  EXPECT_EQ(s->put("jobs", bytes_of("after")), 7u);
  EXPECT_EQ(drain(*s, "jobs"), (std::vector<std::string>{"m1", "m3", "m4", "m5", "after"}));
  // Acked after the restart too, and replayed again.
  s->ack("jobs", 2, "drain");
  s->ack("jobs", 7, "drain");
  s.reopen();
  EXPECT_EQ(drain(*s, "jobs"), (std::vector<std::string>{"m3", "m4", "m5"}));
  EXPECT_EQ(s->put("jobs", bytes_of("later")), 8u);
}

TEST(queue_store, snapshot_and_restore_then_more_records) {
  durable_store s;
  queue_options o = durable_options();
  o.capacity = 50;
  o.visibility_timeout = 5s;
  s->create("q", o);
  for (int i = 0; i < 5; ++i) s->put("q", bytes_of(numbered("m", i)));
  auto m = s->get("q", "c", t0);
  s->ack("q", m->id, "c");
  (void)s->get("q", "c", t0);  // in flight at the snapshot: ready after the restore
  s.checkpoint();
  s->put("q", bytes_of("m5"));
  s->ack("q", 2, "c");
  s->create("q2", durable_options());
  s->put("q2", bytes_of("other"));
  s.reopen();
  EXPECT_EQ(s->info("q").options, o);
  EXPECT_EQ(s->put("q", bytes_of("m6")), 7u);
  EXPECT_EQ(drain(*s, "q"), (std::vector<std::string>{"m2", "m3", "m4", "m5", "m6"}));
  EXPECT_EQ(drain(*s, "q2"), (std::vector<std::string>{"other"}));
}

TEST(queue_store, ids_continue_after_a_snapshot_of_an_empty_queue) {
  durable_store s;
  s->create("q", durable_options());
  for (int i = 0; i < 3; ++i) s->put("q", bytes_of("x"));
  for (std::uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(s->get("q", "c", t0));
    s->ack("q", id, "c");
  }
  s.checkpoint();
  s.reopen();
  EXPECT_EQ(s->info("q").ready, 0u);
  EXPECT_EQ(s->put("q", bytes_of("y")), 4u);
  s.checkpoint();
  s.checkpoint();
  s.reopen();
  EXPECT_EQ(s->put("q", bytes_of("z")), 5u);
}

TEST(queue_store, queues_that_are_not_durable_write_no_records_and_vanish) {
  durable_store s;
  s->create("mem", {});
  s->put("mem", bytes_of("x"));
  auto m = s->get("mem", "c", t0);
  s->ack("mem", m->id, "c");
  s->drop("mem");
  s->create("mem", {});
  s->put("mem", bytes_of("y"));
  EXPECT_EQ(s.last_seq(), 0u);
  s->create("disk", durable_options());
  EXPECT_EQ(s.last_seq(), 1u);
  s.reopen();
  EXPECT_FALSE(s->exists("mem"));
  EXPECT_TRUE(s->exists("disk"));
}

TEST(queue_store, restore_replaces_durable_queues_and_keeps_the_others) {
  queue_store s(nullptr);
  s.create("d1", durable_options());
  s.put("d1", bytes_of("a"));
  s.create("mem", {});
  s.put("mem", bytes_of("b"));
  transport::byte_writer w;
  s.snapshot(w);

  queue_store t(nullptr);
  t.create("d2", durable_options());
  t.create("mem", {});
  t.put("mem", bytes_of("kept"));
  t.create("d1", {});  // not durable, but the snapshot's d1 takes its place
  transport::byte_reader r(w.bytes(), "queue snapshot");
  t.restore(r);
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_FALSE(t.exists("d2"));
  EXPECT_EQ(t.info("d1").options, durable_options());
  EXPECT_EQ(drain(t, "d1"), std::vector<std::string>{"a"});
  EXPECT_EQ(drain(t, "mem"), std::vector<std::string>{"kept"});

  // A truncated snapshot is refused and changes nothing.
  auto cut = std::span<const std::uint8_t>(w.bytes()).first(w.bytes().size() - 1);
  transport::byte_reader bad(cut, "queue snapshot");
  queue_store u(nullptr);
  u.create("d3", durable_options());
  EXPECT_THROW(u.restore(bad), invalid_input);
  EXPECT_TRUE(u.exists("d3"));
  EXPECT_FALSE(u.exists("d1"));
}

TEST(queue_store, a_failing_log_changes_nothing) {
  bool fail = false;
  std::vector<record> log;
  queue_store s([&](record r) {
    if (fail) throw error("disk full");
    log.push_back(std::move(r));
  });
  s.create("q", durable_options());
  s.put("q", bytes_of("a"));
  auto m = s.get("q", "c", t0);
  fail = true;
  EXPECT_THROW((void)s.put("q", bytes_of("b")), error);
  EXPECT_THROW(s.ack("q", m->id, "c"), error);
  EXPECT_THROW(s.drop("q"), error);
  EXPECT_THROW(s.create("q2", durable_options()), error);
  EXPECT_FALSE(s.exists("q2"));
  auto i = s.info("q");
  EXPECT_EQ(i.accepted, 1u);
  EXPECT_EQ(i.in_flight, 1u);
  fail = false;
  EXPECT_EQ(s.put("q", bytes_of("b")), 2u);  // the failed put did not use up an id
  s.ack("q", m->id, "c");
  EXPECT_EQ(log.size(), 4u);
  for (const auto& r : log) EXPECT_TRUE(queue_store::owns_record(r));
}

TEST(queue_store, malformed_records_are_refused) {
  std::vector<record> log;
  queue_store s([&](record r) { log.push_back(std::move(r)); });
  s.create("q", durable_options());
  s.put("q", bytes_of("payload"));
  ASSERT_EQ(log.size(), 2u);

  EXPECT_FALSE(queue_store::owns_record({}));
  EXPECT_FALSE(queue_store::owns_record(record{1}));
  EXPECT_FALSE(queue_store::owns_record(record{31}));
  EXPECT_TRUE(queue_store::owns_record(record{32}));
  EXPECT_TRUE(queue_store::owns_record(record{47}));
  EXPECT_FALSE(queue_store::owns_record(record{48}));

  queue_store t(nullptr);
  expect_invalid([&] { t.apply(record{}); }, {"truncated"});
  expect_invalid([&] { t.apply(record{40, 0, 0}); }, {"unknown operation 40"});
  expect_invalid([&] { t.apply(record{3}); }, {"unknown operation 3"});
  for (const auto& r : log) {
    for (std::size_t n = 1; n < r.size(); ++n)
      EXPECT_THROW(t.apply(std::span(r).first(n)), invalid_input) << "cut at " << n;
  }
  EXPECT_FALSE(t.exists("q"));
  auto longer = log[0];
  longer.push_back(0);
  expect_invalid([&] { t.apply(longer); }, {"trailing bytes"});
  // In order, the records rebuild the queue; out of order or twice, they are refused.
  expect_invalid([&] { t.apply(log[1]); }, {"queue 'q'"});
  t.apply(log[0]);
  expect_invalid([&] { t.apply(log[0]); }, {"queue 'q'", "already exists"});
  t.apply(log[1]);
  expect_invalid([&] { t.apply(log[1]); }, {"queue 'q'", "message 1"});
  EXPECT_EQ(drain(t, "q"), std::vector<std::string>{"payload"});
}

TEST(queue_store, a_hundred_thousand_messages_flow_through) {
  // No timing assertion: quadratic behaviour would show as a test that takes minutes.
  constexpr std::uint64_t n = 100'000;
  std::uint64_t records = 0;
  queue_store s([&](record) { ++records; });
  queue_options o = durable_options();
  o.capacity = n;
  o.visibility_timeout = 1000ms;
  s.create("big", o);
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(s.put("big", bytes_of("payload")), i + 1);
  EXPECT_FALSE(s.put("big", bytes_of("one too many")));
  std::vector<std::uint64_t> ids;
  for (std::uint64_t i = 0; i < n; ++i) {
    auto m = s.get("big", numbered("w", i % 7), t0 + std::chrono::milliseconds(i % 1000));
    ASSERT_TRUE(m);
    ASSERT_EQ(m->id, i + 1);
    ids.push_back(m->id);
    ASSERT_EQ(s.next_deadline(), t0 + 1000ms);
  }
  // Half of them are acked, a consumer dies, and the rest time out.
  for (std::uint64_t i = 0; i < n; i += 2) s.ack("big", ids[i], numbered("w", i % 7));
  EXPECT_EQ(s.consumer_gone("w3"), std::vector<std::string>{"big"});
  EXPECT_EQ(s.expire(t0 + 1500ms), std::vector<std::string>{"big"});
  EXPECT_EQ(s.expire(t0 + 2000ms), std::vector<std::string>{"big"});
  EXPECT_FALSE(s.next_deadline());
  EXPECT_EQ(s.info("big").ready, n / 2);
  std::uint64_t last = 0;
  while (auto m = s.get("big", "x", t0 + 3000ms)) {
    ASSERT_GT(m->id, last);
    last = m->id;
    s.ack("big", m->id, "x");
  }
  EXPECT_EQ(s.info("big").acked, n);
  EXPECT_EQ(records, 1 + 2 * n);
}

}  // namespace
}  // namespace ember
