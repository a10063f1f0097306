// `ember bench locks` as a user runs it: a short run starts its own scheduler, writes a JSON
// report with every field, and reports the Redis peer as unavailable (not as a failure) when
// Redis is not installed. No timing is checked: benchmarks are not tests.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include "common/paths.hpp"
#include "common/run_ember.hpp"
#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

using ember::test::run_ember;
using ember::test::run_result;

class bench_locks : public ::testing::Test {
 protected:
  void SetUp() override {
    _dir = fs::temp_directory_path() /
           ("ember_bench_locks_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(_dir);
  }
  void TearDown() override { fs::remove_all(_dir); }

  // A short run: small counts, one round.
  nlohmann::json run_short(const std::string& env = "") {
    auto json_path = _dir / "locks.json";
    auto r = run_ember(
        "bench locks --ops 300 --messages 2000 --rounds 1 --json " + json_path.string(), env);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("lock acquire+release"), std::string::npos) << r.output;
    std::ifstream in(json_path);
    if (!in) {
      ADD_FAILURE() << "no report at " << json_path << "\n" << r.output;
      return {};
    }
    return nlohmann::json::parse(in);
  }

  fs::path _dir;
};

void expect_ember_results(const nlohmann::json& report) {
  EXPECT_EQ(report["workload"], "locks");
  EXPECT_EQ(report["parameters"]["ops"], 300);
  EXPECT_EQ(report["parameters"]["messages"], 2000);
  EXPECT_EQ(report["parameters"]["payload_bytes"], 64);
  EXPECT_TRUE(report["parameters"]["scheduler_started_by_bench"].get<bool>());
  EXPECT_TRUE(report["machine"].contains("git_revision"));
  for (const char* name : {"lock", "kv"}) {
    const auto& x = report["details"]["results"][name];
    EXPECT_GT(x["round_trips_per_second"]["median"].get<double>(), 0) << name;
    auto p50 = x["p50_us"]["median"].get<double>();
    auto p99 = x["p99_us"]["median"].get<double>();
    auto max = x["max_us"]["median"].get<double>();
    EXPECT_GT(p50, 0) << name;
    EXPECT_LE(p50, p99) << name;
    EXPECT_LE(p99, max) << name;
  }
  const auto& lock = report["details"]["results"]["lock"];
  EXPECT_GT(lock["acquire"]["p50_us"]["median"].get<double>(), 0);
  EXPECT_GT(lock["release"]["p50_us"]["median"].get<double>(), 0);
  // Each acquire is part of its pair, so its order statistics are no larger.
  EXPECT_LE(lock["acquire"]["p50_us"]["median"].get<double>(),
            lock["p50_us"]["median"].get<double>());
  for (const char* name : {"queue", "durable_queue"}) {
    const auto& q = report["details"]["results"][name];
    EXPECT_GT(q["messages_per_second"]["median"].get<double>(), 0) << name;
    EXPECT_EQ(q["durable"].get<bool>(), std::string(name) == "durable_queue");
  }
  EXPECT_GT(report["details"]["ratios"]["lock_p50_vs_goal_100us"].get<double>(), 0);
  EXPECT_GT(report["details"]["ratios"]["durable_queue_vs_queue"].get<double>(), 0);
  ASSERT_TRUE(report["details"]["peer"].is_string()) << report["details"]["peer"];
  EXPECT_TRUE(report["details"]["ceilings"]["ucx_round_trip"].contains("round_trip_p50_us"));
  EXPECT_GT(report["details"]["ceilings"]["fdatasync"]["p50_us"]["median"].get<double>(), 0);
}

void expect_no_peer_numbers(const nlohmann::json& report) {
  EXPECT_TRUE(report["details"]["peer_results"].is_null());
  for (const char* ratio : {"lock_p50_vs_redis_set_p50", "lock_p50_vs_redis_set_plus_get_p50",
                            "kv_p50_vs_redis_set_plus_get_p50", "queue_vs_redis_lpush_rpop_pairs"})
    EXPECT_TRUE(report["details"]["ratios"][ratio].is_null()) << ratio;
}

TEST_F(bench_locks, a_short_run_writes_a_report_with_every_field) {
  auto report = run_short();
  if (HasFailure()) return;
  expect_ember_results(report);
  auto peer = report["details"]["peer"].get<std::string>();
  if (peer.rfind("unavailable: ", 0) == 0) {
    expect_no_peer_numbers(report);
    return;
  }
  EXPECT_EQ(peer.rfind("redis-server ", 0), 0u) << peer;
  const auto& redis = report["details"]["peer_results"];
  for (const char* op : {"set", "get", "lpush", "rpop"})
    EXPECT_GT(redis[op]["ops_per_second"]["median"].get<double>(), 0) << op;
  EXPECT_GT(redis["set_get_pairs_per_second"]["median"].get<double>(), 0);
  EXPECT_GT(redis["lpush_rpop_pairs_per_second"]["median"].get<double>(), 0);
  EXPECT_GT(report["details"]["ratios"]["queue_vs_redis_lpush_rpop_pairs"].get<double>(), 0);
  EXPECT_GT(report["details"]["ratios"]["lock_p50_vs_redis_set_p50"].get<double>(), 0);
}

TEST_F(bench_locks, without_redis_on_the_path_the_peer_is_unavailable_and_ember_still_runs) {
  // An empty PATH: neither redis-server nor ucx_perftest can be found; the scheduler is this
  // same executable, started by its full path.
  auto empty = _dir / "empty-path";
  fs::create_directories(empty);
  auto report = run_short("PATH=" + empty.string());
  if (HasFailure()) return;
  expect_ember_results(report);
  EXPECT_EQ(report["details"]["peer"].get<std::string>().rfind(
                "unavailable: redis-server is not on PATH", 0),
            0u)
      << report["details"]["peer"];
  expect_no_peer_numbers(report);
  EXPECT_TRUE(report["details"]["ceilings"]["ucx_round_trip"]["round_trip_p50_us"].is_null());
  EXPECT_TRUE(report["details"]["ceilings"]["ucx_round_trip"].contains("note"));
}

}  // namespace
