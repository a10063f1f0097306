// `ember bench report` as a user runs it on reports that `ember bench ... --json` wrote: the
// fixtures in tests/cli/data/reports/ (a shuffle on a GPU with links, residency and tiers; locks
// with latency beside Redis; ops beside DuckDB with the null sections explained) pass the schema,
// render as Markdown and as well-formed SVG, and bad input is refused with exit status 2, a
// message naming the file and the place, and no output written.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/paths.hpp"
#include "common/report_schema.hpp"
#include "common/run_ember.hpp"
#include "common/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;

using ember::test::run_ember;
using ember::test::temp_dir;
using ember::test::validate_report;

fs::path fixture(const std::string& name) {
  return ember::test::source_dir() / "tests" / "cli" / "data" / "reports" / name;
}

const std::vector<std::string> fixtures = {"shuffle_cuda.json", "locks_cpu.json",
                                           "ops_duckdb.json"};

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

fs::path write_json(const temp_dir& dir, const std::string& name, const nlohmann::json& j) {
  return dir.write(name, j.dump(2) + "\n");
}

/// `xmllint --noout FILE`: empty when the file is well-formed XML, else xmllint's messages.
std::string xml_errors(const fs::path& path) {
  std::string command = "xmllint --noout '" + path.string() + "' 2>&1";
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return "cannot run xmllint";
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = ::pclose(p);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  return out.empty() ? "xmllint failed" : out;
}

/// The ratio as the renderer prints it ("1.31x").
std::string ratio_text(double ratio) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", ratio);
  return buf;
}

TEST(bench_report_render, fixtures_pass_the_schema) {
  for (const auto& name : fixtures) {
    auto check = validate_report(fixture(name));
    EXPECT_TRUE(check.valid) << name << ":\n" << check.errors;
  }
}

TEST(bench_report_render, schema_rejects_broken_copies) {
  temp_dir dir("ember-report-render");
  auto no_stages = read_json(fixture("ops_duckdb.json"));
  no_stages.erase("stages");
  auto check = validate_report(write_json(dir, "no_stages.json", no_stages));
  EXPECT_FALSE(check.valid);
  EXPECT_NE(check.errors.find("stages"), std::string::npos) << check.errors;

  auto unexplained = read_json(fixture("ops_duckdb.json"));
  unexplained["not_measured"].erase("tiers");
  check = validate_report(write_json(dir, "unexplained.json", unexplained));
  EXPECT_FALSE(check.valid);
  EXPECT_NE(check.errors.find("tiers"), std::string::npos) << check.errors;

  auto shuffle_without_links = read_json(fixture("shuffle_cuda.json"));
  shuffle_without_links["shuffle"] = nullptr;
  shuffle_without_links["not_measured"]["shuffle"] = "forgot";
  check = validate_report(write_json(dir, "shuffle_null.json", shuffle_without_links));
  EXPECT_FALSE(check.valid) << "a shuffle report must measure its shuffle";
}

TEST(bench_report_render, renders_markdown_and_svg_of_several_reports) {
  temp_dir dir("ember-report-render");
  auto svg = dir.path() / "x.svg";
  auto md = dir.path() / "x.md";
  std::string args = "bench report";
  for (const auto& name : fixtures) args += " '" + fixture(name).string() + "'";
  auto r = run_ember(args + " --svg '" + svg.string() + "' --markdown '" + md.string() +
                     "' --title 'nightly & weekly <runs>'");
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_TRUE(fs::exists(svg)) << r.output;
  ASSERT_TRUE(fs::exists(md)) << r.output;
  auto markdown = read_text(md);
  auto chart = read_text(svg);

  EXPECT_EQ(xml_errors(svg), "") << chart.substr(0, 2000);
  EXPECT_NE(chart.find("<title>nightly &amp; weekly &lt;runs&gt;</title>"), std::string::npos);
  EXPECT_NE(chart.find("viewBox=\"0 0 "), std::string::npos);
  EXPECT_NE(chart.find("1.0 (ember = other)"), std::string::npos);
  EXPECT_EQ(chart.find("<script"), std::string::npos);
  EXPECT_EQ(chart.find("href"), std::string::npos) << "the chart links nothing";

  // The summary table: one row per report.
  EXPECT_NE(markdown.find("# nightly & weekly <runs>"), std::string::npos) << markdown;
  EXPECT_NE(markdown.find("| file | workload | revision | wall s | best ratio |"),
            std::string::npos)
      << markdown;
  for (const auto& name : fixtures) {
    auto report = read_json(fixture(name));
    EXPECT_NE(markdown.find("| " + fixture(name).string() + " | " +
                            report["workload"].get<std::string>() + " |"),
              std::string::npos)
        << name << "\n"
        << markdown;
    for (const auto& stage : report["stages"]) {
      auto stage_name = stage["name"].get<std::string>();
      EXPECT_NE(markdown.find("| " + stage_name + " |"), std::string::npos) << stage_name;
      EXPECT_NE(chart.find(">" + stage_name + "</text>"), std::string::npos) << stage_name;
    }
    for (const auto& c : report["comparisons"]) {
      auto ratio = ratio_text(c["ratio"].get<double>());
      EXPECT_NE(
          markdown.find(c["against"].get<std::string>() + " | " + c["kind"].get<std::string>()),
          std::string::npos)
          << c.dump();
      EXPECT_NE(markdown.find(" " + ratio + " |"), std::string::npos) << ratio;
      // The bar's label (cut at 40 characters) and its tooltip (in full).
      EXPECT_NE(chart.find(": " + ratio + "</text>"), std::string::npos) << c.dump();
      EXPECT_NE(chart.find("<title>" + c["stage"].get<std::string>() + " vs " +
                           c["against"].get<std::string>() + ": " + ratio),
                std::string::npos)
          << c.dump();
    }
    for (const auto& [what, why] : report["not_measured"].items())
      EXPECT_NE(markdown.find("- " + what + ": " + why.get<std::string>()), std::string::npos)
          << what;
  }
  // Shuffle links, tiers and residency of the shuffle report; latency of the locks report.
  for (const auto& link : read_json(fixture("shuffle_cuda.json"))["shuffle"]["links"])
    EXPECT_NE(markdown.find("| " + link["from"].get<std::string>() + " | " +
                            link["to"].get<std::string>() + " | 716 MB |"),
              std::string::npos)
        << link.dump() << "\n"
        << markdown;
  EXPECT_NE(markdown.find("| 1710 / 1800 | 90 | 95.0% |"), std::string::npos) << markdown;
  EXPECT_NE(markdown.find("| 537 MB | 0 B | 537 MB |"), std::string::npos) << markdown;
  EXPECT_NE(markdown.find("| lock round trip | 20000 | 88.1 | 212.0 | 1810.0 |"), std::string::npos)
      << markdown;
  EXPECT_NE(markdown.find("NVIDIA H100 80GB HBM3"), std::string::npos);
  EXPECT_NE(markdown.find("no GPU"), std::string::npos);
  EXPECT_NE(markdown.find("local-processes, 3 worker(s)"), std::string::npos);
}

TEST(bench_report_render, markdown_goes_to_stdout_without_outputs) {
  auto r = run_ember("bench report '" + fixture("locks_cpu.json").string() + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("# ember benchmark reports"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("## locks, 2026-06-01T17:02:08Z"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| queue push/pop |"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("| file | workload |"), std::string::npos)
      << "one report has no summary table";
}

TEST(bench_report_render, escapes_and_truncates_names) {
  temp_dir dir("ember-report-render");
  auto report = read_json(fixture("ops_duckdb.json"));
  const std::string odd = "a|b <c> & \"d\" 'e'";
  const std::string long_name(60, 'x');
  report["stages"][0]["name"] = odd;
  report["stages"][1]["name"] = long_name;
  report["comparisons"][0]["stage"] = odd;
  report["comparisons"][1]["against"] = long_name;
  auto input = write_json(dir, "odd.json", report);
  ASSERT_TRUE(validate_report(input).valid) << validate_report(input).errors;
  auto svg = dir.path() / "odd.svg";
  auto md = dir.path() / "odd.md";
  auto r = run_ember("bench report '" + input.string() + "' --svg '" + svg.string() +
                     "' --markdown '" + md.string() + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  auto chart = read_text(svg);
  auto markdown = read_text(md);
  EXPECT_EQ(xml_errors(svg), "") << chart;
  EXPECT_NE(chart.find("a|b &lt;c&gt; &amp; &quot;d&quot; &apos;e&apos;"), std::string::npos);
  // Labels stop at 40 characters, the last an ellipsis; the full name stays in the tooltip.
  EXPECT_NE(chart.find(">" + std::string(39, 'x') + "\u2026</text>"), std::string::npos) << chart;
  EXPECT_EQ(chart.find(">" + long_name + "</text>"), std::string::npos);
  EXPECT_NE(markdown.find("| a\\|b <c> & \"d\" 'e' |"), std::string::npos) << markdown;
  EXPECT_NE(markdown.find("| " + long_name + " |"), std::string::npos);
}

class bench_report_render_bad_input : public ::testing::Test {
 protected:
  /// Runs `ember bench report` on the good ops fixture and then `bad`, with both outputs: exit
  /// status 2, nothing written. Returns what it printed.
  std::string expect_refused(const std::string& bad) {
    auto svg = _dir.path() / "out.svg";
    auto md = _dir.path() / "out.md";
    auto r = run_ember("bench report '" + fixture("ops_duckdb.json").string() + "' '" + bad +
                       "' --svg '" + svg.string() + "' --markdown '" + md.string() + "'");
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_FALSE(fs::exists(svg)) << r.output;
    EXPECT_FALSE(fs::exists(md)) << r.output;
    EXPECT_NE(r.output.find(bad), std::string::npos) << "the message names the file:\n" << r.output;
    return r.output;
  }
  fs::path with(const std::string& name, void (*change)(nlohmann::json&)) {
    auto j = read_json(fixture("ops_duckdb.json"));
    change(j);
    return write_json(_dir, name, j);
  }

  temp_dir _dir{"ember-report-render-bad"};
};

TEST_F(bench_report_render_bad_input, missing_file) {
  auto out = expect_refused((_dir.path() / "missing.json").string());
  EXPECT_NE(out.find("cannot open"), std::string::npos) << out;
}

TEST_F(bench_report_render_bad_input, not_json) {
  auto path = _dir.write("broken.json", "{\n  \"report_version\": 1,\n  \"workload\": ,\n}\n");
  auto out = expect_refused(path.string());
  EXPECT_NE(out.find("not JSON"), std::string::npos) << out;
  EXPECT_NE(out.find("line 3"), std::string::npos) << out;
}

TEST_F(bench_report_render_bad_input, wrong_type_at_a_path) {
  auto path = with("wrong_type.json",
                   [](nlohmann::json& j) { j["stages"][0]["seconds"]["median"] = "fast"; });
  auto out = expect_refused(path.string());
  EXPECT_NE(out.find(path.string() + ": /stages/0/seconds/median: expected a number"),
            std::string::npos)
      << out;
}

TEST_F(bench_report_render_bad_input, missing_field) {
  auto path = with("no_stages.json", [](nlohmann::json& j) { j.erase("stages"); });
  auto out = expect_refused(path.string());
  EXPECT_NE(out.find(path.string() + ": /stages: missing"), std::string::npos) << out;
}

TEST_F(bench_report_render_bad_input, null_section_without_a_reason) {
  auto path =
      with("unexplained.json", [](nlohmann::json& j) { j["not_measured"].erase("residency"); });
  auto out = expect_refused(path.string());
  EXPECT_NE(out.find("/not_measured/residency"), std::string::npos) << out;
}

TEST_F(bench_report_render_bad_input, report_version_2) {
  auto path = with("v2.json", [](nlohmann::json& j) { j["report_version"] = 2; });
  auto out = expect_refused(path.string());
  EXPECT_NE(out.find(path.string() + ": /report_version: report version 2 is not supported"),
            std::string::npos)
      << out;
}

}  // namespace
