#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <ember/host/error.hpp>
#include <ember/host/json_text.hpp>
#include <ember/host/log.hpp>
#include <ember/scheduler/coordination_client.hpp>
#include <ember/scheduler/http_endpoint.hpp>
#include <ember/scheduler/placement.hpp>
#include <ember/scheduler/plan_codec.hpp>
#include <ember/scheduler/residency_catalog.hpp>
#include <ember/scheduler/scheduler_service.hpp>
#include <ember/transport/nccl.hpp>
#include <ember/transport/node.hpp>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <variant>

#include "detail/cluster_snapshot.hpp"
#include "detail/coordination_service.hpp"
#include "detail/host_tables.hpp"
#include "detail/protocol.hpp"
#include "detail/task_runner.hpp"

namespace ember {
namespace {

using clock_type = std::chrono::steady_clock;
using transport::connection_id;
using namespace detail;

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// What the transport hands the event loop.
struct connected_event {
  transport::peer_info peer;
};
struct message_event {
  connection_id from;
  std::uint16_t type;
  std::vector<std::uint8_t> body;
};
struct table_event {
  connection_id from;
  std::uint16_t type;
  std::vector<std::uint8_t> header;
  table rows;
};
struct disconnected_event {
  connection_id id;
  std::string reason;
};
using event = std::variant<connected_event, message_event, table_event, disconnected_event>;

struct worker_rec {
  int id = 0;
  connection_id conn = 0;
  worker_info info;
  std::string address;
  bool alive = true;
  clock_type::time_point last_heartbeat;
  heartbeat_msg last;
  int assigned = 0;
  clock_type::time_point died{};  // when it was declared dead
};

enum class task_state { pending, running, done };

struct task_rec {
  task_state st = task_state::pending;
  int worker = -1;
  int attempt = 0;
  int lost_inputs = 0;
  task_done_msg done;
};

enum class exchange_state { none, running, done };

struct stage_rec {
  std::vector<task_rec> tasks;
  std::deque<int> pending;  // tasks waiting for a worker, in partition order (may hold stale ones)
  int done = 0;
  std::set<int> defined_on;
  std::vector<int> consumers;
  bool finished = false;
  bool released = false;
  clock_type::time_point first_start{}, last_end{};
  bool started = false;
  // The NCCL path of a hash exchange.
  bool nccl = false;
  exchange_state exchange = exchange_state::none;
  std::vector<int> rank_workers;
  std::vector<std::int32_t> reduce_owner;
  std::set<int> exchange_pending;
  clock_type::time_point exchange_start{}, exchange_end{};
  std::int64_t reported = -1;
};

// A cache request the scheduler passed on to a worker, until the worker answers.
struct forwarded_cache_request {
  connection_id client = 0;
  std::uint64_t client_request = 0;
  cache_op op = cache_op::get;
  std::string key;  // the user's key
  int worker = -1;
  std::int64_t bytes = 0, rows = 0;  // of a put
  clock_type::time_point deadline;
};

// How long a worker may take to answer a forwarded cache request (a put or get moves a table).
constexpr auto cache_forward_timeout = std::chrono::seconds(60);

struct job_rec {
  std::uint64_t id = 0;
  connection_id client = 0;
  std::uint64_t request = 0;
  physical_plan plan;
  std::vector<stage_rec> stages;
  std::vector<std::optional<table>> results;
  clock_type::time_point started;
  std::optional<clock_type::time_point> deadline;
  std::optional<clock_type::time_point> workerless_since;
  exchange_path path = exchange_path::automatic;
  int retried = 0;
  bool ended = false;  // answered (or abandoned); erased at the end of the loop's pass
  clock_type::time_point last_progress{};
  std::string client_address;          // for the dashboard
  std::int64_t submitted_unix_ms = 0;  // for the dashboard
};

// How often the event loop publishes a snapshot for the metrics endpoint (also at once when a job
// ends or a worker joins or dies).
constexpr auto snapshot_interval = std::chrono::milliseconds(200);

// A connection that ended without an error: the peer said goodbye, or this side closed it (after
// counting why: a dead worker, a malformed message).
bool graceful(const std::string& reason) {
  return reason.find("said goodbye") != std::string::npos ||
         reason.find("closed by ") != std::string::npos;
}

}  // namespace

struct scheduler_service::impl final : transport::node_handler {
  scheduler_service_options options;
  std::unique_ptr<transport::node> net;
  int bound_port = 0;
  std::string host;
  int lock_fd = -1;

  std::mutex mutex;  // guards events and stopping
  std::condition_variable cv;
  std::deque<event> events;
  bool stopping = false;
  std::thread loop;

  // Event-loop thread only.
  std::map<int, worker_rec> workers;
  std::map<connection_id, int> worker_of;
  int next_worker = 0;
  std::map<std::uint64_t, job_rec> jobs;
  std::uint64_t next_job = 1;
  std::int64_t finished_jobs = 0;
  std::int64_t tasks_done = 0;
  residency_catalog catalog;
  std::map<std::uint64_t, forwarded_cache_request> forwarded;  // by the worker's request id
  std::uint64_t next_forward = 1;
  // Coordination requests are answered on the transport's progress thread (no hop through the
  // event loop: a lock round trip is latency-bound), their replies sent at the end of each
  // progress turn after one log sync; the event loop drives its timers and system events.
  std::mutex coordination_mutex;  // guards coordination
  std::unique_ptr<detail::coordination_service> coordination;

  // For the metrics endpoint (event-loop thread only, but `snapshot`): counters that `ember
  // status` does not carry, the jobs that ended last, and when the snapshot was taken.
  std::int64_t failed_jobs = 0;
  std::int64_t shuffle_bytes = 0;
  std::int64_t transport_errors = 0;
  std::deque<job_snapshot> recent_jobs;  // newest first
  clock_type::time_point last_snapshot{};
  bool snapshot_due = false;
  // The HTTP threads' only view of the loop's state: replaced whole, never changed.
  std::mutex snapshot_mutex;  // guards snapshot
  std::shared_ptr<const cluster_snapshot> snapshot;
  // Last: its threads use the members above, so it stops (and is destroyed) first.
  std::unique_ptr<http_endpoint> metrics;

  explicit impl(const scheduler_service_options& o) : options(o) {
    auto where = transport::parse_host_port(o.listen);
    host = where.host;
    EMBER_EXPECTS(transport::is_loopback(where.host) || !o.token.empty(), invalid_input,
                  "the scheduler listens on " + o.listen +
                      ", which is not a loopback address: give it a cluster token (--token-file)");
    EMBER_EXPECTS(o.max_attempts >= 1, invalid_input, "max attempts must be at least 1");
    EMBER_EXPECTS(o.heartbeat_interval.count() > 0 && o.missed_heartbeats >= 1, invalid_input,
                  "the heartbeat interval and the missed heartbeats must be positive");
    take_data_dir();
    coordination = std::make_unique<detail::coordination_service>(
        options.data_dir.empty() ? std::filesystem::path() : options.data_dir / "coordination",
        [this](connection_id to, const coord_reply_msg& m) {
          net->send(to, static_cast<std::uint16_t>(msg::coord_reply), encode(m));
        });
    transport::node_options no;
    no.name = "scheduler";
    no.token = o.token;
    no.shared_memory = o.shared_memory;
    net = std::make_unique<transport::node>(no, *this);
    bound_port = net->listen(where.host, where.port);
    if (!o.metrics_listen.empty()) start_metrics();
    write_state_file();
    loop = std::thread([this] { run_loop(); });
    logger().info("scheduler listening on {}:{} ({})", host, bound_port, net->describe());
  }

  ~impl() { stop(); }

  void take_data_dir() {
    if (options.data_dir.empty()) return;
    std::error_code ec;
    std::filesystem::create_directories(options.data_dir, ec);
    EMBER_EXPECTS(
        !ec, invalid_input,
        "cannot create the data folder " + options.data_dir.string() + ": " + ec.message());
    auto lock_path = options.data_dir / "scheduler.lock";
    lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    EMBER_EXPECTS(lock_fd >= 0, invalid_input, "cannot open " + lock_path.string());
    if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(lock_fd);
      lock_fd = -1;
      throw invalid_input("the data folder " + options.data_dir.string() +
                          " is in use by another scheduler");
    }
  }

  void write_state_file() {
    if (options.data_dir.empty()) return;
    auto path = options.data_dir / "scheduler.json";
    auto tmp = options.data_dir / "scheduler.json.tmp";
    {
      std::ofstream out(tmp);
      out << "{\"address\": \"" << host << ":" << bound_port << "\", \"pid\": " << ::getpid();
      if (metrics) out << ", \"metrics\": \"" << metrics->url() << "\"";
      out << "}\n";
    }
    std::filesystem::rename(tmp, path);
  }

  void stop() noexcept {
    if (metrics) metrics->stop();
    {
      std::lock_guard lock(mutex);
      if (stopping && !loop.joinable()) return;
      stopping = true;
    }
    cv.notify_all();
    if (loop.joinable()) loop.join();
    if (net) net->shutdown();
    if (lock_fd >= 0) {
      ::close(lock_fd);
      lock_fd = -1;
    }
  }

  // ---- transport handlers: queue for the loop --------------------------------------------------

  void push(event e) {
    {
      std::lock_guard lock(mutex);
      events.push_back(std::move(e));
    }
    cv.notify_one();
  }
  void on_connected(const transport::peer_info& peer) override { push(connected_event{peer}); }
  void on_message(connection_id from, std::uint16_t type,
                  std::span<const std::uint8_t> body) override {
    if (type == static_cast<std::uint16_t>(msg::coord_request)) {
      // A malformed request throws here and the transport drops the peer.
      auto request = decode<coord_request_msg>(msg::coord_request, body, net->peer_address(from));
      std::lock_guard lock(coordination_mutex);
      coordination->handle(from, std::move(request), clock_type::now());
      return;
    }
    push(message_event{from, type, {body.begin(), body.end()}});
  }
  void on_turn_end() override {
    std::lock_guard lock(coordination_mutex);
    if (coordination) coordination->flush();
  }
  void on_table(connection_id from, std::uint16_t type, std::span<const std::uint8_t> header,
                table rows) override {
    push(table_event{from, type, {header.begin(), header.end()}, std::move(rows)});
  }
  void on_disconnected(connection_id id, const std::string& reason) override {
    push(disconnected_event{id, reason});
  }

  // ---- the loop -------------------------------------------------------------------------------

  void run_loop() noexcept {
    for (;;) {
      std::deque<event> batch;
      {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, std::chrono::milliseconds(20),
                    [&] { return stopping || !events.empty(); });
        if (stopping) break;
        batch.swap(events);
      }
      for (auto& e : batch) {
        try {
          std::visit([&](auto& x) { handle(x); }, e);
        } catch (const invalid_input& x) {
          // A malformed message: drop the peer that sent it, keep serving the others.
          auto from = std::visit([](auto& y) { return connection_of(y); }, e);
          logger().warn("scheduler: dropping peer {}: {}", net->peer_address(from), x.what());
          ++transport_errors;
          net->close(from);
        } catch (const std::exception& x) {
          logger().error("scheduler: {}", x.what());
        }
      }
      try {
        check_workers();
        check_jobs();
        expire_forwarded();
        schedule();
        {
          std::lock_guard lock(coordination_mutex);
          coordination->tick(clock_type::now());
        }
        if (metrics) publish_snapshot_when_due();
      } catch (const std::exception& x) {
        logger().error("scheduler: {}", x.what());
      }
    }
    for (auto& [id, job] : jobs)
      if (!job.ended) send_failure(job, error_kind::cancelled, "the scheduler shut down");
    jobs.clear();
  }

  static connection_id connection_of(const connected_event& e) { return e.peer.id; }
  static connection_id connection_of(const message_event& e) { return e.from; }
  static connection_id connection_of(const table_event& e) { return e.from; }
  static connection_id connection_of(const disconnected_event& e) { return e.id; }

  void handle(connected_event&) {}

  void handle(disconnected_event& e) {
    if (!graceful(e.reason)) ++transport_errors;
    auto it = worker_of.find(e.id);
    if (it != worker_of.end()) {
      worker_died(it->second, e.reason);
      return;
    }
    {
      std::lock_guard lock(coordination_mutex);
      coordination->disconnected(e.id, clock_type::now());
    }
    // A client went away: its jobs are cancelled.
    std::vector<std::uint64_t> gone;
    for (auto& [id, job] : jobs)
      if (job.client == e.id) gone.push_back(id);
    for (auto id : gone) {
      if (jobs.at(id).ended) continue;
      logger().info("scheduler: job {} cancelled: its client disconnected", id);
      abandon(jobs.at(id));
    }
  }

  template <class M>
  M decode_from(msg m, connection_id from, std::span<const std::uint8_t> body) {
    return decode<M>(m, body, net->peer_address(from));
  }

  worker_rec* worker_at(connection_id conn) {
    auto it = worker_of.find(conn);
    if (it == worker_of.end()) return nullptr;
    auto& w = workers.at(it->second);
    return w.alive ? &w : nullptr;
  }

  void handle(message_event& e) {
    auto m = static_cast<msg>(e.type);
    switch (m) {
      case msg::register_worker:
        return register_worker(e.from, decode_from<worker_info>(m, e.from, e.body));
      case msg::heartbeat: {
        auto h = decode_from<heartbeat_msg>(m, e.from, e.body);
        if (auto* w = worker_at(e.from)) {
          apply_residency(w->id, h);
          w->last = std::move(h);
          w->last_heartbeat = clock_type::now();
        }
        return;
      }
      case msg::cache_request:
        return cache_request(e.from, decode_from<cache_request_msg>(m, e.from, e.body),
                             std::nullopt);
      case msg::cache_reply:
        return cache_answer(e.from, decode_from<cache_reply_msg>(m, e.from, e.body), std::nullopt);
      case msg::task_done: {
        auto d = decode_from<task_done_msg>(m, e.from, e.body);
        return task_done(e.from, std::move(d), std::nullopt);
      }
      case msg::task_failed:
        return task_failed(e.from, decode_from<task_failed_msg>(m, e.from, e.body));
      case msg::nccl_exchange_done:
        return exchange_done(e.from, decode_from<nccl_exchange_done_msg>(m, e.from, e.body));
      case msg::submit_job:
        return submit(e.from, decode_from<submit_job_msg>(m, e.from, e.body));
      case msg::status_request: {
        auto r = reader_for(m, e.body, net->peer_address(e.from));
        auto request = r.get<std::uint64_t>("request");
        if (r.remaining() != 0) r.fail("trailing bytes");
        return send_status(e.from, request);
      }
      default:
        throw invalid_input("unexpected message '" + std::string(to_string(m)) + "' (type " +
                            std::to_string(e.type) + ")");
    }
  }

  void handle(table_event& e) {
    auto m = static_cast<msg>(e.type);
    if (m == msg::cache_request) {
      return cache_request(e.from, decode_from<cache_request_msg>(m, e.from, e.header),
                           std::move(e.rows));
    }
    if (m == msg::cache_reply) {
      return cache_answer(e.from, decode_from<cache_reply_msg>(m, e.from, e.header),
                          std::move(e.rows));
    }
    if (m != msg::task_done)
      throw invalid_input("unexpected table message '" + std::string(to_string(m)) + "'");
    auto d = decode_from<task_done_msg>(m, e.from, e.header);
    task_done(e.from, std::move(d), std::move(e.rows));
  }

  // ---- workers --------------------------------------------------------------------------------

  void register_worker(connection_id conn, worker_info info) {
    EMBER_EXPECTS(worker_of.find(conn) == worker_of.end(), invalid_input, "registered twice");
    worker_rec w;
    w.id = next_worker++;
    w.conn = conn;
    w.info = std::move(info);
    w.address = net->peer_address(conn);
    w.last_heartbeat = clock_type::now();
    worker_of[conn] = w.id;
    logger().info("scheduler: worker {} joined from {}: {} ({}, data at {}:{})", w.id, w.address,
                  w.info.name, w.info.description, w.info.data_host, w.info.data_port);
    registered_msg r;
    r.worker_id = w.id;
    r.heartbeat_ms = static_cast<std::int32_t>(options.heartbeat_interval.count());
    net->send(conn, static_cast<std::uint16_t>(msg::registered), encode(r));
    publish(workers_topic, "{\"event\": \"joined\", \"worker\": " + std::to_string(w.id) +
                               ", \"name\": " + json_quote(w.info.name) +
                               ", \"description\": " + json_quote(w.info.description) + "}");
    workers[w.id] = std::move(w);
    snapshot_due = true;
    broadcast_peers();
  }

  /// A system event for the topic's subscribers.
  void publish(const char* topic, const std::string& json) {
    std::lock_guard lock(coordination_mutex);
    coordination->publish(topic, json, clock_type::now());
  }

  void broadcast_peers() {
    peers_msg p;
    for (auto& [id, w] : workers)
      if (w.alive) p.peers.push_back({id, w.info.data_host, w.info.data_port});
    auto body = encode(p);
    for (auto& [id, w] : workers)
      if (w.alive) net->send(w.conn, static_cast<std::uint16_t>(msg::peers), body);
  }

  void check_workers() {
    auto limit = options.heartbeat_interval * options.missed_heartbeats;
    auto now = clock_type::now();
    std::vector<int> silent;
    for (auto& [id, w] : workers)
      if (w.alive && now - w.last_heartbeat > limit) silent.push_back(id);
    for (auto id : silent) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
          now - workers.at(id).last_heartbeat);
      net->close(workers.at(id).conn);
      ++transport_errors;
      worker_died(id, "no heartbeat for " + std::to_string(ms.count()) + " ms");
    }
    // Dead workers stay in `ember status` for a while, then go: workers that rejoin come back
    // under new ids, so the list would otherwise only grow.
    std::erase_if(workers, [&](const auto& w) {
      return !w.second.alive && now - w.second.died > options.dead_worker_retention;
    });
  }

  void worker_died(int id, const std::string& reason) {
    auto& w = workers.at(id);
    if (!w.alive) return;
    w.alive = false;
    w.assigned = 0;
    w.died = clock_type::now();
    snapshot_due = true;
    worker_of.erase(w.conn);
    logger().warn("scheduler: worker {} ({}) is dead: {}", id, w.info.name, reason);
    catalog.worker_lost(id, w.info.name, reason);
    fail_forwarded_to(id, "worker " + std::to_string(id) + " (" + w.info.name +
                              ") died before answering: " + reason);
    publish(workers_topic, "{\"event\": \"left\", \"worker\": " + std::to_string(id) +
                               ", \"name\": " + json_quote(w.info.name) +
                               ", \"reason\": " + json_quote(reason) + "}");
    std::vector<std::uint64_t> ids;
    for (auto& [job_id, job] : jobs) ids.push_back(job_id);
    for (auto job_id : ids) {
      auto it = jobs.find(job_id);
      if (it != jobs.end()) recover(it->second, id, reason);
    }
    broadcast_peers();
  }

  bool consumers_finished(const job_rec& job, std::size_t s) const {
    const auto& st = job.stages[s];
    return std::all_of(st.consumers.begin(), st.consumers.end(),
                       [&](int c) { return job.stages[static_cast<std::size_t>(c)].finished; });
  }

  // Puts back every task of `job` that ran on dead worker `dead`, and every finished task whose
  // blocks lived there and are still needed; then, for every stage that must run again, the
  // input stages whose blocks were already released.
  void recover(job_rec& job, int dead, const std::string& reason) {
    if (job.ended) return;
    for (std::size_t s = 0; s < job.stages.size(); ++s) {
      auto& st = job.stages[s];
      st.defined_on.erase(dead);
      bool result_stage = s + 1 == job.stages.size();
      bool still_needed = !result_stage && !st.released && !consumers_finished(job, s);
      bool in_ranks =
          std::find(st.rank_workers.begin(), st.rank_workers.end(), dead) != st.rank_workers.end();
      if (st.nccl && in_ranks &&
          (st.exchange == exchange_state::running ||
           (st.exchange == exchange_state::done && still_needed))) {
        return fail(job, error_kind::transport_error,
                    "worker " + std::to_string(dead) +
                        " died during or after the NCCL exchange of stage '" +
                        job.plan.stages[s].name +
                        "' (NCCL-exchanged blocks are not recomputed): " + reason);
      }
      for (std::size_t p = 0; p < st.tasks.size(); ++p) {
        auto& t = st.tasks[p];
        if (t.worker != dead) continue;
        bool lost = t.st == task_state::running || (t.st == task_state::done && still_needed);
        if (!lost) continue;
        if (t.attempt + 1 >= options.max_attempts) {
          return fail(job, error_kind::transport_error,
                      "task " + std::to_string(p) + " of stage '" + job.plan.stages[s].name +
                          "' was lost with " + std::to_string(t.attempt + 1) +
                          " workers that died (last: worker " + std::to_string(dead) + ", " +
                          reason + ")");
        }
        run_again(job, st, static_cast<int>(p));
      }
    }
    for (bool changed = true; changed;) {
      changed = false;
      for (std::size_t s = 0; s < job.stages.size(); ++s) {
        auto& st = job.stages[s];
        bool reruns = std::any_of(st.tasks.begin(), st.tasks.end(),
                                  [](const task_rec& t) { return t.st == task_state::pending; });
        if (st.finished || !reruns) continue;
        for (auto in : job.plan.stages[s].inputs) {
          auto& up = job.stages[static_cast<std::size_t>(in)];
          if (!up.released) continue;
          logger().info("scheduler: job {}: stage '{}' runs again for the blocks it had released",
                        job.id, job.plan.stages[static_cast<std::size_t>(in)].name);
          up.released = false;
          up.finished = false;
          up.done = 0;
          up.exchange = exchange_state::none;
          for (std::size_t p = 0; p < up.tasks.size(); ++p) {
            auto& t = up.tasks[p];
            if (t.st == task_state::running) continue;
            t.st = task_state::pending;
            t.worker = -1;
            ++job.retried;
            up.pending.push_back(static_cast<int>(p));
          }
          changed = true;
        }
      }
    }
  }

  // ---- jobs -----------------------------------------------------------------------------------

  void submit(connection_id client, submit_job_msg m) {
    job_rec job;
    job.id = next_job++;
    job.client = client;
    job.request = m.request;
    job.started = clock_type::now();
    job.path = m.exchange;
    job.client_address = net->peer_address(client);
    job.submitted_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
    if (m.timeout_ms > 0) job.deadline = job.started + std::chrono::milliseconds(m.timeout_ms);
    try {
      auto logical = decode_plan(m.plan);
      planner_options po;
      int alive = alive_workers();
      po.partitions = std::max(1, alive) * m.partitions_per_worker;
      po.broadcast_limit_rows = m.broadcast_limit_rows;
      job.plan = plan_stages(logical, po);
      bool all_cuda = alive > 0;
      std::string cpu_workers;
      for (auto& [id, w] : workers) {
        if (!w.alive || w.info.backend == static_cast<std::uint8_t>(backend_kind::cuda)) continue;
        all_cuda = false;
        cpu_workers += (cpu_workers.empty() ? "" : ", ") + std::to_string(id);
      }
      if (m.exchange == exchange_path::nccl) {
        EMBER_EXPECTS(transport::nccl_built(), invalid_input,
                      "the NCCL exchange was requested but this scheduler was built without NCCL");
        EMBER_EXPECTS(all_cuda, invalid_input,
                      "the NCCL exchange was requested but it needs every worker on a GPU: " +
                          (alive == 0 ? std::string("no worker has registered")
                                      : "worker(s) " + cpu_workers + " run the CPU backend"));
      }
      // NCCL cannot put two ranks of one communicator on one GPU: `auto` needs every worker
      // on a GPU of its own.
      std::set<std::pair<std::string, int>> gpus;
      for (auto& [id, w] : workers)
        if (w.alive) gpus.emplace(w.info.data_host, w.info.device);
      bool own_gpus = static_cast<int>(gpus.size()) == alive;
      bool use_nccl =
          m.exchange == exchange_path::nccl || (m.exchange == exchange_path::automatic &&
                                                all_cuda && own_gpus && transport::nccl_built());
      job.stages.resize(job.plan.stages.size());
      for (std::size_t s = 0; s < job.plan.stages.size(); ++s) {
        const auto& st = job.plan.stages[s];
        job.stages[s].tasks.resize(static_cast<std::size_t>(st.partitions));
        for (int p = 0; p < st.partitions; ++p) job.stages[s].pending.push_back(p);
        job.stages[s].nccl = use_nccl && st.output.mode == exchange_mode::hash;
        for (auto in : st.inputs)
          job.stages[static_cast<std::size_t>(in)].consumers.push_back(static_cast<int>(s));
      }
      job.results.resize(static_cast<std::size_t>(job.plan.stages.back().partitions));
    } catch (const invalid_input& e) {
      job_failed_msg f;
      f.request = m.request;
      f.kind = error_kind::invalid_input;
      f.message = e.what();
      net->send(client, static_cast<std::uint16_t>(msg::job_failed), encode(f));
      return;
    }
    logger().info("scheduler: job {} ({} stages) from {}", job.id, job.plan.stages.size(),
                  net->peer_address(client));
    jobs.emplace(job.id, std::move(job));
    snapshot_due = true;
  }

  int alive_workers() const {
    int n = 0;
    for (const auto& [id, w] : workers) n += w.alive ? 1 : 0;
    return n;
  }

  bool inputs_ready(const job_rec& job, std::size_t s) const {
    for (auto in : job.plan.stages[s].inputs) {
      const auto& st = job.stages[static_cast<std::size_t>(in)];
      if (!st.finished) return false;
    }
    return true;
  }

  // Where task p's input lies, weighted by tier (placement.hpp): the residency catalog's word
  // for each block; a block it has not heard of yet (written since the last heartbeat) counts
  // as in the device tier of the worker that wrote it.
  std::map<int, std::int64_t> input_bytes(const job_rec& job, std::size_t s, int p) const {
    std::map<int, input_residency> where;
    const auto& st = job.plan.stages[s];
    for (auto in : st.inputs) {
      const auto& up = job.stages[static_cast<std::size_t>(in)];
      const auto& spec = job.plan.stages[static_cast<std::size_t>(in)].output;
      auto reduce = spec.mode == exchange_mode::hash ? static_cast<std::size_t>(p) : 0u;
      for (std::size_t m = 0; m < up.tasks.size(); ++m) {
        const auto& t = up.tasks[m];
        auto key = "block/" + std::to_string(job.id) + "/" + std::to_string(in) + "/" +
                   std::to_string(m) + "/" + std::to_string(reduce);
        auto r = catalog.find(key);
        if (r && r->worker == t.worker) {
          auto b = std::max<std::int64_t>(r->bytes, 1);
          auto& in_tier = where[r->worker];
          (r->tier == memory_tier::device ? in_tier.device
           : r->tier == memory_tier::disk ? in_tier.disk
                                          : in_tier.host) += b;
          continue;
        }
        std::int64_t b = reduce < t.done.block_bytes.size() ? t.done.block_bytes[reduce] : 0;
        where[t.worker].device += std::max<std::int64_t>(b, 1);
      }
    }
    return tier_weighted_bytes(where);
  }

  // The worker for task p of stage s: the NCCL owner of its partition when its input went
  // through an NCCL exchange; else placement.hpp's choice (input bytes, load).
  int place(const job_rec& job, std::size_t s, int p) const {
    placement_policy policy;
    policy.queue_depth_per_slot = options.queue_depth_per_slot;
    std::vector<worker_load> live;
    for (const auto& [id, w] : workers)
      if (w.alive) live.push_back({id, w.info.slots, w.assigned});
    for (auto in : job.plan.stages[s].inputs) {
      const auto& up = job.stages[static_cast<std::size_t>(in)];
      if (!up.nccl) continue;
      int owner =
          up.rank_workers[static_cast<std::size_t>(up.reduce_owner[static_cast<std::size_t>(p)])];
      for (const auto& w : live)
        if (w.id == owner) return choose_worker({}, std::span(&w, 1), policy).value_or(-1);
      return -1;
    }
    return choose_worker(input_bytes(job, s, p), live, policy).value_or(-1);
  }

  void schedule() {
    for (auto& [job_id, job] : jobs) {
      if (job.ended) continue;
      for (std::size_t s = 0; s < job.stages.size(); ++s) {
        auto& st = job.stages[s];
        if (st.finished || st.pending.empty() || !inputs_ready(job, s)) continue;
        while (!st.pending.empty()) {
          int p = st.pending.front();
          if (st.tasks[static_cast<std::size_t>(p)].st != task_state::pending) {
            st.pending.pop_front();
            continue;
          }
          int w = place(job, s, p);
          if (w < 0) break;
          st.pending.pop_front();
          dispatch(job, s, p, w);
        }
      }
    }
  }

  void dispatch(job_rec& job, std::size_t s, int p, int worker) {
    auto& st = job.stages[s];
    auto& w = workers.at(worker);
    if (!st.defined_on.count(worker)) {
      define_stage_msg d;
      d.job = job.id;
      d.stage_index = static_cast<std::int32_t>(s);
      d.body = job.plan.stages[s];
      d.blocks_on_host = !st.nccl;
      net->send(w.conn, static_cast<std::uint16_t>(msg::define_stage), encode(d));
      st.defined_on.insert(worker);
    }
    run_task_msg r;
    r.job = job.id;
    r.stage = static_cast<std::int32_t>(s);
    r.partition = p;
    auto& t = st.tasks[static_cast<std::size_t>(p)];
    r.attempt = t.attempt;
    for (auto in : job.plan.stages[s].inputs) {
      const auto& up = job.stages[static_cast<std::size_t>(in)];
      input_locations loc;
      loc.stage = in;
      for (const auto& ut : up.tasks) loc.workers.push_back(ut.worker);
      // After an NCCL exchange every block of partition p is on p's owner.
      if (up.nccl) std::fill(loc.workers.begin(), loc.workers.end(), worker);
      r.inputs.push_back(std::move(loc));
    }
    net->send(w.conn, static_cast<std::uint16_t>(msg::run_task), encode(r));
    t.st = task_state::running;
    t.worker = worker;
    ++w.assigned;
    if (!st.started) {
      st.started = true;
      st.first_start = clock_type::now();
    }
  }

  // The task that (job, stage, partition, attempt) names, when it is still running on the
  // worker at `from`; null for stale reports (an earlier attempt, a job that ended).
  task_rec* current_task(connection_id from, std::uint64_t job_id, int stage, int partition,
                         int attempt, job_rec** job_out) {
    auto* w = worker_at(from);
    auto it = jobs.find(job_id);
    if (w == nullptr || it == jobs.end()) return nullptr;
    auto& job = it->second;
    if (job.ended) return nullptr;
    if (stage < 0 || static_cast<std::size_t>(stage) >= job.stages.size()) return nullptr;
    auto& st = job.stages[static_cast<std::size_t>(stage)];
    if (partition < 0 || static_cast<std::size_t>(partition) >= st.tasks.size()) return nullptr;
    auto& t = st.tasks[static_cast<std::size_t>(partition)];
    if (t.st != task_state::running || t.worker != w->id || t.attempt != attempt) return nullptr;
    *job_out = &job;
    return &t;
  }

  void task_done(connection_id from, task_done_msg d, std::optional<table> rows) {
    job_rec* job = nullptr;
    auto* t = current_task(from, d.job, d.stage, d.partition, d.attempt, &job);
    if (auto* w = worker_at(from)) w->assigned = std::max(0, w->assigned - 1);
    if (t == nullptr) return;
    auto s = static_cast<std::size_t>(d.stage);
    bool result_stage = s + 1 == job->stages.size();
    if (result_stage) {
      EMBER_EXPECTS(rows.has_value(), invalid_input, "a result task reported no rows");
      job->results[static_cast<std::size_t>(d.partition)] = std::move(rows);
    }
    t->st = task_state::done;
    shuffle_bytes += d.fetched_bytes;
    t->done = std::move(d);
    ++tasks_done;
    auto& st = job->stages[s];
    ++st.done;
    st.last_end = clock_type::now();
    bool complete = st.done == static_cast<int>(st.tasks.size());
    // Progress goes out at most every 100 ms, and whenever a stage completes.
    if (complete || st.last_end - job->last_progress > std::chrono::milliseconds(100)) {
      job->last_progress = st.last_end;
      for (std::size_t i = 0; i < job->stages.size(); ++i) report_progress(*job, i);
    }
    if (complete) stage_complete(*job, s);
    if (std::all_of(job->stages.begin(), job->stages.end(),
                    [](const stage_rec& x) { return x.finished; }))
      finish(*job);
  }

  void stage_complete(job_rec& job, std::size_t s) {
    auto& st = job.stages[s];
    if (st.nccl && st.exchange != exchange_state::done) {
      if (st.exchange == exchange_state::none) start_exchange(job, s);
      return;
    }
    st.finished = true;
    for (auto in : job.plan.stages[s].inputs) {
      auto& up = job.stages[static_cast<std::size_t>(in)];
      if (!up.released && consumers_finished(job, static_cast<std::size_t>(in))) release(job, in);
    }
  }

  void release(job_rec& job, int stage) {
    auto& st = job.stages[static_cast<std::size_t>(stage)];
    st.released = true;
    release_msg r;
    r.job = job.id;
    r.stage = stage;
    auto body = encode(r);
    for (auto& [id, w] : workers)
      if (w.alive) net->send(w.conn, static_cast<std::uint16_t>(msg::release_blocks), body);
  }

  void start_exchange(job_rec& job, std::size_t s) {
    auto& st = job.stages[s];
    st.exchange = exchange_state::running;
    st.exchange_start = clock_type::now();
    st.rank_workers.clear();
    for (auto& [id, w] : workers)
      if (w.alive) st.rank_workers.push_back(id);
    const auto& spec = job.plan.stages[s].output;
    st.reduce_owner.clear();
    for (int r = 0; r < spec.partitions; ++r)
      st.reduce_owner.push_back(r % static_cast<int>(st.rank_workers.size()));
    nccl_exchange_msg x;
    x.job = job.id;
    x.stage = static_cast<std::int32_t>(s);
    auto id = transport::nccl_make_unique_id();
    x.unique_id.assign(id.begin(), id.end());
    x.rank_workers.assign(st.rank_workers.begin(), st.rank_workers.end());
    x.reduce_owner = st.reduce_owner;
    for (const auto& t : st.tasks) x.map_workers.push_back(t.worker);
    x.column_names = job.plan.stages[s].columns.names;
    x.column_types = job.plan.stages[s].columns.types;
    for (std::size_t rank = 0; rank < st.rank_workers.size(); ++rank) {
      x.rank = static_cast<std::int32_t>(rank);
      st.exchange_pending.insert(st.rank_workers[rank]);
      net->send(workers.at(st.rank_workers[rank]).conn,
                static_cast<std::uint16_t>(msg::nccl_exchange), encode(x));
    }
    logger().info("scheduler: job {} stage '{}': NCCL all-to-all among {} workers", job.id,
                  job.plan.stages[s].name, st.rank_workers.size());
  }

  void exchange_done(connection_id from, const nccl_exchange_done_msg& d) {
    auto* w = worker_at(from);
    auto it = jobs.find(d.job);
    if (w == nullptr || it == jobs.end() || it->second.ended) return;
    auto& job = it->second;
    auto s = static_cast<std::size_t>(d.stage);
    if (s >= job.stages.size()) return;
    auto& st = job.stages[s];
    if (st.exchange != exchange_state::running) return;
    if (!d.ok) {
      return fail(job, error_kind::transport_error,
                  "the NCCL exchange of stage '" + job.plan.stages[s].name + "' failed on worker " +
                      std::to_string(w->id) + ": " + d.message);
    }
    st.exchange_pending.erase(w->id);
    if (!st.exchange_pending.empty()) return;
    st.exchange = exchange_state::done;
    st.exchange_end = clock_type::now();
    // The all-to-all moved every block of the stage.
    for (const auto& t : st.tasks) shuffle_bytes += t.done.bytes;
    stage_complete(job, s);
  }

  void report_progress(job_rec& job, std::size_t s) {
    auto& st = job.stages[s];
    if (st.done == st.reported || !st.started) return;
    st.reported = st.done;
    job_progress_msg m;
    m.request = job.request;
    m.stage = job.plan.stages[s].name;
    m.done = st.done;
    m.total = static_cast<std::int64_t>(st.tasks.size());
    net->send(job.client, static_cast<std::uint16_t>(msg::job_progress), encode(m));
    publish(jobs_topic, "{\"event\": \"progress\", \"job\": " + std::to_string(job.id) +
                            ", \"stage\": " + json_quote(m.stage) +
                            ", \"done\": " + std::to_string(m.done) +
                            ", \"total\": " + std::to_string(m.total) + "}");
  }

  void task_failed(connection_id from, const task_failed_msg& f) {
    job_rec* job = nullptr;
    auto* t = current_task(from, f.job, f.stage, f.partition, f.attempt, &job);
    if (auto* w = worker_at(from)) w->assigned = std::max(0, w->assigned - 1);
    if (t == nullptr) return;
    const auto& name = job->plan.stages[static_cast<std::size_t>(f.stage)].name;
    publish(failures_topic, "{\"event\": \"task_failed\", \"job\": " + std::to_string(f.job) +
                                ", \"stage\": " + json_quote(name) +
                                ", \"partition\": " + std::to_string(f.partition) +
                                ", \"attempt\": " + std::to_string(f.attempt) +
                                ", \"worker\": " + std::to_string(worker_of.at(from)) +
                                ", \"input_lost\": " + (f.input_lost ? "true" : "false") +
                                ", \"message\": " + json_quote(f.message) + "}");
    if (!f.lost_blocks.empty()) rerun_lost_blocks(*job, f);
    if (f.input_lost && ++t->lost_inputs <= options.max_attempts * 4) {
      // Its inputs died with a worker; they are recomputed, then it runs again.
      t->st = task_state::pending;
      t->worker = -1;
      ++t->attempt;
      ++job->retried;
      job->stages[static_cast<std::size_t>(f.stage)].pending.push_back(f.partition);
      return;
    }
    fail(*job, f.kind,
         "task " + std::to_string(f.partition) + " of stage '" + name + "' failed on worker " +
             std::to_string(worker_of.at(from)) + ": " + f.message);
  }

  // Sends task `index` of stage `st` back to the queue, as a new attempt: it was running on a
  // worker that died, or its output (once done) is gone.
  void run_again(job_rec& job, stage_rec& st, int index) {
    auto& t = st.tasks[static_cast<std::size_t>(index)];
    if (t.st == task_state::done) {
      --st.done;
      st.finished = false;
      st.exchange = exchange_state::none;
    }
    t.st = task_state::pending;
    t.worker = -1;
    ++t.attempt;
    ++job.retried;
    st.pending.push_back(index);
  }

  // Blocks a worker lost (a damaged spill file): the map tasks that wrote them run again, so
  // their consumers can.
  void rerun_lost_blocks(job_rec& job, const task_failed_msg& f) {
    for (auto [stage, map] : f.lost_blocks) {
      if (stage < 0 || static_cast<std::size_t>(stage) >= job.stages.size()) continue;
      auto& st = job.stages[static_cast<std::size_t>(stage)];
      if (map < 0 || static_cast<std::size_t>(map) >= st.tasks.size()) continue;
      auto& t = st.tasks[static_cast<std::size_t>(map)];
      if (t.st != task_state::done) continue;
      logger().warn("scheduler: job {}: task {} of stage '{}' runs again: its output was lost ({})",
                    job.id, map, job.plan.stages[static_cast<std::size_t>(stage)].name, f.message);
      run_again(job, st, map);
      if (t.attempt >= options.max_attempts) {
        return fail(job, f.kind,
                    "the output of task " + std::to_string(map) + " of stage '" +
                        job.plan.stages[static_cast<std::size_t>(stage)].name + "' was lost " +
                        std::to_string(t.attempt) + " times; last: " + f.message);
      }
    }
  }

  void finish(job_rec& job) {
    job_result_msg m;
    m.request = job.request;
    m.retried_tasks = job.retried;
    auto& metrics = m.metrics;
    for (std::size_t s = 0; s < job.stages.size(); ++s) {
      const auto& st = job.stages[s];
      stage_metrics sm;
      sm.name = job.plan.stages[s].name;
      sm.tasks = static_cast<int>(st.tasks.size());
      sm.seconds = st.started ? seconds_between(st.first_start, st.last_end) : 0.0;
      std::map<int, std::pair<double, double>> fetching;  // worker -> (first start, last end)
      // (from, to) -> bytes and (first request, last arrival), on the fetching worker's clock.
      struct link_span {
        std::int64_t bytes = 0;
        double start = 0, end = 0;
      };
      std::map<std::pair<int, int>, link_span> links;
      for (const auto& t : st.tasks) {
        if (t.done.fetched_bytes > 0) {
          sm.bytes_fetched += t.done.fetched_bytes;
          auto [it, fresh] = fetching.try_emplace(t.worker, t.done.fetch_start, t.done.fetch_end);
          if (!fresh) {
            it->second.first = std::min(it->second.first, t.done.fetch_start);
            it->second.second = std::max(it->second.second, t.done.fetch_end);
          }
        }
        for (const auto& f : t.done.fetch_sources) {
          auto& link =
              links.try_emplace({f.worker, t.worker}, link_span{0, f.start, f.end}).first->second;
          link.bytes += f.bytes;
          link.start = std::min(link.start, f.start);
          link.end = std::max(link.end, f.end);
        }
        sm.rows_out += t.done.rows;
        sm.bytes_out += t.done.bytes;
        sm.partitions_skipped += t.done.partitions_skipped;
        metrics.input_rows += t.done.input_rows;
        metrics.input_bytes += t.done.input_bytes;
        for (const auto& l : t.done.labels) add_label(metrics.labels, l.label, l.rows, l.bytes);
      }
      for (const auto& [w, span] : fetching)
        sm.fetch_seconds = std::max(sm.fetch_seconds, span.second - span.first);
      if (st.nccl && st.exchange == exchange_state::done) {
        // The NCCL all-to-all moved every block of this stage (its own rank's included); it has
        // no per-link view, so the stage has no links.
        sm.bytes_fetched = sm.bytes_out;
        sm.fetch_seconds = seconds_between(st.exchange_start, st.exchange_end);
      }
      if (!st.nccl) {
        for (const auto& [pair, span] : links) {
          if (span.bytes == 0) continue;
          sm.links.push_back({pair.first, pair.second, span.bytes, span.end - span.start});
        }
      }
      metrics.stages.push_back(std::move(sm));
    }
    std::vector<table_view> views;
    for (const auto& r : job.results) views.push_back(r->view());
    auto result = concatenate_host(views, job.plan.result);
    job.results.clear();
    metrics.seconds = seconds_between(job.started, clock_type::now());
    auto owner = std::make_shared<const table>(std::move(result));
    net->send_table(job.client, static_cast<std::uint16_t>(msg::job_result), encode(m),
                    transport::describe_table(owner->view(), owner));
    logger().info("scheduler: job {} done in {:.3f} s: {} rows, {} tasks retried", job.id,
                  metrics.seconds, owner->num_rows(), job.retried);
    publish(jobs_topic, "{\"event\": \"done\", \"job\": " + std::to_string(job.id) +
                            ", \"seconds\": " + std::to_string(metrics.seconds) +
                            ", \"rows\": " + std::to_string(owner->num_rows()) +
                            ", \"retried_tasks\": " + std::to_string(job.retried) + "}");
    remember(job, "done", "");
    end_job(job, false);
  }

  void send_failure(job_rec& job, error_kind kind, const std::string& message) {
    publish(jobs_topic, "{\"event\": \"failed\", \"job\": " + std::to_string(job.id) +
                            ", \"message\": " + json_quote(message) + "}");
    job_failed_msg f;
    f.request = job.request;
    f.kind = kind;
    f.message = message;
    net->send(job.client, static_cast<std::uint16_t>(msg::job_failed), encode(f));
  }

  void fail(job_rec& job, error_kind kind, const std::string& message) {
    logger().warn("scheduler: job {} failed: {}", job.id, message);
    send_failure(job, kind, message);
    remember(job, "failed", message);
    end_job(job, true);
  }

  // The client is gone: no answer, just clean up.
  void abandon(job_rec& job) {
    remember(job, "cancelled", "its client disconnected");
    end_job(job, true);
  }

  void end_job(job_rec& job, bool cancel) {
    release_msg r;
    r.job = job.id;
    r.stage = -1;
    r.cancel = cancel;
    auto body = encode(r);
    for (auto& [id, w] : workers)
      if (w.alive) net->send(w.conn, static_cast<std::uint16_t>(msg::release_blocks), body);
    // Tasks of the job still running keep their workers' slots until they report.
    ++finished_jobs;
    job.ended = true;
    snapshot_due = true;
  }

  void check_jobs() {
    auto now = clock_type::now();
    bool none_alive = alive_workers() == 0;
    for (auto& [id, job] : jobs) {
      if (job.ended) continue;
      if (job.deadline && now > *job.deadline) {
        fail(job, error_kind::timeout, "the job did not finish within its timeout");
        continue;
      }
      if (!none_alive) {
        job.workerless_since.reset();
        continue;
      }
      if (!job.workerless_since) job.workerless_since = now;
      if (now - *job.workerless_since > options.no_worker_timeout) {
        fail(job, error_kind::transport_error,
             "no live worker for " + std::to_string(options.no_worker_timeout.count()) +
                 " ms: start workers with `ember worker --scheduler " + host + ":" +
                 std::to_string(bound_port) + "`");
      }
    }
    std::erase_if(jobs, [](const auto& j) { return j.second.ended; });
  }

  // ---- the residency catalog and the named cache ------------------------------------------------

  void apply_residency(int worker, heartbeat_msg& h) {
    std::vector<residency_record> records;
    records.reserve(h.changed.size());
    for (auto& e : h.changed) {
      records.push_back(residency_record{std::move(e.key), worker, static_cast<memory_tier>(e.tier),
                                         e.bytes, e.rows, e.pins, e.last_use_ms});
    }
    if (h.residency_full) {
      catalog.replace_worker(worker, std::move(records));
    } else {
      catalog.update(worker, std::move(records), h.removed);
    }
    // The batch is applied; `last` keeps the counters only.
    h.changed.clear();
    h.removed.clear();
  }

  cache_entry_info entry_info(const residency_record& r, std::string key) const {
    cache_entry_info e;
    e.key = std::move(key);
    e.worker = r.worker;
    auto w = workers.find(r.worker);
    if (w != workers.end()) e.worker_name = w->second.info.name;
    e.tier = static_cast<std::uint8_t>(r.tier);
    e.bytes = r.bytes;
    e.rows = r.rows;
    e.pins = r.pins;
    e.last_use_ms = r.last_use_ms;
    return e;
  }

  void reply_cache(connection_id to, const cache_reply_msg& reply,
                   std::optional<table> rows = std::nullopt) {
    if (rows) {
      auto owned = std::make_shared<const table>(std::move(*rows));
      net->send_table(to, static_cast<std::uint16_t>(msg::cache_reply), encode(reply),
                      transport::describe_table(owned->view(), owned));
    } else {
      net->send(to, static_cast<std::uint16_t>(msg::cache_reply), encode(reply));
    }
  }

  void reply_cache_error(connection_id to, std::uint64_t request, error_kind kind,
                         std::string message) {
    cache_reply_msg r;
    r.request = request;
    r.ok = false;
    r.kind = kind;
    r.message = std::move(message);
    reply_cache(to, r);
  }

  // The live worker with the most room in its device tier (as its last heartbeat said).
  int worker_for_put() const {
    int best = -1;
    std::uint64_t best_room = 0;
    for (const auto& [id, w] : workers) {
      if (!w.alive) continue;
      std::uint64_t room = std::numeric_limits<std::uint64_t>::max() / 2;
      if (!w.last.store.tiers.empty()) {
        const auto& d = w.last.store.tiers.front();
        if (d.limit != 0) room = d.limit > d.used ? d.limit - d.used : 0;
      }
      // Ties (unlimited tiers): the worker holding the fewest cached bytes.
      std::uint64_t cached = 0;
      for (const auto& r : catalog.with_prefix(residency_catalog::cache_prefix))
        if (r.worker == id) cached += static_cast<std::uint64_t>(r.bytes);
      room -= std::min(room, cached);
      if (best < 0 || room > best_room) {
        best = id;
        best_room = room;
      }
    }
    return best;
  }

  void forward_cache(connection_id client, const cache_request_msg& m, int worker,
                     std::optional<table> rows) {
    auto id = next_forward++;
    forwarded_cache_request f;
    f.client = client;
    f.client_request = m.request;
    f.op = m.op;
    f.key = m.key;
    f.worker = worker;
    f.deadline = clock_type::now() + cache_forward_timeout;
    cache_request_msg out = m;
    out.request = id;
    auto& w = workers.at(worker);
    if (rows) {
      f.rows = rows->num_rows();
      auto owned = std::make_shared<const table>(std::move(*rows));
      f.bytes = static_cast<std::int64_t>(transport::body_bytes(owned->view()));
      net->send_table(w.conn, static_cast<std::uint16_t>(msg::cache_request), encode(out),
                      transport::describe_table(owned->view(), owned));
    } else {
      net->send(w.conn, static_cast<std::uint16_t>(msg::cache_request), encode(out));
    }
    forwarded[id] = std::move(f);
  }

  // A client's request of the named cache or the catalog.
  void cache_request(connection_id from, const cache_request_msg& m, std::optional<table> rows) {
    EMBER_EXPECTS(worker_of.find(from) == worker_of.end(), invalid_input,
                  "cache requests come from clients, not workers");
    auto key = std::string(residency_catalog::cache_prefix) + m.key;
    auto live = catalog.find(key);
    switch (m.op) {
      case cache_op::put: {
        if (!rows)
          return reply_cache_error(from, m.request, error_kind::invalid_input,
                                   "a cache put carries a table");
        if (m.key.empty())
          return reply_cache_error(from, m.request, error_kind::invalid_input,
                                   "a cache key may not be empty");
        int worker = live ? live->worker : worker_for_put();
        if (worker < 0)
          return reply_cache_error(from, m.request, error_kind::transport_error,
                                   "no live worker to hold cache entry '" + m.key + "'");
        return forward_cache(from, m, worker, std::move(rows));
      }
      case cache_op::get:
      case cache_op::erase: {
        if (!live) {
          auto lost = catalog.lost_reason(key);
          if (lost && m.op == cache_op::get) {
            return reply_cache_error(from, m.request, error_kind::data_lost,
                                     "cache entry '" + m.key + "' is lost: " + *lost);
          }
          cache_reply_msg r;
          r.request = m.request;
          r.found = lost.has_value();
          catalog.forget_lost(key);
          return reply_cache(from, r);
        }
        return forward_cache(from, m, live->worker, std::nullopt);
      }
      case cache_op::list:
      case cache_op::residency: {
        cache_reply_msg r;
        r.request = m.request;
        r.found = true;
        auto prefix = m.op == cache_op::list ? residency_catalog::cache_prefix : "";
        for (const auto& rec : catalog.with_prefix(prefix))
          r.entries.push_back(entry_info(rec, rec.key.substr(prefix.size())));
        for (auto& [k, why] : catalog.lost_with_prefix(residency_catalog::cache_prefix)) {
          cache_entry_info e;
          e.key = m.op == cache_op::list ? k.substr(prefix.size()) : k;
          e.lost = true;
          e.lost_reason = why;
          r.entries.push_back(std::move(e));
        }
        std::sort(r.entries.begin(), r.entries.end(),
                  [](const auto& a, const auto& b) { return a.key < b.key; });
        return reply_cache(from, r);
      }
    }
  }

  // A worker's answer to a forwarded cache request: the catalog learns of it at once (a get
  // right after a put must find the entry), and the client gets the answer.
  void cache_answer(connection_id from, cache_reply_msg m, std::optional<table> rows) {
    auto* w = worker_at(from);
    EMBER_EXPECTS(w != nullptr, invalid_input, "a cache reply from a connection that is no worker");
    auto it = forwarded.find(m.request);
    if (it == forwarded.end()) return;  // timed out meanwhile
    auto f = std::move(it->second);
    forwarded.erase(it);
    auto key = std::string(residency_catalog::cache_prefix) + f.key;
    if (m.ok && f.op == cache_op::put) {
      residency_record r{key,
                         w->id,
                         memory_tier::host,
                         f.bytes,
                         f.rows,
                         0,
                         std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count()};
      if (m.entries.size() == 1) r.tier = static_cast<memory_tier>(m.entries.front().tier);
      catalog.update(w->id, {r}, {});
      m.worker = w->id;
    }
    if (m.ok && f.op == cache_op::erase) catalog.update(w->id, {}, {key});
    m.request = f.client_request;
    reply_cache(f.client, m, std::move(rows));
  }

  void fail_forwarded_to(int worker, const std::string& why) {
    for (auto it = forwarded.begin(); it != forwarded.end();) {
      if (it->second.worker != worker) {
        ++it;
        continue;
      }
      reply_cache_error(
          it->second.client, it->second.client_request,
          it->second.op == cache_op::get ? error_kind::data_lost : error_kind::transport_error,
          "cache entry '" + it->second.key + "': " + why);
      it = forwarded.erase(it);
    }
  }

  void expire_forwarded() {
    auto now = clock_type::now();
    for (auto it = forwarded.begin(); it != forwarded.end();) {
      if (now < it->second.deadline) {
        ++it;
        continue;
      }
      reply_cache_error(it->second.client, it->second.client_request, error_kind::timeout,
                        "worker " + std::to_string(it->second.worker) +
                            " did not answer for cache entry '" + it->second.key + "' within " +
                            std::to_string(cache_forward_timeout.count()) + " s");
      it = forwarded.erase(it);
    }
  }

  // ---- the metrics endpoint --------------------------------------------------------------------

  void start_metrics() {
    publish_snapshot(clock_type::now());  // there is always one to read
    http_endpoint_options ho;
    ho.listen = options.metrics_listen;
    ho.token = options.token;
    ho.name = "the scheduler's metrics endpoint";
    std::vector<http_route> routes;
    routes.push_back({"/metrics", [this] {
                        auto now = clock_type::now();
                        return http_response{
                            200, prometheus_content_type,
                            render_scheduler_metrics(*current_snapshot(), coordination_now(), now)};
                      }});
    routes.push_back({"/api/cluster", [this] {
                        auto now = clock_type::now();
                        return http_response{
                            200, "application/json",
                            render_cluster_json(*current_snapshot(), coordination_now(), now)};
                      }});
    routes.push_back(
        {"/", [] {
           return http_response{200, "text/html; charset=utf-8", std::string(dashboard_page())};
         }});
    routes.push_back({"/healthz",
                      [] {
                        return http_response{200, "text/plain; charset=utf-8", "ok\n"};
                      },
                      true});
    try {
      metrics = std::make_unique<http_endpoint>(ho, routes);
    } catch (const transport_error& e) {
      if (!options.metrics_port_fallback) throw;
      // A default address: another port, else no endpoint (a host whose loopback is down, say)
      // rather than no scheduler.
      auto where = transport::parse_host_port(options.metrics_listen);
      auto h = where.host.find(':') != std::string::npos ? "[" + where.host + "]" : where.host;
      ho.listen = h + ":0";
      try {
        metrics = std::make_unique<http_endpoint>(ho, routes);
      } catch (const transport_error& again) {
        logger().warn("scheduler: no metrics endpoint: {}", again.what());
        return;
      }
      logger().warn("scheduler: {} is taken, the metrics endpoint is on {} instead",
                    options.metrics_listen, metrics->url());
    }
    logger().info("scheduler: metrics and dashboard on {}{}", metrics->url(),
                  metrics->token_required() ? " (cluster token required)" : "");
  }

  std::shared_ptr<const cluster_snapshot> current_snapshot() {
    std::lock_guard lock(snapshot_mutex);
    return snapshot;
  }

  coordination_snapshot coordination_now() {
    std::lock_guard lock(coordination_mutex);
    return {coordination->locks(), coordination->queues()};
  }

  void publish_snapshot_when_due() {
    auto now = clock_type::now();
    if (!snapshot_due && now - last_snapshot < snapshot_interval) return;
    publish_snapshot(now);
  }

  void publish_snapshot(clock_type::time_point now) {
    auto s = std::make_shared<cluster_snapshot>();
    s->scheduler = host + ":" + std::to_string(bound_port);
    s->taken = now;
    for (const auto& [id, w] : workers) {
      worker_snapshot ws;
      ws.id = id;
      ws.name = w.info.name;
      ws.address = w.info.data_host + ":" + std::to_string(w.info.data_port);
      ws.backend = w.info.backend == static_cast<std::uint8_t>(backend_kind::cuda) ? "cuda" : "cpu";
      ws.device = w.info.device;
      ws.description = w.info.description;
      ws.alive = w.alive;
      ws.last_heartbeat = w.last_heartbeat;
      ws.slots = w.info.slots;
      ws.assigned = w.assigned;
      ws.running = w.last.running;
      ws.queued = w.last.queued;
      ws.held_back = w.last.held_back;
      ws.store = w.last.store;
      s->workers.push_back(std::move(ws));
    }
    for (const auto& [id, job] : jobs) {
      if (job.ended) continue;
      s->running_jobs.push_back(describe(job, "running", "", now));
      for (const auto& st : job.stages) {
        for (const auto& t : st.tasks) {
          s->tasks_running += t.st == task_state::running ? 1 : 0;
          s->tasks_queued += t.st == task_state::pending ? 1 : 0;
        }
      }
    }
    s->recent_jobs.assign(recent_jobs.begin(), recent_jobs.end());
    s->jobs_finished = finished_jobs;
    s->jobs_failed = failed_jobs;
    s->tasks_done = tasks_done;
    s->shuffle_bytes = shuffle_bytes;
    s->transport_errors = transport_errors;
    s->catalog_partitions = static_cast<std::int64_t>(catalog.size());
    auto cached = catalog.with_prefix(residency_catalog::cache_prefix);
    s->cache_entries_total = static_cast<std::int64_t>(cached.size());
    for (const auto& r : cached) {
      if (s->cache_entries.size() == max_cache_entries) break;
      s->cache_entries.push_back({r.key.substr(residency_catalog::cache_prefix.size()), r.worker,
                                  std::string(to_string(r.tier)), r.bytes, r.rows, r.pins});
    }
    {
      std::lock_guard lock(snapshot_mutex);
      snapshot = std::move(s);
    }
    last_snapshot = now;
    snapshot_due = false;
  }

  job_snapshot describe(const job_rec& job, std::string state, std::string message,
                        clock_type::time_point now) const {
    job_snapshot j;
    j.id = job.id;
    j.state = std::move(state);
    j.message = std::move(message);
    j.client = job.client_address;
    j.seconds = seconds_between(job.started, now);
    j.started_unix_ms = job.submitted_unix_ms;
    for (std::size_t s = 0; s < job.stages.size(); ++s) {
      const auto& st = job.stages[s];
      stage_snapshot ss;
      ss.name = s < job.plan.stages.size() ? job.plan.stages[s].name : "stage " + std::to_string(s);
      ss.done = st.done;
      ss.total = static_cast<std::int64_t>(st.tasks.size());
      ss.running = std::count_if(st.tasks.begin(), st.tasks.end(),
                                 [](const task_rec& t) { return t.st == task_state::running; });
      ss.state = st.finished ? "done" : st.started ? "running" : "waiting";
      j.stages.push_back(std::move(ss));
    }
    return j;
  }

  // A job that ended, for the dashboard's list of recent jobs.
  void remember(const job_rec& job, std::string state, std::string message) {
    if (state != "done") ++failed_jobs;
    if (!metrics) return;
    recent_jobs.push_front(describe(job, std::move(state), std::move(message), clock_type::now()));
    if (recent_jobs.size() > max_recent_jobs) recent_jobs.pop_back();
  }

  void send_status(connection_id to, std::uint64_t request) {
    status_reply_msg s;
    s.request = request;
    s.scheduler = "ember scheduler on " + host + ":" + std::to_string(bound_port) + " (" +
                  net->describe() + ")";
    auto now = clock_type::now();
    for (const auto& [id, w] : workers) {
      worker_status ws;
      ws.info = w.info;
      ws.id = id;
      ws.address = w.address;
      ws.alive = w.alive;
      ws.heartbeat_age_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - w.last_heartbeat).count();
      ws.last = w.last;
      ws.assigned = w.assigned;
      s.workers.push_back(std::move(ws));
    }
    s.running_jobs = static_cast<std::int32_t>(jobs.size());
    s.finished_jobs = finished_jobs;
    s.tasks_done = tasks_done;
    net->send(to, static_cast<std::uint16_t>(msg::status_reply), encode(s));
  }
};

scheduler_service::scheduler_service(const scheduler_service_options& options)
    : _impl(std::make_unique<impl>(options)) {}

scheduler_service::~scheduler_service() { stop(); }

void scheduler_service::run(std::stop_token stop) {
  while (!stop.stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

void scheduler_service::stop() noexcept {
  if (_impl) _impl->stop();
}

int scheduler_service::port() const noexcept { return _impl->bound_port; }

std::string scheduler_service::metrics_url() const {
  return _impl->metrics ? _impl->metrics->url() : std::string();
}

std::string scheduler_service::recovery() const { return _impl->coordination->recovery(); }

std::string scheduler_service::address() const {
  return _impl->host + ":" + std::to_string(_impl->bound_port);
}

}  // namespace ember
