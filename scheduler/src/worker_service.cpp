#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <future>
#include <optional>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <ember/host/partition_store.hpp>
#include <ember/scheduler/block_store.hpp>
#include <ember/scheduler/http_endpoint.hpp>
#include <ember/scheduler/table_bytes.hpp>
#include <ember/scheduler/worker_service.hpp>
#include <ember/transport/node.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "detail/block_fetcher.hpp"
#include "detail/cluster_snapshot.hpp"
#include "detail/nccl_exchange.hpp"
#include "detail/protocol.hpp"
#include "detail/task_runner.hpp"

namespace ember {
namespace {

using clock_type = std::chrono::steady_clock;
using transport::connection_id;
using namespace detail;

constexpr auto poll_interval = std::chrono::milliseconds(50);

struct stage_def {
  stage body;
  std::vector<int> node_partitions;
  bool blocks_on_host = true;
};

// The partition store's key of a block: "block/JOB/STAGE/MAP/REDUCE". Prefixes of it name a
// job's, a stage's and a map task's blocks.
std::string block_prefix(std::uint64_t job) { return "block/" + std::to_string(job) + "/"; }
std::string block_prefix(std::uint64_t job, int stage) {
  return block_prefix(job) + std::to_string(stage) + "/";
}
std::string block_prefix(std::uint64_t job, int stage, int map) {
  return block_prefix(job, stage) + std::to_string(map) + "/";
}
std::string block_store_key(std::uint64_t job, const block_key& k) {
  return block_prefix(job, k.stage, k.map_partition) + std::to_string(k.reduce_partition);
}
// The named cache's entries: "cache/KEY".
std::string cache_store_key(const std::string& key) { return "cache/" + key; }

// Device <-> host copies of a CUDA worker's partition store: each calling thread gets a context
// (stream) of its own on first use, since a context belongs to one thread.
class context_tier_copier final : public tier_copier {
 public:
  explicit context_tier_copier(context_options options) : _options(std::move(options)) {}
  table to_host(const table_view& rows, memory_resource& mr) override {
    return ember::to_host(rows, ctx(), mr);
  }
  table to_device(const table_view& rows, memory_resource&) override {
    // ctx().resource() is the worker's shared device tier.
    auto& c = ctx();
    auto out = ember::to_device(rows, c);
    c.synchronize();  // readers use other streams
    return out;
  }

 private:
  context& ctx() {
    thread_local std::map<std::uint64_t, std::unique_ptr<context>> mine;
    auto& c = mine[_id];
    if (!c) c = context::create(_options);
    return *c;
  }
  static std::uint64_t next_id() {
    static std::atomic<std::uint64_t> n{0};
    return ++n;
  }
  context_options _options;
  std::uint64_t _id = next_id();
};

// What this worker holds of one job: its stages (its blocks are in the partition store).
struct job_data {
  std::map<int, std::shared_ptr<const stage_def>> stages;
  std::atomic<bool> cancelled{false};
  // Device blocks already described for a CUDA-aware UCX (by the task that wrote them, on its
  // context); guarded by impl::mutex.
  std::map<block_key, std::shared_ptr<const transport::outgoing_table>> described;
};

// A task waiting for its inputs, then queued, then running.
struct task_state : std::enable_shared_from_this<task_state> {
  run_task_msg msg;
  std::shared_ptr<job_data> job;
  std::shared_ptr<const stage_def> def;
  // (stage, reduce partition) -> blocks by map partition.
  std::map<std::pair<int, int>, std::vector<block>> inputs;
  // Its inputs in the partition store: this worker's own blocks, and blocks fetched from peers
  // (kept there, spillable, until the task is near the front of the queue). The prefetch thread
  // takes them (bringing spilled ones back to the device tier); pinned until the task ends.
  struct stored_input {
    int stage, map, reduce;
    std::string key;
  };
  std::vector<stored_input> stored_inputs;
  std::vector<std::string> fetched_keys;  // dropped when the task ends
  std::vector<pinned_partition> pins;
  std::int64_t input_bytes = 0;  // all its inputs, for admission control
  int outstanding = 0;
  bool gathering = false;  // counted in impl::waiting
  bool failed = false;
  clock_type::time_point fetch_start{}, fetch_end{};
  std::int64_t fetched_bytes = 0;
  // Per worker that holds some of its inputs (the scheduler's id): bytes arrived, first request
  // and last arrival.
  struct source_fetch {
    std::int64_t bytes = 0;
    clock_type::time_point first_request{}, last_arrival{};
  };
  std::map<int, source_fetch> sources;
};

// One remote input of a task, while block_fetcher gets it.
struct input_in_flight {
  std::shared_ptr<task_state> task;
  int stage = 0, map = 0, reduce = 0;
  int holder = 0;  // the worker asked for it
};

// The bytes a table's buffers take on the wire.
class worker_io final : public task_io {
 public:
  /// `describe`: called for each block written to device memory when peers fetch device memory
  /// directly (CUDA-aware UCX); null otherwise.
  using describe_fn = std::function<void(const block_key&, const block&)>;
  worker_io(task_state& t, bool blocks_on_host, describe_fn describe, partition_store& store,
            backend_kind backend, memory_resource& staging, bool separate, int gpu)
      : _separate(separate),
        _gpu(gpu),
        _t(t),
        _blocks_on_host(blocks_on_host),
        _describe(std::move(describe)),
        _store(store),
        _backend(backend),
        _staging(staging) {}
  std::vector<block> exchange_input(int stage, int reduce_partition) override {
    auto it = _t.inputs.find({stage, reduce_partition});
    if (it == _t.inputs.end()) {
      throw logic_error("task (stage " + std::to_string(_t.msg.stage) + ", partition " +
                        std::to_string(_t.msg.partition) + ") reads inputs it did not gather");
    }
    return it->second;
  }
  void put_block(int reduce_partition, block b) override {
    if (static_cast<std::size_t>(reduce_partition) >= block_bytes.size())
      block_bytes.resize(static_cast<std::size_t>(reduce_partition) + 1, 0);
    block_bytes[static_cast<std::size_t>(reduce_partition)] = b.bytes;
    block_key key{_t.msg.stage, _t.msg.partition, reduce_partition};
    if (_describe && b.device >= 0) _describe(key, b);
    // A CPU worker's blocks are in its device tier (host memory standing in for it); a CUDA
    // worker's are in device memory, or in pinned staging memory for peers that read host memory.
    auto tier = _backend == backend_kind::cpu || b.device >= 0 ? memory_tier::device
                                                               : memory_tier::pinned_host;
    _store.put(block_store_key(_t.msg.job, key), std::move(b.owner), b.rows, tier, b.bytes);
  }
  void put_result(block b) override { result = std::move(b); }
  bool stop_requested() const override { return _t.job->cancelled.load(); }
  void add_label(const std::string& label, size_type rows, size_type bytes) override {
    detail::add_label(labels, label, rows, bytes);
  }
  void add_input(size_type rows, size_type bytes) override {
    input_rows += rows;
    input_bytes += bytes;
  }
  bool blocks_on_host() const override { return _blocks_on_host; }
  memory_resource& host_staging() override { return _staging; }
  bool separate_blocks() const override { return _separate; }
  std::optional<block> kept_partition(const std::string& key) override {
    auto p = _store.acquire(key, memory_tier::device);
    if (!p) return std::nullopt;
    int device = _backend == backend_kind::cuda && p->tier() == memory_tier::device ? _gpu : -1;
    block b{p->owner(), p->rows(), device, p->bytes()};
    _kept.push_back(std::move(*p));
    return b;
  }
  void keep_partition(const std::string& key, const block& b) override {
    // A copy of a dataset's file: dropped rather than spilled to disk.
    try {
      _store.put(key, b.owner, b.rows, memory_tier::device, b.bytes, true);
    } catch (const logic_error&) {
      // Another task kept it first.
    }
  }

  std::optional<block> result;
  std::vector<label_metrics> labels;
  std::vector<std::int64_t> block_bytes;
  size_type input_rows = 0, input_bytes = 0;

 private:
  bool _separate;
  int _gpu;
  std::vector<pinned_partition> _kept;  // partitions this task took from the store
  task_state& _t;
  bool _blocks_on_host;
  describe_fn _describe;
  partition_store& _store;
  backend_kind _backend;
  memory_resource& _staging;
};

struct slot {
  context_options options;
  std::unique_ptr<context> ctx;
  std::thread thread;
};

}  // namespace

struct worker_service::impl final : transport::node_handler {
  worker_service_options options;
  std::unique_ptr<transport::node> net;
  std::vector<std::unique_ptr<slot>> slots;
  backend_kind backend = backend_kind::cpu;
  std::string data_host;
  int data_port = 0;
  std::string slot_description;
  bool direct_device = false;  // a CUDA worker whose UCX reads device memory

  // The memory tiers (one budget each for the whole process) and the partitions in them.
  // Declared before anything that holds their memory, so they are destroyed last.
  std::unique_ptr<tracking_resource> device_tier, pinned_tier, host_tier;
  std::unique_ptr<partition_store> store;

  std::mutex mutex;  // guards everything below
  std::condition_variable cv;
  connection_id scheduler = 0;
  bool scheduler_lost = false;
  bool stopping = false;
  int worker_id = -1;
  int heartbeat_ms = 500;
  std::map<std::uint64_t, std::shared_ptr<job_data>> jobs;
  std::deque<std::shared_ptr<task_state>> ready;
  int running = 0;
  int waiting = 0;                                   // tasks gathering inputs
  std::map<std::uint64_t, input_in_flight> fetches;  // by block_fetcher ticket
  std::uint64_t next_request = 1;
  std::deque<nccl_exchange_msg> nccl_queue;
  std::unique_ptr<block_fetcher> fetcher;
  std::deque<std::shared_ptr<task_state>> prefetch_queue;  // local inputs to take from the store
  int held_back = 0;                   // tasks admission control keeps waiting for device memory
  std::int64_t results_in_flight = 0;  // device-tier bytes of results still being sent
  bool residency_sent = false;         // the catalog has this worker's full residency
  std::int64_t tasks_run = 0;          // tasks that ran to their end, successfully or not

  const clock_type::time_point started_at = clock_type::now();
  std::unique_ptr<context> nccl_context;  // the NCCL thread's; freed in stop() after the blocks
  std::thread housekeeper;
  std::thread nccl_thread;
  std::thread prefetcher;
  // /metrics; its threads read the store and the counters above (under `mutex`), so stop()
  // stops it before anything they read goes away. It starts first in the constructor and
  // answers 503 until everything it reads exists (serving_metrics).
  std::unique_ptr<http_endpoint> metrics;
  std::atomic<bool> serving_metrics{false};

  explicit impl(const worker_service_options& o) : options(o) {
    EMBER_EXPECTS(o.task_slots >= 0, invalid_input, "negative task slot count");
    EMBER_EXPECTS(o.cpu_threads >= 0, invalid_input, "negative CPU thread count");
    auto sched = transport::parse_host_port(o.scheduler);
    bool use_cuda = o.backend == backend_choice::cuda ||
                    (o.backend == backend_choice::automatic && cuda_available());
    if (o.backend == backend_choice::cuda && !cuda_available()) {
      throw invalid_input("the cuda backend was requested but is unavailable: " +
                          cuda_unavailable_reason());
    }
    backend = use_cuda ? backend_kind::cuda : backend_kind::cpu;
    // First, before any thread starts: a bad address or a port in use fails the constructor
    // while it can still unwind.
    if (!o.metrics_listen.empty()) start_metrics();
    create_tiers(o);
    int count = o.task_slots > 0 ? o.task_slots : 2;
    int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    int threads = o.cpu_threads > 0 ? o.cpu_threads : std::max(1, hardware / count);
    for (int i = 0; i < count; ++i) {
      auto s = std::make_unique<slot>();
      s->options.backend = use_cuda ? backend_choice::cuda : backend_choice::cpu;
      s->options.device = o.gpu;
      s->options.device_tier = device_tier.get();
      s->options.cpu_threads = use_cuda ? 0 : threads;
      s->options.name = "task slot " + std::to_string(i);
      slots.push_back(std::move(s));
    }
    // Contexts are created on their own threads (a CUDA context binds its device to the thread).
    start_slots();
    try {
      transport::node_options no;
      // Fetched blocks land in warm pooled host memory (fresh pages would cost a fault each);
      // pinned on CUDA workers, so the upload to the device runs at full speed.
      // Accounted: the pinned tier on CUDA workers, the host tier on CPU workers.
      no.receive_resource = backend == backend_kind::cuda
                                ? pinned_tier.get()
                                : static_cast<memory_resource*>(host_tier.get());
      no.token = o.token;
      no.shared_memory = o.shared_memory;
      no.connect_timeout =
          std::min<std::chrono::milliseconds>(o.connect_timeout, std::chrono::milliseconds(10'000));
      if (!o.listen.empty()) {
        auto colon = o.listen.rfind(':');
        if (colon == std::string::npos) {
          data_host = o.listen;
        } else {
          auto hp = transport::parse_host_port(o.listen);
          data_host = hp.host;
          data_port = hp.port;
        }
      } else {
        data_host = transport::local_address_towards(sched.host, sched.port);
      }
      // Log lines name the process until the port is known (then `ember status` names it).
      no.name = o.name.empty() ? "worker pid " + std::to_string(::getpid()) : o.name;
      net = std::make_unique<transport::node>(no, *this);
      direct_device = backend == backend_kind::cuda && net->cuda_aware();
      data_port = net->listen(data_host, data_port);
      if (o.name.empty()) options.name = "worker@" + data_host + ":" + std::to_string(data_port);

      fetcher = std::make_unique<block_fetcher>(
          *net, o.fetch_timeout,
          [this](std::uint64_t ticket, std::optional<table> rows, const std::string& why,
                 bool gone) { input_arrived(ticket, std::move(rows), why, gone); },
          options.name);
      serving_metrics = true;
      connect_to_scheduler(sched, o.connect_timeout);
    } catch (...) {
      // The task threads and the transport run already: stop them before the exception
      // leaves (a joinable thread destroyed unjoined would end the process).
      stop();
      throw;
    }
    housekeeper = std::thread([this] { housekeeping(); });
    nccl_thread = std::thread([this] { run_nccl_exchanges(); });
    prefetcher = std::thread([this] { prefetch_inputs(); });
  }

  ~impl() { stop(); }

  void create_tiers(const worker_service_options& o) {
    std::string who = o.name.empty() ? "worker pid " + std::to_string(::getpid()) : o.name;
    device_tier = std::make_unique<tracking_resource>(
        device_tier_upstream(backend, o.gpu), "device tier of " + who, o.device_memory_limit);
    host_tier = std::make_unique<tracking_resource>(default_host_pool(), "host tier of " + who,
                                                    o.host_memory_limit);
    // Pinned staging counts against no budget of its own (pinning is bounded by the pool), but
    // every byte of it is accounted and reported.
    pinned_tier = std::make_unique<tracking_resource>(
        backend == backend_kind::cuda ? pinned_host_resource() : default_host_pool(),
        "pinned host tier of " + who);
    partition_store_options so;
    so.device = device_tier.get();
    so.host = host_tier.get();
    so.spill_dir = o.spill_dir;
    so.name = who;
    if (const char* fault = std::getenv("EMBER_FAULT_CORRUPT_SPILLS"))
      so.corrupt_first_spills = std::atoi(fault);
    if (backend == backend_kind::cuda) {
      context_options co;
      co.backend = backend_choice::cuda;
      co.device = o.gpu;
      co.device_tier = device_tier.get();
      co.name = who + " spill copier";
      so.copier = std::make_shared<context_tier_copier>(co);
    }
    store = std::make_unique<partition_store>(so);
  }

  void start_slots() {
    std::vector<std::future<void>> started;
    for (auto& s : slots) {
      auto p = std::make_shared<std::promise<void>>();
      started.push_back(p->get_future());
      s->thread = std::thread([this, s = s.get(), p] { slot_main(*s, *p); });
    }
    std::exception_ptr first;
    for (auto& f : started) {
      try {
        f.get();
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) {
      {
        std::lock_guard lock(mutex);
        stopping = true;
      }
      cv.notify_all();
      for (auto& s : slots)
        if (s->thread.joinable()) s->thread.join();
      std::rethrow_exception(first);
    }
    slot_description =
        slots.front()->ctx->description() + " x" + std::to_string(slots.size()) + " task slots";
  }

  // Connects and registers, retrying until `patience` runs out (a refusal is final).
  void connect_to_scheduler(const transport::host_port& sched, std::chrono::milliseconds patience) {
    {
      std::lock_guard lock(mutex);
      worker_id = -1;
      scheduler_lost = false;
    }
    auto deadline = clock_type::now() + patience;
    for (int attempt = 0;; ++attempt) {
      try {
        auto id = net->connect(sched.host, sched.port);
        std::unique_lock lock(mutex);
        scheduler = id;
        break;
      } catch (const transport_error& e) {
        std::string what = e.what();
        // A refusal (wrong token, other version) will not change by retrying.
        if (what.find("refused") != std::string::npos || clock_type::now() > deadline) throw;
        if (options.stop.stop_requested())
          throw cancelled(options.name + ": stopped while waiting for the scheduler at " +
                          sched.to_string());
        if (attempt == 0)
          logger().info("{}: waiting for the scheduler at {}: {}", options.name, sched.to_string(),
                        what);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
    worker_info info;
    info.name = options.name;
    info.backend = static_cast<std::uint8_t>(backend);
    info.device = backend == backend_kind::cuda ? options.gpu : -1;
    info.description = slot_description;
    info.memory_limit = options.device_memory_limit == tracking_resource::unlimited
                            ? 0
                            : options.device_memory_limit;
    info.slots = static_cast<std::int32_t>(slots.size());
    info.data_host = data_host;
    info.data_port = data_port;
    info.pid = static_cast<std::int64_t>(::getpid());
    net->send(scheduler, static_cast<std::uint16_t>(msg::register_worker), encode(info));
    std::unique_lock lock(mutex);
    if (!cv.wait_until(lock, deadline + std::chrono::seconds(5),
                       [&] { return worker_id >= 0 || scheduler_lost; })) {
      throw timeout("the scheduler at " + sched.to_string() + " did not accept the registration");
    }
    if (scheduler_lost)
      throw transport_error("the scheduler at " + sched.to_string() + " closed the connection");
    logger().info("{} registered as worker {}: {}", options.name, worker_id, slot_description);
  }

  void stop() noexcept {
    if (metrics) metrics->stop();
    {
      std::lock_guard lock(mutex);
      if (stopping && !housekeeper.joinable() && slots.empty()) return;
      stopping = true;
      ready.clear();
      for (auto& [id, job] : jobs) job->cancelled = true;
    }
    cv.notify_all();
    for (auto* t : {&housekeeper, &nccl_thread, &prefetcher})
      if (t->joinable()) t->join();
    for (auto& s : slots)
      if (s->thread.joinable()) s->thread.join();
    if (fetcher) fetcher->stop();
    if (net) net->shutdown();
    // Blocks and fetched inputs hold memory of the contexts: free them before the contexts.
    {
      std::lock_guard lock(mutex);
      jobs.clear();
      fetches.clear();
      ready.clear();
      prefetch_queue.clear();
    }
    // The partitions hold memory that the contexts' streams free: drop them first.
    store.reset();
    nccl_context.reset();
    slots.clear();
  }

  // ---- task threads -------------------------------------------------------------------------

  void slot_main(slot& s, std::promise<void>& started) noexcept {
    try {
      s.ctx = context::create(s.options);
      started.set_value();
    } catch (...) {
      started.set_exception(std::current_exception());
      return;
    }
    for (;;) {
      std::shared_ptr<task_state> t;
      {
        std::unique_lock lock(mutex);
        while (!stopping && ready.empty()) cv.wait_for(lock, poll_interval);
        if (stopping) break;
        t = std::move(ready.front());
        ready.pop_front();
        ++running;
      }
      if (!admit(*t)) continue;
      if (!execute(s, *t)) {
        // Its inputs did not fit beside what the other running tasks hold: it goes back to
        // the front of the queue until one of them ends.
        std::unique_lock lock(mutex);
        --running;
        ++held_back;
        ready.push_front(std::move(t));
        cv.wait_for(lock, poll_interval);
        --held_back;
        continue;
      }
      {
        std::lock_guard lock(mutex);
        --running;
        ++tasks_run;
      }
      cv.notify_all();  // a held-back task may fit now
    }
    // The context stays: blocks this slot wrote may outlive the thread (stop() frees them
    // first, then the contexts).
  }

  // Whether a task other than the caller's runs on this worker now.
  bool others_running() {
    std::lock_guard lock(mutex);
    return running > 1;
  }

  // Spills every unpinned partition of the device tier and waits (bounded) for results on
  // their way to the scheduler: all the room this worker can make. Returns the bytes spilled.
  std::int64_t make_all_room() {
    auto spilled = store->spill_all(memory_tier::device);
    std::unique_lock lock(mutex);
    cv.wait_for(lock, options.fetch_timeout, [&] { return results_in_flight <= 0 || stopping; });
    return spilled;
  }

  // With a budget, blocks spill one by one, so each must own its memory.
  bool budgeted() const {
    return device_tier->limit() != tracking_resource::unlimited ||
           host_tier->limit() != tracking_resource::unlimited;
  }

  // Admission control: a task starts when an estimate of what it allocates (about twice its
  // inputs: results and scratch) fits the device tier after spilling unpinned partitions, or
  // when no other task runs here (then spilling at allocation time and the retry in execute()
  // are its chances). Otherwise it goes back to the front of the queue until a running task
  // ends. Called with `running` counting this task; false when the task went back.
  bool admit(task_state& t) {
    auto estimate = static_cast<std::size_t>(std::max<std::int64_t>(0, t.input_bytes) * 2);
    if (device_tier->limit() == tracking_resource::unlimited) return true;
    auto deadline = clock_type::now() + options.fetch_timeout;
    for (;;) {
      if (store->make_room(memory_tier::device, estimate)) return true;
      std::unique_lock lock(mutex);
      if (stopping) return true;
      if (running > 1) {
        // Another task will free memory when it ends: this one waits its turn.
        --running;
        ++held_back;
        ready.push_front(t.shared_from_this());
        cv.wait_for(lock, poll_interval);
        --held_back;
        return false;
      }
      // Alone: only results still on their way to the scheduler can free memory. Without
      // them (or past the deadline) the task runs, and spilling at allocation time or the
      // retry in execute() are its chances.
      if (results_in_flight <= 0 || clock_type::now() > deadline) return true;
      ++held_back;
      cv.wait_for(lock, std::chrono::milliseconds(5));
      --held_back;
    }
  }

  // Runs the task and reports it. False when it did not start because its inputs do not fit
  // the device tier while other tasks run here (their pins and scratch will go): the caller
  // queues it again.
  bool execute(slot& s, task_state& t) noexcept {
    const auto& m = t.msg;
    if (t.job->cancelled) return true;
    auto start = clock_type::now();
    auto problem = take_inputs(t, true);
    auto out_of_room = [&] {
      return problem && problem->lost.empty() && problem->kind == error_kind::out_of_memory;
    };
    if (out_of_room()) {
      // No room to bring the inputs up: make all the room there is, then try once more.
      t.pins.clear();
      t.inputs.clear();
      make_all_room();
      problem = take_inputs(t, true);
      if (out_of_room() && others_running()) {
        t.pins.clear();
        t.inputs.clear();
        return false;
      }
    }
    if (problem) {
      fail_taking_inputs(t.shared_from_this(), std::move(*problem));
      return true;
    }
    try {
      store->erase_prefix(block_prefix(m.job, m.stage, m.partition));
      worker_io::describe_fn describe;
      if (direct_device && !t.def->blocks_on_host) {
        describe = [&](const block_key& key, const block& b) {
          auto d = std::make_shared<const transport::outgoing_table>(
              transport::describe_device_table(b.rows, b.owner, *s.ctx));
          std::lock_guard lock(mutex);
          t.job->described[key] = std::move(d);
        };
      }
      std::optional<worker_io> io;
      io.emplace(t, t.def->blocks_on_host, describe, *store, backend, *pinned_tier, budgeted(),
                 options.gpu);
      task_output out;
      try {
        out = run_task(*s.ctx, s.options.device, t.def->body, t.def->node_partitions, m.partition,
                       *io);
      } catch (const out_of_memory& first) {
        // Spill every unpinned partition and try once more; then give up with both numbers.
        store->erase_prefix(block_prefix(m.job, m.stage, m.partition));
        auto freed = make_all_room();
        logger().warn(
            "{}: task (job {}, stage {}, partition {}) ran out of memory; spilled {} "
            "bytes and runs again: {}",
            options.name, m.job, m.stage, m.partition, freed, first.what());
        io.emplace(t, t.def->blocks_on_host, describe, *store, backend, *pinned_tier, budgeted(),
                   options.gpu);
        try {
          out = run_task(*s.ctx, s.options.device, t.def->body, t.def->node_partitions, m.partition,
                         *io);
        } catch (const out_of_memory& again) {
          auto st = store->stats();
          throw out_of_memory(
              "task (stage " + std::to_string(m.stage) + ", partition " +
              std::to_string(m.partition) + ") does not fit the device tier of " + options.name +
              " even with every other partition spilled: its inputs hold " +
              std::to_string(t.input_bytes) + " bytes, partitions still in the tier " +
              std::to_string(st.device.partition_bytes) + " bytes (" +
              std::to_string(st.device.partitions) + ", pinned by running tasks), of a budget of " +
              std::to_string(device_tier->limit()) +
              " (raise --device-memory-limit or use more partitions): " + again.what());
        }
      }
      t.inputs.clear();
      t.pins.clear();
      drop_fetched(t);
      task_done_msg done;
      done.job = m.job;
      done.stage = m.stage;
      done.partition = m.partition;
      done.attempt = m.attempt;
      done.rows = out.rows;
      done.bytes = out.bytes;
      done.input_rows = io->input_rows;
      done.input_bytes = io->input_bytes;
      done.partitions_skipped = out.partitions_skipped;
      done.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
      done.labels = std::move(io->labels);
      if (t.fetched_bytes > 0) {
        done.fetched_bytes = t.fetched_bytes;
        done.fetch_start = std::chrono::duration<double>(t.fetch_start - started_at).count();
        done.fetch_end = std::chrono::duration<double>(t.fetch_end - started_at).count();
        for (const auto& [holder, f] : t.sources) {
          if (f.bytes == 0) continue;
          done.fetch_sources.push_back(
              {holder, f.bytes, std::chrono::duration<double>(f.first_request - started_at).count(),
               std::chrono::duration<double>(f.last_arrival - started_at).count()});
        }
      }
      done.block_bytes = std::move(io->block_bytes);
      auto to = scheduler_connection();
      if (io->result) {
        // Counted until the transport lets go of them: admission control waits for results in
        // flight before it gives up on room in the device tier.
        auto in_flight = io->result->bytes;
        {
          std::lock_guard lock(mutex);
          results_in_flight += in_flight;
        }
        std::shared_ptr<const void> counted(
            io->result->owner.get(), [this, keep = io->result->owner, in_flight](const void*) {
              {
                std::lock_guard lock(mutex);
                results_in_flight -= in_flight;
              }
              cv.notify_all();
            });
        auto rows = transport::describe_table(io->result->rows, std::move(counted));
        net->send_table(to, static_cast<std::uint16_t>(msg::task_done), encode(done),
                        std::move(rows));
      } else {
        net->send(to, static_cast<std::uint16_t>(msg::task_done), encode(done));
      }
    } catch (...) {
      auto [kind, message] = describe_error(std::current_exception());
      if (!t.job->cancelled) {
        logger().warn("{}: task (job {}, stage {}, partition {}) failed: {}", options.name, m.job,
                      m.stage, m.partition, message);
      }
      t.inputs.clear();
      t.pins.clear();
      drop_fetched(t);
      send_failure(m, kind, message, false);
    }
    return true;
  }

  connection_id scheduler_connection() {
    std::lock_guard lock(mutex);
    return scheduler;
  }

  void send_failure(const run_task_msg& m, error_kind kind, const std::string& message,
                    bool input_lost,
                    std::vector<std::pair<std::int32_t, std::int32_t>> lost_blocks = {}) {
    task_failed_msg f;
    f.job = m.job;
    f.stage = m.stage;
    f.partition = m.partition;
    f.attempt = m.attempt;
    f.kind = kind;
    f.message = message;
    f.input_lost = input_lost;
    f.lost_blocks = std::move(lost_blocks);
    net->send(scheduler_connection(), static_cast<std::uint16_t>(msg::task_failed), encode(f));
  }

  // ---- messages (progress thread) -----------------------------------------------------------

  void on_connected(const transport::peer_info&) override {}

  void on_message(connection_id from, std::uint16_t type,
                  std::span<const std::uint8_t> body) override {
    auto peer = net->peer_address(from);
    auto m = static_cast<msg>(type);
    bool from_scheduler = from == scheduler_connection();
    switch (m) {
      case msg::registered: {
        if (!from_scheduler) break;
        auto r = decode<registered_msg>(m, body, peer);
        std::lock_guard lock(mutex);
        worker_id = r.worker_id;
        heartbeat_ms = r.heartbeat_ms;
        cv.notify_all();
        return;
      }
      case msg::peers: {
        if (!from_scheduler) break;
        fetcher->set_peers(decode<peers_msg>(m, body, peer));
        return;
      }
      case msg::define_stage: {
        if (!from_scheduler) break;
        auto d = decode<define_stage_msg>(m, body, peer);
        auto def = std::make_shared<stage_def>();
        def->node_partitions = node_partitions_of(d.body, d.stage_index);
        def->body = std::move(d.body);
        // With a CUDA-aware UCX, blocks stay in device memory and go to peers from there.
        def->blocks_on_host = d.blocks_on_host && !direct_device;
        std::lock_guard lock(mutex);
        auto& job = jobs[d.job];
        if (!job) job = std::make_shared<job_data>();
        job->stages[d.stage_index] = std::move(def);
        return;
      }
      case msg::run_task: {
        if (!from_scheduler) break;
        accept_task(decode<run_task_msg>(m, body, peer));
        return;
      }
      case msg::release_blocks: {
        if (!from_scheduler) break;
        auto r = decode<release_msg>(m, body, peer);
        release(r);
        return;
      }
      case msg::nccl_exchange: {
        if (!from_scheduler) break;
        auto x = decode<nccl_exchange_msg>(m, body, peer);
        std::lock_guard lock(mutex);
        nccl_queue.push_back(std::move(x));
        cv.notify_all();
        return;
      }
      case msg::fetch_block: {
        serve_fetch(from, decode<fetch_block_msg>(m, body, peer));
        return;
      }
      case msg::block_missing: {
        fetcher->on_missing(decode<block_reply_msg>(m, body, peer), peer);
        return;
      }
      case msg::cache_request: {
        if (!from_scheduler) break;
        serve_cache(decode<cache_request_msg>(m, body, peer), std::nullopt);
        return;
      }
      default:
        break;
    }
    throw invalid_input("unexpected message '" + std::string(to_string(m)) + "' (type " +
                        std::to_string(type) + ") from " +
                        (from_scheduler ? "the scheduler " : "peer ") + peer);
  }

  void on_table(connection_id from, std::uint16_t type, std::span<const std::uint8_t> header,
                table rows) override {
    auto peer = net->peer_address(from);
    auto m = static_cast<msg>(type);
    if (m == msg::cache_request && from == scheduler_connection()) {
      serve_cache(decode<cache_request_msg>(m, header, peer), std::move(rows));
      return;
    }
    if (m != msg::block_data) {
      throw invalid_input("unexpected table message '" + std::string(to_string(m)) + "' from " +
                          peer);
    }
    fetcher->on_block(decode<block_reply_msg>(m, header, peer), std::move(rows));
  }

  // block_fetcher's verdict on one remote input. The block goes into the store (in the tier its
  // bytes arrived in), where it may spill until its task is about to run.
  void input_arrived(std::uint64_t ticket, std::optional<table> rows, const std::string& why,
                     bool gone) {
    if (!rows) return fail_inputs(ticket, why, gone);
    std::shared_ptr<task_state> complete;
    {
      std::lock_guard lock(mutex);
      auto it = fetches.find(ticket);
      if (it == fetches.end()) return;  // the task failed or was cancelled meanwhile
      auto f = std::move(it->second);
      fetches.erase(it);
      auto& t = *f.task;
      if (t.failed) return;
      auto bytes = static_cast<std::int64_t>(transport::body_bytes(rows->view()));
      auto key = "fetched/" + std::to_string(t.msg.job) + "/" + std::to_string(ticket);
      auto tier = backend == backend_kind::cuda ? memory_tier::pinned_host : memory_tier::host;
      store->put(key, std::move(*rows), tier, bytes);
      t.stored_inputs.push_back({f.stage, f.map, f.reduce, key});
      t.fetched_keys.push_back(key);
      t.fetched_bytes += bytes;
      auto now = clock_type::now();
      auto& source = t.sources[f.holder];
      source.bytes += bytes;
      source.last_arrival = now;
      if (--t.outstanding == 0) {
        t.fetch_end = now;
        complete = f.task;
      }
    }
    if (complete) queue_prefetch(std::move(complete));
  }

  // All of the task's inputs are in the store: the prefetch thread takes them in turn.
  void queue_prefetch(std::shared_ptr<task_state> t) {
    {
      std::lock_guard lock(mutex);
      prefetch_queue.push_back(std::move(t));
    }
    cv.notify_all();
  }

  // Drops the blocks a task fetched (their memory goes once its pins do).
  void drop_fetched(task_state& t) {
    for (const auto& key : t.fetched_keys) store->erase(key);
    t.fetched_keys.clear();
  }

  void on_disconnected(connection_id id, const std::string& reason) override {
    {
      std::lock_guard lock(mutex);
      if (id == scheduler) {
        logger().error("{}: lost the scheduler: {}", options.name, reason);
        scheduler_lost = true;
        for (auto& [job_id, job] : jobs) job->cancelled = true;
        cv.notify_all();
        return;
      }
    }
    (void)fetcher->on_disconnected(id, reason);
  }

  // ---- gathering inputs -----------------------------------------------------------------------

  void accept_task(run_task_msg m) {
    auto t = std::make_shared<task_state>();
    // (ticket, block, holder): fetched once the task is registered.
    std::vector<std::tuple<std::uint64_t, block_fetcher::block_id, int>> to_send;
    std::string problem;
    bool ready_now = false;  // decided under the lock: the prefetch thread may finish it first
    {
      std::lock_guard lock(mutex);
      auto jt = jobs.find(m.job);
      auto st = jt == jobs.end() ? nullptr : jt->second->stages[m.stage];
      if (!st) {
        problem = "stage " + std::to_string(m.stage) + " of job " + std::to_string(m.job) +
                  " was never defined on this worker";
      } else {
        t->job = jt->second;
        t->def = st;
        t->msg = m;
        for (auto [stage, reduce] : task_inputs(st->body, st->node_partitions, t->msg.partition)) {
          const input_locations* where = nullptr;
          for (const auto& in : t->msg.inputs)
            if (in.stage == stage) where = &in;
          if (where == nullptr) {
            problem = "no locations for the blocks of stage " + std::to_string(stage);
            break;
          }
          auto& blocks = t->inputs[{stage, reduce}];
          blocks.resize(where->workers.size());
          for (std::size_t map = 0; map < where->workers.size(); ++map) {
            int holder = where->workers[map];
            if (holder == worker_id) {
              // Taken from the store (and brought back from a lower tier) by the prefetch
              // thread, off this progress thread.
              t->stored_inputs.push_back(
                  {stage, static_cast<int>(map), reduce,
                   block_store_key(m.job, block_key{stage, static_cast<int>(map), reduce})});
              continue;
            }
            auto ticket = next_request++;
            fetches[ticket] = input_in_flight{t, stage, static_cast<int>(map), reduce, holder};
            t->sources.try_emplace(holder);
            ++t->outstanding;
            to_send.emplace_back(
                ticket, block_fetcher::block_id{m.job, stage, static_cast<int>(map), reduce},
                holder);
          }
          if (!problem.empty()) break;
        }
        if (!problem.empty()) {
          t->failed = true;
          for (auto& [ticket, id, holder] : to_send) fetches.erase(ticket);
          to_send.clear();
        }
        if (problem.empty() && (t->outstanding > 0 || !t->stored_inputs.empty())) {
          t->fetch_start = clock_type::now();
          // Every request goes out together, below.
          for (auto& [holder, source] : t->sources) source.first_request = t->fetch_start;
          t->gathering = true;
          ++waiting;
        }
        ready_now = problem.empty() && t->outstanding == 0;
      }
    }
    if (!problem.empty()) {
      send_failure(m, error_kind::logic_error, problem, true);
      return;
    }
    if (ready_now) {
      if (t->stored_inputs.empty()) {
        make_ready(std::move(t));
      } else {
        queue_prefetch(std::move(t));
      }
      return;
    }
    for (auto& [ticket, id, holder] : to_send) fetcher->fetch(ticket, id, holder);
  }

  void make_ready(std::shared_ptr<task_state> t) {
    {
      std::lock_guard lock(mutex);
      if (t->gathering) {
        t->gathering = false;
        --waiting;
      }
      ready.push_back(std::move(t));
    }
    cv.notify_all();
  }

  // A task cannot get one of its inputs: it fails (the scheduler runs it again once the input
  // exists), and its other fetches are called off.
  // `gone`: the holder answered that it lacks the block, so the map task that wrote it must
  // run again (a block released too early, or lost with a damaged spill file).
  void fail_inputs(std::uint64_t ticket, const std::string& why, bool gone) {
    std::shared_ptr<task_state> t;
    std::vector<std::pair<std::int32_t, std::int32_t>> lost;
    {
      std::lock_guard lock(mutex);
      auto it = fetches.find(ticket);
      if (it == fetches.end()) return;
      t = it->second.task;
      if (gone) lost.emplace_back(it->second.stage, it->second.map);
      fetches.erase(it);
    }
    fail_task_inputs(t, error_kind::transport_error, why, std::move(lost));
  }

  // Marks `t` failed and no longer gathering its inputs; false when it had failed already.
  // Called with `mutex` held.
  bool mark_failed(task_state& t) {
    if (t.failed) return false;
    t.failed = true;
    if (t.gathering) {
      t.gathering = false;
      --waiting;
    }
    return true;
  }

  void fail_task_inputs(const std::shared_ptr<task_state>& t, error_kind kind,
                        const std::string& why,
                        std::vector<std::pair<std::int32_t, std::int32_t>> lost_blocks) {
    std::vector<std::uint64_t> others;
    {
      std::lock_guard lock(mutex);
      if (!mark_failed(*t)) return;
      for (auto f = fetches.begin(); f != fetches.end();) {
        if (f->second.task != t) {
          ++f;
          continue;
        }
        others.push_back(f->first);
        f = fetches.erase(f);
      }
    }
    fetcher->cancel(others);
    t->pins.clear();
    drop_fetched(*t);
    logger().warn("{}: task (job {}, stage {}, partition {}) cannot get its input: {}",
                  options.name, t->msg.job, t->msg.stage, t->msg.partition, why);
    send_failure(t->msg, kind, why, true, std::move(lost_blocks));
  }

  // ---- the prefetch thread: a task's own inputs, from the partition store --------------------

  // Why a task could not take its inputs from the store.
  struct input_problem {
    std::string message;
    error_kind kind = error_kind::logic_error;
    // Blocks that are gone (never written here, or lost with a damaged spill file): their map
    // tasks must run again.
    std::vector<std::pair<std::int32_t, std::int32_t>> lost;
  };

  // Brings every input of `t` in the store up to the device tier. With `pin` they are pinned
  // for the task and handed to it (t.inputs); without, this is the prefetch: they are left in
  // the device tier, least recently used last, and only their bytes are counted.
  std::optional<input_problem> take_inputs(task_state& t, bool pin) {
    std::int64_t bytes = 0;
    for (const auto& [stage, map, reduce, key] : t.stored_inputs) {
      try {
        auto missing = [&] {
          return input_problem{"block (stage " + std::to_string(stage) + ", map " +
                                   std::to_string(map) + ", reduce " + std::to_string(reduce) +
                                   ") is not on this worker",
                               error_kind::logic_error,
                               {{stage, map}}};
        };
        if (!pin) {
          // The prefetch: brought up, not pinned, not counted as a lookup (the task's is).
          auto prefetched = store->prefetch(key, memory_tier::device);
          if (!prefetched) return missing();
          bytes += *prefetched;
          continue;
        }
        auto p = store->acquire(key, memory_tier::device);
        if (!p) return missing();
        bytes += p->bytes();
        int device =
            backend == backend_kind::cuda && p->tier() == memory_tier::device ? options.gpu : -1;
        t.inputs[{stage, reduce}][static_cast<std::size_t>(map)] =
            block{p->owner(), p->rows(), device, p->bytes()};
        t.pins.push_back(std::move(*p));
      } catch (const invalid_input& damaged) {
        // A spill file came back damaged: the block is gone, its map task must run again.
        return input_problem{damaged.what(), error_kind::invalid_input, {{stage, map}}};
      } catch (...) {
        auto [kind, message] = describe_error(std::current_exception());
        return input_problem{message, kind, {}};
      }
    }
    t.input_bytes = bytes;
    return std::nullopt;
  }

  // A task that cannot take its inputs fails; a lost block sends it back to the scheduler to
  // wait for the block's map task to run again.
  void fail_taking_inputs(const std::shared_ptr<task_state>& t, input_problem problem) {
    t->pins.clear();
    t->inputs.clear();
    drop_fetched(*t);
    if (!problem.lost.empty()) {
      fail_task_inputs(t, problem.kind, problem.message, std::move(problem.lost));
      return;
    }
    {
      std::lock_guard lock(mutex);
      if (!mark_failed(*t)) return;
    }
    send_failure(t->msg, problem.kind, problem.message, false);
  }

  // The prefetch thread: brings the inputs of the tasks about to run (one queued per slot
  // beyond the running ones) back to the device tier before they start. Tasks pin their
  // inputs themselves when they start (execute()), so that inputs brought up early stay
  // spillable while other tasks run.
  void prefetch_inputs() noexcept {
    for (;;) {
      std::shared_ptr<task_state> t;
      {
        std::unique_lock lock(mutex);
        auto room = [&] {
          return static_cast<int>(ready.size()) + running < 2 * static_cast<int>(slots.size());
        };
        while (!stopping && (prefetch_queue.empty() || !room())) cv.wait_for(lock, poll_interval);
        if (stopping) return;
        t = std::move(prefetch_queue.front());
        prefetch_queue.pop_front();
        if (t->failed || t->job->cancelled) {
          lock.unlock();
          drop_fetched(*t);
          continue;
        }
      }
      if (auto problem = take_inputs(*t, false)) {
        // Bringing inputs up early is only a head start: no room for them now is no failure
        // (the task makes room, or waits for it, when it starts); a lost or damaged block is.
        bool no_room = problem->lost.empty() && problem->kind == error_kind::out_of_memory;
        if (!no_room) {
          fail_taking_inputs(t, std::move(*problem));
          continue;
        }
      }
      make_ready(std::move(t));
    }
  }

  void serve_fetch(connection_id from, const fetch_block_msg& f) {
    std::optional<block> b;
    std::shared_ptr<const transport::outgoing_table> described;
    block_key key{f.stage, f.map_partition, f.reduce_partition};
    {
      std::lock_guard lock(mutex);
      auto jt = jobs.find(f.job);
      if (jt != jobs.end()) {
        auto d = jt->second->described.find(key);
        if (d != jt->second->described.end()) described = d->second;
      }
    }
    // A spilled block is read back into host memory (not the device: the peer wants host bytes).
    std::optional<pinned_partition> pinned;
    std::string damaged;
    try {
      pinned = store->acquire(block_store_key(f.job, key), memory_tier::host);
    } catch (const std::exception& e) {
      damaged = e.what();
    }
    if (pinned) b = block{pinned->owner(), pinned->rows(), -1, pinned->bytes()};
    block_reply_msg reply;
    reply.request = f.request;
    if (b && described) {
      net->send_table(from, static_cast<std::uint16_t>(msg::block_data), encode(reply), *described);
      return;
    }
    if (!b || (b->rows.num_columns() > 0 && b->rows.column(0).kind() == memory_kind::device &&
               !net->cuda_aware())) {
      reply.message = b                 ? "the block is in device memory"
                      : damaged.empty() ? "no such block"
                                        : damaged;
      net->send(from, static_cast<std::uint16_t>(msg::block_missing), encode(reply));
      return;
    }
    net->send_table(from, static_cast<std::uint16_t>(msg::block_data), encode(reply),
                    transport::describe_table(b->rows, b->owner));
  }

  // The named cache's entries in this worker's store ("cache/KEY"). A put lands in the tier its
  // bytes arrived in (the host tier; pinned on CUDA workers); a get reads the entry back into
  // host memory for the wire.
  void serve_cache(const cache_request_msg& m, std::optional<table> rows) {
    cache_reply_msg reply;
    reply.request = m.request;
    std::optional<pinned_partition> got;
    try {
      auto key = cache_store_key(m.key);
      switch (m.op) {
        case cache_op::put: {
          EMBER_EXPECTS(rows.has_value(), invalid_input, "a cache put carries a table");
          auto bytes = table_bytes(rows->view());
          auto tier = backend == backend_kind::cuda ? memory_tier::pinned_host : memory_tier::host;
          store->erase(key);
          store->put(key, std::move(*rows), tier, bytes);
          reply.found = true;
          cache_entry_info e;
          e.key = m.key;
          e.tier = static_cast<std::uint8_t>(tier);
          e.bytes = bytes;
          reply.entries.push_back(std::move(e));
          break;
        }
        case cache_op::get:
          got = store->acquire(key, memory_tier::host);
          reply.found = got.has_value();
          break;
        case cache_op::erase:
          reply.found = store->erase(key);
          break;
        default:
          throw invalid_input("a worker answers cache put, get and erase only");
      }
    } catch (...) {
      std::tie(reply.kind, reply.message) = describe_error(std::current_exception());
      reply.ok = false;
      got.reset();
    }
    auto to = scheduler_connection();
    if (got) {
      net->send_table(to, static_cast<std::uint16_t>(msg::cache_reply), encode(reply),
                      transport::describe_table(got->rows(), got->owner()));
    } else {
      net->send(to, static_cast<std::uint16_t>(msg::cache_reply), encode(reply));
    }
  }

  void release(const release_msg& r) {
    std::lock_guard lock(mutex);
    auto it = jobs.find(r.job);
    if (it == jobs.end()) return;
    if (r.stage < 0) {
      it->second->cancelled = r.cancel || it->second->cancelled;
      if (r.cancel) {
        std::erase_if(ready, [&](const auto& t) { return t->msg.job == r.job; });
        std::vector<std::uint64_t> called_off;
        for (auto f = fetches.begin(); f != fetches.end();) {
          if (f->second.task->msg.job != r.job) {
            ++f;
            continue;
          }
          called_off.push_back(f->first);
          f = fetches.erase(f);
        }
        fetcher->cancel(called_off);
      }
      jobs.erase(it);
      store->erase_prefix(block_prefix(r.job));
      store->erase_prefix("fetched/" + std::to_string(r.job) + "/");
    } else {
      store->erase_prefix(block_prefix(r.job, r.stage));
      std::erase_if(it->second->described, [&](const auto& d) { return d.first.stage == r.stage; });
    }
  }

  // ---- heartbeats and deadlines ---------------------------------------------------------------

  void housekeeping() noexcept {
    auto next_beat = clock_type::now();
    for (;;) {
      heartbeat_msg beat;
      connection_id to = 0;
      bool full = false;
      {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, std::chrono::milliseconds(20));
        if (stopping) return;
        auto now = clock_type::now();
        if (now >= next_beat && !scheduler_lost && worker_id >= 0) {
          next_beat = now + std::chrono::milliseconds(heartbeat_ms);
          beat.running = running;
          beat.queued = static_cast<std::int32_t>(ready.size()) + waiting;
          beat.held_back = held_back;
          to = scheduler;
          full = !residency_sent;
          residency_sent = true;
        }
      }
      fetcher->expire();
      if (to != 0) describe_store(beat, full);
      if (to != 0) net->send(to, static_cast<std::uint16_t>(msg::heartbeat), encode(beat));
    }
  }

  // The store's tiers and counters, and the residency catalog's batch: every partition after a
  // (re)registration, else what changed since the last heartbeat.
  void describe_store(heartbeat_msg& beat, bool full) {
    beat.memory_used = device_tier->used();
    beat.memory_peak = device_tier->peak();
    beat.store = store_counters();
    describe_residency(beat, full);
  }

  // The store's tiers and counters (thread-safe: the heartbeat and the metrics endpoint).
  store_report store_counters() const {
    auto st = store->stats();
    auto limit_of = [](std::size_t l) {
      return l == tracking_resource::unlimited ? std::uint64_t{0} : std::uint64_t{l};
    };
    auto report = [&](const tier_usage& u) {
      return tier_report{static_cast<std::uint8_t>(u.tier),
                         u.used,
                         u.peak,
                         limit_of(u.limit),
                         u.partitions,
                         u.partition_bytes};
    };
    tier_report pinned{static_cast<std::uint8_t>(memory_tier::pinned_host),
                       pinned_tier->used(),
                       pinned_tier->peak(),
                       0,
                       0,
                       0};
    store_report r;
    r.tiers = {report(st.device), pinned, report(st.host), report(st.disk)};
    r.spilled_to_host_bytes = st.spilled_to_host_bytes;
    r.spilled_to_disk_bytes = st.spilled_to_disk_bytes;
    r.unspilled_from_host_bytes = st.unspilled_from_host_bytes;
    r.unspilled_from_disk_bytes = st.unspilled_from_disk_bytes;
    r.spills = st.spills;
    r.unspills = st.unspills;
    r.spill_seconds = st.spill_seconds;
    r.unspill_seconds = st.unspill_seconds;
    r.hits = st.hits;
    r.tier_hits = st.tier_hits;
    r.misses = st.misses;
    r.corrupt_spills = st.corrupt_spills;
    return r;
  }

  // The residency catalog's batch: every partition after a (re)registration, else what changed
  // since the last heartbeat.
  void describe_residency(heartbeat_msg& beat, bool full) {
    auto entry_of = [](const partition_info& p) {
      return residency_entry{
          p.key,
          static_cast<std::uint8_t>(p.tier),
          p.bytes,
          p.rows,
          p.pins,
          std::chrono::duration_cast<std::chrono::milliseconds>(p.last_use.time_since_epoch())
              .count()};
    };
    auto changes = store->take_changes();
    auto all = store->partitions();
    beat.residency_full = full;
    if (full) {
      for (const auto& p : all) beat.changed.push_back(entry_of(p));
    } else {
      for (const auto& p : changes.changed) beat.changed.push_back(entry_of(p));
      beat.removed = std::move(changes.removed);
    }
    std::int64_t blocks = 0;
    for (const auto& p : all)
      if (p.key.starts_with("block/")) blocks += p.bytes;
    beat.block_bytes = static_cast<std::uint64_t>(blocks);
  }

  // ---- the metrics endpoint --------------------------------------------------------------------

  void start_metrics() {
    http_endpoint_options ho;
    ho.listen = options.metrics_listen;
    ho.token = options.token;
    ho.name = "the worker's metrics endpoint";
    std::vector<http_route> routes;
    routes.push_back({"/metrics", [this] {
                        if (!serving_metrics)
                          return http_response{503, "text/plain; charset=utf-8", "starting\n"};
                        return http_response{200, prometheus_content_type, render_metrics()};
                      }});
    // Ready while registered: a worker waiting for its scheduler takes no tasks.
    routes.push_back({"/healthz",
                      [this] {
                        std::lock_guard lock(mutex);
                        bool registered = serving_metrics && !scheduler_lost && worker_id >= 0;
                        return registered ? http_response{200, "text/plain; charset=utf-8", "ok\n"}
                                          : http_response{503, "text/plain; charset=utf-8",
                                                          "waiting for the scheduler\n"};
                      },
                      true});
    metrics = std::make_unique<http_endpoint>(ho, std::move(routes));
    logger().info("worker pid {}: metrics on {}{}", ::getpid(), metrics->url(),
                  metrics->token_required() ? " (cluster token required)" : "");
  }

  std::string render_metrics() {
    std::int64_t run = 0, queued = 0, back = 0, in_flight = 0, fetching = 0, done = 0;
    int id = -1;
    bool connected = false;
    {
      std::lock_guard lock(mutex);
      run = running;
      queued = static_cast<std::int64_t>(ready.size()) + waiting;
      back = held_back;
      in_flight = results_in_flight;
      fetching = static_cast<std::int64_t>(fetches.size());
      done = tasks_run;
      id = worker_id;
      connected = !scheduler_lost && worker_id >= 0;
    }
    prometheus_text out;
    out.family("ember_worker_info", "gauge", "This worker: its name, backend and device (value 1)");
    out.sample("ember_worker_info",
               {{"worker", options.name},
                {"worker_id", std::to_string(id)},
                {"backend", backend == backend_kind::cuda ? "cuda" : "cpu"},
                {"device", std::to_string(backend == backend_kind::cuda ? options.gpu : -1)}},
               std::int64_t{1});
    out.single("ember_worker_scheduler_connected", "gauge",
               "1 while the worker is registered with a scheduler", connected ? 1 : 0);
    out.single("ember_worker_task_slots", "gauge", "Tasks this worker runs at once",
               static_cast<std::int64_t>(slots.size()));
    out.family("ember_worker_tasks", "gauge",
               "Tasks by state (running; queued: waiting for a slot or their inputs; held back by "
               "admission control until device memory frees up)");
    out.sample("ember_worker_tasks", {{"state", "running"}}, run);
    out.sample("ember_worker_tasks", {{"state", "queued"}}, queued);
    out.sample("ember_worker_tasks", {{"state", "held_back"}}, back);
    out.single("ember_worker_tasks_run_total", "counter",
               "Tasks that ran to their end on this worker (successfully or not)", done);
    out.single("ember_worker_results_in_flight_bytes", "gauge",
               "Device-tier bytes of task results still on their way to the scheduler", in_flight);
    out.single("ember_worker_fetches_in_flight", "gauge", "Shuffle blocks being fetched from peers",
               fetching);
    auto report = store_counters();
    write_store_metrics(out, {{metric_labels{}, &report}});
    return out.take();
  }

  // After the scheduler went away: everything it had handed out is void (a new scheduler knows
  // nothing of it, and numbers workers anew, so peer connections by id are forgotten too).
  void forget_the_old_scheduler() {
    std::vector<std::uint64_t> called_off;
    {
      std::lock_guard lock(mutex);
      for (auto& [id, job] : jobs) job->cancelled = true;
      jobs.clear();
      ready.clear();
      nccl_queue.clear();
      for (auto& [ticket, f] : fetches) called_off.push_back(ticket);
      fetches.clear();
      prefetch_queue.clear();
      waiting = 0;
      residency_sent = false;  // the new scheduler's catalog starts empty
    }
    store->erase_prefix("block/");
    store->erase_prefix("fetched/");
    fetcher->cancel(called_off);
    fetcher->forget_peers();
  }

  // ---- NCCL exchanges -------------------------------------------------------------------------

  void run_nccl_exchanges() noexcept {
    for (;;) {
      nccl_exchange_msg x;
      std::shared_ptr<job_data> job;
      {
        std::unique_lock lock(mutex);
        while (!stopping && nccl_queue.empty()) cv.wait_for(lock, poll_interval);
        if (stopping) return;
        x = std::move(nccl_queue.front());
        nccl_queue.pop_front();
        auto it = jobs.find(x.job);
        if (it != jobs.end()) job = it->second;
      }
      nccl_exchange_done_msg done;
      done.job = x.job;
      done.stage = x.stage;
      try {
        EMBER_EXPECTS(job != nullptr, logic_error, "NCCL exchange for an unknown job");
        // Its own context (stream): the task slots' contexts belong to their threads.
        if (!nccl_context) nccl_context = context::create(slots.front()->options);  // shared tier
        std::vector<pinned_partition> held;  // the blocks being sent stay put meanwhile
        nccl_block_access access;
        access.get = [&](const block_key& k) -> std::optional<block> {
          auto p = store->acquire(block_store_key(x.job, k), memory_tier::device);
          if (!p) return std::nullopt;
          block b{p->owner(), p->rows(), options.gpu, p->bytes()};
          held.push_back(std::move(*p));
          return b;
        };
        access.erase_task = [&](int stage, int map) {
          store->erase_prefix(block_prefix(x.job, stage, map));
        };
        access.put = [&](const block_key& k, block b) {
          store->put(block_store_key(x.job, k), std::move(b.owner), b.rows, memory_tier::device,
                     b.bytes);
        };
        exchange_stage_with_nccl(x, worker_id, access, *nccl_context);
      } catch (...) {
        done.ok = false;
        done.message = describe_error(std::current_exception()).second;
        logger().error("{}: NCCL exchange of job {} stage {} failed: {}", options.name, x.job,
                       x.stage, done.message);
      }
      net->send(scheduler_connection(), static_cast<std::uint16_t>(msg::nccl_exchange_done),
                encode(done));
    }
  }
};

worker_service::worker_service(const worker_service_options& options)
    : _impl(std::make_unique<impl>(options)) {}

worker_service::~worker_service() { stop(); }

bool worker_service::run(std::stop_token stop) {
  auto& s = *_impl;
  auto where = transport::parse_host_port(s.options.scheduler);
  for (;;) {
    {
      std::unique_lock lock(s.mutex);
      while (!stop.stop_requested() && !s.scheduler_lost && !s.stopping)
        s.cv.wait_for(lock, poll_interval);
      if (stop.stop_requested() || s.stopping) return true;
    }
    if (s.options.reconnect_timeout.count() <= 0) return false;
    // A restarted scheduler (same address) takes this worker back as a new member.
    s.forget_the_old_scheduler();
    logger().info("{}: reconnecting to the scheduler at {} (for up to {} ms)", s.options.name,
                  s.options.scheduler, s.options.reconnect_timeout.count());
    try {
      s.connect_to_scheduler(where, s.options.reconnect_timeout);
    } catch (const std::exception& e) {
      if (stop.stop_requested() || s.options.stop.stop_requested()) return true;
      logger().error("{}: gave up on the scheduler: {}", s.options.name, e.what());
      return false;
    }
  }
}

void worker_service::stop() noexcept {
  if (_impl) _impl->stop();
}

int worker_service::id() const noexcept {
  std::lock_guard lock(_impl->mutex);
  return _impl->worker_id;
}

std::string worker_service::data_address() const {
  return _impl->data_host + ":" + std::to_string(_impl->data_port);
}

std::string worker_service::metrics_url() const {
  return _impl->metrics ? _impl->metrics->url() : std::string();
}

std::string worker_service::description() const {
  return "worker " + std::to_string(id()) + " (" + _impl->options.name +
         "): " + _impl->slot_description + ", " + _impl->net->describe();
}

}  // namespace ember
