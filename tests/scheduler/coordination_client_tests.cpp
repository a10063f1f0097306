// The coordination services through ember::client, end to end over the wire: a local client
// starts an in-process scheduler, so every call here crosses UCX and the scheduler's event loop
// like a remote one. Processes, kills and restarts are in coordination_cluster_tests.cpp.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <ember/host/error.hpp>
#include <ember/host/column_factories.hpp>
#include <ember/scheduler/client.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/tables.hpp"

namespace ember {
namespace {

using namespace std::chrono_literals;

client make_client() {
  client_options o;
  o.workers = 1;
  o.backend = backend_choice::cpu;
  return client::local(o);
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(coordination_client, locks_hand_out_growing_tokens_in_fifo_order) {
  auto c = make_client();
  auto lock = c.lock("L");
  auto first = lock.acquire(1s, 5s);
  EXPECT_EQ(first.token(), 1u);
  EXPECT_TRUE(first.held());
  // Waiters queue up behind the holder and get the lock in the order they asked.
  std::vector<int> order;
  std::mutex m;
  std::vector<std::thread> waiters;
  std::vector<fencing_token> tokens(3);
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&, i] {
      auto l = c.lock("L").acquire(10s, 5s);
      {
        std::lock_guard g(m);
        order.push_back(i);
      }
      tokens[static_cast<std::size_t>(i)] = l.token();
      std::this_thread::sleep_for(20ms);
      l.release();
    });
    std::this_thread::sleep_for(100ms);  // so that they ask in order
  }
  first.release();
  EXPECT_FALSE(first.held());
  for (auto& t : waiters) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(tokens, (std::vector<fencing_token>{2, 3, 4}));
}

TEST(coordination_client, a_busy_lock_times_out_and_try_acquire_says_so) {
  auto c = make_client();
  auto held = c.lock("busy").acquire(1s);
  auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(c.lock("busy").try_acquire(200ms).has_value());
  auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_GE(waited, 190ms);
  EXPECT_LT(waited, 5s);
  EXPECT_THROW((void)c.lock("busy").acquire(0ms), timeout);
  // The timed-out waiters left the queue: the next holder is served at once after a release.
  held.release();
  EXPECT_EQ(c.lock("busy").acquire(0ms).token(), 2u);
}

TEST(coordination_client, an_unrenewed_lease_expires_and_its_token_is_refused) {
  auto c = make_client();
  auto lock = c.lock("fenced");
  auto old = lock.acquire(1s, 300ms);
  old.detach();  // no renewals: it ends at its ttl
  auto next = lock.acquire(5s, 5s);
  EXPECT_GT(next.token(), old.token());
  auto kv = c.kv();
  kv.set("data", "from the new holder", fence{"fenced", next.token()});
  auto err = error_of([&] { kv.set("data", "from the old holder", fence{"fenced", old.token()}); });
  EXPECT_NE(err.find("stale fencing token " + std::to_string(old.token())), std::string::npos)
      << err;
  EXPECT_EQ(kv.get("data")->text(), "from the new holder");
  EXPECT_THROW(lock.check(old.token()), invalid_input);
  EXPECT_NO_THROW(lock.check(next.token()));
}

TEST(coordination_client, renewals_keep_a_short_lease_alive) {
  auto c = make_client();
  auto l = c.lock("renewed").acquire(1s, 300ms);
  std::this_thread::sleep_for(1200ms);  // four ttls
  EXPECT_TRUE(l.held());
  EXPECT_FALSE(c.lock("renewed").try_acquire(0ms).has_value());
  auto listed = c.locks();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].name, "renewed");
  ASSERT_EQ(listed[0].holders.size(), 1u);
  EXPECT_EQ(listed[0].holders[0].owner, l.owner());
  EXPECT_GT(listed[0].holders[0].expires_in_ms, 0);
}

TEST(coordination_client, semaphores_admit_their_permits) {
  auto c = make_client();
  auto a = c.lock("pool", 2).acquire(1s);
  auto b = c.lock("pool", 2).acquire(1s);
  EXPECT_FALSE(c.lock("pool", 2).try_acquire(0ms).has_value());
  auto err = error_of([&] { (void)c.lock("pool", 3).acquire(0ms); });
  EXPECT_NE(err.find("has 2 permits, not 3"), std::string::npos) << err;
  a.release();
  EXPECT_TRUE(c.lock("pool", 2).try_acquire(0ms).has_value());
}

TEST(coordination_client, key_value_versions_and_compare_and_set) {
  auto c = make_client();
  auto kv = c.kv();
  EXPECT_FALSE(kv.get("k").has_value());
  EXPECT_EQ(kv.set("k", "one"), 1u);
  EXPECT_EQ(kv.set("k", "two"), 2u);
  auto v = std::vector<std::uint8_t>{'x'};
  EXPECT_FALSE(kv.compare_and_set("k", 1, v).has_value());
  EXPECT_EQ(kv.compare_and_set("k", 2, v), 3u);
  EXPECT_EQ(kv.compare_and_set("new", 0, v), 1u);
  auto item = kv.get("k");
  ASSERT_TRUE(item);
  EXPECT_EQ(item->text(), "x");
  EXPECT_EQ(item->version, 3u);
  kv.set("other/a", "1");
  auto list = kv.list("other/");
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].key, "other/a");
  EXPECT_FALSE(kv.erase("k", 2));
  EXPECT_TRUE(kv.erase("k", 3));
  EXPECT_FALSE(kv.get("k").has_value());
}

TEST(coordination_client, queues_deliver_in_order_and_redeliver_what_is_not_acked) {
  auto c = make_client();
  auto q = c.queue("jobs");
  queue_options o;
  o.capacity = 3;
  o.visibility_timeout = 300ms;
  q.create(o);
  for (int i = 0; i < 3; ++i) q.put("m" + std::to_string(i));
  // Full: a put without waiting fails, one that waits goes in once a message is acked.
  EXPECT_THROW(q.put("m3", 0ms), timeout);
  auto m0 = q.get(1s);
  ASSERT_TRUE(m0);
  EXPECT_EQ(std::string(m0->payload.begin(), m0->payload.end()), "m0");
  std::thread later([&] {
    std::this_thread::sleep_for(100ms);
    q.ack(*m0);
  });
  EXPECT_GT(q.put("m3", 5s), m0->id);
  later.join();
  // m1 is taken and not acked: after its visibility timeout it comes back, ahead of m2.
  auto m1 = q.get(1s);
  ASSERT_TRUE(m1);
  std::this_thread::sleep_for(400ms);
  auto again = q.get(1s);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, m1->id);
  EXPECT_EQ(again->deliveries, 2u);
  q.ack(*again);
  auto info = q.info();
  EXPECT_EQ(info.ready, 2u);
  EXPECT_EQ(info.redelivered, 1u);
  // An empty queue: get waits, then says nothing came.
  auto other = c.queue("empty");
  other.create();
  auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(other.get(200ms).has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - started, 190ms);
}

TEST(coordination_client, small_tables_travel_through_queues) {
  auto c = make_client();
  auto q = c.queue("tables");
  q.create();
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("id",
                    make_column<std::int64_t>(type_id::int64, std::vector<std::int64_t>{1, 2, 3}));
  cols.emplace_back("name", make_string_column(std::vector<std::string>{"a", "", "ccc"}));
  auto t = test::make_table(std::move(cols));
  q.put(t.view());
  q.put("not a table");
  auto m = q.get(1s);
  ASSERT_TRUE(m);
  auto back = m->to_table();
  EXPECT_EQ(back.view().names(), t.view().names());
  EXPECT_EQ(test::rows_of(back.view()), test::rows_of(t.view()));
  auto text = q.get(1s);
  ASSERT_TRUE(text);
  auto err = error_of([&] { (void)text->to_table(); });
  EXPECT_NE(err.find("of queue 'tables' is not a table"), std::string::npos) << err;
}

TEST(coordination_client, ack_and_get_is_one_round_trip_of_a_consumer_loop) {
  auto c = make_client();
  auto q = c.queue("loop");
  q.create();
  for (int i = 0; i < 3; ++i) q.put(std::string(1, 'a') + std::to_string(i));
  auto m = q.get(1s);
  ASSERT_TRUE(m);
  std::vector<std::string> seen{m->text()};
  while (auto next = q.ack_and_get(*m, 100ms)) {
    seen.push_back(next->text());
    m = std::move(next);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"a0", "a1", "a2"}));
  EXPECT_EQ(q.info().acked, 3u);
  // A message that is not this consumer's any more: the ack fails and nothing is taken.
  q.put("kept");
  EXPECT_THROW((void)q.ack_and_get(*m, 0ms), invalid_input);
  EXPECT_EQ(q.info().ready, 1u);
}

TEST(coordination_client, a_waiting_get_is_served_by_a_later_put) {
  auto c = make_client();
  auto q = c.queue("handoff");
  q.create();
  std::optional<received_message> got;
  std::thread consumer([&] { got = c.queue("handoff").get(5s); });
  std::this_thread::sleep_for(100ms);
  q.put("hello");
  consumer.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(std::string(got->payload.begin(), got->payload.end()), "hello");
}

TEST(coordination_client, topics_drop_the_oldest_for_a_slow_subscriber_and_say_how_many) {
  auto c = make_client();
  auto t = c.topic("news");
  EXPECT_EQ(t.publish("nobody listens"), 0u);
  auto sub = t.subscribe(4);
  // (std::string(1, 'n') + ...: GCC 12 warns falsely (-Wrestrict) about "n" + to_string.)
  for (int i = 0; i < 10; ++i) EXPECT_EQ(t.publish(std::string(1, 'n') + std::to_string(i)), 1u);
  auto first = sub.next(1s);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->text(), "n6");
  EXPECT_EQ(first->lost_before, 6u);
  for (int i = 7; i < 10; ++i) {
    auto m = sub.next(1s);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->text(), std::string(1, 'n') + std::to_string(i));
    EXPECT_EQ(m->lost_before, 0u);
  }
  EXPECT_EQ(sub.lost(), 6u);
  EXPECT_FALSE(sub.next(100ms).has_value());
  // A waiting subscriber is woken by a publish.
  std::thread later([&] {
    std::this_thread::sleep_for(100ms);
    t.publish("late");
  });
  auto late = sub.next(5s);
  later.join();
  ASSERT_TRUE(late);
  EXPECT_EQ(late->text(), "late");
}

TEST(coordination_client, bad_input_is_refused_with_a_clear_message_and_nothing_changes) {
  auto c = make_client();
  auto q = c.queue("small");
  queue_options o;
  o.max_message_bytes = 8;
  q.create(o);
  q.put("ok");
  auto err = error_of([&] { q.put(std::string(100, 'x')); });
  EXPECT_NE(err.find("queue 'small'"), std::string::npos) << err;
  EXPECT_NE(err.find("100"), std::string::npos) << err;
  err = error_of([&] { (void)c.queue("missing").get(0ms); });
  EXPECT_NE(err.find("queue 'missing'"), std::string::npos) << err;
  err = error_of([&] { (void)q.get(-5ms); });
  EXPECT_NE(err.find("negative timeout"), std::string::npos) << err;
  err = error_of([&] { (void)c.lock("L").acquire(-1ms); });
  EXPECT_NE(err.find("negative timeout"), std::string::npos) << err;
  err = error_of([&] { c.lock("never-held").release("someone/1"); });
  EXPECT_NE(err.find("no lock 'never-held'"), std::string::npos) << err;
  auto held = c.lock("L").acquire(1s);
  err = error_of([&] { c.lock("L").release("intruder/7"); });
  EXPECT_NE(err.find("neither holds nor waits"), std::string::npos) << err;
  err = error_of([&] { (void)c.lock("bad name!").acquire(0ms); });
  EXPECT_NE(err.find("is not 1 to 200 characters"), std::string::npos) << err;
  err = error_of([&] { q.ack(12345); });
  EXPECT_NE(err.find("queue 'small'"), std::string::npos) << err;
  err = error_of([&] { c.kv().set("k", "v", fence{"L", 99}); });
  EXPECT_NE(err.find("never issued"), std::string::npos) << err;
  // Nothing was corrupted: the holder still holds, the queue still serves its one message.
  EXPECT_TRUE(held.held());
  EXPECT_FALSE(c.lock("L").try_acquire(0ms).has_value());
  auto m = q.get(1s);
  ASSERT_TRUE(m);
  EXPECT_EQ(std::string(m->payload.begin(), m->payload.end()), "ok");
  EXPECT_FALSE(c.kv().get("k").has_value());
}

}  // namespace
}  // namespace ember
