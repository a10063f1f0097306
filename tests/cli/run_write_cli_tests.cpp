// `ember run enrich --write-dataset ROOT/NAME [--input-dataset ROOT/NAME]` as scripts use it: the
// enriched table committed as a dataset that `ember data` lists, the same summary printed as
// without it, and the flags' errors with a clear message and exit code 2.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/run_ember.hpp"
#include "common/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using ember::test::run_ember;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(run_write_cli, enrich_commits_the_enriched_dataset_and_prints_the_same_summary) {
  ember::test::temp_dir dir{"ember-run-write"};
  auto root = dir.path() / "store";
  auto plain = run_ember("run enrich --rows 20000 --workers 2 --backend cpu --quiet --output " +
                         (dir.path() / "plain.csv").string());
  ASSERT_EQ(plain.status, 0) << plain.output;
  auto written = run_ember("run enrich --rows 20000 --workers 2 --backend cpu --quiet " +
                           std::string("--input-dataset ") + (root / "events").string() +
                           " --write-dataset " + (root / "enriched").string() + " --output " +
                           (dir.path() / "written.csv").string());
  ASSERT_EQ(written.status, 0) << written.output;
  EXPECT_NE(written.output.find("dataset events version 1 committed"), std::string::npos)
      << written.output;
  EXPECT_NE(written.output.find("dataset enriched version 1 committed under " + root.string() +
                                ": 20000 rows"),
            std::string::npos)
      << written.output;
  // The same summary, whether the rows were generated on the fly or read from the datasets and
  // the summary computed from the written version.
  EXPECT_EQ(read_file(dir.path() / "written.csv"), read_file(dir.path() / "plain.csv"));

  auto ls = run_ember("data ls --json --root " + root.string());
  ASSERT_EQ(ls.status, 0) << ls.output;
  auto list = nlohmann::json::parse(ls.output);
  ASSERT_EQ(list.size(), 3u) << ls.output;
  EXPECT_EQ(list[0]["dataset"], "enriched");
  EXPECT_EQ(list[0]["rows"], 20000);
  EXPECT_EQ(list[1]["dataset"], "events");
  EXPECT_EQ(list[2]["dataset"], "events-items");
  // About twice the input's bytes.
  double ratio = list[0]["bytes"].get<double>() / list[1]["bytes"].get<double>();
  EXPECT_GT(ratio, 1.6);
  EXPECT_LT(ratio, 2.6);

  // A second run reads the committed input and writes version 2.
  auto again =
      run_ember("run enrich --backend cpu --quiet --input-dataset " + (root / "events").string() +
                " --write-dataset " + (root / "enriched").string() + " --write-compression zstd");
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("dataset enriched version 2 committed"), std::string::npos);
  EXPECT_EQ(again.output.find("dataset events version"), std::string::npos);
}

TEST(run_write_cli, bad_flags_are_refused_clearly) {
  ember::test::temp_dir dir{"ember-run-write"};
  auto other = run_ember("run groupby --rows 100 --write-dataset " + (dir.path() / "x").string());
  EXPECT_EQ(other.status, 2);
  EXPECT_NE(other.output.find("options of enrich, not of groupby"), std::string::npos)
      << other.output;
  auto no_root = run_ember("run enrich --rows 100 --write-dataset enriched");
  EXPECT_EQ(no_root.status, 2);
  EXPECT_NE(no_root.output.find("expected ROOT/NAME"), std::string::npos) << no_root.output;
  auto codec = run_ember("run enrich --rows 100 --write-dataset " + (dir.path() / "e").string() +
                         " --write-compression lz4");
  EXPECT_EQ(codec.status, 2);
  EXPECT_NE(codec.output.find("expected none or zstd"), std::string::npos) << codec.output;
  EXPECT_FALSE(fs::exists(dir.path() / "e"));
}

}  // namespace
