#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ember/cuda/context.hpp>

#include "cluster_flags.hpp"

namespace ember::cli {

struct run_options {
  std::string job;
  std::vector<std::filesystem::path> inputs;
  size_type top = 0;
  std::string output;
  size_type rows = 0;
  size_type scale_bytes = 0;
  std::uint64_t seed = 42;
  backend_choice backend = backend_choice::automatic;
  int workers = 0;
  std::size_t device_memory_limit = tracking_resource::unlimited;
  bool quiet = false;
  cluster_flags cluster;
  exchange_choice exchange = exchange_choice::automatic;
  std::int64_t timeout_ms = 0;
  /// enrich: ROOT/NAME of the dataset to write the enriched table to (empty: not written).
  std::string write_dataset;
  /// enrich: ROOT/NAME of the events dataset (items: ROOT/NAME-items) to read (empty: generate).
  std::string input_dataset;
  /// enrich: how the written dataset's files are stored: none or zstd.
  std::string write_compression = "none";
};

/// `ember run JOB`: runs a built-in job on the embedded local cluster or on a scheduler's, prints
/// the result (and per-stage timings), writes it as CSV when asked. Returns the exit code.
int run_job_command(const run_options& options);

}  // namespace ember::cli
