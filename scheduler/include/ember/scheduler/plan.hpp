#pragma once
// Logical plans: a job as a small DAG of operator nodes over partitioned tables.
//
// A plan is plain data (no function pointers, no handles to live objects other than the
// immutable host tables of in-memory sources), so that it can be copied, compared, printed and
// serialised (plan_codec.hpp) to be shipped to other processes. Nodes refer to their inputs by
// index; an input always has a smaller index than the node that reads it, so the node list is
// in topological order and `root` is the node whose rows the job produces.
//
// The same vocabulary describes the body of one stage of a physical plan (planner.hpp): there a
// node means "this operator applied to one partition", and `exchange_source` leaves read the
// shuffle blocks written by an upstream stage. In a logical plan every node means the operator
// applied to the whole (partitioned) table, and exchange sources are not allowed.
#include <cstdint>
#include <ember/cuda/expression.hpp>
#include <ember/cuda/groupby.hpp>
#include <ember/cuda/join.hpp>
#include <ember/cuda/sort.hpp>
#include <ember/host/partition_file.hpp>
#include <ember/host/table.hpp>
#include <ember/host/types.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ember {

/// Index of a node in plan::nodes.
using node_id = std::int32_t;

/// Column names and types of a table, without data.
struct schema {
  std::vector<std::string> names;
  std::vector<type_id> types;

  [[nodiscard]] size_type size() const noexcept { return static_cast<size_type>(names.size()); }
  [[nodiscard]] bool has(std::string_view name) const noexcept;
  /// Position of `name`; throws ember::invalid_input naming the column and listing the schema's
  /// columns when there is none (the same message as table_view::index_of).
  [[nodiscard]] size_type index_of(std::string_view name) const;
  [[nodiscard]] type_id type_of(std::string_view name) const { return types[index_of(name)]; }
  /// "word string, count int64".
  [[nodiscard]] std::string to_string() const;
  /// The schema of a table.
  [[nodiscard]] static schema of(const table_view& t);

  friend bool operator==(const schema&, const schema&) = default;
};

/// How a join moves its inputs: `shuffle` hash-partitions both sides by key; `broadcast` gives
/// every partition of the left side the whole right side; `automatic` broadcasts the right side
/// when the planner can bound it below the client's broadcast limit.
enum class join_strategy : std::uint8_t { automatic, shuffle, broadcast };

/// How a stage's output reaches its consumer (planner.hpp): `hash` splits every task's output by
/// a hash of key columns into the consumer's partitions; `gather` sends every task's output to a
/// single consumer partition, in task order; `broadcast` gives every consumer partition all of
/// it; `result` returns it to the client.
enum class exchange_mode : std::uint8_t { hash, gather, broadcast, result };

// ---- sources --------------------------------------------------------------------------------

/// An in-memory host table, split into `partitions` contiguous row ranges of (almost) equal
/// size; 0 lets the planner choose. The table is shared and never modified.
struct table_source {
  std::shared_ptr<const table> data;
  int partitions = 0;
};

/// Lines of text files (one string column "line", newlines dropped, CRLF accepted). The files'
/// bytes are split into `partitions` ranges (0: the planner chooses); a line belongs to the range
/// holding its first byte, so every line is read exactly once whatever the partition count.
struct text_source {
  std::vector<std::string> paths;
  int partitions = 0;
};

/// A built-in generator (generators.hpp). Row r is a function of (generator, seed, rows,
/// cardinality, r) only, so the generated table does not depend on the partition or worker
/// count; `partitions` (0: the planner chooses) splits the rows into contiguous ranges.
struct generate_source {
  std::string generator;
  size_type rows = 0;
  std::uint64_t seed = 42;
  /// Generator-specific size of a key domain (distinct keys, dimension rows); 0: its default.
  size_type cardinality = 0;
  int partitions = 0;
};

/// One conjunct of a predicate pushed into a dataset scan: `column <op> value`.
struct dataset_filter {
  std::string column;
  comparison op = comparison::eq;
  scalar value;

  /// The same condition as a filter expression: col(column) <op> lit(value).
  [[nodiscard]] expression to_expression() const;

  friend bool operator==(const dataset_filter&, const dataset_filter&) = default;
};

/// A committed version of a dataset of a dataset_store (ember/host/dataset_store.hpp) under
/// `root`: one task partition per partition file. Only `columns` are read (all when empty), in
/// that order. `filters` (all must hold) only skip partitions whose statistics say no row can
/// match (host may_contain): a skipped partition is an empty table, and the rows of the others are
/// not filtered here (client::read_dataset adds a filter node above the source).
struct dataset_source {
  std::string root;
  std::string name;
  /// 0: the current version when the plan is planned (client::read_dataset resolves it when it
  /// is called, so one job reads one version).
  std::uint64_t version = 0;
  std::vector<std::string> columns;
  std::vector<dataset_filter> filters;
  /// Stage bodies: the version's partition count (the planner sets it from the manifest).
  int partitions = 0;
};

/// Stage bodies only: the blocks that upstream stage `stage` wrote for this partition.
/// `partitions` is the number of consumer partitions (hash: the shuffle's fan-out; gather and
/// broadcast: 1, and a broadcast leaf gives the same rows to every partition of its stage).
struct exchange_source {
  int stage = -1;
  exchange_mode mode = exchange_mode::hash;
  int partitions = 1;
  ember::schema columns;
};

// ---- operators ------------------------------------------------------------------------------

/// One output column per expression (ember::project).
struct project_node {
  node_id input = -1;
  std::vector<named_expression> columns;
};
/// Rows where the bool predicate is true (ember::filter).
struct filter_node {
  node_id input = -1;
  expression predicate;
};
/// Words of a string column (ember::tokenize).
struct tokenize_node {
  node_id input = -1;
  std::string column;
  std::string output = "word";
};
/// One row per distinct key combination with the aggregations (ember::group_by). No keys: one
/// row for the whole input.
struct aggregate_node {
  node_id input = -1;
  std::vector<std::string> keys;
  std::vector<aggregation> aggregations;
};
/// Distinct rows over `columns` (all columns when empty).
struct distinct_node {
  node_id input = -1;
  std::vector<std::string> columns;
};
/// The input sorted by the keys (stable: ties keep the input's order, partitions in order).
struct sort_node {
  node_id input = -1;
  std::vector<sort_key> keys;
};
/// The first k rows of the input sorted by the keys.
struct top_k_node {
  node_id input = -1;
  std::vector<sort_key> keys;
  size_type k = 0;
};
/// Equi-join (ember::hash_join).
struct join_node {
  node_id left = -1;
  node_id right = -1;
  std::vector<std::string> left_keys;
  std::vector<std::string> right_keys;
  join_kind kind = join_kind::inner;
  join_strategy strategy = join_strategy::automatic;
};
/// The rows of every input, one input after another (same column names and types).
struct concat_node {
  std::vector<node_id> inputs;
};
/// The first `count` rows of the input (partitions in order).
struct limit_node {
  node_id input = -1;
  size_type count = 0;
};
/// The input's rows, hash-partitioned by `keys` into the planner's shuffle partition count: a
/// shuffle and nothing else (rows with equal keys end up in one partition).
struct repartition_node {
  node_id input = -1;
  std::vector<std::string> keys;
};

/// A sink: each task writes its partition of the input as one ember partition file into
/// `staging_dir`, the staging folder of a dataset write that the client began
/// (dataset_writer::staging_dir, under a storage root every worker sees), under a name of its own
/// ("task-<partition>-<random>.emb", so a retried task never overwrites a file another attempt
/// reported), synced, and produces one row describing it (sink_columns()): the task's
/// partition, the file's name, rows, size and footer checksum. The client then adopts the files
/// in partition order and commits the version (dataset::write_dataset); nothing is visible before.
/// Partition-wise: it ends the stage that computes its input.
struct dataset_sink {
  node_id input = -1;
  std::string staging_dir;
  compression_codec compression = compression_codec::none;
  int level = 3;  ///< zstd's level (partition_write_options::level)
  size_type row_group_rows = size_type{1} << 20;

  /// partition int32, file string, rows int64, bytes int64, footer_checksum int64 (the
  /// checksum's bits).
  [[nodiscard]] static schema sink_columns();
};

using node_op = std::variant<table_source, text_source, generate_source, exchange_source,
                             project_node, filter_node, tokenize_node, aggregate_node,
                             distinct_node, sort_node, top_k_node, join_node, concat_node,
                             limit_node, repartition_node, dataset_source, dataset_sink>;

/// One node: the operator and an optional label. A label names the node's output in stage
/// names and in the job's metrics (rows and bytes it produced), e.g. "enriched".
struct plan_node {
  node_op op;
  std::string label;
};

/// A DAG of nodes in topological order; `root` produces the job's rows.
struct plan {
  std::vector<plan_node> nodes;
  node_id root = -1;

  /// Appends a node, makes it the root and returns its id.
  node_id add(node_op op, std::string label = {});
  /// The node `id`; throws ember::invalid_input when it is out of range.
  [[nodiscard]] const plan_node& node(node_id id) const;
  /// Appends all nodes of `other` (their inputs renumbered) and returns the id that `other`'s
  /// root has in this plan. Does not change `root`.
  node_id append(const plan& other);
  /// One line per node: "3 aggregate(keys=[word] aggs=[count_all() as count]) <- 2".
  [[nodiscard]] std::string to_string() const;
};

/// The inputs a node reads, in order.
[[nodiscard]] std::vector<node_id> inputs_of(const node_op& op);
/// The operator's name: "table", "read_text", "generate", "exchange", "project", "filter",
/// "tokenize", "aggregate", "distinct", "sort", "top_k", "join", "concat", "limit",
/// "repartition", "read_dataset", "write_dataset".
[[nodiscard]] std::string_view op_name(const node_op& op) noexcept;
/// Readable names of enum values, as plans print them.
[[nodiscard]] std::string_view to_string(join_strategy s) noexcept;
[[nodiscard]] std::string_view to_string(exchange_mode m) noexcept;

}  // namespace ember
