// Every `ember bench` workload writes the common report (bench/report.schema.json) from a real,
// short run: the report validates against the schema (Python jsonschema, an independent
// validator), and each field the issue names is present and non-trivial where the workload
// measures it: machine (CPU, versions, git revision), seconds and rates per stage, the peer or
// ceiling, tier moves, shuffle bytes per link, the residency hit rate, latency percentiles.
// No timing is checked: benchmarks are not tests.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include "common/processes.hpp"
#include "common/report_schema.hpp"
#include "common/run_ember.hpp"
#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

using ember::test::run_ember;

class bench_report : public ::testing::Test {
 protected:
  void SetUp() override {
    _dir = fs::temp_directory_path() /
           ("ember_bench_report_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(_dir);
  }
  void TearDown() override { fs::remove_all(_dir); }

  // Runs `ember bench ARGS --json FILE`, checks the exit status and the schema, returns it.
  nlohmann::json run_bench(const std::string& args) {
    auto path = _dir / "report.json";
    auto r = run_ember("bench " + args + " --json " + path.string());
    EXPECT_EQ(r.status, 0) << args << "\n" << r.output;
    std::ifstream in(path);
    if (!in) {
      ADD_FAILURE() << "no report from " << args << "\n" << r.output;
      return {};
    }
    auto check = ember::test::validate_report(path);
    EXPECT_TRUE(check.valid) << args << ": the report does not follow the schema:\n"
                             << check.errors;
    _output = r.output;
    return nlohmann::json::parse(in);
  }

  fs::path _dir;
  std::string _output;
};

// What every report must hold, whatever the workload.
void expect_common_fields(const nlohmann::json& r) {
  const auto& m = r["machine"];
  EXPECT_GE(m["git_revision"].get<std::string>().size(), 7u);
  EXPECT_FALSE(m["cpu"].get<std::string>().empty());
  EXPECT_GE(m["hardware_threads"].get<int>(), 1);
  EXPECT_GT(m["memory_bytes"].get<double>(), 1e8);
  EXPECT_FALSE(m["ucx_version"].get<std::string>().empty());
  // A GPU is listed with its name, or its absence is explained; the CUDA toolkit version is
  // known whenever the CUDA backend was built.
  if (m["gpus"].empty()) {
    EXPECT_FALSE(m["gpu_note"].get<std::string>().empty());
  }
  if (m["cuda_backend_built"].get<bool>()) {
    EXPECT_TRUE(m["cuda_toolkit_version"].is_string());
  }
  EXPECT_GT(r["wall_seconds"].get<double>(), 0);
  EXPECT_FALSE(r["parameters"].empty());
  bool some_bytes = false;
  for (const auto& s : r["stages"]) {
    EXPECT_GT(s["seconds"]["median"].get<double>(), 0) << s["name"];
    EXPECT_GT(s["rows"].get<double>(), 0) << s["name"];
    EXPECT_GT(s["rows_per_second"].get<double>(), 0) << s["name"];
    some_bytes = some_bytes || s["bytes_per_second"].get<double>() > 0;
  }
  EXPECT_TRUE(some_bytes) << "no stage moved bytes";
  ASSERT_FALSE(r["comparisons"].empty());
  for (const auto& c : r["comparisons"]) {
    EXPECT_GT(c["ratio"].get<double>(), 0) << c;
    EXPECT_FALSE(c["against"].get<std::string>().empty()) << c;
  }
}

void expect_links(const nlohmann::json& r) {
  const auto& s = r["shuffle"];
  ASSERT_TRUE(s.is_object()) << r["not_measured"];
  EXPECT_GT(s["bytes"].get<double>(), 0);
  EXPECT_GT(s["bytes_per_second"].get<double>(), 0);
  ASSERT_FALSE(s["links"].empty());
  double sum = 0;
  for (const auto& l : s["links"]) {
    EXPECT_NE(l["from"], l["to"]) << l;
    EXPECT_GT(l["bytes"].get<double>(), 0) << l;
    EXPECT_GT(l["seconds"].get<double>(), 0) << l;
    EXPECT_GT(l["bytes_per_second"].get<double>(), 0) << l;
    sum += l["bytes"].get<double>();
  }
  // The links are the shuffle, nothing else.
  EXPECT_EQ(sum, s["bytes"].get<double>());
}

TEST_F(bench_report, shuffle_reports_links_spills_and_lookups) {
  // 6 MB in 6 partitions of 1 MB; a worker's two map tasks write more blocks than its device
  // tier (3 MB) holds beside the next task's scratch: blocks spill to host.
  auto r = run_bench(
      "shuffle --size 6MB --rounds 1 --transport tcp --workers 3 --device-memory-limit 3MB");
  expect_common_fields(r);
  EXPECT_EQ(r["workload"], "shuffle");
  EXPECT_EQ(r["cluster"]["kind"], "local-processes");
  EXPECT_EQ(r["cluster"]["workers"].size(), 3u);
  expect_links(r);
  EXPECT_GT(r["tiers"]["spilled_to_host_bytes"].get<double>(), 0) << r["tiers"];
  EXPECT_GT(r["tiers"]["device_limit_bytes"].get<double>(), 0) << r["tiers"];
  EXPECT_GT(r["residency"]["lookups"].get<double>(), 0);
  EXPECT_GT(r["residency"]["hit_rate"].get<double>(), 0);
  EXPECT_TRUE(r["latency"].is_null());
  EXPECT_TRUE(r["not_measured"].contains("latency"));
  EXPECT_NE(_output.find("from"), std::string::npos) << _output;  // the links table
}

TEST_F(bench_report, tasks_reports_the_embedded_ceiling) {
  auto r = run_bench("tasks --tasks 2000 --rounds 1");
  expect_common_fields(r);
  EXPECT_EQ(r["stages"].size(), 2u);
  EXPECT_EQ(r["comparisons"][0]["kind"], "ceiling");
  for (const char* section : {"tiers", "shuffle", "residency", "latency"})
    EXPECT_TRUE(r["not_measured"].contains(section)) << section;
}

TEST_F(bench_report, locks_reports_lock_and_queue_latency_percentiles) {
  auto r = run_bench("locks --ops 300 --messages 2000 --rounds 1");
  expect_common_fields(r);
  EXPECT_EQ(r["cluster"]["kind"], "local-processes");  // the scheduler the bench started
  ASSERT_TRUE(r["latency"].is_array());
  std::set<std::string> names;
  for (const auto& l : r["latency"]) {
    names.insert(l["name"].get<std::string>());
    EXPECT_GT(l["p50_us"]["median"].get<double>(), 0) << l["name"];
    EXPECT_GE(l["p99_us"]["median"].get<double>(), l["p50_us"]["median"].get<double>());
    EXPECT_GE(l["max_us"]["median"].get<double>(), l["p99_us"]["median"].get<double>());
  }
  for (const char* n : {"lock acquire+release", "kv set+get", "queue put (8 clients)",
                        "durable queue put (8 clients)"})
    EXPECT_TRUE(names.count(n)) << n;
  // Queue gets too.
  EXPECT_TRUE(std::any_of(names.begin(), names.end(),
                          [](const std::string& n) { return n.rfind("queue get+ack", 0) == 0; }));
}

TEST_F(bench_report, cache_reports_tier_moves_residency_and_links) {
  auto r = run_bench("cache --size 8MB --rows 200000 --rounds 1 --spill-dir " + _dir.string());
  expect_common_fields(r);
  EXPECT_GT(r["tiers"]["spilled_to_host_bytes"].get<double>(), 7e6);
  EXPECT_GT(r["tiers"]["spilled_to_disk_bytes"].get<double>(), 7e6);
  EXPECT_GT(r["tiers"]["unspilled_bytes"].get<double>(), 14e6);
  // Resident runs find every scanned input.
  EXPECT_EQ(r["residency"]["hit_rate"].get<double>(), 1.0) << r["residency"];
  expect_links(r);
  int ceilings = 0;
  for (const auto& c : r["comparisons"]) ceilings += c["kind"] == "ceiling" ? 1 : 0;
  EXPECT_EQ(ceilings, 4);
}

TEST_F(bench_report, ops_and_import_report_their_ceilings) {
  auto ops = run_bench("ops --rows 100000 --rounds 1 --backend cpu --only groupby_sum_100");
  expect_common_fields(ops);
  EXPECT_EQ(ops["stages"].size(), 1u);
  EXPECT_EQ(ops["machine"]["backend"], "cpu");
  EXPECT_TRUE(ops["not_measured"].contains("duckdb"));
  auto import = run_bench("import --size 4MB --rounds 1");
  expect_common_fields(import);
  EXPECT_EQ(import["stages"].size(), 3u);
  EXPECT_EQ(import["comparisons"][0]["kind"], "ceiling");
}

// --scheduler: the cluster workloads run on a cluster that was already running (here with a
// token), report it as such, and still measure its links and stores.
TEST_F(bench_report, cluster_workloads_run_on_a_running_cluster) {
  ember::test::cluster_spec spec;
  spec.workers = 2;
  spec.token = "bench-report-token";
  ember::test::local_cluster cluster(spec);
  auto at = " --scheduler " + cluster.address + " --token-file " + cluster.token_file().string();
  auto wordcount = run_bench("wordcount --size 1MB --rounds 1" + at);
  expect_common_fields(wordcount);
  EXPECT_EQ(wordcount["cluster"]["kind"], "scheduler");
  EXPECT_EQ(wordcount["cluster"]["address"], cluster.address);
  EXPECT_EQ(wordcount["cluster"]["workers"].size(), 2u);
  expect_links(wordcount);
  EXPECT_GT(wordcount["residency"]["lookups"].get<double>(), 0);
  auto cache = run_bench("cache --size 2MB --rows 50000 --workers 2 --rounds 1 --data-dir " +
                         _dir.string() + at);
  expect_common_fields(cache);
  EXPECT_EQ(cache["cluster"]["kind"], "scheduler");
  EXPECT_EQ(cache["residency"]["hit_rate"].get<double>(), 1.0) << cache["residency"];
  auto tasks = run_bench("tasks --tasks 500 --rounds 1" + at);
  expect_common_fields(tasks);
  EXPECT_EQ(tasks["cluster"]["kind"], "scheduler");
  // Without the token the scheduler refuses the bench, which says so.
  auto refused = run_ember("bench tasks --tasks 10 --rounds 1 --scheduler " + cluster.address);
  EXPECT_NE(refused.status, 0) << refused.output;
  EXPECT_NE(refused.output.find("token"), std::string::npos) << refused.output;
}

TEST_F(bench_report, bad_flags_list_the_valid_choices) {
  struct bad {
    std::string args, message;
  };
  for (const auto& b : {
           bad{"shuffle --transport carrier-pigeon", "tcp"},
           bad{"shuffle --exchange smoke", "nccl"},
           bad{"shuffle --embedded", "--embedded"},
           bad{"tasks --scheduler 127.0.0.1:1 --device-memory-limit 4MB", "--scheduler"},
           bad{"shuffle --device-memory-limit lots", "--device-memory-limit"},
           bad{"tasks --workers 0", "--workers"},
       }) {
    auto r = run_ember("bench " + b.args);
    EXPECT_EQ(r.status, 2) << b.args << ": " << r.output;
    EXPECT_NE(r.output.find(b.message), std::string::npos) << b.args << ": " << r.output;
  }
}

}  // namespace
