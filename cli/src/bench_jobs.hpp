#pragma once
// `ember bench wordcount` and `ember bench enrich`: two of the built-in jobs (jobs.hpp) end to end
// on a cluster, beside DuckDB running the same work on the same files and beside a plain-I/O
// ceiling, in the same run. Both write the common report (bench_report.hpp).
//
//   wordcount  text files generated once with a fixed seed (words drawn from a Zipf-like
//              vocabulary of 100k pseudo-words, about 10 words a line, `files` files of about
//              size / files bytes) in a private temporary folder that the workers read by path
//              (same host). Each round runs run_job("wordcount") on the files; every answer is
//              checked against the generator's own counts (distinct words, total words, every
//              (word, count) and the first 20 in (count desc, word asc) order). Peer: DuckDB's
//              read_csv of the lines, string_split + unnest, GROUP BY, ORDER BY, into a temporary
//              table, timed around the query alone (both sides start from the files in the page
//              cache). Ceiling: a thread per worker read()ing the input files (page cache warm)
//              beside ember's input bytes per second.
//   enrich     the reference job: events and items generated once as committed datasets of a
//              private store (job_options::input_root), then per round run_job("enrich") writing
//              the enriched table as a fresh dataset (output_root) and its daily summary. The job
//              runs its read, join, computed columns and write fused in one pipelined stage, so
//              the per-phase stages come from three shorter jobs run in the same round on the
//              same input (read; read + join; read + join + compute, each ending in a one-row
//              aggregate): read = the first, join and compute = the differences, write = the full
//              job's stage minus the third. Checked: the summary's orders add up to the events'
//              rows, the enriched dataset holds every event, the summary is the same every round
//              (and equal to DuckDB's). Peer: DuckDB with the same input exported once to CSV and
//              loaded into its own file; per round CREATE TABLE AS (the same join and columns),
//              CHECKPOINT, the same summary (bench/peers/duckdb_enrich.py --peer). Ceilings (a
//              thread per worker, as the job reads and writes): a read() of the events' partition
//              files beside the read phase, and that read plus a write() + fsync of as many bytes
//              as the enriched dataset's files beside the whole job (the write phase, a
//              difference of two jobs overlapping I/O with work, has no ceiling of its own).
//
// One warm-up, then `rounds` rounds alternating ember, the peer and the ceiling. Cluster flags
// (bench_cluster_flags): a local scheduler + worker processes by default, --embedded, or a running
// cluster (--scheduler; the workers must see this host's temporary folder by the same path).
#include <string>

#include <CLI/CLI.hpp>

#include "bench_cluster_target.hpp"

namespace ember::cli {

enum class bench_job : std::uint8_t { wordcount, enrich };

struct bench_jobs_options {
  bench_job job = bench_job::wordcount;
  /// wordcount: bytes of text (--size, default 256MB); enrich: bytes of events (--scale,
  /// default 1GB). Parsed with parse_size; empty: the job's default.
  std::string size;
  /// wordcount: input files (0: two per worker).
  int files = 0;
  /// Timed rounds (after one warm-up); the report gives medians with min and max.
  int rounds = 3;
  std::string json_path;
  /// "duckdb" to run DuckDB on the same input in the same run, alternating with ember.
  std::string compare;
  /// The Python interpreter that has duckdb (the bench script's virtual environment).
  std::string python = "python3";
  /// enrich: how the enriched dataset's files are stored: none or zstd.
  std::string write_compression = "none";
  bench_cluster_flags cluster;

  /// Adds the `wordcount` or `enrich` subcommand (after `which`) to `bench` with its options and
  /// the cluster flags, which fill this struct; returns it.
  CLI::App* add_to(CLI::App& bench, bench_job which);
};

/// `ember bench wordcount` or `ember bench enrich` (options.job). Prints the summary, writes the
/// JSON report. Returns 0, or 3 when an answer differs from the expected one. Throws
/// ember::invalid_input for bad options (naming the flag and the valid choices), ember::error when
/// the peer fails, or what starting the cluster or a job threw.
int run_bench_jobs(const bench_jobs_options& options);

}  // namespace ember::cli
