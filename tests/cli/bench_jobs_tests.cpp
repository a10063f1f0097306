// `ember bench wordcount` and `ember bench enrich` as a user runs them: a short run starts its own
// scheduler and worker processes, checks every answer, and writes a report that passes
// bench/report.schema.json with every section it claims filled in. No timing is checked
// (benchmarks are not tests), only that each number is there and plausible. DuckDB is not
// installed here: --compare duckdb is exercised by hand (bench/peers/duckdb_*.py).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#include <gtest/gtest.h>
#include "common/report_schema.hpp"
#include "common/run_ember.hpp"
#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

using ember::test::run_ember;
using ember::test::validate_report;

class bench_jobs : public ::testing::Test {
 protected:
  void SetUp() override {
    _dir = fs::temp_directory_path() /
           ("ember_bench_jobs_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(_dir);
  }
  void TearDown() override { fs::remove_all(_dir); }

  /// Runs `ember bench ARGS --json FILE`, expects success and a report valid against the
  /// schema, and returns it.
  nlohmann::json run_report(const std::string& args) {
    auto path = _dir / "report.json";
    auto r = run_ember("bench " + args + " --json " + path.string());
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output.find("DIFFERENT ANSWER"), std::string::npos) << r.output;
    std::ifstream in(path);
    if (!in) {
      ADD_FAILURE() << "no report at " << path << "\n" << r.output;
      return {};
    }
    auto check = validate_report(path);
    EXPECT_TRUE(check.valid) << check.errors;
    _output = r.output;
    return nlohmann::json::parse(in);
  }

  fs::path _dir;
  std::string _output;
};

void expect_machine(const nlohmann::json& report) {
  const auto& m = report["machine"];
  EXPECT_GE(m["git_revision"].get<std::string>().size(), 7u) << m;
  EXPECT_FALSE(m["cpu"].get<std::string>().empty()) << m;
  EXPECT_FALSE(m["ucx_version"].get<std::string>().empty()) << m;
}

void expect_cluster_sections(const nlohmann::json& report) {
  EXPECT_EQ(report["cluster"]["kind"], "local-processes");
  EXPECT_EQ(report["cluster"]["workers"].size(), 2u) << report["cluster"];
  const auto& links = report["shuffle"]["links"];
  ASSERT_FALSE(links.empty()) << report["shuffle"];
  for (const auto& l : links) {
    EXPECT_GT(l["bytes"].get<double>(), 0) << l;
    EXPECT_NE(l["from"], l["to"]) << l;
  }
  EXPECT_GT(report["shuffle"]["bytes"].get<double>(), 0);
  EXPECT_GT(report["residency"]["lookups"].get<double>(), 0) << report["residency"];
  EXPECT_TRUE(report["tiers"].is_object());
}

void expect_comparisons(const nlohmann::json& report, const std::string& job_stage) {
  std::set<std::string> stages;
  for (const auto& s : report["stages"]) stages.insert(s["name"].get<std::string>());
  const auto& comparisons = report["comparisons"];
  ASSERT_FALSE(comparisons.empty());
  bool job_ceiling = false;
  for (const auto& c : comparisons) {
    EXPECT_GT(c["ratio"].get<double>(), 0) << c;
    EXPECT_TRUE(stages.count(c["stage"].get<std::string>())) << c;
    job_ceiling = job_ceiling || (c["stage"] == job_stage && c["kind"] == "ceiling");
  }
  EXPECT_TRUE(job_ceiling) << comparisons;
  // Without --compare the peer is explained, not silently left out.
  EXPECT_TRUE(report["not_measured"].contains("duckdb")) << report["not_measured"];
  EXPECT_TRUE(report["not_measured"].contains("latency")) << report["not_measured"];
}

TEST_F(bench_jobs, a_small_wordcount_writes_a_full_report) {
  auto report = run_report("wordcount --size 2MB --rounds 1");
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["workload"], "wordcount");
  EXPECT_EQ(report["parameters"]["size_bytes"], 2000000);
  EXPECT_EQ(report["parameters"]["rounds"], 1);
  expect_machine(report);
  const auto& stages = report["stages"];
  ASSERT_GE(stages.size(), 2u) << stages;
  for (const auto& s : stages) {
    EXPECT_GT(s["seconds"]["median"].get<double>(), 0) << s;
    EXPECT_EQ(s["seconds"]["all"].size(), 1u) << s;
    EXPECT_GT(s["rows"].get<double>(), 0) << s;
    EXPECT_GT(s["bytes"].get<double>(), 0) << s;
  }
  EXPECT_EQ(stages.back()["name"], "wordcount: job");
  const auto& input = report["details"]["input"];
  EXPECT_GE(input["bytes"].get<double>(), 2e6);
  EXPECT_EQ(stages.back()["bytes"], input["bytes"]);
  EXPECT_EQ(stages.back()["rows"], input["lines"]);
  EXPECT_EQ(input["files"], 4);  // two per worker
  EXPECT_GT(input["distinct_words"].get<double>(), 1000);
  EXPECT_EQ(input["top"].size(), 20u);
  EXPECT_TRUE(report["details"]["answers_match"].get<bool>());
  expect_cluster_sections(report);
  expect_comparisons(report, "wordcount: job");
}

TEST_F(bench_jobs, a_small_enrich_under_a_small_budget_spills_and_writes_a_full_report) {
  // 6MB per worker: below what the job holds at once (so partitions spill to host), above what
  // one task needs (4MB is too small for a task at this scale).
  auto report = run_report("enrich --scale 4MB --rounds 1 --device-memory-limit 6MB");
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["workload"], "enrich");
  EXPECT_EQ(report["parameters"]["scale_bytes"], 4000000);
  expect_machine(report);
  std::set<std::string> names;
  for (const auto& s : report["stages"]) {
    auto name = s["name"].get<std::string>();
    names.insert(name);
    EXPECT_GT(s["rows"].get<double>(), 0) << s;
    EXPECT_GT(s["bytes"].get<double>(), 0) << s;
    EXPECT_FALSE(s.value("note", "").empty()) << s;
    // join, compute and write are differences of two measured stages (0 when noise wins).
    bool derived = name == "enrich: join" || name == "enrich: compute" || name == "enrich: write";
    if (derived)
      EXPECT_GE(s["seconds"]["median"].get<double>(), 0) << s;
    else
      EXPECT_GT(s["seconds"]["median"].get<double>(), 0) << s;
  }
  for (const char* stage :
       {"enrich: read", "enrich: join", "enrich: compute", "enrich: write", "enrich: job"})
    EXPECT_TRUE(names.count(stage)) << stage;
  const auto& d = report["details"];
  EXPECT_EQ(d["output"]["rows"], d["input"]["events_rows"]);
  auto ratio = d["output_over_input_bytes"]["files"].get<double>();
  EXPECT_GT(ratio, 1.5) << d["output_over_input_bytes"];
  EXPECT_LT(ratio, 3.0) << d["output_over_input_bytes"];
  EXPECT_TRUE(d["answers_match"].get<bool>());
  EXPECT_GT(report["tiers"]["spilled_to_host_bytes"].get<double>(), 0) << report["tiers"];
  EXPECT_EQ(report["tiers"]["device_limit_bytes"], 6000000) << report["tiers"];
  expect_cluster_sections(report);
  expect_comparisons(report, "enrich: job");
}

TEST_F(bench_jobs, embedded_wordcount_explains_what_the_in_process_cluster_cannot_measure) {
  auto report = run_report("wordcount --size 1MB --rounds 1 --embedded --workers 2");
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["cluster"]["kind"], "embedded");
  for (const char* section : {"tiers", "shuffle", "residency"}) {
    EXPECT_TRUE(report[section].is_null()) << section;
    auto why = report["not_measured"].value(section, "");
    EXPECT_NE(why.find("--embedded"), std::string::npos) << section << ": " << why;
  }
  EXPECT_FALSE(report["comparisons"].empty());
  EXPECT_TRUE(report["details"]["answers_match"].get<bool>());
}

TEST_F(bench_jobs, bad_options_are_rejected_naming_the_flag_and_the_choices) {
  for (const auto& [args, words] :
       {std::pair<std::string, std::vector<std::string>>{"wordcount --compare polars",
                                                         {"--compare", "polars", "duckdb"}},
        {"enrich --compare polars", {"--compare", "duckdb"}},
        {"enrich --write-compression lz4", {"--write-compression", "none", "zstd"}},
        {"wordcount --rounds 0", {"--rounds"}},
        {"enrich --scale 0", {"--scale"}},
        {"wordcount --size lots", {"--size"}},
        {"wordcount --files -1", {"--files"}}}) {
    auto r = run_ember("bench " + args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
    for (const auto& w : words)
      EXPECT_NE(r.output.find(w), std::string::npos) << args << ": " << w << "\n" << r.output;
  }
}

}  // namespace
