#pragma once
// `ember bench import`: CSV import and native scan throughput (issue 6), beside DuckDB reading the
// same CSV file into its own format, with the same threads, in the same run.
//
//   input    one CSV file of about `size` bytes, generated with a fixed seed: a header, then
//            id int64, user int64, amount float64 (cents), ts timestamp (ISO text), country (a
//            two-letter code), device (a name; some quoted, holding a comma), with empty fields
//            (nulls) in user, amount, country and device. The generator also computes the
//            answers every scan must give.
//   import   ember: what `ember data import` does (read_csv with `threads` threads, partitions
//            of 1M rows written uncompressed into a dataset_store and committed, synced), timed
//            from reading the file to the commit. DuckDB: CREATE TABLE AS SELECT * FROM
//            read_csv(...) into a fresh database file and CHECKPOINT. MB/s of CSV bytes, rows/s.
//   scan     reading the committed data back, from the manifest (ember) or from opening the
//            database file (DuckDB) to the answer. "narrow": sum(amount) and count(country)
//            (ember reads those two columns of every partition); "full": an aggregate over
//            every column (ember reads every column of every partition). ember reads
//            partitions with dataset_store::read_partition into the host pool (as a CPU
//            worker's scan reads into its tier over that pool), `threads` threads taking
//            partitions in turn. GB/s of the raw bytes of the columns read (the
//            same byte count on both sides), rows/s.
//
// One warm-up of everything, then `rounds` rounds, each: ember import, DuckDB import, ember
// narrow, DuckDB narrow, ember full, DuckDB full. Every answer (warm-up included) is checked
// against the generator's: rows, integer sums exactly, sum(amount) within 1e-9 relative.
#include <string>

#include <CLI/CLI.hpp>

namespace ember::cli {

struct bench_import_options {
  /// Bytes of the CSV file ("1GB"; parsed with parse_size).
  std::string size = "1GB";
  /// Threads of ember's CSV reader and scan, and of the peer.
  int threads = 2;
  /// Timed rounds (after one warm-up); the report gives medians with min and max.
  int rounds = 3;
  std::string json_path;
  /// "duckdb" to run DuckDB on the same file in the same run, alternating with ember.
  std::string compare;
  /// The Python interpreter that has duckdb (the bench script's virtual environment).
  std::string python = "python3";
  /// When set, the CSV file, the dataset root and the DuckDB file go here and are kept;
  /// otherwise into a temporary folder that is removed afterwards.
  std::string keep_dir;

  /// Adds the `import` subcommand to `bench` with --size, --threads, --rounds, --json,
  /// --compare, --python and --keep, which fill this struct; returns it.
  CLI::App* add_to(CLI::App& bench);
};

/// `ember bench import`. Prints a summary table, writes the JSON report. Returns 0, or 3 when an
/// answer differs from the expected one. Throws ember::invalid_input for bad options (naming
/// the flag), ember::error when the peer fails or the data read back is not what was written.
int run_bench_import(const bench_import_options& options);

}  // namespace ember::cli
