#pragma once
// One task: a stage body evaluated for one partition on one worker's context. Shared by the
// local executor (blocks in an in-process store) and the worker service (blocks in the worker's
// store, inputs fetched from other workers before the task starts); task_io is the difference.
#include <ember/cuda/context.hpp>
#include <ember/scheduler/block_store.hpp>
#include <ember/scheduler/executor.hpp>
#include <ember/scheduler/planner.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ember::detail {

/// Where a task's exchange inputs come from, where its output goes, and what it reports.
/// Called on the task's thread.
class task_io {
 public:
  virtual ~task_io() = default;
  /// The blocks upstream stage `stage` wrote for `reduce_partition`, in map-partition order.
  [[nodiscard]] virtual std::vector<block> exchange_input(int stage, int reduce_partition) = 0;
  /// Publishes one block of this task's output for `reduce_partition` (0 for gather and
  /// broadcast exchanges).
  virtual void put_block(int reduce_partition, block b) = 0;
  /// Publishes this task's rows of the job's result (host memory).
  virtual void put_result(block b) = 0;
  /// True once the task should stop (its job failed or was cancelled).
  [[nodiscard]] virtual bool stop_requested() const = 0;
  /// Rows and bytes produced by a labelled node, and by the sources.
  virtual void add_label(const std::string& label, size_type rows, size_type bytes) = 0;
  virtual void add_input(size_type rows, size_type bytes) = 0;
  /// True when a CUDA worker must put its blocks in host memory (its consumers cannot read its
  /// device memory).
  [[nodiscard]] virtual bool blocks_on_host() const = 0;
  /// Host memory for those blocks: pinned (so the network sends from it at full speed), and
  /// accounted by a worker.
  [[nodiscard]] virtual memory_resource& host_staging() { return pinned_host_resource(); }
  /// True when each block of a hash exchange must own its memory (a compact copy) instead of
  /// being a slice of the task's partitioned output: a worker with a budget spills blocks one
  /// by one, and a slice would keep its siblings' memory alive.
  [[nodiscard]] virtual bool separate_blocks() const { return false; }
  /// A partition this worker keeps from an earlier task (a dataset scan, by
  /// dataset_scan_key), in the context's memory, pinned until the task ends; std::nullopt when
  /// it keeps none.
  [[nodiscard]] virtual std::optional<block> kept_partition(const std::string& key) {
    (void)key;
    return std::nullopt;
  }
  /// Offers a partition just read (in the context's memory) for later tasks to find.
  virtual void keep_partition(const std::string& key, const block& b) {
    (void)key;
    (void)b;
  }
};

/// Adds rows and bytes to `label`'s entry in `labels` (appending it when new, so the list keeps
/// the order of first appearance).
void add_label(std::vector<label_metrics>& labels, const std::string& label, size_type rows,
               size_type bytes);

/// What a task produced (before its exchange).
struct task_output {
  size_type rows = 0;
  size_type bytes = 0;
  /// Dataset partitions that the sources' statistics let the task skip.
  size_type partitions_skipped = 0;
};

/// Partitions of every node of a stage's body (body_partitions), checked against the stage.
/// Throws ember::invalid_input when the body's root disagrees with stage.partitions.
[[nodiscard]] std::vector<int> node_partitions_of(const stage& s, int stage_index);

/// The (upstream stage, reduce partition) pairs that task `partition` of `s` reads.
[[nodiscard]] std::vector<std::pair<int, int>> task_inputs(const stage& s,
                                                           const std::vector<int>& node_partitions,
                                                           int partition);

/// Evaluates `s`'s body for `partition` on `ctx` (CUDA device `device`, or any value on the
/// CPU backend) and publishes its output through `io`. Throws what an operator threw, or
/// ember::cancelled when io.stop_requested().
task_output run_task(context& ctx, int device, const stage& s,
                     const std::vector<int>& node_partitions, int partition, task_io& io);

}  // namespace ember::detail
