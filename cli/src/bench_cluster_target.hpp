#pragma once
// Where a benchmark's distributed work runs, and what the cluster reports about it.
//
//   local_process_cluster  an `ember scheduler` and `ember worker` processes of this same
//                          executable on loopback, started for the benchmark and killed
//                          (SIGKILL) with it. Logs and data go to a private temporary folder,
//                          removed afterwards unless EMBER_BENCH_KEEP_LOGS is set.
//   bench_cluster_target   what a cluster workload's flags choose: a local process cluster
//                          (the default), the embedded in-process cluster (--embedded) or a
//                          running cluster (--scheduler HOST:PORT, --token-file).
//   cluster_counters       the workers' cumulative partition-store counters at one moment;
//                          the difference of two is what the runs between them moved.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <ember/host/process.hpp>
#include <ember/scheduler/client.hpp>

#include "bench_report.hpp"

namespace ember::cli {

struct local_cluster_options {
  int workers = 2;
  /// Let UCX use shared memory between the processes (otherwise tcp over loopback).
  bool shared_memory = false;
  std::string backend = "cpu";  ///< the workers' backend: cpu or cuda (all on GPU 0)
  int slots = 1;                ///< task slots per worker
  int cpu_threads = 1;          ///< OpenMP threads per CPU worker
  /// Per-worker budgets as `ember worker` takes them ("64MB"; empty: none) and spill folder.
  std::string device_memory_limit, host_memory_limit, spill_dir;
};

class local_process_cluster {
 public:
  /// Starts the scheduler, then the workers, and waits (30 s each) until all are up. Throws
  /// ember::timeout or ember::error quoting the process's stderr when one does not come up.
  explicit local_process_cluster(const local_cluster_options& options);
  ~local_process_cluster();
  local_process_cluster(const local_process_cluster&) = delete;
  local_process_cluster& operator=(const local_process_cluster&) = delete;

  [[nodiscard]] const std::string& address() const noexcept { return _address; }
  /// The folder holding the logs (and the scheduler's data).
  [[nodiscard]] const std::filesystem::path& folder() const noexcept { return _dir; }

 private:
  std::filesystem::path _dir;
  std::string _address;
  std::unique_ptr<child_process> _scheduler;
  std::vector<std::unique_ptr<child_process>> _workers;
};

/// The flags every cluster workload shares.
struct bench_cluster_flags {
  /// HOST:PORT of a running scheduler (empty: start a local process cluster).
  std::string scheduler;
  std::string token_file;
  /// Run on the embedded in-process cluster instead of processes.
  bool embedded = false;
  /// Worker processes (or embedded worker threads) the bench starts.
  int workers = 2;
  /// Budgets of each started worker's tiers, and their spill folder.
  std::string device_memory_limit, host_memory_limit, spill_dir;
  /// Set by the workload, not flags of add_to: the started workers' backend and whether UCX may
  /// use shared memory between the processes (otherwise tcp over loopback).
  std::string backend = "cpu";
  bool shared_memory = false;

  /// Adds --scheduler, --token-file, --embedded, --workers, --device-memory-limit,
  /// --host-memory-limit and --spill-dir to `cmd`.
  void add_to(CLI::App& cmd);
  /// The flags as report parameters.
  [[nodiscard]] nlohmann::json parameters() const;
};

class bench_cluster_target {
 public:
  /// Starts what the flags ask for. Throws ember::invalid_input for contradictory flags
  /// (--embedded with --scheduler, a budget with --scheduler, fewer than one worker).
  explicit bench_cluster_target(const bench_cluster_flags& flags);
  ~bench_cluster_target();

  /// A client of the cluster; `options` shape jobs (partitions, progress, timeout).
  [[nodiscard]] client connect(client_options options = {}) const;
  /// {"kind", "address", "transport", "workers": [{id, name, backend, description}]} for the
  /// report, from `c`'s status.
  [[nodiscard]] nlohmann::json describe(const client& c) const;
  /// "local-processes", "embedded" or "scheduler".
  [[nodiscard]] std::string kind() const;
  [[nodiscard]] bool has_worker_processes() const noexcept { return !_flags.embedded; }

 private:
  bench_cluster_flags _flags;
  std::unique_ptr<local_process_cluster> _local;
  std::string _address, _token;
};

/// The cumulative counters of a cluster's workers (tier moves, store lookups), summed.
struct cluster_counters {
  report_tiers tiers;
  report_residency residency;
};

/// What `status` says now: the sums over its live workers; device peaks and limits are the
/// largest of any worker.
[[nodiscard]] cluster_counters counters_of(const cluster_status& status);
/// after - before (peaks and limits: after's).
[[nodiscard]] cluster_counters counters_between(const cluster_counters& before,
                                                const cluster_counters& after);
/// Waits until the workers' heartbeats have reported what they did (the counters stop moving
/// for two heartbeats, at most `limit`) and returns the counters then.
[[nodiscard]] cluster_counters settled_counters(
    const client& c, std::chrono::milliseconds limit = std::chrono::milliseconds(3000));

/// The shuffle of a finished job: every stage's fetches between workers, links named after the
/// workers in `status`. Sums bytes over stages; a link's seconds are summed over stages, the
/// shuffle's seconds are the stages' fetch_seconds summed.
[[nodiscard]] report_shuffle shuffle_of(const job_metrics& metrics, const cluster_status& status);

}  // namespace ember::cli
