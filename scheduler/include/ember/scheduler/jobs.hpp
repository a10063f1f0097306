#pragma once
// The built-in jobs behind `ember run JOB`. Each builds a dataset on the client, runs it and
// reports what it did. Generated inputs are deterministic in (seed, size), so a job's result
// does not depend on the backend, the worker count or the partitioning.
//
//   wordcount  inputs (text files) -> word, count; sorted by count desc, word asc
//   groupby    "keyed" (rows rows; rows/10 distinct int64 keys) -> key, sum (of v, int64),
//              count (rows), mean (of x), min (of x), max (of x); sorted by key
//   join       "facts" (rows rows) inner join "dims" (rows/10 rows) on dim_key (shuffle join)
//              -> segment, rows, qty (sum), amount (sum), weighted (sum of amount * weight);
//              sorted by segment
//   sort       "sort" (rows rows: key int64, payload string) sorted by key, payload
//   enrich     "events" (about scale_bytes bytes, or rows rows) join "items" on item_id
//              (broadcast), plus revenue = amount * price, day = ts truncated to the day,
//              bucket = int32(hash(user_id) mod 64), is_mobile and is_big_order (bools) -> the
//              enriched table (about twice the events' bytes; its rows and bytes are the
//              report's stage "enrich: enriched table") -> category, day, orders, revenue;
//              sorted by category, day. The report's input is the events table.
//              With output_root, the enriched table is written as a committed dataset
//              (output_dataset, default "enriched"; dataset::write_dataset) and the summary is
//              computed from that version (category, day and revenue read back). With
//              input_root, events are dataset input_dataset of that store and items dataset
//              input_dataset + "-items"; when neither exists yet they are generated (scale,
//              rows, seed as usual) and committed first, so later runs read the same input.
// `top` > 0 keeps the first `top` result rows. Without rows or scale_bytes, generated jobs use
// default_job_rows rows (enrich: default_job_rows events).
#include <cstdint>
#include <ember/host/table.hpp>
#include <ember/scheduler/client.hpp>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace ember {

/// Rows of a generated job's input when neither rows nor scale_bytes is given: runs in seconds.
inline constexpr size_type default_job_rows = 1'000'000;

struct job_options {
  std::vector<std::filesystem::path> inputs;
  size_type rows = 0;
  size_type scale_bytes = 0;
  std::uint64_t seed = 42;
  size_type top = 0;
  /// enrich: the storage root to write the enriched dataset to (none: not written).
  std::filesystem::path output_root;
  std::string output_dataset = "enriched";
  /// enrich: how the written dataset's files are stored.
  compression_codec output_compression = compression_codec::none;
  /// enrich: the storage root to read the input datasets from (none: generated on the fly).
  std::filesystem::path input_root;
  std::string input_dataset = "events";
};

/// A dataset version a job committed.
struct written_dataset {
  std::filesystem::path root;
  std::string name;
  std::uint64_t version = 0;
  size_type rows = 0;
  size_type bytes = 0;  ///< its partition files' bytes
  std::size_t partitions = 0;
};

struct stage_report {
  std::string name;
  double seconds;
  size_type rows_out;
  size_type bytes_out;
};

struct job_report {
  table result;  ///< host memory
  std::vector<stage_report> stages;
  double seconds;
  size_type input_rows;
  size_type input_bytes;
  /// The datasets the job committed (enrich: its generated input when input_root named none
  /// yet, then the enriched table), in that order.
  std::vector<written_dataset> written;
  /// The job's own metrics (every stage with its shuffle links, the labels). enrich with
  /// output_root: the write job's stages, then the summary job's; input rows and bytes are the
  /// write job's.
  job_metrics metrics;
};

/// The built-in jobs' names: enrich, groupby, join, sort, wordcount.
[[nodiscard]] std::vector<std::string> job_names();

/// The columns enrich computes on the joined events and items (revenue, day, bucket, is_mobile,
/// is_big_order), for programs that run parts of its plan (the benchmark times its phases).
[[nodiscard]] std::vector<named_expression> enrich_computed_columns();

/// Runs the built-in job `name` on `c` and blocks until it is done. Throws ember::invalid_input
/// for an unknown name (listing the jobs), negative rows, scale or top, wordcount without input
/// files or with an unreadable one; otherwise what the job threw.
[[nodiscard]] job_report run_job(client& c, std::string_view name, const job_options& options);

}  // namespace ember
