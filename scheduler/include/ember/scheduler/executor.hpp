#pragma once
// The local executor: a pool of worker threads in one process, each owning one backend context,
// running the tasks (stage, partition) of physical plans.
//
// Threads. Each worker thread creates its context on itself (a CUDA context binds its device to
// the thread) and is the only thread that ever uses it. Tasks wait in one shared queue; a stage's
// tasks are queued once all its input stages have finished. run() blocks the calling thread,
// which drives the job: it queues tasks, calls the progress callback, releases shuffle blocks
// that no stage needs any more, and enforces the timeout. Several threads may call run() at
// once; their jobs share the workers.
//
// Errors. No exception escapes a worker thread. The first error of a job wins: it is kept, the
// job's remaining tasks are cancelled (queued ones are dropped; running ones stop at their next
// operator boundary), and run() rethrows it with its original type once no task of the job runs.
// Every wait is bounded: queue and job waits wake at least every 50 ms, the job as a whole obeys
// run_options::timeout (ember::timeout), and draining after an error waits at most
// run_options::drain_timeout.
//
// Memory. Blocks of a shuffle stay in the producing worker's memory (its context's accounted
// resource), so a CPU worker's budget covers the blocks it wrote until the consumers are done.
// When workers sit on different CUDA devices, blocks go through host memory.
#include <chrono>
#include <ember/cuda/context.hpp>
#include <ember/host/table.hpp>
#include <ember/scheduler/planner.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ember {

/// Progress of a job: the stage's name, its finished tasks and its task count. Called on the
/// thread that called run(), never concurrently for one job; an exception it throws cancels the
/// job and reaches run()'s caller.
using progress_callback =
    std::function<void(const std::string& stage, size_type tasks_done, size_type tasks_total)>;

struct executor_options {
  backend_choice backend = backend_choice::automatic;
  /// Worker threads; 0: one per CUDA device when the CUDA backend is chosen (or automatic and
  /// available), else 2.
  int workers = 0;
  /// OpenMP threads of each CPU worker; 0: max(1, hardware threads / workers).
  int cpu_threads = 0;
  /// Budget of each worker's device tier (bytes).
  std::size_t device_memory_limit = tracking_resource::unlimited;
  /// Backend-specific fast paths (see context_options).
  bool fast_paths = true;
  /// How long the constructor waits for the workers' contexts.
  std::chrono::milliseconds startup_timeout{120'000};
};

struct run_options {
  progress_callback progress;
  /// The whole job's deadline; 0: none. A job past it fails with ember::timeout.
  std::chrono::milliseconds timeout{0};
  /// After a failure, how long run() waits for the job's running tasks before it returns.
  std::chrono::milliseconds drain_timeout{60'000};
};

/// Shuffle bytes one worker fetched from another during a stage (distributed runs over UCX).
struct link_metrics {
  int from_worker = 0;  ///< the worker that held the blocks (the scheduler's worker id)
  int to_worker = 0;    ///< the worker whose tasks fetched them
  size_type bytes = 0;  ///< body bytes fetched over this link
  /// First request to last arrival of this link's fetches over the stage, on `to_worker`'s clock.
  double seconds = 0;
};

/// What one stage did.
struct stage_metrics {
  std::string name;
  int tasks = 0;
  /// Wall time from its first task's start to its last task's end.
  double seconds = 0;
  /// Rows and bytes (table_bytes) that its tasks produced, before the exchange.
  size_type rows_out = 0;
  size_type bytes_out = 0;
  /// Distributed runs: the body bytes its tasks fetched from other workers, and the longest
  /// time any one worker spent fetching them (first request to last arrival). For a stage whose
  /// output went through an NCCL all-to-all: the bytes it exchanged and the exchange's time.
  size_type bytes_fetched = 0;
  double fetch_seconds = 0;
  /// Dataset partitions that its tasks skipped because the statistics excluded every row.
  size_type partitions_skipped = 0;
  /// Distributed runs over UCX: bytes_fetched per link (holder -> fetching worker), sorted by
  /// (from_worker, to_worker); links that moved no bytes are left out, and the links' bytes add
  /// up to bytes_fetched. Empty for the embedded in-process executor and for NCCL exchanges (the
  /// all-to-all has no per-link view); worker names are in cluster_status.
  std::vector<link_metrics> links;
};

/// Rows and bytes produced by the nodes that carry a label, summed over their tasks.
struct label_metrics {
  std::string label;
  size_type rows = 0;
  size_type bytes = 0;
};

struct job_metrics {
  std::vector<stage_metrics> stages;  ///< in the physical plan's order
  std::vector<label_metrics> labels;  ///< in order of first appearance in the plan's stages
  double seconds = 0;                 ///< wall time of run()
  size_type input_rows = 0;           ///< rows the sources produced
  size_type input_bytes = 0;          ///< their table_bytes()
  size_type peak_block_bytes = 0;     ///< the most shuffle data held at once
  int retried_tasks = 0;              ///< distributed runs: tasks run again after a worker was lost
};

/// A job's rows (host memory, owned by the caller) and what it took.
struct job_result {
  table result;
  job_metrics metrics;
};

class executor {
 public:
  /// Starts the workers and waits until each has created its context. Throws what a context
  /// creation threw (e.g. ember::invalid_input when CUDA is asked for but unavailable), or
  /// ember::timeout; nothing is left running then.
  explicit executor(const executor_options& options = {});
  /// shutdown().
  ~executor();
  executor(const executor&) = delete;
  executor& operator=(const executor&) = delete;

  /// Runs `job` to completion and returns its result in host memory. Throws the job's first
  /// error with its original type, ember::timeout past run_options::timeout, ember::cancelled
  /// when the executor shuts down meanwhile, ember::invalid_input for a malformed plan.
  [[nodiscard]] job_result run(const physical_plan& job, const run_options& options = {});

  /// Stops the workers: queued tasks fail their jobs with ember::cancelled, running tasks finish,
  /// threads are joined, then contexts are destroyed. Idempotent; never throws.
  void shutdown() noexcept;

  [[nodiscard]] int num_workers() const noexcept;
  /// One line per worker: "worker 0: cpu (1 threads)".
  [[nodiscard]] std::vector<std::string> worker_descriptions() const;
  /// The backend of the workers.
  [[nodiscard]] backend_kind backend() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> _impl;
};

}  // namespace ember
