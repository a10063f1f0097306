#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <optional>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <ember/scheduler/block_store.hpp>
#include <ember/scheduler/worker_service.hpp>
#include <ember/transport/node.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "detail/block_fetcher.hpp"
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

// What this worker holds of one job: its stages and the blocks its tasks wrote.
struct job_data {
  std::map<int, std::shared_ptr<const stage_def>> stages;
  block_store blocks;
  std::atomic<bool> cancelled{false};
  // Device blocks already described for a CUDA-aware UCX (by the task that wrote them, on its
  // context); guarded by impl::mutex.
  std::map<block_key, std::shared_ptr<const transport::outgoing_table>> described;
};

// A task waiting for its inputs, then queued, then running.
struct task_state {
  run_task_msg msg;
  std::shared_ptr<job_data> job;
  std::shared_ptr<const stage_def> def;
  // (stage, reduce partition) -> blocks by map partition.
  std::map<std::pair<int, int>, std::vector<block>> inputs;
  int outstanding = 0;
  bool gathering = false;  // counted in impl::waiting
  bool failed = false;
  clock_type::time_point fetch_start{}, fetch_end{};
  std::int64_t fetched_bytes = 0;
};

// One remote input of a task, while block_fetcher gets it.
struct input_in_flight {
  std::shared_ptr<task_state> task;
  int stage = 0, map = 0, reduce = 0;
};

// The bytes a table's buffers take on the wire.
class worker_io final : public task_io {
 public:
  /// `describe`: called for each block written to device memory when peers fetch device memory
  /// directly (CUDA-aware UCX); null otherwise.
  using describe_fn = std::function<void(const block_key&, const block&)>;
  worker_io(task_state& t, bool blocks_on_host, describe_fn describe)
      : _t(t), _blocks_on_host(blocks_on_host), _describe(std::move(describe)) {}
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
    _t.job->blocks.put(key, std::move(b));
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

  std::optional<block> result;
  std::vector<label_metrics> labels;
  std::vector<std::int64_t> block_bytes;
  size_type input_rows = 0, input_bytes = 0;

 private:
  task_state& _t;
  bool _blocks_on_host;
  describe_fn _describe;
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

  const clock_type::time_point started_at = clock_type::now();
  std::unique_ptr<context> nccl_context;  // the NCCL thread's; freed in stop() after the blocks
  std::thread housekeeper;
  std::thread nccl_thread;

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
    int count = o.task_slots > 0 ? o.task_slots : 2;
    int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    int threads = o.cpu_threads > 0 ? o.cpu_threads : std::max(1, hardware / count);
    for (int i = 0; i < count; ++i) {
      auto s = std::make_unique<slot>();
      s->options.backend = use_cuda ? backend_choice::cuda : backend_choice::cpu;
      s->options.device = o.gpu;
      s->options.device_memory_limit = o.device_memory_limit;
      s->options.cpu_threads = use_cuda ? 0 : threads;
      s->options.name = "task slot " + std::to_string(i);
      slots.push_back(std::move(s));
    }
    // Contexts are created on their own threads (a CUDA context binds its device to the thread).
    start_slots();

    transport::node_options no;
    // Fetched blocks land in warm pooled host memory (fresh pages would cost a fault each);
    // pinned on CUDA workers, so the upload to the device runs at full speed.
    no.receive_resource =
        backend == backend_kind::cuda ? &pinned_host_resource() : &default_host_pool();
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
        [this](std::uint64_t ticket, std::optional<table> rows, const std::string& why) {
          input_arrived(ticket, std::move(rows), why);
        },
        options.name);
    connect_to_scheduler(sched, o.connect_timeout);
    housekeeper = std::thread([this] { housekeeping(); });
    nccl_thread = std::thread([this] { run_nccl_exchanges(); });
  }

  ~impl() { stop(); }

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
    {
      std::lock_guard lock(mutex);
      if (stopping && !housekeeper.joinable() && slots.empty()) return;
      stopping = true;
      ready.clear();
      for (auto& [id, job] : jobs) job->cancelled = true;
    }
    cv.notify_all();
    for (auto* t : {&housekeeper, &nccl_thread})
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
    }
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
      execute(s, *t);
      {
        std::lock_guard lock(mutex);
        --running;
      }
    }
    // The context stays: blocks this slot wrote may outlive the thread (stop() frees them
    // first, then the contexts).
  }

  void execute(slot& s, task_state& t) noexcept {
    const auto& m = t.msg;
    if (t.job->cancelled) return;
    auto start = clock_type::now();
    try {
      t.job->blocks.erase_task(m.stage, m.partition);
      worker_io::describe_fn describe;
      if (direct_device && !t.def->blocks_on_host) {
        describe = [&](const block_key& key, const block& b) {
          auto d = std::make_shared<const transport::outgoing_table>(
              transport::describe_device_table(b.rows, b.owner, *s.ctx));
          std::lock_guard lock(mutex);
          t.job->described[key] = std::move(d);
        };
      }
      worker_io io(t, t.def->blocks_on_host, std::move(describe));
      auto out =
          run_task(*s.ctx, s.options.device, t.def->body, t.def->node_partitions, m.partition, io);
      t.inputs.clear();
      task_done_msg done;
      done.job = m.job;
      done.stage = m.stage;
      done.partition = m.partition;
      done.attempt = m.attempt;
      done.rows = out.rows;
      done.bytes = out.bytes;
      done.input_rows = io.input_rows;
      done.input_bytes = io.input_bytes;
      done.partitions_skipped = out.partitions_skipped;
      done.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
      done.labels = std::move(io.labels);
      if (t.fetched_bytes > 0) {
        done.fetched_bytes = t.fetched_bytes;
        done.fetch_start = std::chrono::duration<double>(t.fetch_start - started_at).count();
        done.fetch_end = std::chrono::duration<double>(t.fetch_end - started_at).count();
      }
      done.block_bytes = std::move(io.block_bytes);
      auto to = scheduler_connection();
      if (io.result) {
        auto rows = transport::describe_table(io.result->rows, io.result->owner);
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
      send_failure(m, kind, message, false);
    }
  }

  connection_id scheduler_connection() {
    std::lock_guard lock(mutex);
    return scheduler;
  }

  void send_failure(const run_task_msg& m, error_kind kind, const std::string& message,
                    bool input_lost) {
    task_failed_msg f;
    f.job = m.job;
    f.stage = m.stage;
    f.partition = m.partition;
    f.attempt = m.attempt;
    f.kind = kind;
    f.message = message;
    f.input_lost = input_lost;
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
    if (m != msg::block_data) {
      throw invalid_input("unexpected table message '" + std::string(to_string(m)) + "' from " +
                          peer);
    }
    fetcher->on_block(decode<block_reply_msg>(m, header, peer), std::move(rows));
  }

  // block_fetcher's verdict on one remote input.
  void input_arrived(std::uint64_t ticket, std::optional<table> rows, const std::string& why) {
    if (!rows) return fail_inputs(ticket, why);
    auto owner = std::make_shared<const table>(std::move(*rows));
    std::shared_ptr<task_state> complete;
    {
      std::lock_guard lock(mutex);
      auto it = fetches.find(ticket);
      if (it == fetches.end()) return;  // the task failed or was cancelled meanwhile
      auto f = std::move(it->second);
      fetches.erase(it);
      auto& t = *f.task;
      if (t.failed) return;
      t.inputs[{f.stage, f.reduce}][static_cast<std::size_t>(f.map)] =
          block{owner, owner->view(), -1, 0};
      t.fetched_bytes += static_cast<std::int64_t>(transport::body_bytes(owner->view()));
      if (--t.outstanding == 0) {
        t.fetch_end = clock_type::now();
        complete = f.task;
      }
    }
    if (complete) make_ready(std::move(complete));
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
              auto b = t->job->blocks.get({stage, static_cast<int>(map), reduce});
              if (!b) {
                problem = "block (stage " + std::to_string(stage) + ", map " + std::to_string(map) +
                          ", reduce " + std::to_string(reduce) + ") is not on this worker";
                break;
              }
              blocks[map] = std::move(*b);
              continue;
            }
            auto ticket = next_request++;
            fetches[ticket] = input_in_flight{t, stage, static_cast<int>(map), reduce};
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
        } else if (t->outstanding > 0) {
          t->fetch_start = clock_type::now();
          t->gathering = true;
          ++waiting;
        }
      }
    }
    if (!problem.empty()) {
      send_failure(m, error_kind::logic_error, problem, true);
      return;
    }
    if (t->outstanding == 0) {
      make_ready(std::move(t));
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
  void fail_inputs(std::uint64_t ticket, const std::string& why) {
    std::shared_ptr<task_state> t;
    std::vector<std::uint64_t> others;
    {
      std::lock_guard lock(mutex);
      auto it = fetches.find(ticket);
      if (it == fetches.end()) return;
      t = it->second.task;
      fetches.erase(it);
      if (t->failed) return;
      t->failed = true;
      if (t->gathering) {
        t->gathering = false;
        --waiting;
      }
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
    logger().warn("{}: task (job {}, stage {}, partition {}) cannot get its input: {}",
                  options.name, t->msg.job, t->msg.stage, t->msg.partition, why);
    send_failure(t->msg, error_kind::transport_error, why, true);
  }

  void serve_fetch(connection_id from, const fetch_block_msg& f) {
    std::optional<block> b;
    std::shared_ptr<const transport::outgoing_table> described;
    block_key key{f.stage, f.map_partition, f.reduce_partition};
    {
      std::lock_guard lock(mutex);
      auto jt = jobs.find(f.job);
      if (jt != jobs.end()) {
        b = jt->second->blocks.get(key);
        auto d = jt->second->described.find(key);
        if (d != jt->second->described.end()) described = d->second;
      }
    }
    block_reply_msg reply;
    reply.request = f.request;
    if (b && described) {
      net->send_table(from, static_cast<std::uint16_t>(msg::block_data), encode(reply), *described);
      return;
    }
    if (!b || (b->rows.num_columns() > 0 && b->rows.column(0).kind() == memory_kind::device &&
               !net->cuda_aware())) {
      reply.message = b ? "the block is in device memory" : "no such block";
      net->send(from, static_cast<std::uint16_t>(msg::block_missing), encode(reply));
      return;
    }
    net->send_table(from, static_cast<std::uint16_t>(msg::block_data), encode(reply),
                    transport::describe_table(b->rows, b->owner));
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
    } else {
      it->second->blocks.erase_stage(r.stage);
      std::erase_if(it->second->described, [&](const auto& d) { return d.first.stage == r.stage; });
    }
  }

  // ---- heartbeats and deadlines ---------------------------------------------------------------

  void housekeeping() noexcept {
    auto next_beat = clock_type::now();
    for (;;) {
      heartbeat_msg beat;
      connection_id to = 0;
      {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, std::chrono::milliseconds(20));
        if (stopping) return;
        auto now = clock_type::now();
        if (now >= next_beat && !scheduler_lost && worker_id >= 0) {
          next_beat = now + std::chrono::milliseconds(heartbeat_ms);
          beat.running = running;
          beat.queued = static_cast<std::int32_t>(ready.size()) + waiting;
          for (auto& [id, job] : jobs)
            beat.block_bytes += static_cast<std::uint64_t>(job->blocks.bytes());
          for (auto& s : slots) {
            if (!s->ctx) continue;
            beat.memory_used += s->ctx->resource().used();
            beat.memory_peak += s->ctx->resource().peak();
          }
          to = scheduler;
        }
      }
      fetcher->expire();
      if (to != 0) net->send(to, static_cast<std::uint16_t>(msg::heartbeat), encode(beat));
    }
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
      waiting = 0;
    }
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
        if (!nccl_context) nccl_context = context::create(slots.front()->options);
        exchange_stage_with_nccl(x, worker_id, job->blocks, *nccl_context);
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

std::string worker_service::description() const {
  return "worker " + std::to_string(id()) + " (" + _impl->options.name +
         "): " + _impl->slot_description + ", " + _impl->net->describe();
}

}  // namespace ember
