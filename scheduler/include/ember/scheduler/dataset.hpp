#pragma once
// ember::dataset: a lazy, immutable description of a partitioned table, built from a client's
// sources with operators. Each operator returns a new dataset; nothing runs until collect(),
// run() or write(). Columns and types are checked when a dataset is built, so an unknown column
// or a type mismatch throws ember::invalid_input at the call that introduced it, naming the
// column. Datasets are cheap to copy and safe to use from several threads.
#include <ember/cuda/expression.hpp>
#include <ember/cuda/groupby.hpp>
#include <ember/cuda/join.hpp>
#include <ember/cuda/sort.hpp>
#include <ember/host/dataset_store.hpp>
#include <ember/host/table.hpp>
#include <ember/scheduler/executor.hpp>
#include <ember/scheduler/plan.hpp>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ember {

class client;
class grouped_dataset;

/// How dataset::write_dataset writes and commits.
struct dataset_write_options {
  /// How each partition file is stored (compression, zstd level, row group rows); `sync` is
  /// ignored: every file is synced before the commit names it.
  partition_write_options files;
  /// When set, the commit fails unless the dataset's current version still is this one (0: no
  /// version yet), as in commit_options::expected_parent.
  std::optional<std::uint64_t> expected_parent;
  /// The writer's fencing token (a lock service's), recorded in the manifest; a token older than
  /// the one that committed the current version under the same lock is refused.
  std::optional<fence_token> fence;
  /// Called under the dataset's commit lock right before the new version becomes current (see
  /// commit_options::before_publish); throwing refuses the commit.
  std::function<void(std::uint64_t new_version)> before_publish;
};

/// What write_dataset committed.
struct dataset_write_result {
  std::uint64_t version = 0;
  size_type rows = 0;   ///< rows of the new version
  size_type bytes = 0;  ///< bytes of its partition files
  std::size_t partitions = 0;
  job_metrics metrics;  ///< the job's (its stages include the writing)
};
namespace detail {
struct client_state;
}

class dataset {
 public:
  /// The logical plan that produces this dataset.
  [[nodiscard]] const plan& logical_plan() const noexcept { return _plan; }
  /// Its columns and their types.
  [[nodiscard]] const schema& columns() const noexcept { return _columns; }

  // ---- operators (each throws ember::invalid_input for unknown columns or bad types) ---------
  /// One column per expression, named as given.
  [[nodiscard]] dataset project(std::vector<named_expression> columns) const;
  /// The named columns, in that order.
  [[nodiscard]] dataset select(const std::vector<std::string>& names) const;
  /// All columns, plus (or replaced by, when the name exists) the given ones.
  [[nodiscard]] dataset with_columns(std::vector<named_expression> columns) const;
  /// Rows where the bool predicate is true (null counts as false).
  [[nodiscard]] dataset filter(expression predicate) const;
  /// The words of a string column, one row per word, in one string column `output`.
  [[nodiscard]] dataset tokenize(std::string column, std::string output = "word") const;
  /// Groups by `keys`: call aggregate() on the result.
  [[nodiscard]] grouped_dataset group_by(std::vector<std::string> keys) const;
  /// One row per distinct key combination: the keys, then one column per aggregation.
  [[nodiscard]] dataset group_by(std::vector<std::string> keys,
                                 std::vector<aggregation> aggregations) const;
  /// One row aggregating everything.
  [[nodiscard]] dataset aggregate(std::vector<aggregation> aggregations) const;
  /// Distinct rows over `columns` (all columns when empty), holding those columns.
  [[nodiscard]] dataset distinct(std::vector<std::string> columns = {}) const;
  /// Sorted by `keys` (stable).
  [[nodiscard]] dataset sort(std::vector<sort_key> keys) const;
  /// The first k rows in `keys` order.
  [[nodiscard]] dataset top_k(std::vector<sort_key> keys, size_type k) const;
  /// Equi-join with `right` (a dataset of the same client) on left_keys[i] == right_keys[i].
  [[nodiscard]] dataset join(const dataset& right, std::vector<std::string> left_keys,
                             std::vector<std::string> right_keys, join_kind kind = join_kind::inner,
                             join_strategy strategy = join_strategy::automatic) const;
  /// Equi-join on columns that have the same names on both sides.
  [[nodiscard]] dataset join(const dataset& right, std::vector<std::string> keys,
                             join_kind kind = join_kind::inner,
                             join_strategy strategy = join_strategy::automatic) const;
  /// This dataset's rows, then `other`'s (same column names and types).
  [[nodiscard]] dataset concat(const dataset& other) const;
  /// The first `count` rows.
  [[nodiscard]] dataset limit(size_type count) const;
  /// The same rows, hash-partitioned by `keys` (a shuffle). Throws ember::invalid_input for an
  /// unknown column or no keys.
  [[nodiscard]] dataset repartition(std::vector<std::string> keys) const;
  /// Labels the last operator: its output rows and bytes appear under this name in the job's
  /// metrics (job_metrics::labels), and the name in stage names.
  [[nodiscard]] dataset label(std::string name) const;

  // ---- running (blocks the calling thread; throws the job's first error) ---------------------
  /// The rows, in host memory owned by the caller.
  [[nodiscard]] table collect() const;
  /// The rows and the job's metrics.
  [[nodiscard]] job_result run() const;
  /// Writes the rows as CSV with a header row (ember::write_csv_file). Returns the metrics.
  job_metrics write(const std::filesystem::path& path) const;
  /// Writes the rows as a new version of dataset `name` of the dataset_store at `root` (a folder
  /// every worker sees: a local folder for the embedded cluster, a shared filesystem for a
  /// cluster): the client begins a write (dataset_store::begin_write), each task of the job's
  /// last stage writes its partition as one file into the write's staging folder and returns only
  /// that file's description; the client adopts the files in partition order (one partition per
  /// task, empty ones included) and commits them as one version. Nothing is visible before the
  /// commit: when a task or the commit fails, the staging folder is removed and the previous
  /// version stays current. Blocks the calling thread. Throws the job's first error, and what
  /// dataset_writer::adopt_partition and commit throw (ember::invalid_input for a bad name, an
  /// expected parent that is not current, a stale fencing token).
  dataset_write_result write_dataset(const std::filesystem::path& root, const std::string& name,
                                     const dataset_write_options& options = {}) const;

 private:
  friend class client;
  friend class grouped_dataset;
  friend dataset concat(const std::vector<dataset>& inputs);
  dataset(std::shared_ptr<detail::client_state> state, plan p, schema columns)
      : _state(std::move(state)), _plan(std::move(p)), _columns(std::move(columns)) {}
  dataset then(node_op op) const;

  std::shared_ptr<detail::client_state> _state;
  plan _plan;
  schema _columns;
};

/// A dataset grouped by keys, waiting for its aggregations.
class grouped_dataset {
 public:
  [[nodiscard]] dataset aggregate(std::vector<aggregation> aggregations) const;
  [[nodiscard]] const std::vector<std::string>& keys() const noexcept { return _keys; }

 private:
  friend class dataset;
  grouped_dataset(dataset input, std::vector<std::string> keys)
      : _input(std::move(input)), _keys(std::move(keys)) {}
  dataset _input;
  std::vector<std::string> _keys;
};

/// The rows of every dataset, one after another (all of one client, same columns). Throws
/// ember::invalid_input for an empty list or mismatched columns.
[[nodiscard]] dataset concat(const std::vector<dataset>& inputs);

}  // namespace ember
