#pragma once
#include <string>
#include <vector>

#include <ember/cuda/context.hpp>

namespace ember::cli {

struct bench_ops_options {
  /// Rows of the group-by and sort inputs; the join uses rows / 2 x rows / 20.
  size_type rows = 20'000'000;
  backend_choice backend = backend_choice::automatic;
  /// Threads of ember's CPU backend (and of the peer).
  int threads = 2;
  int rounds = 3;
  /// Workload names to run (all when empty).
  std::vector<std::string> only;
  /// "duckdb" to run DuckDB on the same data in the same run, alternating with ember.
  std::string compare;
  /// The Python interpreter that has duckdb (the bench script's virtual environment).
  std::string python = "python3";
  std::string json_path;
};

/// `ember bench ops`: operator throughput on generated data (fixed seeds) beside a memcpy
/// ceiling and, with compare = "duckdb", DuckDB on the same rows. Prints a summary table,
/// writes the JSON report. Returns the process exit code.
int run_bench_ops(const bench_ops_options& options);

}  // namespace ember::cli
