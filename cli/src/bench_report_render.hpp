#pragma once
// `ember bench report FILE...`: reads the JSON reports that `ember bench WORKLOAD --json FILE`
// writes (bench/report.schema.json, written by bench_report) and renders them side by side: a
// Markdown summary with one table per section, and one self-contained SVG chart (stage medians,
// comparison ratios around "ember = other").
//
// Every file is read and checked before anything is written. The check is structural (the
// fields this renderer reads and the schema requires, with their JSON types), not a full schema
// validator: a bad file is an ember::invalid_input that names the file and the JSON path, or the
// line and column where it stops being JSON.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace ember::cli {

/// The figures of a measured quantity the renderer shows (the report's spread, without `all`).
struct loaded_spread {
  double median = 0, min = 0, max = 0;
};

/// One report as read from its file: the fields the Markdown and the SVG show.
struct loaded_report {
  struct stage {
    std::string name;
    loaded_spread seconds;
    std::int64_t rows = 0, bytes = 0;
    double rows_per_second = 0, bytes_per_second = 0;
  };
  struct comparison {
    std::string stage, against, kind, metric;
    double ember = 0, other = 0, ratio = 0;
  };
  struct tiers {
    std::int64_t spilled_to_host_bytes = 0, spilled_to_disk_bytes = 0, unspilled_bytes = 0;
    std::int64_t spills = 0, unspills = 0;
    double spill_seconds = 0, unspill_seconds = 0;
  };
  struct link {
    std::string from, to;
    std::int64_t bytes = 0;
    double seconds = 0, bytes_per_second = 0;
  };
  struct shuffle {
    std::int64_t bytes = 0;
    double seconds = 0, bytes_per_second = 0;
    std::vector<link> links;
  };
  struct residency {
    std::int64_t lookups = 0, hits = 0, misses = 0;
    double hit_rate = 0;
  };
  struct latency {
    std::string name;
    std::int64_t count = 0;
    loaded_spread p50_us, p99_us, max_us;
  };

  std::string file;  ///< the path as given on the command line
  std::string workload, started_at;
  double wall_seconds = 0;
  std::string git_revision, cpu, backend;
  std::int64_t hardware_threads = 0;
  std::vector<std::string> gpus;  ///< GPU names; empty: no GPU (gpu_note says why)
  std::string gpu_note;
  std::string cluster_kind;
  std::int64_t cluster_workers = 0;
  std::vector<stage> stages;
  std::vector<comparison> comparisons;
  std::optional<tiers> memory_tiers;              ///< null in the report: not measured
  std::optional<shuffle> shuffle_links;           ///< null in the report: not measured
  std::optional<residency> store_residency;       ///< null in the report: not measured
  std::optional<std::vector<latency>> latencies;  ///< null in the report: not measured
  std::vector<std::pair<std::string, std::string>> not_measured;  ///< what -> why, by name
};

/// Checks the parsed JSON `report` of `file` and returns what the renderer shows. Throws
/// ember::invalid_input "FILE: /json/path: expected a number" (or "missing", or an unsupported
/// report_version) at the first field that is absent or of the wrong type.
[[nodiscard]] loaded_report load_report(const std::string& file, const nlohmann::json& report);
/// Reads and checks the report at `path`. Throws ember::invalid_input naming the file when it
/// cannot be read, is not JSON (with nlohmann's line and column) or fails load_report's check.
[[nodiscard]] loaded_report read_report_file(const std::string& path);

/// The Markdown: `title` as the first heading, a summary table when there are several reports,
/// then per report a heading with the machine and cluster and a table per measured section,
/// and the reasons of what was not measured.
[[nodiscard]] std::string render_markdown(const std::vector<loaded_report>& reports,
                                          const std::string& title);
/// One self-contained SVG document (no scripts, fonts or links): per report a titled group with
/// the stages' median seconds as bars (min-max whiskers, value labels) and the comparison
/// ratios as bars around a marked 1.0 line ("ember = other") on a log axis.
[[nodiscard]] std::string render_svg(const std::vector<loaded_report>& reports,
                                     const std::string& title);

struct bench_report_render_options {
  /// The reports to read (at least one).
  std::vector<std::string> files;
  /// Where the SVG chart goes; none when empty.
  std::string svg_path;
  /// Where the Markdown goes; stdout when neither this nor svg_path is set.
  std::string markdown_path;
  std::string title = "ember benchmark reports";

  /// Adds the `report` subcommand to `bench` with FILE..., --svg, --markdown and --title, which
  /// fill this struct; returns it.
  CLI::App* add_to(CLI::App& bench);
};

/// `ember bench report`. Reads and checks every file, then writes the SVG and the Markdown.
/// Returns 0. Throws ember::invalid_input (exit status 2, nothing written) for a file that is
/// missing, not JSON or not a version 1 report, and for an output that cannot be written.
int run_bench_report(const bench_report_render_options& options);

}  // namespace ember::cli
