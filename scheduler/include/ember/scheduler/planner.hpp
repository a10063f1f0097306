#pragma once
// The planner: a logical plan cut into stages at shuffle boundaries.
//
// Partition-wise operators (project, filter, tokenize, joins of co-partitioned inputs, concat)
// pipeline inside one stage; a stage runs one task per partition, and its output leaves through
// an exchange: hash-partitioned by keys, gathered into one partition, broadcast, or returned as
// the result. The cuts:
//   aggregate  partial aggregate per partition -> hash(keys) -> final aggregate (mean travels as
//              sum + count; count_distinct shuffles the raw rows instead); no keys: gather
//   distinct   local distinct -> hash(columns) -> distinct
//   join       hash both sides by key -> per-partition hash_join; or broadcast the right side
//              (strategy broadcast, or automatic with a right side bounded by the broadcast limit)
//   sort       local sort -> gather -> sort of the sorted runs (stable, so ties keep input order)
//   top_k      local top_k -> gather -> top_k;   limit: local limit -> gather -> limit
// An input that already has a single partition needs no exchange.
#include <ember/scheduler/plan.hpp>
#include <string>
#include <vector>

namespace ember {

/// Where a stage's output goes.
struct exchange_spec {
  exchange_mode mode = exchange_mode::result;
  std::vector<std::string> keys;  ///< hash: the partitioning columns
  int partitions = 1;             ///< hash: the consumer's partition count; otherwise 1
};

/// One stage: `body` is a plan whose nodes run per partition (one task per partition), whose
/// leaves are sources and exchange_source nodes reading upstream stages, and whose root's
/// output leaves through `output`.
struct stage {
  std::string name;  ///< for progress and reports, e.g. "read_text -> tokenize -> aggregate"
  plan body;
  int partitions = 1;
  exchange_spec output;
  std::vector<int> inputs;  ///< upstream stages (their index in physical_plan::stages)
  ember::schema columns;    ///< the body's output columns
};

/// A job's stages in topological order (a stage's inputs come before it); the last stage's
/// output is the result.
struct physical_plan {
  std::vector<stage> stages;
  ember::schema result;
  /// One line per stage and its body, for logs and tests.
  [[nodiscard]] std::string to_string() const;
};

struct planner_options {
  /// Partitions of every hash exchange, and the least partitions of a source that does not set
  /// its own.
  int partitions = 4;
  /// Generated and text sources without their own partition count get more partitions when
  /// they are large, so that one task's input stays about this size (rows, or file bytes).
  size_type source_partition_rows = size_type{1} << 21;
  size_type source_partition_bytes = size_type{128} << 20;
  /// `automatic` joins broadcast the right side when its row count is known to be at most this.
  size_type broadcast_limit_rows = size_type{1} << 20;
};

/// Checks `logical` (infer_schemas) and cuts it into stages. Throws ember::invalid_input like
/// infer_schemas, or when options.partitions < 1. Pure function; thread-safe.
[[nodiscard]] physical_plan plan_stages(const plan& logical, const planner_options& options = {});

/// The number of tasks that node `id` of a stage body needs: sources their partitions, hash
/// exchanges their fan-out, gather and broadcast exchanges 1, concat the sum of its inputs,
/// everything else its (left) input's. Throws ember::invalid_input for a malformed body.
[[nodiscard]] int body_partitions(const plan& body, node_id id);

}  // namespace ember
