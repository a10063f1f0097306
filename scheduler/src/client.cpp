#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/schema_inference.hpp>
#include <algorithm>
#include <ember/host/dataset_store.hpp>
#include <optional>
#include <random>

#include "detail/cache_backends.hpp"
#include "detail/client_state.hpp"
#include "detail/coordination_session.hpp"
#include "detail/remote_session.hpp"

namespace ember {

namespace detail {

void client_state::expect_open() const {
  EMBER_EXPECTS(!closed.load(), invalid_input,
                "the client that made this dataset has been shut down");
}

job_result client_state::run(const plan& p) const {
  expect_open();
  if (remote) return remote->run(p);
  auto stages = plan_stages(p, planner);
  run_options ro;
  ro.progress = options.progress;
  ro.timeout = options.job_timeout;
  return workers->run(stages, ro);
}

std::shared_ptr<coordination_session> client_state::coordination() {
  expect_open();
  std::lock_guard lock(_coordination_mutex);
  if (_coordination) return _coordination;
  if (remote) {
    _coordination = std::make_shared<coordination_session>(remote->address(), options);
    return _coordination;
  }
  // A local client hosts the services itself: a scheduler on a loopback port of this process,
  // reached over the same protocol as a remote one, with a token nobody else knows.
  scheduler_service_options so;
  so.listen = "127.0.0.1:0";
  std::random_device rd;
  for (int i = 0; i < 4; ++i) so.token += std::to_string(rd());
  _embedded_scheduler = std::make_unique<scheduler_service>(so);
  auto o = options;
  o.token = so.token;
  _coordination = std::make_shared<coordination_session>(_embedded_scheduler->address(), o);
  return _coordination;
}

client_state::~client_state() {
  // The connection goes before the scheduler it talks to.
  _coordination.reset();
  _embedded_scheduler.reset();
}

}  // namespace detail

client client::local(const client_options& options) {
  EMBER_EXPECTS(options.partitions_per_worker >= 1, invalid_input,
                "partitions per worker must be at least 1, not " +
                    std::to_string(options.partitions_per_worker));
  EMBER_EXPECTS(options.broadcast_limit_rows >= 0, invalid_input,
                "negative broadcast limit " + std::to_string(options.broadcast_limit_rows));
  EMBER_EXPECTS(options.job_timeout.count() >= 0, invalid_input, "negative job timeout");
  auto state = std::make_shared<detail::client_state>();
  state->options = options;
  executor_options eo;
  eo.backend = options.backend;
  eo.workers = options.workers;
  eo.cpu_threads = options.cpu_threads;
  eo.device_memory_limit = options.device_memory_limit;
  eo.fast_paths = options.fast_paths;
  state->workers = std::make_unique<executor>(eo);
  state->planner.partitions = state->workers->num_workers() * options.partitions_per_worker;
  state->planner.broadcast_limit_rows = options.broadcast_limit_rows;
  return client(std::move(state));
}

client client::connect(const std::string& scheduler, const client_options& options) {
  EMBER_EXPECTS(options.partitions_per_worker >= 1, invalid_input,
                "partitions per worker must be at least 1, not " +
                    std::to_string(options.partitions_per_worker));
  EMBER_EXPECTS(options.job_timeout.count() >= 0, invalid_input, "negative job timeout");
  auto state = std::make_shared<detail::client_state>();
  state->options = options;
  state->remote = std::make_shared<detail::remote_session>(scheduler, options);
  state->planner.partitions =
      std::max(1, static_cast<int>(state->remote->status().workers.size())) *
      options.partitions_per_worker;
  state->planner.broadcast_limit_rows = options.broadcast_limit_rows;
  return client(std::move(state));
}

client::client(std::shared_ptr<detail::client_state> state) : _state(std::move(state)) {}
client::client(client&&) noexcept = default;
client& client::operator=(client&& other) noexcept {
  if (this != &other) {
    shutdown();
    _state = std::move(other._state);
  }
  return *this;
}
client::~client() { shutdown(); }

void client::shutdown() noexcept {
  if (!_state) return;
  _state->closed.store(true);
  if (_state->workers) _state->workers->shutdown();
  if (_state->remote) _state->remote->close();
}

distributed_lock client::lock(const std::string& name, int permits) const {
  EMBER_EXPECTS(permits >= 1, invalid_input,
                "lock '" + name + "': " + std::to_string(permits) + " permits (at least 1)");
  return distributed_lock(_state->coordination(), name, permits);
}

message_queue client::queue(const std::string& name) const {
  return message_queue(_state->coordination(), name);
}

message_topic client::topic(const std::string& name) const {
  return message_topic(_state->coordination(), name);
}

key_value client::kv() const { return key_value(_state->coordination()); }

std::shared_ptr<detail::cache_backend> detail::client_state::cache() {
  expect_open();
  std::lock_guard lock(_coordination_mutex);
  if (!_cache) {
    if (remote) {
      _cache = std::make_shared<remote_cache_backend>(remote);
    } else {
      auto per_worker = options.device_memory_limit;
      auto n = static_cast<std::size_t>(workers ? workers->num_workers() : 1);
      auto limit = per_worker == tracking_resource::unlimited ? per_worker : per_worker * n;
      _cache = std::make_shared<local_cache_backend>(limit);
    }
  }
  return _cache;
}

distributed_cache client::cache() const { return distributed_cache(_state->cache()); }

std::vector<cache_entry> client::residency() const { return _state->cache()->residency(); }

namespace detail {
std::vector<queue_info> decode_queue_list(std::span<const std::uint8_t> items);
std::vector<lock_info> decode_lock_list(std::span<const std::uint8_t> items);
}  // namespace detail

std::vector<lock_info> client::locks() const {
  detail::coord_request_msg r;
  r.op = detail::coord_op::lock_list;
  return detail::decode_lock_list(_state->coordination()->call(r).items);
}

std::vector<queue_info> client::queues() const {
  detail::coord_request_msg r;
  r.op = detail::coord_op::queue_list;
  return detail::decode_queue_list(_state->coordination()->call(r).items);
}

dataset client::from_plan(plan p) const {
  _state->expect_open();
  auto columns = output_schema(p);
  return dataset(_state, std::move(p), std::move(columns));
}

dataset client::from_table(table data, int partitions) const {
  plan p;
  p.add(table_source{std::make_shared<const table>(std::move(data)), partitions});
  return from_plan(std::move(p));
}

dataset client::from_table(const table_view& data, int partitions) const {
  for (const auto& c : data.columns()) {
    EMBER_EXPECTS(c.kind() == memory_kind::host, invalid_input,
                  "from_table: the table is not in host memory (copy it with to_host first)");
  }
  return from_table(copy_table(data), partitions);
}

dataset client::read_text(const std::vector<std::filesystem::path>& paths, int partitions) const {
  text_source source;
  // Absolute, so that workers started in other folders (or on other hosts sharing the file
  // system) read the same files.
  for (const auto& path : paths) source.paths.push_back(std::filesystem::absolute(path).string());
  source.partitions = partitions;
  plan p;
  p.add(std::move(source));
  return from_plan(std::move(p));
}

dataset client::read_dataset(const std::filesystem::path& root, const std::string& name,
                             std::vector<std::string> columns,
                             std::vector<dataset_filter> filters) const {
  dataset_source source;
  source.root = std::filesystem::absolute(root).string();
  source.name = name;
  auto version = dataset_store(root).current_version(name);
  EMBER_EXPECTS(version.has_value(), invalid_input,
                "read_dataset: no dataset '" + name + "' in '" + source.root +
                    "' (or it has no committed version)");
  source.version = *version;
  // A filter may name a column that the projection leaves out: the source reads it too and a
  // project above the filter drops it again.
  bool extra = false;
  auto read = columns;
  if (!columns.empty()) {
    for (const auto& f : filters) {
      if (std::find(read.begin(), read.end(), f.column) != read.end()) continue;
      read.push_back(f.column);
      extra = true;
    }
  }
  source.columns = std::move(read);
  std::optional<expression> predicate;
  for (const auto& f : filters) {
    auto e = f.to_expression();
    predicate = predicate ? std::move(*predicate) && std::move(e) : std::move(e);
  }
  source.filters = std::move(filters);
  plan p;
  auto id = p.add(std::move(source));
  if (predicate) id = p.add(filter_node{id, std::move(*predicate)});
  if (extra) {
    project_node keep{id, {}};
    for (const auto& c : columns) keep.columns.push_back(named_expression{c, col(c)});
    p.add(std::move(keep));
  }
  return from_plan(std::move(p));
}

dataset client::generate(const std::string& generator, size_type rows, std::uint64_t seed,
                         size_type cardinality, int partitions) const {
  plan p;
  p.add(generate_source{generator, rows, seed, cardinality, partitions});
  return from_plan(std::move(p));
}

job_result client::run(const plan& p) const { return _state->run(p); }

physical_plan client::explain(const plan& p) const { return plan_stages(p, _state->planner); }

int client::num_workers() const {
  if (!_state->remote) return _state->workers->num_workers();
  int alive = 0;
  for (const auto& w : status().workers) alive += w.alive ? 1 : 0;
  return alive;
}

cluster_status client::status() const {
  _state->expect_open();
  if (_state->remote) return _state->remote->status();
  cluster_status out;
  out.scheduler = "embedded local cluster";
  auto descriptions = _state->workers->worker_descriptions();
  for (std::size_t i = 0; i < descriptions.size(); ++i) {
    worker_status_info w;
    w.id = static_cast<int>(i);
    w.name = "worker " + std::to_string(i);
    w.address = "in process";
    w.backend = _state->workers->backend() == backend_kind::cuda ? "cuda" : "cpu";
    w.description = descriptions[i];
    w.memory_limit = _state->options.device_memory_limit == tracking_resource::unlimited
                         ? 0
                         : _state->options.device_memory_limit;
    out.workers.push_back(std::move(w));
  }
  return out;
}

bool client::remote() const noexcept { return _state && _state->remote != nullptr; }

std::vector<std::string> client::worker_descriptions() const {
  if (!_state->remote) return _state->workers->worker_descriptions();
  std::vector<std::string> out;
  for (const auto& w : status().workers) {
    if (!w.alive) continue;
    out.push_back("worker " + std::to_string(w.id) + " (" + w.name + "): " + w.description);
  }
  return out;
}

backend_kind client::backend() const {
  if (!_state->remote) return _state->workers->backend();
  for (const auto& w : status().workers)
    if (w.alive) return w.backend == "cuda" ? backend_kind::cuda : backend_kind::cpu;
  return backend_kind::cpu;
}

int client::default_partitions() const { return _state->planner.partitions; }

const client_options& client::options() const { return _state->options; }

}  // namespace ember
