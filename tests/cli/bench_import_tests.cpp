// `ember bench import` as a user runs it: a short run generates a small CSV file, imports it into
// a dataset, scans it back and writes a JSON report with every field. No timing is checked
// (benchmarks are not tests), only that each number is there and plausible and that every
// answer matched the generator's. The DuckDB peer runs when a Python with duckdb is at hand.
#include <unistd.h>

#include <cstdlib>
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

class bench_import : public ::testing::Test {
 protected:
  void SetUp() override {
    _dir = fs::temp_directory_path() /
           ("ember_bench_import_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(_dir);
    fs::create_directories(_dir);
  }
  void TearDown() override { fs::remove_all(_dir); }

  nlohmann::json read_report(const fs::path& path, const std::string& output) {
    std::ifstream in(path);
    EXPECT_TRUE(in) << "no report at " << path << "\n" << output;
    return in ? nlohmann::json::parse(in) : nlohmann::json::object();
  }

  fs::path _dir;
};

// A measure's median time, rows/s and bytes/s are positive, and its answers matched.
void expect_measure(const nlohmann::json& m, const char* rate, int rounds,
                    const std::string& what) {
  EXPECT_GT(m["seconds"]["median"].get<double>(), 0) << what;
  EXPECT_EQ(m["seconds"]["all"].size(), static_cast<std::size_t>(rounds)) << what;
  EXPECT_GT(m["rows_per_second"].get<double>(), 0) << what;
  EXPECT_GT(m[rate].get<double>(), 0) << what;
  EXPECT_TRUE(m["answers_match"].get<bool>()) << what << ": " << m["failures"].dump();
}

// The bench's answers equal the generator's (the checks that made answers_match true).
void expect_answers(const nlohmann::json& answers, const nlohmann::json& expected,
                    const std::string& who) {
  for (const char* key : {"rows", "count_country"}) {
    EXPECT_EQ(answers["narrow"][key], expected[key]) << who << " narrow " << key;
    EXPECT_EQ(answers["full"][key], expected[key]) << who << " full " << key;
  }
  for (const char* key : {"sum_id", "sum_user", "max_ts_ms", "device_bytes"})
    EXPECT_EQ(answers["full"][key], expected[key]) << who << " " << key;
  auto want = expected["sum_amount"].get<double>();
  EXPECT_NEAR(answers["full"]["sum_amount"].get<double>(), want, 1e-9 * want) << who;
  EXPECT_NEAR(answers["narrow"]["sum_amount"].get<double>(), want, 1e-9 * want) << who;
}

TEST_F(bench_import, a_short_run_writes_a_report_with_every_field) {
  auto json_path = _dir / "import.json";
  auto r = run_ember("bench import --size 4MB --rounds 1 --json " + json_path.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("import CSV -> own format"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("same answer"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("DIFFERENT ANSWER"), std::string::npos) << r.output;
  auto report = read_report(json_path, r.output);

  EXPECT_EQ(report["workload"], "import");
  EXPECT_TRUE(report["machine"].contains("git_revision"));
  EXPECT_TRUE(report["machine"].contains("cpu"));
  EXPECT_EQ(report["parameters"]["size_bytes"], 4'000'000);
  EXPECT_EQ(report["parameters"]["threads"], 2);
  EXPECT_EQ(report["parameters"]["rounds"], 1);
  EXPECT_TRUE(report["details"]["answers_match"].get<bool>());
  EXPECT_FALSE(report.contains("duckdb"));
  EXPECT_FALSE(report.contains("speed_ratio_ember_over_duckdb"));

  // About --size bytes of CSV, some 60 bytes a row.
  const auto& input = report["details"]["input"];
  auto csv_bytes = input["csv_bytes"].get<double>();
  EXPECT_GE(csv_bytes, 4e6);
  EXPECT_LT(csv_bytes, 4.01e6);
  auto rows = input["rows"].get<std::int64_t>();
  EXPECT_GT(rows, 40'000);
  EXPECT_LT(rows, 100'000);
  const auto& expected = input["expected"];
  EXPECT_EQ(expected["rows"], rows);
  // Nulls were generated: fewer countries than rows, but most rows have one.
  EXPECT_LT(expected["count_country"].get<std::int64_t>(), rows);
  EXPECT_GT(expected["count_country"].get<std::int64_t>(), rows * 9 / 10);

  const auto& ember = report["details"]["ember"];
  const auto& dataset = ember["dataset"];
  EXPECT_EQ(dataset["rows"], rows);
  EXPECT_EQ(dataset["partitions"], 1);
  EXPECT_GT(dataset["file_bytes"].get<double>(), 0);
  EXPECT_GT(dataset["raw_bytes"].get<double>(), dataset["narrow_raw_bytes"].get<double>());
  EXPECT_GT(dataset["narrow_raw_bytes"].get<double>(), 0);
  ASSERT_EQ(dataset["schema"].size(), 6u);
  EXPECT_EQ(dataset["schema"][2]["name"], "amount");
  EXPECT_EQ(dataset["schema"][2]["type"], "float64");
  EXPECT_EQ(dataset["schema"][3]["type"], "timestamp");
  EXPECT_EQ(dataset["schema"][4]["type"], "string");

  expect_measure(ember["import"], "csv_bytes_per_second", 1, "ember import");
  expect_measure(ember["narrow"], "raw_bytes_per_second", 1, "ember narrow scan");
  expect_measure(ember["full"], "raw_bytes_per_second", 1, "ember full scan");
  EXPECT_GT(ember["import"]["parse_seconds"]["median"].get<double>(), 0);
  EXPECT_GT(ember["import"]["write_commit_seconds"]["median"].get<double>(), 0);
  expect_answers(ember["answers"], expected, "ember");
  ASSERT_EQ(report["details"]["rounds"].size(), 1u);
  EXPECT_GT(report["details"]["rounds"][0]["ember_import_seconds"].get<double>(), 0);
}

TEST_F(bench_import, keep_leaves_the_csv_and_the_dataset_in_the_folder) {
  auto kept = _dir / "kept";
  auto r = run_ember("bench import --size 256KB --rounds 1 --threads 1 --keep " + kept.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::is_regular_file(kept / "bench_import.csv")) << r.output;
  EXPECT_GE(fs::file_size(kept / "bench_import.csv"), 256'000u);
  EXPECT_TRUE(fs::is_regular_file(kept / "ember_root" / "events" / "CURRENT")) << r.output;
}

// The interpreter the bench script's virtual environment holds, else python3, when it can
// import duckdb; empty otherwise.
std::string python_with_duckdb() {
  auto venv = ember::test::source_dir() / "bench" / ".venv" / "bin" / "python";
  for (const std::string& python : {venv.string(), std::string("python3")}) {
    if (python != "python3" && !fs::exists(python)) continue;
    std::string cmd = python + " -c 'import duckdb' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return python;
  }
  return {};
}

TEST_F(bench_import, beside_duckdb_both_give_the_same_answers) {
  auto python = python_with_duckdb();
  if (python.empty())
    GTEST_SKIP() << "no Python with duckdb (neither bench/.venv, made by "
                    "bench/run-import-vs-duckdb, nor python3 can import duckdb)";
  auto json_path = _dir / "import.json";
  auto r = run_ember("bench import --size 4MB --rounds 1 --compare duckdb --python " + python +
                     " --json " + json_path.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ember speed / duckdb"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("DIFFERENT ANSWER"), std::string::npos) << r.output;
  auto report = read_report(json_path, r.output);
  EXPECT_TRUE(report["details"]["answers_match"].get<bool>());
  EXPECT_EQ(report["details"]["peer"]["peer"], "duckdb");
  EXPECT_FALSE(report["details"]["peer"]["version"].get<std::string>().empty());
  EXPECT_EQ(report["details"]["peer"]["threads"], 2);

  const auto& duckdb = report["details"]["duckdb"];
  EXPECT_EQ(duckdb["types"]["amount"], "DOUBLE");
  EXPECT_EQ(duckdb["types"]["ts"], "TIMESTAMP");
  EXPECT_GT(duckdb["file_bytes"].get<double>(), 0);
  expect_measure(duckdb["import"], "csv_bytes_per_second", 1, "duckdb import");
  expect_measure(duckdb["narrow"], "raw_bytes_per_second", 1, "duckdb narrow scan");
  expect_measure(duckdb["full"], "raw_bytes_per_second", 1, "duckdb full scan");
  expect_answers(duckdb["answers"], report["details"]["input"]["expected"], "duckdb");
  for (const char* phase : {"import", "narrow", "full"})
    EXPECT_GT(report["details"]["speed_ratio_ember_over_duckdb"][phase].get<double>(), 0) << phase;
  EXPECT_GT(report["details"]["rounds"][0]["duckdb_import_seconds"].get<double>(), 0);
}

TEST_F(bench_import, bad_flags_exit_2_naming_the_flag) {
  struct bad {
    std::string args;
    std::string flag;
  };
  for (const auto& b :
       {bad{"--size 0", "--size"}, bad{"--size lots", "--size"}, bad{"--threads 0", "--threads"},
        bad{"--rounds 0", "--rounds"}, bad{"--compare nope", "--compare"}}) {
    auto r = run_ember("bench import " + b.args + " --json " + (_dir / "x.json").string());
    EXPECT_EQ(r.status, 2) << b.args << "\n" << r.output;
    EXPECT_NE(r.output.find(b.flag), std::string::npos) << b.args << "\n" << r.output;
    EXPECT_FALSE(fs::exists(_dir / "x.json")) << b.args;
  }
}

}  // namespace
