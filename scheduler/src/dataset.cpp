#include <algorithm>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/io.hpp>
#include <ember/scheduler/dataset.hpp>
#include <ember/scheduler/schema_inference.hpp>

#include "detail/client_state.hpp"

namespace ember {
namespace {

void expect_same_client(const std::shared_ptr<detail::client_state>& a,
                        const std::shared_ptr<detail::client_state>& b, std::string_view what) {
  EMBER_EXPECTS(a == b, invalid_input,
                std::string(what) + ": the datasets belong to different clients");
}

}  // namespace

dataset dataset::then(node_op op) const {
  std::vector<const schema*> inputs{&_columns};
  schema columns;
  try {
    columns = infer_node_schema(op, inputs);
  } catch (const invalid_input& e) {
    std::string name(op_name(op));
    std::string message = e.what();
    throw invalid_input(message.rfind(name, 0) == 0 ? message : name + ": " + message);
  }
  plan p = _plan;
  p.add(std::move(op));
  return dataset(_state, std::move(p), std::move(columns));
}

dataset dataset::project(std::vector<named_expression> columns) const {
  return then(project_node{_plan.root, std::move(columns)});
}

dataset dataset::select(const std::vector<std::string>& names) const {
  std::vector<named_expression> columns;
  for (const auto& n : names) columns.push_back({n, col(n)});
  return project(std::move(columns));
}

dataset dataset::with_columns(std::vector<named_expression> columns) const {
  std::vector<named_expression> all;
  for (const auto& name : _columns.names) {
    bool replaced = false;
    for (const auto& c : columns) replaced = replaced || c.name == name;
    if (!replaced) all.push_back({name, col(name)});
  }
  for (auto& c : columns) all.push_back(std::move(c));
  return project(std::move(all));
}

dataset dataset::filter(expression predicate) const {
  return then(filter_node{_plan.root, std::move(predicate)});
}

dataset dataset::tokenize(std::string column, std::string output) const {
  return then(tokenize_node{_plan.root, std::move(column), std::move(output)});
}

grouped_dataset dataset::group_by(std::vector<std::string> keys) const {
  for (const auto& k : keys) {
    try {
      (void)_columns.index_of(k);
    } catch (const invalid_input& e) {
      throw invalid_input(std::string("group_by: ") + e.what());
    }
  }
  return grouped_dataset(*this, std::move(keys));
}

dataset dataset::group_by(std::vector<std::string> keys,
                          std::vector<aggregation> aggregations) const {
  return then(aggregate_node{_plan.root, std::move(keys), std::move(aggregations)});
}

dataset dataset::aggregate(std::vector<aggregation> aggregations) const {
  return group_by({}, std::move(aggregations));
}

dataset grouped_dataset::aggregate(std::vector<aggregation> aggregations) const {
  return _input.group_by(_keys, std::move(aggregations));
}

dataset dataset::distinct(std::vector<std::string> columns) const {
  return then(distinct_node{_plan.root, std::move(columns)});
}

dataset dataset::sort(std::vector<sort_key> keys) const {
  return then(sort_node{_plan.root, std::move(keys)});
}

dataset dataset::top_k(std::vector<sort_key> keys, size_type k) const {
  return then(top_k_node{_plan.root, std::move(keys), k});
}

dataset dataset::join(const dataset& right, std::vector<std::string> left_keys,
                      std::vector<std::string> right_keys, join_kind kind,
                      join_strategy strategy) const {
  expect_same_client(_state, right._state, "join");
  join_node j{_plan.root, -1, std::move(left_keys), std::move(right_keys), kind, strategy};
  schema columns;
  try {
    columns = infer_node_schema(j, {&_columns, &right._columns});
  } catch (const invalid_input& e) {
    std::string message = e.what();
    throw invalid_input(message.rfind("join", 0) == 0 ? message : "join: " + message);
  }
  plan p = _plan;
  j.right = p.append(right._plan);
  p.add(std::move(j));
  return dataset(_state, std::move(p), std::move(columns));
}

dataset dataset::join(const dataset& right, std::vector<std::string> keys, join_kind kind,
                      join_strategy strategy) const {
  auto right_keys = keys;
  return join(right, std::move(keys), std::move(right_keys), kind, strategy);
}

dataset dataset::concat(const dataset& other) const { return ember::concat({*this, other}); }

dataset concat(const std::vector<dataset>& inputs) {
  EMBER_EXPECTS(!inputs.empty(), invalid_input, "concat needs at least one dataset");
  std::vector<const schema*> schemas;
  for (const auto& d : inputs) {
    expect_same_client(inputs.front()._state, d._state, "concat");
    schemas.push_back(&d._columns);
  }
  auto columns = infer_node_schema(concat_node{}, schemas);
  plan p = inputs.front()._plan;
  concat_node c{{p.root}};
  for (std::size_t i = 1; i < inputs.size(); ++i) c.inputs.push_back(p.append(inputs[i]._plan));
  p.add(std::move(c));
  return dataset(inputs.front()._state, std::move(p), std::move(columns));
}

dataset dataset::limit(size_type count) const { return then(limit_node{_plan.root, count}); }

dataset dataset::repartition(std::vector<std::string> keys) const {
  return then(repartition_node{_plan.root, std::move(keys)});
}

dataset dataset::label(std::string name) const {
  dataset out = *this;
  out._plan.nodes[static_cast<std::size_t>(out._plan.root)].label = std::move(name);
  return out;
}

table dataset::collect() const { return run().result; }

job_result dataset::run() const { return _state->run(_plan); }

job_metrics dataset::write(const std::filesystem::path& path) const {
  auto out = run();
  write_csv_file(out.result.view(), path);
  return std::move(out.metrics);
}

dataset_write_result dataset::write_dataset(const std::filesystem::path& root,
                                            const std::string& name,
                                            const dataset_write_options& options) const {
  dataset_store::validate_name(name);
  EMBER_EXPECTS(!root.empty(), invalid_input, "write_dataset: no storage root given");
  dataset_store store(std::filesystem::absolute(root));
  // The writer aborts (removes its staging folder) when anything below throws.
  auto writer = store.begin_write(name, options.fence);
  dataset_sink sink;
  sink.input = _plan.root;
  sink.staging_dir = writer.staging_dir().string();
  sink.compression = options.files.compression;
  sink.level = options.files.level;
  sink.row_group_rows = options.files.row_group_rows;
  auto job = then(std::move(sink));
  auto out = _state->run(job._plan);

  const auto& files = out.result;
  EMBER_EXPECTS(schema::of(files.view()) == dataset_sink::sink_columns(), logic_error,
                "write_dataset: the tasks returned (" + schema::of(files.view()).to_string() +
                    ") instead of the written files");
  auto partitions = copy_values<std::int32_t>(files.view().column(0));
  auto names = copy_strings(files.view().column(1));
  auto rows = copy_values<std::int64_t>(files.view().column(2));
  auto bytes = copy_values<std::int64_t>(files.view().column(3));
  auto checksums = copy_values<std::int64_t>(files.view().column(4));
  std::vector<std::size_t> order(partitions.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return partitions[a] < partitions[b]; });
  for (std::size_t i = 0; i < order.size(); ++i) {
    auto r = order[i];
    EMBER_EXPECTS(
        partitions[r] == static_cast<std::int32_t>(i), logic_error,
        "write_dataset: partition " + std::to_string(i) + " was not written exactly once");
    dataset_partition written;
    written.file = names[r].value_or("");
    written.rows = rows[r];
    written.bytes = bytes[r];
    written.footer_checksum = static_cast<std::uint64_t>(checksums[r]);
    (void)writer.adopt_partition(written);
  }
  commit_options co;
  co.expected_parent = options.expected_parent;
  co.before_publish = options.before_publish;
  dataset_write_result result;
  result.version = writer.commit(co);
  result.partitions = order.size();
  for (std::size_t i = 0; i < order.size(); ++i) {
    result.rows += rows[i];
    result.bytes += bytes[i];
  }
  result.metrics = std::move(out.metrics);
  return result;
}

}  // namespace ember
