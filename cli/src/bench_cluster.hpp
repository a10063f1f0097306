#pragma once
// Benchmarks of the distributed runtime. Each starts a cluster of its own on this machine (an
// `ember scheduler` and `ember worker` processes of this same executable, over loopback) and
// stops it afterwards, or runs on a running cluster (--scheduler). Both write the common report
// (bench_report.hpp).
//
//   shuffle  `size` bytes of generated rows hash-repartitioned across the workers (every block
//            crosses UCX unless it stays on its producer), per transport (tcp; shared memory),
//            beside `ucx_perftest` tag bandwidth on the same transport in the same run (on a
//            running cluster, beside the same shuffle on the embedded in-process cluster).
//            Reports the links (worker pairs), tier moves and store lookups of the first
//            transport's rounds.
//   tasks    `tasks` near-empty tasks (one generated row each) through the scheduler and the
//            workers, beside the same job on the embedded in-process cluster.
#include <cstdint>
#include <string>
#include <vector>

#include <ember/host/types.hpp>
#include <ember/scheduler/client.hpp>

#include "bench_cluster_target.hpp"

namespace ember::cli {

struct bench_cluster_options {
  /// Where it runs (a local cluster of 3 worker processes by default, or --scheduler).
  bench_cluster_flags cluster = default_flags();
  /// Bytes shuffled (shuffle).
  size_type bytes = size_type{2} << 30;
  /// Tasks per job (tasks).
  size_type tasks = 50'000;
  /// Transports to measure (shuffle): "tcp", "shm".
  std::vector<std::string> transports = {"tcp", "shm"};
  int rounds = 3;
  std::string json_path;
  /// The workers' backend ("cpu" or "cuda"; CUDA workers all use GPU 0) and the shuffle path
  /// ("auto", "ucx", "nccl") of shuffle.
  std::string backend = "cpu";
  std::string exchange = "auto";

  static bench_cluster_flags default_flags() {
    bench_cluster_flags f;
    f.workers = 3;
    return f;
  }
};

/// `ember bench shuffle`. Returns the exit code.
int run_bench_shuffle(const bench_cluster_options& options);
/// `ember bench tasks`. Returns the exit code.
int run_bench_tasks(const bench_cluster_options& options);

}  // namespace ember::cli
