#pragma once
// What the scheduler's HTTP endpoint shows: an immutable snapshot of the event loop's state (the
// loop builds a new one every few hundred milliseconds and swaps it in; HTTP threads only read
// it), the coordination services' locks and queues (read under their own mutex when a request
// comes), and their renderings: the Prometheus text format for /metrics and the JSON of
// /api/cluster that the dashboard draws. Also the small Prometheus text writer the worker's
// /metrics uses.
#include <chrono>
#include <cstdint>
#include <ember/scheduler/coordination.hpp>
#include <ember/scheduler/queue_store.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol.hpp"

namespace ember::detail {

// ---- Prometheus text exposition format 0.0.4 ------------------------------------------------

/// Label names and values of one sample (values are escaped when written).
using metric_labels = std::vector<std::pair<std::string_view, std::string>>;

/// Writes metric families in the text format: each family's # HELP and # TYPE lines, then its
/// samples. Counters' names end in _total (the caller names them so).
class prometheus_text {
 public:
  /// Starts family `name` of `type` ("counter" or "gauge").
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const metric_labels& labels, std::int64_t value);
  void sample(std::string_view name, const metric_labels& labels, double value);
  /// A family with one unlabelled sample.
  void single(std::string_view name, std::string_view type, std::string_view help,
              std::int64_t value);
  [[nodiscard]] std::string take() { return std::move(_out); }

 private:
  void start_sample(std::string_view name, const metric_labels& labels);
  std::string _out;
};

/// Content type of the text format.
inline constexpr const char* prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

/// A worker's tiers and store counters as metric families labelled with `labels` (its own
/// /metrics: none; the scheduler's: the worker). Families are written whole, so the scheduler
/// calls this once with every worker's report.
void write_store_metrics(prometheus_text& out,
                         const std::vector<std::pair<metric_labels, const store_report*>>& stores);

// ---- the scheduler's snapshot ----------------------------------------------------------------

struct worker_snapshot {
  int id = 0;
  std::string name, address, backend, description;
  int device = -1;
  bool alive = true;
  std::chrono::steady_clock::time_point last_heartbeat{};
  int slots = 1, assigned = 0, running = 0, queued = 0, held_back = 0;
  store_report store;
};

struct stage_snapshot {
  std::string name;
  std::int64_t done = 0, total = 0, running = 0;
  std::string state;  ///< "waiting", "running" or "done"
};

struct job_snapshot {
  std::uint64_t id = 0;
  std::string state;    ///< "running", "done", "failed" or "cancelled"
  std::string message;  ///< why it failed
  std::string client;
  double seconds = 0;                ///< so far, or in all
  std::int64_t started_unix_ms = 0;  ///< when it was submitted
  std::vector<stage_snapshot> stages;
};

struct cache_entry_snapshot {
  std::string key;
  int worker = -1;
  std::string tier;
  std::int64_t bytes = 0, rows = 0;
  int pins = 0;
};

struct cluster_snapshot {
  std::string scheduler;  ///< HOST:PORT
  std::chrono::steady_clock::time_point taken{};
  std::vector<worker_snapshot> workers;
  std::vector<job_snapshot> running_jobs;
  std::vector<job_snapshot> recent_jobs;  ///< newest first
  std::int64_t jobs_finished = 0, jobs_failed = 0;
  std::int64_t tasks_running = 0, tasks_queued = 0, tasks_done = 0;
  std::int64_t shuffle_bytes = 0, transport_errors = 0;
  std::int64_t catalog_partitions = 0;
  std::vector<cache_entry_snapshot> cache_entries;  ///< the first max_cache_entries, by key
  std::int64_t cache_entries_total = 0;
};

/// Cache entries a snapshot lists at most (the dashboard shows a table of them).
inline constexpr std::size_t max_cache_entries = 200;
/// Finished jobs a snapshot keeps.
inline constexpr std::size_t max_recent_jobs = 20;

struct coordination_snapshot {
  std::vector<lock_summary> locks;
  std::vector<queue_info> queues;
};

/// /metrics of the scheduler.
[[nodiscard]] std::string render_scheduler_metrics(const cluster_snapshot& s,
                                                   const coordination_snapshot& c,
                                                   std::chrono::steady_clock::time_point now);
/// /api/cluster: the dashboard's JSON.
[[nodiscard]] std::string render_cluster_json(const cluster_snapshot& s,
                                              const coordination_snapshot& c,
                                              std::chrono::steady_clock::time_point now);
/// The dashboard: one self-contained HTML page (dashboard_page.cpp).
[[nodiscard]] std::string_view dashboard_page() noexcept;

}  // namespace ember::detail
