#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/schema_inference.hpp>

#include "detail/client_state.hpp"

namespace ember {

namespace detail {

void client_state::expect_open() const {
  EMBER_EXPECTS(!closed.load(), invalid_input,
                "the client that made this dataset has been shut down");
}

job_result client_state::run(const plan& p) const {
  expect_open();
  auto stages = plan_stages(p, planner);
  run_options ro;
  ro.progress = options.progress;
  ro.timeout = options.job_timeout;
  return workers->run(stages, ro);
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
  _state->workers->shutdown();
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
  for (const auto& path : paths) source.paths.push_back(path.string());
  source.partitions = partitions;
  plan p;
  p.add(std::move(source));
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

int client::num_workers() const { return _state->workers->num_workers(); }

std::vector<std::string> client::worker_descriptions() const {
  return _state->workers->worker_descriptions();
}

backend_kind client::backend() const { return _state->workers->backend(); }

int client::default_partitions() const { return _state->planner.partitions; }

const client_options& client::options() const { return _state->options; }

}  // namespace ember
