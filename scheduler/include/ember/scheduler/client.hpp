#pragma once
// ember::client: the entry point of the C++ API. client::local() starts an embedded local
// cluster (a pool of worker threads in this process, one backend context each);
// client::connect() talks to a running `ember scheduler` over UCX. Both run the same plans with
// the same results.
//
//   auto c = ember::client::local();
//   auto counts = c.read_text({"a.txt"}).tokenize("line", "word")
//                   .group_by({"word"}, {{ember::aggregation_kind::count_all, "", "count"}})
//                   .top_k({{"count", true}}, 10)
//                   .collect();
#include <chrono>
#include <ember/cuda/context.hpp>
#include <ember/host/table.hpp>
#include <ember/scheduler/cache.hpp>
#include <ember/scheduler/coordination_client.hpp>
#include <ember/scheduler/dataset.hpp>
#include <ember/scheduler/executor.hpp>
#include <ember/scheduler/plan.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace ember {

/// How hash exchanges move between GPU workers: `automatic` uses one NCCL all-to-all per stage
/// when every worker is a CUDA worker, UCX otherwise; `ucx` and `nccl` force a path (`nccl` fails
/// the job when a worker is not a CUDA worker).
enum class exchange_choice : std::uint8_t { automatic, ucx, nccl };

/// One memory tier of a worker: accounted bytes now, their peak and the budget (0: none), and
/// the partitions held there.
struct tier_status {
  std::string tier;  ///< "device", "pinned_host", "host" or "disk"
  std::uint64_t used = 0, peak = 0, limit = 0;
  std::uint64_t partitions = 0;
  std::int64_t partition_bytes = 0;
};

/// One worker as the scheduler sees it.
struct worker_status_info {
  int id = 0;
  std::string name;
  std::string address;  ///< where peers fetch its blocks
  std::string backend;  ///< "cpu" or "cuda"
  int device = -1;
  std::string description;
  bool alive = true;
  std::int64_t heartbeat_age_ms = 0;
  int slots = 1;
  int running_tasks = 0, queued_tasks = 0, assigned_tasks = 0;
  std::uint64_t memory_limit = 0;  ///< the worker's device tier budget, bytes; 0: none
  std::uint64_t memory_used = 0, memory_peak = 0, block_bytes = 0;
  std::int64_t pid = 0;
  /// Its partition store: tiers (device, pinned_host, host, disk), bytes moved down (spilled)
  /// and back up, lookups that found their partition (hits) or not, and those that found it
  /// already in the tier asked for.
  std::vector<tier_status> tiers;
  std::int64_t spilled_to_host_bytes = 0, spilled_to_disk_bytes = 0;
  std::int64_t unspilled_bytes = 0;
  std::int64_t spills = 0, unspills = 0;
  double spill_seconds = 0, unspill_seconds = 0;
  std::int64_t hits = 0, tier_hits = 0, misses = 0, corrupt_spills = 0;
  /// Tasks admission control holds back for device memory now.
  int held_back_tasks = 0;
  /// hits / (hits + misses), 0 without lookups.
  [[nodiscard]] double hit_rate() const noexcept {
    return hits + misses == 0 ? 0.0
                              : static_cast<double>(hits) / static_cast<double>(hits + misses);
  }
};

/// The cluster: its scheduler and workers.
struct cluster_status {
  std::string scheduler;  ///< "embedded local cluster" or the scheduler's address and transport
  std::vector<worker_status_info> workers;
  int running_jobs = 0;
  std::int64_t finished_jobs = 0;
  std::int64_t tasks_done = 0;
};

struct client_options {
  /// Backend of the workers: `automatic` is one CUDA worker per GPU when CUDA is usable, else
  /// two CPU workers.
  backend_choice backend = backend_choice::automatic;
  /// Worker threads (0: as above).
  int workers = 0;
  /// OpenMP threads of each CPU worker (0: max(1, hardware threads / workers)).
  int cpu_threads = 0;
  /// Budget of each worker's device tier in bytes (on the CPU backend, its host memory for
  /// operator results, scratch and the shuffle blocks it wrote). A local client's cache() gets
  /// a device tier of workers times this.
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

  // ---- connect() only ---------------------------------------------------------------------
  /// The cluster token (contents of the scheduler's token file).
  std::string token;
  /// Let UCX use shared memory to a scheduler on this host.
  bool shared_memory = false;
  /// The shuffle path of GPU workers.
  exchange_choice exchange = exchange_choice::automatic;
  /// How long coordination calls keep trying to reach a scheduler that went away (a restart)
  /// before they throw ember::transport_error.
  std::chrono::milliseconds reconnect_timeout{30'000};
};

/// A connection to a cluster: here, the embedded local one. Move-only. Thread-safe: datasets
/// of one client may be collected from several threads at once.
class client {
 public:
  /// Starts the embedded local cluster. Throws ember::invalid_input for bad options (negative
  /// counts, CUDA requested but unavailable), or what a worker's context creation threw.
  [[nodiscard]] static client local(const client_options& options = {});
  /// Connects to the scheduler at HOST:PORT. Options that shape jobs (partitions per worker,
  /// broadcast limit, job timeout, progress, exchange) apply; backend, workers, cpu_threads,
  /// device_memory_limit and fast_paths belong to the workers' own command lines and are
  /// ignored. Throws ember::transport_error (unreachable, wrong token) or ember::timeout.
  [[nodiscard]] static client connect(const std::string& scheduler,
                                      const client_options& options = {});

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
  /// A committed dataset of the dataset_store at `root` (a path the workers read too): the
  /// version current now (kept for the dataset's whole life, so later commits do not change
  /// what it reads), its `columns` (all when empty, in that order), one partition per partition
  /// file. Rows are kept when they satisfy every filter (a filter node above the source);
  /// partitions whose statistics rule the filters out are not read at all (counted in
  /// stage_metrics::partitions_skipped). Throws ember::invalid_input naming the dataset when it
  /// has no committed version, or an unknown column.
  [[nodiscard]] dataset read_dataset(const std::filesystem::path& root, const std::string& name,
                                     std::vector<std::string> columns = {},
                                     std::vector<dataset_filter> filters = {}) const;
  /// A dataset for a logical plan (for instance one decoded by decode_plan). Checks it.
  [[nodiscard]] dataset from_plan(plan p) const;

  // ---- running ------------------------------------------------------------------------------
  /// Plans and runs `p`, returning its rows (host memory, owned by the caller) and metrics.
  /// Blocks the calling thread. Throws what the job threw, with its original type.
  [[nodiscard]] job_result run(const plan& p) const;
  /// The physical plan `p` would run as (for explain output and tests).
  [[nodiscard]] physical_plan explain(const plan& p) const;

  // ---- the cluster --------------------------------------------------------------------------
  /// Live workers (remote: as the scheduler reports them now).
  [[nodiscard]] int num_workers() const;
  /// Workers, their backends, memory and tasks.
  [[nodiscard]] cluster_status status() const;
  /// True for a client of a remote scheduler.
  [[nodiscard]] bool remote() const noexcept;
  [[nodiscard]] std::vector<std::string> worker_descriptions() const;
  /// The backend of the (first live) worker.
  [[nodiscard]] backend_kind backend() const;
  /// workers * partitions_per_worker.
  [[nodiscard]] int default_partitions() const;
  [[nodiscard]] const client_options& options() const;

  // ---- coordination services (coordination_client.hpp) ---------------------------------------
  // Hosted by the scheduler; a local client starts an in-process one (loopback, not durable) on
  // first use. The connection is made on first use too.
  /// The lock (permits 1) or semaphore `name`.
  [[nodiscard]] distributed_lock lock(const std::string& name, int permits = 1) const;
  [[nodiscard]] message_queue queue(const std::string& name) const;
  [[nodiscard]] message_topic topic(const std::string& name) const;
  [[nodiscard]] key_value kv() const;
  /// Every lock the scheduler knows (held, waited for, or that issued a token), by name.
  [[nodiscard]] std::vector<lock_info> locks() const;
  /// Every queue, by name.
  [[nodiscard]] std::vector<queue_info> queues() const;

  // ---- the distributed cache and the residency catalog (cache.hpp) ---------------------------
  /// The named cache: tables kept in the workers' partition stores.
  [[nodiscard]] distributed_cache cache() const;
  /// Every partition the scheduler's residency catalog knows (shuffle blocks, cache entries,
  /// lost cache entries), by key: which worker, tier, bytes and pins.
  [[nodiscard]] std::vector<cache_entry> residency() const;

  /// Stops the workers (running jobs fail with ember::cancelled). Datasets of this client
  /// throw ember::invalid_input when run afterwards. Idempotent; never throws.
  void shutdown() noexcept;

 private:
  explicit client(std::shared_ptr<detail::client_state> state);
  std::shared_ptr<detail::client_state> _state;
};

}  // namespace ember
