// Locks with fencing tokens and the versioned key/value store, driven with a manual clock, and
// their durability across reopenings of the log.
#include <gtest/gtest.h>

#include <ember/host/error.hpp>
#include <ember/scheduler/coordination.hpp>
#include <cstring>
#include <ember/host/wal.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/temp_dir.hpp"

namespace ember {
namespace {

using namespace std::chrono_literals;
using time_point = coordination_state::time_point;

const time_point t0{};

// Copied with memcpy: GCC 12 warns (-Wstringop-overflow, a false positive) about the iterator
// constructor once the literal strings are inlined.
std::vector<std::uint8_t> bytes_of(const std::string& s) {
  std::vector<std::uint8_t> out(s.size());
  if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());
  return out;
}

TEST(coordination, locks_go_to_waiters_in_order_with_growing_tokens) {
  coordination_state s;
  auto a = s.acquire("L", "a", 1, 1000ms, t0);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->token, 1u);
  EXPECT_FALSE(s.acquire("L", "b", 1, 1000ms, t0).has_value());
  EXPECT_FALSE(s.acquire("L", "c", 1, 1000ms, t0).has_value());
  // Asking again while holding renews and keeps the token.
  auto again = s.acquire("L", "a", 1, 1000ms, t0 + 10ms);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->token, 1u);
  auto next = s.release("L", "a", t0 + 20ms);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].owner, "b");
  EXPECT_EQ(next[0].token, 2u);
  next = s.release("L", "b", t0 + 30ms);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].owner, "c");
  EXPECT_EQ(next[0].token, 3u);
  EXPECT_EQ(s.newest_token("L"), 3u);
}

TEST(coordination, an_unrenewed_lease_expires_and_its_token_goes_stale) {
  coordination_state s;
  auto a = s.acquire("L", "a", 1, 100ms, t0);
  ASSERT_TRUE(a);
  EXPECT_FALSE(s.acquire("L", "b", 1, 100ms, t0 + 1ms));
  EXPECT_TRUE(s.renew("L", "a", t0 + 50ms));  // now until 150 ms
  EXPECT_TRUE(s.expire(t0 + 120ms).empty());
  auto granted = s.expire(t0 + 151ms);
  ASSERT_EQ(granted.size(), 1u);
  EXPECT_EQ(granted[0].owner, "b");
  EXPECT_GT(granted[0].token, a->token);
  EXPECT_FALSE(s.renew("L", "a", t0 + 152ms));
  // The paused holder comes back and tries to write with its old token: refused.
  try {
    s.accept_token("L", a->token);
    FAIL() << "a stale token was accepted";
  } catch (const invalid_input& e) {
    EXPECT_NE(std::string(e.what()).find("stale fencing token 1"), std::string::npos) << e.what();
  }
  s.accept_token("L", granted[0].token);
  EXPECT_THROW(s.accept_token("L", 99), invalid_input);  // never issued
  EXPECT_THROW(s.accept_token("nope", 1), invalid_input);
}

TEST(coordination, a_semaphore_lets_permits_holders_in) {
  coordination_state s;
  auto a = s.acquire("S", "a", 2, 1000ms, t0);
  auto b = s.acquire("S", "b", 2, 1000ms, t0);
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(s.acquire("S", "c", 2, 1000ms, t0));
  EXPECT_EQ(s.holders("S").size(), 2u);
  // Both current holders may write; once c is in, a's older token is refused.
  s.accept_token("S", a->token);
  s.accept_token("S", b->token);
  auto next = s.release("S", "b", t0 + 1ms);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].owner, "c");
  s.accept_token("S", next[0].token);
  EXPECT_THROW(s.accept_token("S", a->token), invalid_input);
  EXPECT_THROW((void)s.acquire("S", "d", 3, 1000ms, t0), invalid_input);  // permits disagree
}

TEST(coordination, bad_requests_are_clear_errors_and_change_nothing) {
  coordination_state s;
  EXPECT_THROW((void)s.acquire("", "a", 1, 1000ms, t0), invalid_input);
  EXPECT_THROW((void)s.acquire("L", "", 1, 1000ms, t0), invalid_input);
  EXPECT_THROW((void)s.acquire("L", "a", 0, 1000ms, t0), invalid_input);
  EXPECT_THROW((void)s.acquire("L", "a", 1, -5ms, t0), invalid_input);
  EXPECT_THROW((void)s.release("unknown", "a", t0), invalid_input);
  ASSERT_TRUE(s.acquire("L", "a", 1, 1000ms, t0));
  try {
    (void)s.release("L", "intruder", t0);
    FAIL() << "a non-holder released the lock";
  } catch (const invalid_input& e) {
    EXPECT_NE(std::string(e.what()).find("neither holds nor waits"), std::string::npos);
  }
  EXPECT_EQ(s.holders("L").size(), 1u);
  EXPECT_EQ(s.holders("L")[0].owner, "a");
  // A waiter may leave the queue.
  EXPECT_FALSE(s.acquire("L", "b", 1, 1000ms, t0));
  EXPECT_TRUE(s.release("L", "b", t0).empty());
  EXPECT_TRUE(s.release("L", "a", t0).empty());
}

TEST(coordination, key_value_versions_compare_and_set_and_erase) {
  coordination_state s;
  EXPECT_FALSE(s.get("k"));
  EXPECT_EQ(s.set("k", bytes_of("one")), 1u);
  EXPECT_EQ(s.set("k", bytes_of("two")), 2u);
  EXPECT_EQ(s.get("k")->value, bytes_of("two"));
  EXPECT_FALSE(s.compare_and_set("k", 1, bytes_of("lost")));
  EXPECT_EQ(s.compare_and_set("k", 2, bytes_of("three")), 3u);
  EXPECT_EQ(s.compare_and_set("new", 0, bytes_of("created")), 1u);
  EXPECT_FALSE(s.erase("k", 2));
  EXPECT_TRUE(s.erase("k", 3));
  EXPECT_FALSE(s.erase("k"));
  s.set("a/1", bytes_of("x"));
  s.set("a/2", bytes_of("y"));
  s.set("b/1", bytes_of("z"));
  EXPECT_EQ(s.keys("a/"), (std::vector<std::string>{"a/1", "a/2"}));
  EXPECT_EQ(s.keys().size(), 4u);
  EXPECT_THROW((void)s.set("", bytes_of("x")), invalid_input);
}

TEST(coordination, tokens_and_values_survive_reopening_and_tokens_only_grow) {
  test::temp_dir dir("ember-coordination");
  fencing_token last = 0;
  for (int life = 0; life < 20; ++life) {
    coordination_state s(dir.path());
    // A restart continues after the reserved block: never below what was handed out.
    EXPECT_GE(s.newest_token("L"), last);
    if (life > 0) {
      EXPECT_EQ(s.get("counter")->version, static_cast<std::uint64_t>(life));
      EXPECT_EQ(s.get("counter")->value, bytes_of(std::to_string(life - 1)));
    }
    // Nobody holds anything after a restart; the next token is still larger.
    EXPECT_TRUE(s.holders("L").empty());
    auto g = s.acquire("L", "owner" + std::to_string(life), 1, 1000ms, t0);
    ASSERT_TRUE(g);
    EXPECT_GT(g->token, last);
    last = g->token;
    s.accept_token("L", g->token);
    s.set("counter", bytes_of(std::to_string(life)));
    if (life % 5 == 4) s.checkpoint();
  }
}

// Durable queues share the log with tokens and values: replay and snapshots bring back every
// unacknowledged message, with group commit (sync() once per batch) as the scheduler uses it.
TEST(coordination, durable_queues_come_back_with_their_unacked_messages) {
  test::temp_dir dir("ember-coordination");
  queue_options durable;
  durable.durable = true;
  {
    coordination_state s(dir.path(), true);
    s.queues().create("q", durable);
    s.queues().create("volatile", queue_options{});
    for (int i = 0; i < 10; ++i)
      s.queues().put("q", bytes_of(std::string(1, 'm') + std::to_string(i)));
    s.queues().put("volatile", bytes_of("gone after a restart"));
    auto m = s.queues().get("q", "c", t0);
    s.queues().ack("q", m->id, "c");
    s.checkpoint();
    m = s.queues().get("q", "c", t0);
    s.queues().ack("q", m->id, "c");
    (void)s.queues().get("q", "c", t0);  // in flight: ready again after a restart
    s.set("k", bytes_of("v"));
    s.sync();
  }
  coordination_state s(dir.path(), true);
  EXPECT_FALSE(s.queues().exists("volatile"));
  auto info = s.queues().info("q");
  EXPECT_EQ(info.ready, 8u);
  auto first = s.queues().get("q", "c", t0);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->payload, bytes_of("m2"));
  EXPECT_EQ(s.get("k")->value, bytes_of("v"));
}

// A torn or corrupted tail of the coordination log replays to the last good record.
TEST(coordination, a_damaged_log_tail_replays_to_the_last_good_record) {
  for (bool torn : {true, false}) {
    SCOPED_TRACE(torn ? "torn" : "corrupted");
    test::temp_dir dir("ember-coordination");
    {
      coordination_state s(dir.path());
      for (int i = 1; i <= 50; ++i) s.set("k", bytes_of(std::to_string(i)));
    }
    std::filesystem::path segment;
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
      if (e.path().filename().string().rfind("wal-", 0) == 0) segment = e.path();
    auto size = std::filesystem::file_size(segment);
    if (torn) {
      std::filesystem::resize_file(segment, size - 3);  // the last record loses its end
    } else {
      std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(size - 1));
      f.put('\x7f');  // the last record's payload no longer matches its checksum
    }
    coordination_state s(dir.path());
    EXPECT_EQ(s.get("k")->value, bytes_of("49"));
    EXPECT_EQ(s.get("k")->version, 49u);
    EXPECT_GT(s.replay_report().dropped_bytes, 0u);
    // The log goes on from there.
    s.set("k", bytes_of("again"));
    coordination_state reopened(dir.path());
    EXPECT_EQ(reopened.get("k")->value, bytes_of("again"));
    EXPECT_EQ(reopened.get("k")->version, 50u);
  }
}

// Leases are not durable, but the holder of the newest token gets its lease back after a
// restart (its client renews), unless another token was issued since.
TEST(coordination, the_newest_holder_reclaims_its_lease_after_a_restart) {
  test::temp_dir dir("ember-coordination");
  fencing_token a = 0, b = 0;
  {
    coordination_state s(dir.path(), true);
    a = s.acquire("L", "a", 1, 1000ms, t0)->token;
    s.release("L", "a", t0);
    b = s.acquire("L", "b", 1, 1000ms, t0)->token;
    s.sync();
  }
  {
    coordination_state s(dir.path(), true);
    EXPECT_FALSE(s.reclaim("L", "a", a, 1000ms, t0).has_value());  // not the newest
    auto back = s.reclaim("L", "b", b, 1000ms, t0);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->token, b);
    EXPECT_NO_THROW(s.accept_token("L", b));
    s.release("L", "b", t0);
    // A grant after the restart comes after the reserved block, and ends b's claim for good.
    auto c = s.acquire("L", "c", 1, 1000ms, t0);
    ASSERT_TRUE(c.has_value());
    EXPECT_GT(c->token, b);
    s.release("L", "c", t0);
    EXPECT_FALSE(s.reclaim("L", "b", b, 1000ms, t0).has_value());
    EXPECT_THROW(s.accept_token("L", b), invalid_input);
    s.sync();
  }
}

}  // namespace
}  // namespace ember
