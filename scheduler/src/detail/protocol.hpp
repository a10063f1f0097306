#pragma once
// The messages between clients, the scheduler and workers, on top of the transport's frames.
// Each message is a struct with an encode() into bytes and a decode() that checks every field
// (byte_codec.hpp): a malformed body is an ember::invalid_input naming the message and the peer,
// and the transport drops that peer.
#include <cstdint>
#include <ember/host/error.hpp>
#include <ember/scheduler/executor.hpp>
#include <ember/scheduler/planner.hpp>
#include <ember/scheduler/queue_store.hpp>
#include <ember/transport/byte_codec.hpp>
#include <ember/transport/node.hpp>
#include <exception>
#include <span>
#include <string>
#include <vector>

namespace ember::detail {

using transport::byte_reader;
using transport::byte_writer;

enum class msg : std::uint16_t {
  register_worker = transport::first_application_type,  // worker -> scheduler
  registered,                                           // scheduler -> worker
  heartbeat,                                            // worker -> scheduler
  peers,                                                // scheduler -> worker
  define_stage,                                         // scheduler -> worker
  run_task,                                             // scheduler -> worker
  task_done,                                            // worker -> scheduler (table: result)
  task_failed,                                          // worker -> scheduler
  release_blocks,                                       // scheduler -> worker
  fetch_block,                                          // worker -> worker
  block_data,                                           // worker -> worker (table)
  block_missing,                                        // worker -> worker
  submit_job,                                           // client -> scheduler
  job_progress,                                         // scheduler -> client
  job_result,                                           // scheduler -> client (table)
  job_failed,                                           // scheduler -> client
  status_request,                                       // client -> scheduler
  status_reply,                                         // scheduler -> client
  nccl_exchange,                                        // scheduler -> worker
  nccl_exchange_done,                                   // worker -> scheduler
  coord_request,                                        // client -> scheduler
  coord_reply,                                          // scheduler -> client
  cache_request,  // client -> scheduler -> worker (table with put)
  cache_reply,    // worker -> scheduler -> client (table with get)
  last
};

[[nodiscard]] std::string_view to_string(msg m) noexcept;

/// A reader for message `m` from `peer`, whose errors name both.
[[nodiscard]] byte_reader reader_for(msg m, std::span<const std::uint8_t> body,
                                     const std::string& peer);

// ---- errors travel as a kind and a message ---------------------------------------------------

enum class error_kind : std::uint8_t {
  error,
  logic_error,
  invalid_input,
  out_of_memory,
  cuda_error,
  transport_error,
  timeout,
  cancelled,
  data_lost
};
/// The kind and message of the exception in `e`.
[[nodiscard]] std::pair<error_kind, std::string> describe_error(std::exception_ptr e);
/// Throws the exception of that kind with that message.
[[noreturn]] void throw_error(error_kind kind, const std::string& message);

// ---- membership ---------------------------------------------------------------------------------

struct worker_info {
  std::string name;
  std::uint8_t backend = 0;  ///< backend_kind
  std::int32_t device = -1;
  std::string description;  ///< "cpu (2 threads)", "NVIDIA H100 ..."
  std::uint64_t memory_limit = 0;
  std::int32_t slots = 1;  ///< tasks it runs at once
  std::string data_host;   ///< where its peers fetch blocks
  std::int32_t data_port = 0;
  std::int64_t pid = 0;

  void encode(byte_writer& w) const;
  static worker_info decode(byte_reader& r);
};

struct registered_msg {
  std::int32_t worker_id = 0;
  std::int32_t heartbeat_ms = 0;
  void encode(byte_writer& w) const;
  static registered_msg decode(byte_reader& r);
};

/// One memory tier of a worker (partition_store's tier_usage).
struct tier_report {
  std::uint8_t tier = 0;                        ///< memory_tier
  std::uint64_t used = 0, peak = 0, limit = 0;  ///< limit 0: none
  std::uint64_t partitions = 0;
  std::int64_t partition_bytes = 0;
};

/// One partition of a worker's store, for the residency catalog.
struct residency_entry {
  std::string key;
  std::uint8_t tier = 0;  ///< memory_tier
  std::int64_t bytes = 0;
  std::int64_t rows = 0;
  std::int32_t pins = 0;
  std::int64_t last_use_ms = 0;  ///< since the Unix epoch
};

/// A worker's partition store: its tiers and what it did (partition_store_stats).
struct store_report {
  std::vector<tier_report> tiers;  ///< device, pinned_host, host, disk
  std::int64_t spilled_to_host_bytes = 0, spilled_to_disk_bytes = 0;
  std::int64_t unspilled_from_host_bytes = 0, unspilled_from_disk_bytes = 0;
  std::int64_t spills = 0, unspills = 0;
  double spill_seconds = 0, unspill_seconds = 0;
  std::int64_t hits = 0, tier_hits = 0, misses = 0, corrupt_spills = 0;
  void encode(byte_writer& w) const;
  static store_report decode(byte_reader& r);
};

struct heartbeat_msg {
  std::int32_t running = 0;
  std::int32_t queued = 0;
  std::uint64_t memory_used = 0;
  std::uint64_t memory_peak = 0;
  std::uint64_t block_bytes = 0;
  /// Tasks held back because their inputs and scratch do not fit the device tier now.
  std::int32_t held_back = 0;
  store_report store;
  /// The residency catalog's batch: every partition (full: the catalog's entries of this
  /// worker are replaced), or those that changed and went away since the previous heartbeat.
  bool residency_full = false;
  std::vector<residency_entry> changed;
  std::vector<std::string> removed;
  void encode(byte_writer& w) const;
  static heartbeat_msg decode(byte_reader& r);
};

struct peer_address {
  std::int32_t worker_id = 0;
  std::string host;
  std::int32_t port = 0;
};
struct peers_msg {
  std::vector<peer_address> peers;
  void encode(byte_writer& w) const;
  static peers_msg decode(byte_reader& r);
};

// ---- tasks --------------------------------------------------------------------------------------

/// A stage sent to a worker once per job; tasks refer to it by (job, stage).
struct define_stage_msg {
  std::uint64_t job = 0;
  std::int32_t stage_index = 0;
  stage body;
  /// Blocks go to host memory (consumers on other processes) or stay on the device (NCCL path).
  bool blocks_on_host = true;
  void encode(byte_writer& w) const;
  static define_stage_msg decode(byte_reader& r);
};

/// Where the map outputs of one upstream stage are: the worker of each map partition.
struct input_locations {
  std::int32_t stage = 0;
  std::vector<std::int32_t> workers;  ///< index: map partition
};

struct run_task_msg {
  std::uint64_t job = 0;
  std::int32_t stage = 0;
  std::int32_t partition = 0;
  std::int32_t attempt = 0;
  std::vector<input_locations> inputs;
  void encode(byte_writer& w) const;
  static run_task_msg decode(byte_reader& r);
};

struct task_done_msg {
  std::uint64_t job = 0;
  std::int32_t stage = 0;
  std::int32_t partition = 0;
  std::int32_t attempt = 0;
  std::int64_t rows = 0;
  std::int64_t bytes = 0;
  std::int64_t input_rows = 0;
  std::int64_t input_bytes = 0;
  std::int64_t partitions_skipped = 0;
  double seconds = 0;
  std::vector<label_metrics> labels;
  /// Inputs fetched from other workers: bytes, and when (seconds since the worker started).
  std::int64_t fetched_bytes = 0;
  double fetch_start = 0, fetch_end = 0;
  /// Bytes of each block written (index: reduce partition), for placement.
  std::vector<std::int64_t> block_bytes;
  /// The fetched inputs per worker that held them: its id (the scheduler's), the bytes, and
  /// first request to last arrival (seconds since this worker started). Sorted by worker; only
  /// workers that sent bytes; their bytes add up to fetched_bytes.
  struct fetch_source {
    std::int32_t worker = 0;
    std::int64_t bytes = 0;
    double start = 0, end = 0;
  };
  std::vector<fetch_source> fetch_sources;
  void encode(byte_writer& w) const;
  static task_done_msg decode(byte_reader& r);
};

struct task_failed_msg {
  std::uint64_t job = 0;
  std::int32_t stage = 0;
  std::int32_t partition = 0;
  std::int32_t attempt = 0;
  error_kind kind = error_kind::error;
  std::string message;
  /// The task could not get its inputs (a peer died): run it again once they exist.
  bool input_lost = false;
  /// Blocks of this worker that are gone (a damaged spill file), as (stage, map partition):
  /// the scheduler runs those map tasks again before this task.
  std::vector<std::pair<std::int32_t, std::int32_t>> lost_blocks;
  void encode(byte_writer& w) const;
  static task_failed_msg decode(byte_reader& r);
};

/// stage -1: every block of the job; also cancels its queued tasks.
struct release_msg {
  std::uint64_t job = 0;
  std::int32_t stage = -1;
  bool cancel = false;
  void encode(byte_writer& w) const;
  static release_msg decode(byte_reader& r);
};

struct fetch_block_msg {
  std::uint64_t request = 0;
  std::uint64_t job = 0;
  std::int32_t stage = 0;
  std::int32_t map_partition = 0;
  std::int32_t reduce_partition = 0;
  void encode(byte_writer& w) const;
  static fetch_block_msg decode(byte_reader& r);
};

struct block_reply_msg {
  std::uint64_t request = 0;
  std::string message;  ///< block_missing only
  void encode(byte_writer& w) const;
  static block_reply_msg decode(byte_reader& r);
};

/// The GPU path of one hash exchange: every worker of the stage's communicator sends the blocks
/// it holds for each reduce partition to the partition's owner in one NCCL all-to-all.
struct nccl_exchange_msg {
  std::uint64_t job = 0;
  std::int32_t stage = 0;
  std::vector<std::uint8_t> unique_id;
  std::int32_t rank = 0;
  std::vector<std::int32_t> rank_workers;  ///< index: rank
  std::vector<std::int32_t> reduce_owner;  ///< index: reduce partition -> rank
  std::vector<std::int32_t> map_workers;   ///< index: map partition -> worker
  std::vector<std::string> column_names;   ///< the blocks' columns
  std::vector<type_id> column_types;
  void encode(byte_writer& w) const;
  static nccl_exchange_msg decode(byte_reader& r);
};

struct nccl_exchange_done_msg {
  std::uint64_t job = 0;
  std::int32_t stage = 0;
  bool ok = true;
  std::string message;
  void encode(byte_writer& w) const;
  static nccl_exchange_done_msg decode(byte_reader& r);
};

// ---- clients ------------------------------------------------------------------------------------

enum class exchange_path : std::uint8_t { automatic, ucx, nccl };
[[nodiscard]] std::string_view to_string(exchange_path p) noexcept;

struct submit_job_msg {
  std::uint64_t request = 0;
  std::vector<std::uint8_t> plan;  ///< encode_plan
  std::int32_t partitions_per_worker = 2;
  std::int64_t broadcast_limit_rows = 0;
  std::int64_t timeout_ms = 0;
  exchange_path exchange = exchange_path::automatic;
  void encode(byte_writer& w) const;
  static submit_job_msg decode(byte_reader& r);
};

struct job_progress_msg {
  std::uint64_t request = 0;
  std::string stage;
  std::int64_t done = 0;
  std::int64_t total = 0;
  void encode(byte_writer& w) const;
  static job_progress_msg decode(byte_reader& r);
};

struct job_result_msg {
  std::uint64_t request = 0;
  job_metrics metrics;
  std::int32_t retried_tasks = 0;
  void encode(byte_writer& w) const;
  static job_result_msg decode(byte_reader& r);
};

struct job_failed_msg {
  std::uint64_t request = 0;
  error_kind kind = error_kind::error;
  std::string message;
  void encode(byte_writer& w) const;
  static job_failed_msg decode(byte_reader& r);
};

struct worker_status {
  worker_info info;
  std::int32_t id = 0;
  std::string address;  ///< its control connection as the scheduler sees it
  bool alive = true;
  std::int64_t heartbeat_age_ms = 0;
  heartbeat_msg last;
  std::int32_t assigned = 0;  ///< tasks the scheduler has given it that have not finished
};

struct status_reply_msg {
  std::uint64_t request = 0;
  std::string scheduler;  ///< "ember scheduler 0.1.0 on 127.0.0.1:4242"
  std::vector<worker_status> workers;
  std::int32_t running_jobs = 0;
  std::int64_t finished_jobs = 0;
  std::int64_t tasks_done = 0;
  void encode(byte_writer& w) const;
  static status_reply_msg decode(byte_reader& r);
};

// ---- the named cache and the residency catalog ------------------------------------------------

enum class cache_op : std::uint8_t {
  put,        // key, table -> (the worker that holds it)
  get,        // key -> found, table
  erase,      // key -> found
  list,       // -> entries of the named cache
  residency,  // -> every partition the catalog knows (blocks, cached tables, scans)
};

struct cache_entry_info {
  std::string key;  ///< the user's key for the named cache; the store's key otherwise
  std::int32_t worker = -1;
  std::string worker_name;
  std::uint8_t tier = 0;  ///< memory_tier
  std::int64_t bytes = 0;
  std::int64_t rows = 0;
  std::int32_t pins = 0;
  std::int64_t last_use_ms = 0;
  /// Its worker died: the entry is gone (never served stale).
  bool lost = false;
  std::string lost_reason;
};

struct cache_request_msg {
  std::uint64_t request = 0;
  cache_op op = cache_op::get;
  std::string key;
  void encode(byte_writer& w) const;
  static cache_request_msg decode(byte_reader& r);
};

struct cache_reply_msg {
  std::uint64_t request = 0;
  bool ok = true;
  error_kind kind = error_kind::error;
  std::string message;  ///< when !ok
  bool found = false;
  std::int32_t worker = -1;  ///< put: where it went
  std::vector<cache_entry_info> entries;
  void encode(byte_writer& w) const;
  static cache_reply_msg decode(byte_reader& r);
};

// ---- coordination services (coordination_service.hpp) ----------------------------------------

enum class coord_op : std::uint8_t {
  lock_acquire,       // name, owner, permits, ttl_ms, timeout_ms -> token, ttl_ms
  lock_renew,         // name, owner, token, ttl_ms -> ok (found: still held or reclaimed)
  lock_release,       // name, owner
  lock_check,         // name, token
  lock_list,          // name ("": all) -> items
  kv_get,             // name (key) -> found, version, value
  kv_set,             // name, value, fence -> version
  kv_cas,             // name, expected_version, value, fence -> found (swapped), version
  kv_erase,           // name, has_expected, expected_version, fence -> found (erased)
  kv_list,            // name (prefix) -> items
  queue_create,       // name, queue options
  queue_drop,         // name
  queue_put,          // name, value, timeout_ms -> id
  queue_get,          // name, timeout_ms -> found, id, deliveries, value
  queue_ack,          // name, id
  queue_list,         // name ("": all) -> items
  topic_publish,      // name, value -> count (subscribers reached)
  topic_subscribe,    // name, buffer -> id (subscription)
  topic_poll,         // id, max_messages, timeout_ms -> items (messages), lost; found = false:
                      // no such subscription on this connection (subscribe again)
  topic_unsubscribe,  // id
  queue_ack_get,      // name, id (acked first), timeout_ms -> as queue_get
  last = queue_ack_get
};
[[nodiscard]] std::string_view to_string(coord_op op) noexcept;

/// One request of any operation; the fields an operation does not use stay at their defaults.
struct coord_request_msg {
  std::uint64_t request = 0;
  coord_op op = coord_op::lock_acquire;
  std::string name;   ///< lock, key, queue or topic
  std::string owner;  ///< a lease's identity
  std::vector<std::uint8_t> value;
  std::int32_t permits = 1;
  std::int64_t ttl_ms = 0;
  std::int64_t timeout_ms = 0;
  std::uint64_t token = 0;
  std::uint64_t id = 0;  ///< message or subscription
  bool has_expected = false;
  std::uint64_t expected_version = 0;
  std::string fence_lock;  ///< "": unfenced
  std::uint64_t fence_token = 0;
  queue_options queue;
  std::uint32_t buffer = 0;
  std::uint32_t max_messages = 0;
  void encode(byte_writer& w) const;
  static coord_request_msg decode(byte_reader& r);
};

struct coord_reply_msg {
  std::uint64_t request = 0;
  bool ok = true;
  error_kind kind = error_kind::error;
  std::string message;  ///< the error when !ok
  bool found = false;
  std::uint64_t token = 0;
  std::int64_t ttl_ms = 0;
  std::uint64_t version = 0;
  std::uint64_t id = 0;
  std::uint32_t deliveries = 0;
  std::uint64_t count = 0;
  std::uint64_t lost = 0;
  std::vector<std::uint8_t> value;
  std::vector<std::uint8_t> items;  ///< a list, encoded by the operation (coordination_service)
  void encode(byte_writer& w) const;
  static coord_reply_msg decode(byte_reader& r);
};

/// Encodes `m` into a fresh byte vector.
template <class M>
[[nodiscard]] std::vector<std::uint8_t> encode(const M& m) {
  byte_writer w;
  m.encode(w);
  return std::move(w.bytes());
}

/// Decodes a whole body as M, rejecting trailing bytes.
template <class M>
[[nodiscard]] M decode(msg type, std::span<const std::uint8_t> body, const std::string& peer) {
  auto r = reader_for(type, body, peer);
  auto m = M::decode(r);
  if (r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " trailing bytes");
  return m;
}

}  // namespace ember::detail
