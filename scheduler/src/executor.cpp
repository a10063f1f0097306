#include <algorithm>
#include <condition_variable>
#include <deque>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <ember/scheduler/block_store.hpp>
#include <ember/scheduler/executor.hpp>
#include <ember/scheduler/table_bytes.hpp>
#include <future>
#include <mutex>
#include <stop_token>
#include <thread>

#include "detail/host_tables.hpp"
#include "detail/task_runner.hpp"

namespace ember {
namespace {

using clock_type = std::chrono::steady_clock;
// The longest any wait in the executor sleeps before it looks at the world again.
constexpr auto poll_interval = std::chrono::milliseconds(50);

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct stage_state {
  int inputs_left = 0;     // input stages not finished yet
  int consumers_left = 0;  // stages reading this one that have not finished
  int tasks_total = 0;
  int tasks_done = 0;
  int reported_done = -1;
  bool queued = false;
  bool finished = false;
  bool started = false;
  clock_type::time_point first_start{}, last_end{};
  size_type rows_out = 0;
  size_type bytes_out = 0;
  size_type partitions_skipped = 0;
};

// Everything one job owns. The worker contexts come first so that they are destroyed last:
// blocks and results hold memory that their accounted resources must free.
struct job_state {
  std::vector<std::shared_ptr<context>> contexts;
  physical_plan plan;
  std::vector<std::vector<int>> node_partitions;  // per stage, per body node
  bool blocks_on_host = false;
  block_store blocks;
  std::stop_source stop;

  std::mutex mutex;  // guards everything below
  std::condition_variable cv;
  std::vector<stage_state> stages;
  std::vector<block> results;  // one per partition of the last stage
  std::exception_ptr error;
  int outstanding = 0;  // tasks queued or running
  bool changed = false;
  std::vector<label_metrics> labels;
  size_type input_rows = 0;
  size_type input_bytes = 0;
  size_type peak_block_bytes = 0;

  void fail(std::exception_ptr e) noexcept {
    {
      std::lock_guard lock(mutex);
      if (!error) error = std::move(e);
      changed = true;
    }
    stop.request_stop();
    cv.notify_all();
  }
  void add_label(const std::string& label, size_type rows, size_type bytes) {
    std::lock_guard lock(mutex);
    detail::add_label(labels, label, rows, bytes);
  }
  void add_input(size_type rows, size_type bytes) {
    std::lock_guard lock(mutex);
    input_rows += rows;
    input_bytes += bytes;
  }
};

struct task {
  std::shared_ptr<job_state> job;
  int stage = 0;
  int partition = 0;
};

// The executor's side of a task: blocks in the job's in-process store, results in the job.
class local_task_io final : public detail::task_io {
 public:
  local_task_io(job_state& job, int stage, int partition)
      : _job(job), _stage(stage), _partition(partition) {}
  std::vector<block> exchange_input(int stage, int reduce_partition) override {
    return _job.blocks.reduce_input(stage, reduce_partition);
  }
  void put_block(int reduce_partition, block b) override {
    _job.blocks.put({_stage, _partition, reduce_partition}, std::move(b));
  }
  void put_result(block b) override {
    std::lock_guard lock(_job.mutex);
    _job.results[static_cast<std::size_t>(_partition)] = std::move(b);
  }
  bool stop_requested() const override { return _job.stop.stop_requested(); }
  void add_label(const std::string& label, size_type rows, size_type bytes) override {
    _job.add_label(label, rows, bytes);
  }
  void add_input(size_type rows, size_type bytes) override { _job.add_input(rows, bytes); }
  bool blocks_on_host() const override { return _job.blocks_on_host; }

 private:
  job_state& _job;
  int _stage;
  int _partition;
};

void run_local_task(context& ctx, int device, job_state& job, int stage_index, int partition) {
  local_task_io io(job, stage_index, partition);
  const auto& s = job.plan.stages[static_cast<std::size_t>(stage_index)];
  auto out = detail::run_task(
      ctx, device, s, job.node_partitions[static_cast<std::size_t>(stage_index)], partition, io);
  std::lock_guard lock(job.mutex);
  auto& st = job.stages[static_cast<std::size_t>(stage_index)];
  st.rows_out += out.rows;
  st.bytes_out += out.bytes;
  st.partitions_skipped += out.partitions_skipped;
}

void validate(const physical_plan& job) {
  EMBER_EXPECTS(!job.stages.empty(), invalid_input, "the physical plan has no stages");
  for (std::size_t s = 0; s < job.stages.size(); ++s) {
    const auto& st = job.stages[s];
    bool last = s + 1 == job.stages.size();
    EMBER_EXPECTS((st.output.mode == exchange_mode::result) == last, invalid_input,
                  "stage " + std::to_string(s) + ": only the last stage returns the result");
    EMBER_EXPECTS(st.partitions >= 1, invalid_input,
                  "stage " + std::to_string(s) + " has no partitions");
    EMBER_EXPECTS(st.output.mode != exchange_mode::hash ||
                      (st.output.partitions >= 1 && !st.output.keys.empty()),
                  invalid_input, "stage " + std::to_string(s) + ": malformed hash exchange");
    for (auto in : st.inputs)
      EMBER_EXPECTS(in >= 0 && static_cast<std::size_t>(in) < s, invalid_input,
                    "stage " + std::to_string(s) + " reads stage " + std::to_string(in) +
                        ", which does not come before it");
  }
}

struct worker {
  context_options options;
  std::shared_ptr<context> ctx;
  std::string description;
  std::thread thread;
};

// How many CUDA devices this process can use. The probe runs on a thread of its own, so that
// the caller's current device is left alone.
int probe_cuda_devices() {
  int count = 0;
  std::thread probe([&count] {
    for (int d = 0; d < 16; ++d) {
      try {
        context_options o;
        o.backend = backend_choice::cuda;
        o.device = d;
        o.name = "device probe";
        (void)context::create(o);
        count = d + 1;
      } catch (...) {
        break;
      }
    }
  });
  probe.join();
  return std::max(count, 1);
}

}  // namespace

struct executor::impl {
  executor_options options;
  std::vector<std::unique_ptr<worker>> workers;
  bool blocks_on_host = false;

  std::mutex mutex;  // guards queue, stopping, stopped
  std::condition_variable cv;
  std::deque<task> queue;
  bool stopping = false;
  bool stopped = false;

  explicit impl(const executor_options& o) : options(o) {
    EMBER_EXPECTS(o.workers >= 0, invalid_input,
                  "negative worker count " + std::to_string(o.workers));
    EMBER_EXPECTS(o.cpu_threads >= 0, invalid_input,
                  "negative CPU thread count " + std::to_string(o.cpu_threads));
    bool use_cuda = o.backend == backend_choice::cuda ||
                    (o.backend == backend_choice::automatic && cuda_available());
    if (o.backend == backend_choice::cuda && !cuda_available()) {
      throw invalid_input("the cuda backend was requested but is unavailable: " +
                          cuda_unavailable_reason());
    }
    int devices = use_cuda ? probe_cuda_devices() : 0;
    int count = o.workers > 0 ? o.workers : (use_cuda ? devices : 2);
    int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    int threads = o.cpu_threads > 0 ? o.cpu_threads : std::max(1, hardware / count);
    for (int i = 0; i < count; ++i) {
      auto w = std::make_unique<worker>();
      w->options.backend = use_cuda ? backend_choice::cuda : backend_choice::cpu;
      w->options.device = use_cuda ? i % devices : 0;
      w->options.device_memory_limit = o.device_memory_limit;
      w->options.fast_paths = o.fast_paths;
      w->options.cpu_threads = use_cuda ? 0 : threads;
      w->options.name = "worker " + std::to_string(i);
      workers.push_back(std::move(w));
    }
    blocks_on_host = use_cuda && devices > 1 && count > 1;
    start();
  }

  void start() {
    std::vector<std::future<void>> ready;
    for (auto& w : workers) {
      auto promise = std::make_shared<std::promise<void>>();
      ready.push_back(promise->get_future());
      w->thread = std::thread([this, w = w.get(), promise] { worker_main(*w, *promise); });
    }
    std::exception_ptr first;
    auto deadline = clock_type::now() + options.startup_timeout;
    for (std::size_t i = 0; i < ready.size(); ++i) {
      if (ready[i].wait_until(deadline) != std::future_status::ready) {
        if (!first) {
          first = std::make_exception_ptr(
              timeout("worker " + std::to_string(i) + " did not start within " +
                      std::to_string(options.startup_timeout.count()) + " ms"));
        }
        continue;
      }
      try {
        ready[i].get();
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) {
      stop();
      std::rethrow_exception(first);
    }
  }

  void worker_main(worker& w, std::promise<void>& ready) noexcept {
    try {
      w.ctx = context::create(w.options);
      w.description = w.options.name + ": " + w.ctx->description();
      logger().info("{} started", w.description);
      ready.set_value();
    } catch (...) {
      ready.set_exception(std::current_exception());
      return;
    }
    try {
      for (;;) {
        task t;
        {
          std::unique_lock lock(mutex);
          while (!stopping && queue.empty()) cv.wait_for(lock, poll_interval);
          if (stopping) return;
          t = std::move(queue.front());
          queue.pop_front();
        }
        execute(w, t);
      }
    } catch (const std::exception& e) {
      // Only the queue's own machinery can get here (tasks catch everything): log and stop.
      logger().error("{} stopped: {}", w.options.name, e.what());
    } catch (...) {
      logger().error("{} stopped on an unknown exception", w.options.name);
    }
  }

  static void execute(worker& w, task& t) noexcept {
    auto& job = *t.job;
    auto start = clock_type::now();
    if (!job.stop.stop_requested()) {
      try {
        run_local_task(*w.ctx, w.options.device, job, t.stage, t.partition);
      } catch (...) {
        job.fail(std::current_exception());
      }
    }
    auto end = clock_type::now();
    auto held = job.blocks.bytes();
    {
      std::lock_guard lock(job.mutex);
      auto& st = job.stages[static_cast<std::size_t>(t.stage)];
      if (!st.started || start < st.first_start) st.first_start = start;
      st.started = true;
      st.last_end = std::max(st.last_end, end);
      ++st.tasks_done;
      --job.outstanding;
      job.peak_block_bytes = std::max(job.peak_block_bytes, held);
      job.changed = true;
    }
    job.cv.notify_all();
  }

  // Queues the tasks of every stage whose inputs are done. Caller holds job.mutex.
  void enqueue_ready(const std::shared_ptr<job_state>& job) {
    std::vector<task> batch;
    for (std::size_t s = 0; s < job->stages.size(); ++s) {
      auto& st = job->stages[s];
      if (st.queued || st.inputs_left > 0) continue;
      st.queued = true;
      for (int p = 0; p < st.tasks_total; ++p) batch.push_back(task{job, static_cast<int>(s), p});
    }
    if (batch.empty()) return;
    {
      std::lock_guard lock(mutex);
      if (stopping) {
        if (!job->error) job->error = std::make_exception_ptr(cancelled("the executor shut down"));
        job->stop.request_stop();
        return;
      }
      job->outstanding += static_cast<int>(batch.size());
      for (auto& t : batch) queue.push_back(std::move(t));
    }
    cv.notify_all();
  }

  // Drops the job's queued tasks (after a failure). Caller holds job.mutex.
  void drop_queued(job_state& job) {
    std::lock_guard lock(mutex);
    auto it = std::remove_if(queue.begin(), queue.end(), [&](const task& t) {
      if (t.job.get() != &job) return false;
      --job.outstanding;
      ++job.stages[static_cast<std::size_t>(t.stage)].tasks_done;
      return true;
    });
    queue.erase(it, queue.end());
  }

  job_result run(const physical_plan& plan, const run_options& ro) {
    validate(plan);
    {
      std::lock_guard lock(mutex);
      if (stopping) throw cancelled("the executor was shut down");
    }
    auto started = clock_type::now();
    auto job = std::make_shared<job_state>();
    for (auto& w : workers) job->contexts.push_back(w->ctx);
    job->plan = plan;
    job->blocks_on_host = blocks_on_host;
    job->stages.resize(plan.stages.size());
    for (std::size_t s = 0; s < plan.stages.size(); ++s) {
      const auto& st = plan.stages[s];
      job->node_partitions.push_back(detail::node_partitions_of(st, static_cast<int>(s)));
      job->stages[s].tasks_total = st.partitions;
      job->stages[s].inputs_left = static_cast<int>(st.inputs.size());
      for (auto in : st.inputs) ++job->stages[static_cast<std::size_t>(in)].consumers_left;
    }
    job->results.resize(static_cast<std::size_t>(plan.stages.back().partitions));

    bool has_deadline = ro.timeout.count() > 0;
    auto deadline = started + ro.timeout;
    std::unique_lock lock(job->mutex);
    enqueue_ready(job);
    for (;;) {
      job->cv.wait_for(lock, poll_interval, [&] { return job->changed; });
      job->changed = false;
      advance(*job);
      if (!job->error) enqueue_ready(job);
      std::vector<std::tuple<std::string, size_type, size_type>> updates;
      for (std::size_t s = 0; s < job->stages.size(); ++s) {
        auto& st = job->stages[s];
        if (st.tasks_done != st.reported_done && st.queued) {
          st.reported_done = st.tasks_done;
          updates.emplace_back(plan.stages[s].name, st.tasks_done, st.tasks_total);
        }
      }
      if (job->error) break;
      bool done = std::all_of(job->stages.begin(), job->stages.end(),
                              [](const stage_state& st) { return st.finished; });
      lock.unlock();
      if (ro.progress && !updates.empty()) {
        try {
          for (const auto& [name, tasks_done, total] : updates)
            ro.progress(name, tasks_done, total);
        } catch (...) {
          job->fail(std::current_exception());
        }
      }
      if (has_deadline && clock_type::now() > deadline && !done) {
        job->fail(std::make_exception_ptr(
            timeout("the job did not finish within " + std::to_string(ro.timeout.count()) +
                    " ms (stage '" + current_stage(*job) + "' was running)")));
      }
      lock.lock();
      if (done && !job->error) break;
    }

    if (job->error) {
      drop_queued(*job);
      auto drain_deadline = clock_type::now() + ro.drain_timeout;
      while (job->outstanding > 0 && clock_type::now() < drain_deadline)
        job->cv.wait_for(lock, poll_interval);
      if (job->outstanding > 0) {
        logger().warn("a failed job returns with {} tasks still running", job->outstanding);
      }
      // The caller takes the job's only reference to the exception, so that it is never freed
      // by a worker thread while the caller still reads it.
      std::exception_ptr error;
      std::swap(error, job->error);
      lock.unlock();
      job->blocks.clear();
      std::rethrow_exception(error);
    }

    job_result out;
    std::vector<table_view> views;
    for (const auto& b : job->results) views.push_back(b.rows);
    out.result = detail::concatenate_host(views, plan.result);
    job->results.clear();
    job->blocks.clear();
    auto& m = out.metrics;
    for (std::size_t s = 0; s < plan.stages.size(); ++s) {
      const auto& st = job->stages[s];
      stage_metrics sm;
      sm.name = plan.stages[s].name;
      sm.tasks = st.tasks_total;
      sm.seconds = st.started ? seconds_between(st.first_start, st.last_end) : 0.0;
      sm.rows_out = st.rows_out;
      sm.bytes_out = st.bytes_out;
      sm.partitions_skipped = st.partitions_skipped;
      m.stages.push_back(std::move(sm));
    }
    // Tasks finish in any order: list labels in plan order, so reports read the same each run.
    for (const auto& st : plan.stages) {
      for (const auto& node : st.body.nodes) {
        for (const auto& l : job->labels) {
          bool listed = std::any_of(m.labels.begin(), m.labels.end(),
                                    [&](const label_metrics& x) { return x.label == l.label; });
          if (l.label == node.label && !listed) m.labels.push_back(l);
        }
      }
    }
    m.input_rows = job->input_rows;
    m.input_bytes = job->input_bytes;
    m.peak_block_bytes = job->peak_block_bytes;
    m.seconds = seconds_between(started, clock_type::now());
    return out;
  }

  // Marks stages whose tasks are all done as finished and frees the blocks nobody needs any
  // more. Caller holds job.mutex.
  static void advance(job_state& job) {
    for (std::size_t s = 0; s < job.stages.size(); ++s) {
      auto& st = job.stages[s];
      if (st.finished || !st.queued || st.tasks_done < st.tasks_total) continue;
      st.finished = true;
      for (std::size_t c = 0; c < job.stages.size(); ++c) {
        for (auto in : job.plan.stages[c].inputs)
          if (static_cast<std::size_t>(in) == s) --job.stages[c].inputs_left;
      }
      for (auto in : job.plan.stages[s].inputs) {
        if (--job.stages[static_cast<std::size_t>(in)].consumers_left == 0)
          job.blocks.erase_stage(in);
      }
    }
  }

  static std::string current_stage(job_state& job) {
    std::lock_guard lock(job.mutex);
    for (std::size_t s = 0; s < job.stages.size(); ++s)
      if (job.stages[s].queued && !job.stages[s].finished) return job.plan.stages[s].name;
    return "none";
  }

  void stop() noexcept {
    std::deque<task> dropped;
    {
      std::lock_guard lock(mutex);
      if (stopped) return;
      stopping = true;
      stopped = true;
      dropped.swap(queue);
    }
    cv.notify_all();
    for (auto& t : dropped) {
      t.job->fail(std::make_exception_ptr(cancelled("the executor shut down")));
      {
        std::lock_guard lock(t.job->mutex);
        --t.job->outstanding;
        ++t.job->stages[static_cast<std::size_t>(t.stage)].tasks_done;
        t.job->changed = true;
      }
      t.job->cv.notify_all();
    }
    for (auto& w : workers)
      if (w->thread.joinable()) w->thread.join();
    // Jobs that still hold blocks keep the contexts alive through their shared pointers.
    for (auto& w : workers) w->ctx.reset();
  }
};

executor::executor(const executor_options& options) : _impl(std::make_unique<impl>(options)) {}

executor::~executor() { shutdown(); }

job_result executor::run(const physical_plan& job, const run_options& options) {
  logger().debug("job of {} stages starts", job.stages.size());
  auto result = _impl->run(job, options);
  logger().info("job of {} stages done in {:.3f} s: {} rows", job.stages.size(),
                result.metrics.seconds, result.result.num_rows());
  return result;
}

void executor::shutdown() noexcept {
  if (_impl) _impl->stop();
}

int executor::num_workers() const noexcept { return static_cast<int>(_impl->workers.size()); }

std::vector<std::string> executor::worker_descriptions() const {
  std::vector<std::string> out;
  for (const auto& w : _impl->workers) out.push_back(w->description);
  return out;
}

backend_kind executor::backend() const noexcept {
  return _impl->workers.front()->options.backend == backend_choice::cuda ? backend_kind::cuda
                                                                         : backend_kind::cpu;
}

}  // namespace ember
