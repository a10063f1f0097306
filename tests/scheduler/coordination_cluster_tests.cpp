// The coordination services with real processes: a scheduler process (`ember scheduler`),
// client processes (coordination_actor.cpp) that are killed, paused and resumed, and a scheduler
// killed and restarted under a running workload.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <ember/host/error.hpp>
#include <ember/host/process.hpp>
#include <ember/scheduler/client.hpp>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/processes.hpp"

namespace ember {
namespace {

using namespace std::chrono_literals;
using test::cluster_spec;
using test::local_cluster;

const std::vector<std::string> loopback_env = {"UCX_TLS=tcp,self", "UCX_NET_DEVICES=lo"};

std::string actor_path() {
  const char* p = std::getenv("EMBER_TEST_ACTOR");
  return p != nullptr ? p : EMBER_TEST_ACTOR;
}

local_cluster scheduler_only() {
  cluster_spec spec;
  spec.env = loopback_env;
  spec.workers = 0;
  return local_cluster(spec);
}

client connect(const local_cluster& cluster) {
  client_options o;
  o.reconnect_timeout = 30s;
  return client::connect(cluster.address, o);
}

std::unique_ptr<child_process> start_actor(const local_cluster& cluster,
                                           std::vector<std::string> args, const std::string& log) {
  args.insert(args.begin(), actor_path());
  return std::make_unique<child_process>(args, cluster.dir() / log, loopback_env);
}

// Lines of `text` that start with `prefix`, without it.
std::vector<std::string> lines_with(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) out.push_back(line.substr(prefix.size()));
  return out;
}

TEST(coordination_cluster, a_killed_holder_loses_the_lock_within_its_ttl) {
  auto cluster = scheduler_only();
  auto c = connect(cluster);
  constexpr int ttl_ms = 2000;
  auto holder =
      start_actor(cluster, {"holder", cluster.address, "L", std::to_string(ttl_ms)}, "holder");
  auto held_token = std::stoull(holder->wait_for_output("token (\\d+)", 30s));
  std::this_thread::sleep_for(500ms);  // renewed at least once
  std::optional<lease> next;
  std::chrono::steady_clock::time_point granted;
  std::thread waiter([&] {
    next = c.lock("L").acquire(30s, 5s);
    granted = std::chrono::steady_clock::now();
  });
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(next.has_value());
  auto killed = std::chrono::steady_clock::now();
  holder->signal(SIGKILL);
  waiter.join();
  ASSERT_TRUE(next.has_value());
  EXPECT_GT(next->token(), held_token);
  EXPECT_LE(granted - killed, std::chrono::milliseconds(ttl_ms) + 1s);
}

// 100 rounds: the holder is stopped past its lease, another client takes the lock and writes,
// then the holder wakes up and writes with its old token: refused every time.
TEST(coordination_cluster, a_paused_holder_cannot_commit_with_its_old_token) {
  auto cluster = scheduler_only();
  auto c = connect(cluster);
  constexpr int rounds = 100;
  auto actor =
      start_actor(cluster, {"committer", cluster.address, "F", "k", "150", std::to_string(rounds)},
                  "committer");
  int rejected = 0;
  for (int round = 1; round <= rounds; ++round) {
    auto token =
        std::stoull(actor->wait_for_output("token (\\d+) " + std::to_string(round) + "\n", 30s));
    actor->signal(SIGSTOP);
    {
      auto mine = c.lock("F").acquire(10s, 10s);  // once the paused holder's lease ran out
      ASSERT_GT(mine.token(), token);
      c.kv().set("k", "written by the current holder", fence{"F", mine.token()});
    }
    actor->signal(SIGCONT);
    actor->signal(SIGUSR1);
    auto verdict = actor->wait_for_output("commit " + std::to_string(round) + " (\\w+)", 30s);
    if (verdict == "rejected") ++rejected;
  }
  EXPECT_EQ(rejected, rounds);
  EXPECT_EQ(c.kv().get("k")->text(), "written by the current holder");
  auto reasons = lines_with(actor->out(), "commit 1 rejected: ");
  ASSERT_EQ(reasons.size(), 1u);
  EXPECT_NE(reasons[0].find("stale fencing token"), std::string::npos) << reasons[0];
}

TEST(coordination_cluster, a_counter_under_the_lock_ends_at_the_accepted_increments) {
  auto cluster = scheduler_only();
  auto c = connect(cluster);
  const char* env = std::getenv("EMBER_COUNTER_SECONDS");
  std::string seconds = env != nullptr ? env : "30";
  std::vector<std::unique_ptr<child_process>> counters;
  for (int i = 0; i < 4; ++i)
    counters.push_back(start_actor(cluster, {"counter", cluster.address, "C", "count", seconds},
                                   "counter" + std::to_string(i)));
  long accepted = 0;
  for (auto& p : counters) {
    auto n = p->wait_for_output("done (\\d+)", std::chrono::seconds(std::stoi(seconds) + 60));
    EXPECT_GT(std::stol(n), 0) << "a counter never got the lock";
    accepted += std::stol(n);
  }
  auto final = c.kv().get("count");
  ASSERT_TRUE(final.has_value());
  EXPECT_EQ(std::stol(final->text()), accepted);
  EXPECT_EQ(final->version, static_cast<std::uint64_t>(accepted));
}

TEST(coordination_cluster, messages_of_a_killed_consumer_go_to_another_and_none_is_lost) {
  auto cluster = scheduler_only();
  auto c = connect(cluster);
  auto q = c.queue("work");
  queue_options o;
  o.capacity = 20'000;
  o.visibility_timeout = 600s;  // redelivery here comes from the consumer's death
  q.create(o);
  constexpr int messages = 10'000;
  for (int i = 0; i < messages; ++i) q.put(std::to_string(i));
  auto hoarder = start_actor(cluster, {"hoarder", cluster.address, "work", "50"}, "hoarder");
  hoarder->wait_for_output("(hoarding)", 30s);
  auto held = lines_with(hoarder->out(), "held ");
  ASSERT_EQ(held.size(), 50u);
  hoarder->signal(SIGKILL);
  (void)hoarder->wait_exit(10s);
  std::vector<std::unique_ptr<child_process>> consumers;
  for (int i = 0; i < 3; ++i)
    consumers.push_back(start_actor(cluster, {"consumer", cluster.address, "work", "2000"},
                                    "consumer" + std::to_string(i)));
  std::multiset<int> got;
  for (auto& p : consumers) {
    p->wait_for_output("(idle)", 120s);
    for (const auto& s : lines_with(p->out(), "got ")) got.insert(std::stoi(s));
  }
  std::set<int> distinct(got.begin(), got.end());
  EXPECT_EQ(distinct.size(), static_cast<std::size_t>(messages));
  for (const auto& h : held) EXPECT_EQ(got.count(std::stoi(h)), 1u) << "message " << h;
  auto info = q.info();
  EXPECT_EQ(info.ready + info.in_flight, 0u);
  EXPECT_EQ(info.redelivered, 50u);
}

// The scheduler's system topics: workers joining and leaving, job progress and ends.
TEST(coordination_cluster, system_topics_tell_of_workers_and_jobs) {
  auto cluster = scheduler_only();
  auto c = connect(cluster);
  auto workers = c.topic(workers_topic).subscribe(64);
  auto jobs = c.topic(jobs_topic).subscribe(1024);
  auto& w = cluster.start_worker();
  auto joined = workers.next(10s);
  ASSERT_TRUE(joined.has_value());
  EXPECT_NE(joined->text().find("\"event\": \"joined\""), std::string::npos) << joined->text();
  auto job =
      c.generate("keyed", 10'000).group_by({"key"}, {{aggregation_kind::count_all, "", "n"}});
  EXPECT_GT(job.collect().num_rows(), 0);
  bool progress = false, done = false;
  while (auto m = jobs.next(2s)) {
    progress |= m->text().find("\"event\": \"progress\"") != std::string::npos;
    done |= m->text().find("\"event\": \"done\"") != std::string::npos;
    if (done) break;
  }
  EXPECT_TRUE(progress);
  EXPECT_TRUE(done);
  w.signal(SIGKILL);
  auto left = workers.next(10s);
  ASSERT_TRUE(left.has_value());
  EXPECT_NE(left->text().find("\"event\": \"left\""), std::string::npos) << left->text();
}

// Subscriptions are not durable: after a restart the subscriber subscribes again by itself and
// hears what is published from then on.
TEST(coordination_cluster, a_subscription_follows_a_restarted_scheduler) {
  auto cluster = scheduler_only();
  auto c = connect(cluster);
  auto sub = c.topic("news").subscribe(16);
  EXPECT_EQ(c.topic("news").publish("before"), 1u);
  ASSERT_EQ(sub.next(5s)->text(), "before");
  cluster.restart_scheduler();
  std::optional<topic_message> got;
  std::thread reader([&] { got = sub.next(20s); });
  auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until) {
    try {
      if (c.topic("news").publish("after") > 0) break;  // the subscriber is back
    } catch (const transport_error&) {
      // not reconnected yet
    }
    std::this_thread::sleep_for(50ms);
  }
  reader.join();
  ASSERT_TRUE(got.has_value()) << cluster.logs();
  EXPECT_EQ(got->text(), "after");
}

// A workload of lock, durable queue and key/value calls runs while the scheduler is killed and
// restarted 20 times: tokens keep growing, every message whose put returned is still there.
TEST(coordination_cluster, twenty_scheduler_restarts_lose_no_token_and_no_accepted_message) {
  auto cluster = scheduler_only();
  auto c = connect(cluster);
  auto q = c.queue("durable");
  queue_options o;
  o.durable = true;
  o.capacity = 1'000'000;
  q.create(o);
  std::atomic<bool> stop{false};
  std::vector<fencing_token> tokens;
  std::vector<int> accepted;
  std::string failure;
  std::thread workload([&] {
    try {
      for (int i = 0; !stop; ++i) {
        auto l = c.lock("R").acquire(60s, 5s);
        tokens.push_back(l.token());
        q.put(std::to_string(i), 60s);
        accepted.push_back(i);
        c.kv().set("last", std::to_string(i), fence{"R", l.token()});
        try {
          l.release();
        } catch (const invalid_input&) {
          // The restart took the lease and nobody gave it back (another holder came first).
        }
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
  });
  for (int restart = 0; restart < 20; ++restart) {
    std::this_thread::sleep_for(300ms);
    cluster.restart_scheduler();
  }
  std::this_thread::sleep_for(500ms);
  stop = true;
  workload.join();
  ASSERT_EQ(failure, "") << cluster.logs();
  ASSERT_GT(accepted.size(), 20u);
  for (std::size_t i = 1; i < tokens.size(); ++i)
    ASSERT_GT(tokens[i], tokens[i - 1]) << "token " << i << " went back";
  std::set<int> in_queue;
  while (auto m = q.get(0ms)) {
    in_queue.insert(std::stoi(std::string(m->payload.begin(), m->payload.end())));
    q.ack(*m);
  }
  for (int i : accepted) EXPECT_TRUE(in_queue.contains(i)) << "message " << i << " was lost";
  EXPECT_EQ(c.kv().get("last")->text(), std::to_string(accepted.back()));
  // The scheduler said how long its replay took.
  EXPECT_NE(cluster.scheduler().out().find("replayed snapshot"), std::string::npos)
      << cluster.scheduler().out();
}

}  // namespace
}  // namespace ember
