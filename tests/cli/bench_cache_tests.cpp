// `ember bench cache` as a user runs it: a short run moves a small table through the tiers,
// starts its own cluster for the repeated job, and writes a JSON report with every field. No
// timing is checked (benchmarks are not tests), only that each number is there and plausible:
// a run whose inputs are resident finds them, a first run does not.
#include <unistd.h>

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

class bench_cache : public ::testing::Test {
 protected:
  void SetUp() override {
    _dir = fs::temp_directory_path() /
           ("ember_bench_cache_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(_dir);
  }
  void TearDown() override { fs::remove_all(_dir); }

  fs::path _dir;
};

TEST_F(bench_cache, a_short_run_writes_a_report_with_every_field) {
  auto json_path = _dir / "cache.json";
  auto spill = _dir / "spill";
  auto r = run_ember("bench cache --size 8MB --rows 200000 --rounds 1 --json " +
                     json_path.string() + " --spill-dir " + spill.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("spill device -> host"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("read again"), std::string::npos) << r.output;
  std::ifstream in(json_path);
  ASSERT_TRUE(in) << "no report at " << json_path << "\n" << r.output;
  auto report = nlohmann::json::parse(in);

  EXPECT_EQ(report["workload"], "cache");
  EXPECT_TRUE(report["machine"].contains("git_revision"));
  EXPECT_TRUE(report["machine"].contains("cpu"));
  EXPECT_EQ(report["parameters"]["rows"], 200000);
  EXPECT_EQ(report["parameters"]["rounds"], 1);
  EXPECT_EQ(report["parameters"]["workers"], 2);

  const auto& tiers = report["details"]["tiers"];
  auto bytes = tiers["bytes"].get<double>();
  EXPECT_GT(bytes, 7e6);
  EXPECT_LT(bytes, 9e6);
  // The bench's own folder inside --spill-dir is gone afterwards.
  EXPECT_TRUE(fs::is_empty(spill)) << spill;
  for (const char* m : {"memcpy", "spill_device_to_host", "unspill_host_to_device", "file_write",
                        "spill_host_to_disk", "file_read", "unspill_disk_to_host"}) {
    const auto& x = tiers["measures"][m];
    EXPECT_GT(x["bytes_per_second"]["median"].get<double>(), 0) << m;
    EXPECT_EQ(x["seconds"]["all"].size(), 1u) << m;
  }
  for (const char* ratio :
       {"spill_device_to_host_vs_memcpy", "unspill_host_to_device_vs_memcpy",
        "spill_host_to_disk_vs_file_write", "unspill_disk_to_host_vs_file_read"}) {
    const auto& x = tiers["ratios"][ratio];
    EXPECT_GT(x["ratio"].get<double>(), 0) << ratio;
    EXPECT_EQ(x["goal"].get<double>(), 0.8) << ratio;
    EXPECT_EQ(x["met"].get<bool>(), x["ratio"].get<double>() >= 0.8) << ratio;
  }
  EXPECT_GE(tiers["device_tier_peak_bytes"].get<double>(), bytes);
  EXPECT_GT(tiers["spill_file_bytes"].get<double>(), 0);
  EXPECT_GT(tiers["store"]["spilled_to_disk_bytes"].get<double>(), 0);

  const auto& job = report["details"]["job"];
  EXPECT_EQ(job["partitions"], 8);
  EXPECT_TRUE(job["results_identical"].get<bool>());
  ASSERT_EQ(job["runs"].size(), 3u) << job["runs"];  // first, resident, read again
  const auto& first = job["first"];
  EXPECT_EQ(first["kind"], "first");
  EXPECT_EQ(first["resident_partitions_before"], 0);
  EXPECT_EQ(first["misses"], 8);  // every partition read from its file
  auto resident_rate = job["resident"]["hit_rate"]["median"].get<double>();
  EXPECT_GT(resident_rate, 0.5);
  EXPECT_LT(first["hit_rate"].get<double>(), resident_rate);
  const auto& resident = job["runs"][1];
  EXPECT_EQ(resident["kind"], "resident");
  EXPECT_EQ(resident["resident_partitions_before"], 8);
  EXPECT_EQ(resident["misses"], 0);
  const auto& again = job["runs"][2];
  EXPECT_EQ(again["kind"], "read_again");
  EXPECT_EQ(again["resident_partitions_before"], 0);
  EXPECT_LT(again["hit_rate"].get<double>(), resident_rate);
  for (const auto& run : job["runs"]) {
    EXPECT_GT(run["seconds"].get<double>(), 0) << run;
    EXPECT_GT(run["hits"].get<double>() + run["misses"].get<double>(), 0) << run;
  }
  EXPECT_GT(job["resident"]["seconds"]["median"].get<double>(), 0);
  EXPECT_GT(job["read_again"]["seconds"]["median"].get<double>(), 0);
  EXPECT_GT(job["ratios"]["read_again_vs_resident_seconds"].get<double>(), 0);
  EXPECT_TRUE(job["read_again_method"].is_string());
}

TEST_F(bench_cache, bad_sizes_and_counts_are_rejected_naming_the_flag) {
  for (const auto& [args, flag] : {std::pair<std::string, std::string>{"--size 0", "--size"},
                                   {"--rounds 0", "--rounds"},
                                   {"--size lots", "--size"},
                                   {"--rows 0", "--rows"},
                                   {"--workers 0", "--workers"}}) {
    auto r = run_ember("bench cache " + args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(flag), std::string::npos) << args << "\n" << r.output;
  }
}

}  // namespace
