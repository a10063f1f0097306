#pragma once
// `ember bench cache`: the distributed cache (issue 4) measured beside its ceilings, in one run.
//
//   tiers    a host table of about `size` bytes (int64, float64 and string columns, fixed seed)
//            moved through an ember::partition_store whose two tiers are tracking_resources over
//            default_host_pool() (as a CPU worker's): device -> host spill and host -> device
//            unspill beside a memcpy of the same bytes into warm memory; host -> disk spill and
//            disk -> host unspill beside a write() and a read() of one buffer of the same bytes
//            to and from a file in the spill folder (no fsync, as spill files are not synced).
//            Interleaved: each round measures all seven once; the report gives the median of the
//            rounds and the ratios of medians, with the goal (>= 80%) met or not.
//   job      a group-by over a dataset of `rows` rows (ember::dataset_store, 4 partitions per
//            worker) on a cluster of its own (an `ember scheduler` and `workers` CPU `ember
//            worker` processes of this same executable, over loopback). The first run reads the
//            files; the workers keep the scanned partitions, so repeated runs find them resident.
//            "Read again" runs the same query over an identical copy of the dataset written under
//            another name and never read before, one per round, alternating with a resident run.
//            Per run: wall seconds, and the workers' partition-store hit rate (lookups that found
//            their partition, summed over the workers, the run's delta from `ember status`).
//            Every run's result is checked against the answer computed here from the same rows.
#include <string>

#include <CLI/CLI.hpp>

#include <ember/host/types.hpp>

namespace ember::cli {

struct bench_cache_options {
  /// Bytes of the tiers part's table ("256MB"; parsed with parse_size).
  std::string size = "256MB";
  /// Rows of the job part's dataset ("4M"; parsed with parse_count).
  std::string rows = "4M";
  /// Worker processes of the job part.
  int workers = 2;
  /// Timed rounds of each part (after one warm-up); the report gives medians with min and max.
  int rounds = 3;
  std::string json_path;
  /// HOST:PORT of a running scheduler for the job part (empty: start `workers` worker processes
  /// on loopback), and its token file. Its workers must read `data_dir` by the same path.
  std::string scheduler, token_file;
  /// Where the job part's datasets go (empty: the system's temporary folder); removed afterwards.
  std::string data_dir;
  /// Where the tiers part's spill files and plain file go (empty: the system's temporary
  /// folder); the bench makes a folder of its own inside it and removes it afterwards.
  std::string spill_dir;

  /// Adds the `cache` subcommand to `bench` with --size, --rows, --workers, --rounds, --json,
  /// --spill-dir, --scheduler, --token-file and --data-dir, which fill this struct; returns it.
  CLI::App* add_to(CLI::App& bench);
};

/// `ember bench cache`. Returns the exit code. Throws ember::invalid_input for bad options
/// (naming the flag), ember::error when a move or a run gives other bytes or rows than it was
/// given, or what starting the cluster threw.
int run_bench_cache(const bench_cache_options& options);

}  // namespace ember::cli
