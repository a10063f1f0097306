#pragma once
// The common report of every `ember bench` workload (bench/report.schema.json): what was run,
// on which machine and cluster, seconds and throughput per stage, bytes moved between memory
// tiers, shuffle bytes per link, residency hit rate, latency percentiles, and the peers and
// ceilings measured beside it. A workload fills one bench_report, then prints its summary table
// and writes it as JSON. Sections it does not measure stay null with a reason (not_measured).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_stats.hpp"

namespace ember::cli {

/// `v` formatted with a printf pattern for one double ("%.2f").
inline std::string format(const char* pattern, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, pattern, v);
  return buf;
}

/// {"median", "min", "max", "all"} of repeated measurements.
inline nlohmann::json spread(const std::vector<double>& v) {
  auto s = summarize(v);
  return {{"median", s.median}, {"min", s.min}, {"max", s.max}, {"all", v}};
}

/// "1.2 GB", "340 MB": decimal units, for summary tables.
[[nodiscard]] std::string human_bytes(double bytes);
/// "1.25 GB/s" or "12.3 MB/s".
[[nodiscard]] std::string human_rate(double bytes_per_second);
/// "12.3 M/s", "450 k/s" (rows, operations).
[[nodiscard]] std::string human_count_rate(double per_second);

/// One stage of a workload, timed over the rounds.
struct report_stage {
  std::string name;
  std::vector<double> seconds;  ///< every timed round, in order
  std::int64_t rows = 0;        ///< rows (operations, messages, tasks) one round processed
  std::int64_t bytes = 0;       ///< bytes one round processed
  std::string note;             ///< optional: how it was measured
};

/// Bytes moved between memory tiers (a delta over the measured runs, summed over workers).
struct report_tiers {
  std::int64_t spilled_to_host_bytes = 0, spilled_to_disk_bytes = 0, unspilled_bytes = 0;
  std::int64_t spills = 0, unspills = 0;
  double spill_seconds = 0, unspill_seconds = 0;
  std::int64_t device_peak_bytes = 0, device_limit_bytes = 0;
};

/// Shuffle bytes one worker fetched from another.
struct report_link {
  std::string from, to;  ///< worker names
  std::int64_t bytes = 0;
  double seconds = 0;  ///< first request to last arrival on this link
};

struct report_shuffle {
  std::int64_t bytes = 0;  ///< fetched between workers, all links
  double seconds = 0;      ///< the longest any worker spent fetching
  std::vector<report_link> links;
};

/// Partition-store lookups (a delta over the measured runs, summed over workers): those that
/// found their partition (hits; tier_hits of them already in the tier asked for) or not.
struct report_residency {
  std::int64_t hits = 0, tier_hits = 0, misses = 0;
  [[nodiscard]] std::int64_t lookups() const noexcept { return hits + misses; }
  /// hits / lookups, 0 without lookups.
  [[nodiscard]] double hit_rate() const noexcept {
    return lookups() == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(lookups());
  }
};

/// Latency percentiles of one kind of operation, per round (microseconds).
struct report_latency {
  std::string name;
  std::int64_t count = 0;  ///< measurements per round
  std::vector<double> p50_us, p99_us, max_us;
};

/// ember beside a peer or a ceiling. A `metric` ending in "seconds" or "_us" (a time, a latency)
/// is lower-is-better; any other metric is a rate (higher is better). The report's ratio is
/// ember's speed over the other's either way.
struct report_comparison {
  std::string stage;
  std::string against;  ///< "duckdb 1.1.3", "memcpy", "ucx_perftest tag_bw tcp"
  std::string kind;     ///< "peer" or "ceiling"
  std::string metric;   ///< "seconds", "bytes_per_second", "rows_per_second", ...
  double ember = 0, other = 0;
  [[nodiscard]] double ratio() const noexcept;
};

class bench_report {
 public:
  /// Starts the report of `workload` with its parameters; its wall clock starts at `start` (the
  /// command's start, when the report is made after the measurements).
  bench_report(std::string workload, nlohmann::json parameters,
               std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now());

  /// Machine description (machine_info()); host_machine_info() unless set.
  void set_machine(nlohmann::json machine);
  /// The cluster: kind ("none", "embedded", "local-processes", "scheduler"), address,
  /// transport, workers [{id, name, backend, description}].
  void set_cluster(nlohmann::json cluster);

  void add_stage(report_stage stage);
  void set_tiers(const report_tiers& tiers);
  void set_shuffle(report_shuffle shuffle);
  void set_residency(const report_residency& residency);
  void add_latency(report_latency latency);
  void add_comparison(report_comparison comparison);
  /// Why a section ("tiers", "shuffle", "residency", "latency") is null, or why a peer did not
  /// run (its name).
  void not_measured(const std::string& what, const std::string& reason);
  /// The workload's own figures (every round, answers, notes).
  nlohmann::json& details() noexcept { return _details; }

  [[nodiscard]] const std::vector<report_stage>& stages() const noexcept { return _stages; }
  [[nodiscard]] const std::vector<report_comparison>& comparisons() const noexcept {
    return _comparisons;
  }

  /// The report as bench/report.schema.json describes it. Sections never set are null with
  /// their reason; a section never set and never explained is a logic_error (a workload that
  /// forgot to say why it did not measure something).
  [[nodiscard]] nlohmann::json to_json() const;
  /// Prints the human summary: stages (seconds, rows/s, bytes/s), comparisons with ratios, the
  /// tiers, shuffle links, residency and latency that were measured.
  void print_summary(std::ostream& out) const;
  /// Writes to_json() to `path` (nothing when empty) and says so on `out`. Throws
  /// ember::invalid_input when the file cannot be written.
  void write(const std::string& path, std::ostream& out) const;

 private:
  std::string _workload;
  nlohmann::json _parameters;
  std::chrono::steady_clock::time_point _start;
  std::string _started_at;
  nlohmann::json _machine, _cluster;
  std::vector<report_stage> _stages;
  std::optional<report_tiers> _tiers;
  std::optional<report_shuffle> _shuffle;
  std::optional<report_residency> _residency;
  std::vector<report_latency> _latency;
  std::vector<report_comparison> _comparisons;
  nlohmann::json _not_measured = nlohmann::json::object();
  nlohmann::json _details = nlohmann::json::object();
};

}  // namespace ember::cli
