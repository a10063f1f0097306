// The `ember` executable as users and scripts see it: real processes, real files, exit codes.
#include <sys/wait.h>

#include <cctype>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include "common/paths.hpp"
#include "common/processes.hpp"
#include "common/run_ember.hpp"
#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

using ember::test::run_ember;
using ember::test::run_result;

class cli : public ::testing::Test {
 protected:
  void SetUp() override {
    _dir = fs::temp_directory_path() /
           ("ember_cli_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(_dir);
  }
  void TearDown() override { fs::remove_all(_dir); }
  fs::path _dir;
};

std::vector<std::vector<std::string>> read_csv(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

// The word rules of tokenize.hpp, written the obvious way.
std::map<std::string, long> reference_word_count(const std::vector<fs::path>& files) {
  std::map<std::string, long> counts;
  auto is_word_byte = [](unsigned char c) { return std::isalnum(c) || c >= 0x80; };
  auto is_letter = [](unsigned char c) { return std::isalpha(c) || c >= 0x80; };
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string word;
    for (std::size_t i = 0; i <= text.size(); ++i) {
      unsigned char c = i < text.size() ? static_cast<unsigned char>(text[i]) : ' ';
      bool apostrophe_inside =
          c == '\'' && !word.empty() && is_letter(static_cast<unsigned char>(word.back())) &&
          i + 1 < text.size() && is_letter(static_cast<unsigned char>(text[i + 1]));
      if (is_word_byte(c) || apostrophe_inside) {
        word += static_cast<char>(c < 0x80 ? std::tolower(c) : c);
      } else if (!word.empty()) {
        ++counts[word];
        word.clear();
      }
    }
  }
  return counts;
}

TEST_F(cli, wordcount_on_the_shipped_text_matches_a_reference_count) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(ember::test::source_dir() / "data"))
    if (e.path().extension() == ".txt") files.push_back(e.path());
  ASSERT_FALSE(files.empty());
  std::string args = "run wordcount --quiet --output ";
  args += (_dir / "wc.csv").string();
  args += " --input";
  for (const auto& f : files) {
    args += ' ';
    args += f.string();
  }
  auto r = run_ember(args);
  ASSERT_EQ(r.status, 0) << r.output;
  auto rows = read_csv(_dir / "wc.csv");
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0], (std::vector<std::string>{"word", "count"}));
  auto expected = reference_word_count(files);
  std::map<std::string, long> got;
  for (std::size_t i = 1; i < rows.size(); ++i) got[rows[i].at(0)] = std::stol(rows[i].at(1));
  EXPECT_EQ(got, expected);
  // Sorted by count descending, then word.
  for (std::size_t i = 2; i < rows.size(); ++i) {
    long a = std::stol(rows[i - 1][1]), b = std::stol(rows[i][1]);
    EXPECT_TRUE(a > b || (a == b && rows[i - 1][0] < rows[i][0])) << "row " << i;
  }
}

TEST_F(cli, wordcount_top_limits_the_rows_and_prints_them) {
  auto r = run_ember("run wordcount --quiet --top 3 --input " + ember::test::source_dir().string() +
                     "/data/harbour.txt");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("the"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(3 rows)"), std::string::npos) << r.output;
}

TEST_F(cli, generated_jobs_write_csv_with_a_header) {
  struct job {
    std::string name, args, header;
  };
  for (const auto& j : {job{"groupby", "--rows 20000", "key,sum,count,mean,min,max"},
                        job{"sort", "--rows 5000", ""}, job{"join", "--rows 20000", ""},
                        job{"enrich", "--rows 20000", "category,day,orders,revenue"}}) {
    auto out = _dir / (j.name + ".csv");
    auto r = run_ember("run " + j.name + " " + j.args + " --quiet --output " + out.string());
    ASSERT_EQ(r.status, 0) << j.name << ": " << r.output;
    auto rows = read_csv(out);
    ASSERT_GT(rows.size(), 1u) << j.name;
    if (!j.header.empty()) {
      std::string header;
      for (const auto& c : rows[0]) header += (header.empty() ? "" : ",") + c;
      EXPECT_EQ(header, j.header) << j.name;
    }
  }
}

TEST_F(cli, bad_input_gets_a_clear_message_and_exit_status_2) {
  struct bad {
    std::string args, message;
  };
  for (const auto& b : {
           bad{"run wordcount --input /nonexistent/ember-input.txt",
               "/nonexistent/ember-input.txt"},
           bad{"run groupby --rows -5", "negative"},
           bad{"run enrich --scale -1GB", "negative"},
           bad{"run enrich --scale 12XB", "unknown unit"},
           bad{"run nosuchjob", "nosuchjob"},
           bad{"run groupby --backend tpu", "unknown backend 'tpu'"},
           bad{"bench ops --rows 1000 --only nosuch", "unknown workload 'nosuch'"},
           bad{"scheduler --listen 0.0.0.0:0 --data /tmp/ember-cli-open", "--token-file"},
           bad{"scheduler --listen nocolon --data /tmp/ember-cli-open", "is not HOST:PORT"},
           bad{"run sort --rows 10 --exchange carrier-pigeon", "not one of auto, ucx, nccl"},
           bad{"run sort --rows 10 --scheduler 127.0.0.1:1 --token-file /nonexistent/token",
               "cannot read the token file /nonexistent/token"},
           bad{"worker --scheduler 127.0.0.1:1 --backend tpu", "unknown backend 'tpu'"},
           bad{"worker --scheduler 127.0.0.1:1 --reconnect-timeout-ms -1", "negative"},
           bad{"scheduler --data /tmp/ember-cli-open --dead-worker-retention-ms -1", "negative"},
       }) {
    auto r = run_ember(b.args);
    EXPECT_EQ(r.status, 2) << b.args << ": " << r.output;
    EXPECT_NE(r.output.find("ember: error:"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(b.message), std::string::npos) << b.args << ": " << r.output;
  }
}

// `ember scheduler` and `ember worker` read every option from an EMBER_* variable too (the
// container images configure them that way); a bad value names the variable.
TEST_F(cli, environment_variables_configure_the_scheduler_and_worker) {
  auto r = run_ember("worker --scheduler 127.0.0.1:1", "EMBER_BACKEND=gpu");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("EMBER_BACKEND"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("auto, cpu or cuda"), std::string::npos) << r.output;
  // EMBER_DATA stands in for the required --data, and EMBER_LISTEN off loopback asks for a token.
  r = run_ember("scheduler", "EMBER_DATA=" + (_dir / "data").string() + " EMBER_LISTEN=0.0.0.0:0");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("0.0.0.0:0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--token-file"), std::string::npos) << r.output;
}

TEST_F(cli, a_bad_environment_value_is_rejected_naming_the_variable) {
  auto r = run_ember("scheduler --data " + (_dir / "data").string(), "EMBER_HEARTBEAT_MS=abc");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("EMBER_HEARTBEAT_MS"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("abc"), std::string::npos) << r.output;
  r = run_ember("worker --scheduler 127.0.0.1:1", "EMBER_DEVICE_MEMORY_LIMIT=12XB");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("EMBER_DEVICE_MEMORY_LIMIT"), std::string::npos) << r.output;
  // Another subcommand does not read the scheduler's variables.
  r = run_ember("status --json", "EMBER_HEARTBEAT_MS=abc");
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST_F(cli, a_flag_on_the_command_line_wins_over_its_environment_variable) {
  // Were the variable read, its unconvertible value would be the error.
  auto r = run_ember("scheduler --heartbeat-ms 0 --data " + (_dir / "data").string(),
                     "EMBER_HEARTBEAT_MS=abc");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--heartbeat-ms must be positive"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("EMBER_HEARTBEAT_MS"), std::string::npos) << r.output;
  r = run_ember("worker --scheduler 127.0.0.1:1 --backend=tpu", "EMBER_BACKEND=gpu");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--backend: unknown backend 'tpu'"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("EMBER_BACKEND"), std::string::npos) << r.output;
}

TEST_F(cli, an_unreachable_scheduler_is_named_and_fails_quickly) {
  auto r = run_ember("run sort --rows 10 --scheduler 127.0.0.1:1");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("cannot reach the scheduler at 127.0.0.1:1"), std::string::npos)
      << r.output;
}

TEST_F(cli, a_worker_waiting_for_its_scheduler_stops_promptly_on_sigterm) {
  // Nothing listens on port 1: the worker keeps trying (for 30 s) until SIGTERM.
  ember::child_process worker({ember::test::ember_executable().string(), "worker", "--scheduler",
                               "127.0.0.1:1", "--backend", "cpu"},
                              std::filesystem::temp_directory_path() / "ember-sigterm-worker");
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  worker.signal(SIGTERM);
  auto code = worker.wait_exit(std::chrono::seconds(5));
  ASSERT_TRUE(code.has_value()) << "the worker ignored SIGTERM: " << worker.err();
  EXPECT_EQ(*code, 0) << worker.err();
}

TEST_F(cli, status_of_the_embedded_cluster_as_text_and_json) {
  auto r = run_ember("status");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("embedded local cluster"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("alive"), std::string::npos) << r.output;
  auto j = run_ember("status --json");
  ASSERT_EQ(j.status, 0) << j.output;
  auto report = nlohmann::json::parse(j.output.substr(j.output.find('{')));
  EXPECT_EQ(report["scheduler"], "embedded local cluster");
  ASSERT_GE(report["workers"].size(), 1u);
  EXPECT_TRUE(report["workers"][0]["alive"].get<bool>());
}

TEST_F(cli, bench_ops_writes_a_json_report_with_every_workload) {
  auto json_path = _dir / "ops.json";
  auto r =
      run_ember("bench ops --rows 200000 --rounds 1 --backend cpu --json " + json_path.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("vs memcpy"), std::string::npos) << r.output;
  std::ifstream in(json_path);
  auto report = nlohmann::json::parse(in);
  EXPECT_EQ(report["workload"], "ops");
  EXPECT_TRUE(report["machine"].contains("git_revision"));
  ASSERT_EQ(report["details"]["results"].size(), 4u);
  for (const auto& w : report["details"]["results"]) {
    EXPECT_GT(w["ember_seconds"]["median"].get<double>(), 0) << w["name"];
    EXPECT_GT(w["result_rows"].get<long>(), 0) << w["name"];
  }
}

}  // namespace
