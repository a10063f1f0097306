#pragma once
// ember::client: the entry point of the C++ API. Today it starts an embedded local cluster (a
// pool of worker threads in this process, one backend context each) and runs jobs on it; the
// same interface will connect to a remote scheduler.
//
//   auto c = ember::client::local();
//   auto counts = c.read_text({"a.txt"}).tokenize("line", "word")
//                   .group_by({"word"}, {{ember::aggregation_kind::count_all, "", "count"}})
//                   .top_k({{"count", true}}, 10)
//                   .collect();
#include <chrono>
#include <ember/cuda/context.hpp>
#include <ember/host/table.hpp>
#include <ember/scheduler/dataset.hpp>
#include <ember/scheduler/executor.hpp>
#include <ember/scheduler/plan.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace ember {

struct client_options {
  /// Backend of the workers: `automatic` is one CUDA worker per GPU when CUDA is usable, else
  /// two CPU workers.
  backend_choice backend = backend_choice::automatic;
  /// Worker threads (0: as above).
  int workers = 0;
  /// OpenMP threads of each CPU worker (0: max(1, hardware threads / workers)).
  int cpu_threads = 0;
  /// Budget of each worker's device tier in bytes (on the CPU backend, its host memory for
  /// operator results, scratch and the shuffle blocks it wrote).
  std::size_t device_memory_limit = tracking_resource::unlimited;
  /// Partitions per worker: sources without their own partition count and every shuffle get
  /// workers * partitions_per_worker partitions.
  int partitions_per_worker = 2;
  /// Backend-specific fast paths (see context_options).
  bool fast_paths = true;
  /// `automatic` joins broadcast a right side of at most this many rows.
  size_type broadcast_limit_rows = size_type{1} << 20;
  /// Deadline of each job (0: none); a job past it fails with ember::timeout.
  std::chrono::milliseconds job_timeout{0};
  /// Progress of every job's stages (see executor.hpp): called on the thread that runs the job.
  progress_callback progress;
};

/// A connection to a cluster: here, the embedded local one. Move-only. Thread-safe: datasets
/// of one client may be collected from several threads at once.
class client {
 public:
  /// Starts the embedded local cluster. Throws ember::invalid_input for bad options (negative
  /// counts, CUDA requested but unavailable), or what a worker's context creation threw.
  [[nodiscard]] static client local(const client_options& options = {});

  client(client&&) noexcept;
  client& operator=(client&&) noexcept;
  /// Shuts the cluster down (see shutdown()).
  ~client();

  // ---- sources (lazy: nothing is read until a job runs) ---------------------------------------
  /// An in-memory host table (moved in, shared by the plans that read it), split into
  /// `partitions` row ranges (0: the client's default). Throws ember::invalid_input when the
  /// table is not in host memory.
  [[nodiscard]] dataset from_table(table data, int partitions = 0) const;
  /// A copy of a host table view.
  [[nodiscard]] dataset from_table(const table_view& data, int partitions = 0) const;
  /// The lines of text files (one string column "line"). Throws ember::invalid_input naming a
  /// file that does not exist or is not a regular file.
  [[nodiscard]] dataset read_text(const std::vector<std::filesystem::path>& paths,
                                  int partitions = 0) const;
  /// A built-in generator's table (generators.hpp). Throws ember::invalid_input for an unknown
  /// generator (listing them) or negative sizes.
  [[nodiscard]] dataset generate(const std::string& generator, size_type rows,
                                 std::uint64_t seed = 42, size_type cardinality = 0,
                                 int partitions = 0) const;
  /// A dataset for a logical plan (for instance one decoded by decode_plan). Checks it.
  [[nodiscard]] dataset from_plan(plan p) const;

  // ---- running ------------------------------------------------------------------------------
  /// Plans and runs `p`, returning its rows (host memory, owned by the caller) and metrics.
  /// Blocks the calling thread. Throws what the job threw, with its original type.
  [[nodiscard]] job_result run(const plan& p) const;
  /// The physical plan `p` would run as (for explain output and tests).
  [[nodiscard]] physical_plan explain(const plan& p) const;

  // ---- the cluster --------------------------------------------------------------------------
  [[nodiscard]] int num_workers() const;
  [[nodiscard]] std::vector<std::string> worker_descriptions() const;
  [[nodiscard]] backend_kind backend() const;
  /// workers * partitions_per_worker.
  [[nodiscard]] int default_partitions() const;
  [[nodiscard]] const client_options& options() const;

  /// Stops the workers (running jobs fail with ember::cancelled). Datasets of this client
  /// throw ember::invalid_input when run afterwards. Idempotent; never throws.
  void shutdown() noexcept;

 private:
  explicit client(std::shared_ptr<detail::client_state> state);
  std::shared_ptr<detail::client_state> _state;
};

}  // namespace ember
