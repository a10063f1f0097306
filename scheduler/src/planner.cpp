#include <algorithm>
#include <ember/host/dataset_store.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/planner.hpp>
#include <ember/scheduler/schema_inference.hpp>
#include <filesystem>
#include <sstream>

namespace ember {
namespace {

// Row counts the planner cannot bound (text, tokenize) are "unknown": never broadcast.
constexpr double unknown_rows = 1e300;

// The partition-wise part of the plan being built: a stage body that is still open.
struct pipeline {
  plan body;
  int partitions = 1;
  std::vector<int> inputs;
  double rows = 0;  // an upper bound of the rows it produces, or unknown_rows
  std::vector<std::string> steps;

  node_id add(node_op op, std::string label, std::string step) {
    steps.push_back(std::move(step));
    return body.add(std::move(op), std::move(label));
  }
  // Appends `other`'s nodes; returns the id its root got. The own root stays the root.
  node_id merge(pipeline other) {
    auto own_root = body.root;
    auto id = body.append(other.body);
    body.root = own_root;
    inputs.insert(inputs.end(), other.inputs.begin(), other.inputs.end());
    steps.insert(steps.end(), other.steps.begin(), other.steps.end());
    rows += other.rows;
    return id;
  }
};

template <class Node>
Node reading(Node n, node_id input) {
  n.input = input;
  return n;
}

std::string joined(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? std::string(sep) : "") + v[i];
  return out;
}

std::string step_name(const plan_node& n, std::string_view suffix = {}) {
  std::string s(op_name(n.op));
  if (const auto* g = std::get_if<generate_source>(&n.op)) s += "(" + g->generator + ")";
  s += suffix;
  if (!n.label.empty()) s += " '" + n.label + "'";
  return s;
}

class builder {
 public:
  builder(const plan& logical, const planner_options& options)
      : _logical(logical), _options(options), _schemas(infer_schemas(logical)) {}

  physical_plan run() {
    auto root = build(_logical.root);
    close(std::move(root), exchange_spec{exchange_mode::result, {}, 1});
    physical_plan out;
    out.result = _stages.back().columns;
    out.stages = std::move(_stages);
    return out;
  }

 private:
  pipeline build(node_id id) {
    const auto& node = _logical.nodes[static_cast<std::size_t>(id)];
    return std::visit([&](const auto& op) { return build_node(op, node); }, node.op);
  }

  // A source's own partition count, else the default, raised so that a large input is cut into
  // pieces of about `per_partition` (tasks that fit memory, and a progress bar that moves).
  int partitions_for(int own, size_type size, size_type per_partition) const {
    if (own > 0) return own;
    if (per_partition <= 0) return _options.partitions;
    auto pieces = (size + per_partition - 1) / per_partition;
    return static_cast<int>(std::clamp<size_type>(pieces, _options.partitions, 1 << 16));
  }

  template <class Source>
  pipeline source(Source n, const plan_node& node, double rows, int partitions) {
    pipeline p;
    n.partitions = partitions;
    p.partitions = n.partitions;
    p.rows = rows;
    p.add(n, node.label, step_name(node));
    return p;
  }
  pipeline build_node(const table_source& n, const plan_node& node) {
    return source(n, node, static_cast<double>(n.data->num_rows()),
                  n.partitions > 0 ? n.partitions : _options.partitions);
  }
  pipeline build_node(const text_source& n, const plan_node& node) {
    size_type bytes = 0;
    for (const auto& path : n.paths) {
      std::error_code ec;
      auto size = std::filesystem::file_size(path, ec);
      if (!ec) bytes += static_cast<size_type>(size);
    }
    return source(n, node, unknown_rows,
                  partitions_for(n.partitions, bytes, _options.source_partition_bytes));
  }
  pipeline build_node(const generate_source& n, const plan_node& node) {
    return source(n, node, static_cast<double>(n.rows),
                  partitions_for(n.partitions, n.rows, _options.source_partition_rows));
  }
  pipeline build_node(const dataset_source& n, const plan_node& node) {
    // One task per partition file of one version: a version left open is fixed here, so every
    // task of the job reads the same one.
    auto manifest = dataset_store(n.root).read_manifest(
        n.name, n.version == 0 ? std::nullopt : std::optional(n.version));
    auto resolved = n;
    resolved.version = manifest.version;
    return source(resolved, node, static_cast<double>(manifest.rows),
                  std::max(1, static_cast<int>(manifest.partitions.size())));
  }
  pipeline build_node(const exchange_source&, const plan_node&) {
    throw invalid_input("exchange sources are made by the planner, not written in plans");
  }

  // Partition-wise operators extend their input's pipeline.
  template <class Node>
  pipeline extend(const Node& n, const plan_node& node, double rows_factor = 1.0) {
    auto p = build(n.input);
    p.add(reading(n, p.body.root), node.label, step_name(node));
    p.rows = rows_factor == 1.0 ? p.rows : unknown_rows;
    return p;
  }
  pipeline build_node(const project_node& n, const plan_node& node) { return extend(n, node); }
  pipeline build_node(const filter_node& n, const plan_node& node) { return extend(n, node); }
  pipeline build_node(const dataset_sink& n, const plan_node& node) {
    return extend(n, node, unknown_rows);
  }
  pipeline build_node(const tokenize_node& n, const plan_node& node) {
    return extend(n, node, unknown_rows);
  }

  pipeline build_node(const aggregate_node& n, const plan_node& node) {
    auto in = build(n.input);
    if (in.partitions == 1) {
      in.add(reading(n, in.body.root), node.label, step_name(node));
      return in;
    }
    bool raw = std::any_of(n.aggregations.begin(), n.aggregations.end(), [](const auto& a) {
      return a.kind == aggregation_kind::count_distinct;
    });
    if (raw) {
      // Distinct counts cannot be merged from partial results: shuffle the rows themselves,
      // keeping only the columns the aggregation reads.
      const auto& columns = _schemas[static_cast<std::size_t>(n.input)].names;
      std::vector<std::string> needed = n.keys;
      for (const auto& a : n.aggregations)
        if (!a.column.empty()) needed.push_back(a.column);
      std::vector<named_expression> kept;
      for (const auto& c : columns)
        if (std::find(needed.begin(), needed.end(), c) != needed.end()) kept.push_back({c, col(c)});
      if (kept.size() < columns.size()) {
        in.add(project_node{in.body.root, std::move(kept)}, {}, "project(needed columns)");
      }
      auto rows = in.rows;
      auto p = exchange(std::move(in), n.keys, rows);
      p.add(reading(n, p.body.root), node.label, step_name(node));
      return p;
    }
    aggregate_node partial{in.body.root, n.keys, {}};
    aggregate_node final_agg{-1, n.keys, {}};
    std::vector<named_expression> outputs;
    bool needs_project = false;
    for (std::size_t i = 0; i < n.aggregations.size(); ++i) {
      const auto& a = n.aggregations[i];
      auto tmp = "__ember_p" + std::to_string(i);
      switch (a.kind) {
        case aggregation_kind::sum:
        case aggregation_kind::min:
        case aggregation_kind::max:
          partial.aggregations.push_back({a.kind, a.column, tmp});
          final_agg.aggregations.push_back({a.kind, tmp, a.output_name});
          outputs.push_back({a.output_name, col(a.output_name)});
          break;
        case aggregation_kind::count:
        case aggregation_kind::count_all:
          partial.aggregations.push_back({a.kind, a.column, tmp});
          final_agg.aggregations.push_back({aggregation_kind::sum, tmp, a.output_name});
          outputs.push_back({a.output_name, col(a.output_name)});
          break;
        case aggregation_kind::mean: {
          needs_project = true;
          auto sum = tmp + "_sum", count = tmp + "_count";
          partial.aggregations.push_back({aggregation_kind::sum, a.column, sum});
          partial.aggregations.push_back({aggregation_kind::count, a.column, count});
          final_agg.aggregations.push_back({aggregation_kind::sum, sum, sum});
          final_agg.aggregations.push_back({aggregation_kind::sum, count, count});
          outputs.push_back({a.output_name, cast(col(sum), type_id::float64) /
                                                cast(col(count), type_id::float64)});
          break;
        }
        case aggregation_kind::count_distinct:
          break;  // handled above
      }
    }
    in.add(partial, {}, "aggregate(partial)");
    auto rows = in.rows;
    auto p = exchange(std::move(in), n.keys, rows);
    final_agg.input = p.body.root;
    if (!needs_project) {
      p.add(final_agg, node.label, step_name(node, "(final)"));
      return p;
    }
    p.add(final_agg, {}, "aggregate(final)");
    std::vector<named_expression> columns;
    for (const auto& k : n.keys) columns.push_back({k, col(k)});
    for (auto& o : outputs) columns.push_back(std::move(o));
    p.add(project_node{p.body.root, std::move(columns)}, node.label, "project(mean)");
    return p;
  }

  pipeline build_node(const distinct_node& n, const plan_node& node) {
    auto in = build(n.input);
    if (in.partitions == 1) {
      in.add(reading(n, in.body.root), node.label, step_name(node));
      return in;
    }
    auto columns =
        n.columns.empty() ? _schemas[static_cast<std::size_t>(n.input)].names : n.columns;
    in.add(distinct_node{in.body.root, columns}, {}, "distinct(partial)");
    auto rows = in.rows;
    auto p = exchange(std::move(in), columns, rows);
    p.add(distinct_node{p.body.root, columns}, node.label, step_name(node, "(final)"));
    return p;
  }

  // sort, top_k and limit: the operator per partition, then once more over the gathered runs.
  // The final sort re-sorts sorted runs (stable, so ties keep partition order) in one task.
  // TODO: range-partition by sampled splitters when that single task becomes the bottleneck of
  // large sorts (the sort job at hundreds of millions of rows).
  template <class Node>
  pipeline gather_twice(const Node& n, const plan_node& node, double rows_bound) {
    auto in = build(n.input);
    if (in.partitions == 1) {
      in.add(reading(n, in.body.root), node.label, step_name(node));
      in.rows = std::min(in.rows, rows_bound);
      return in;
    }
    in.add(reading(n, in.body.root), {}, step_name(plan_node{node.op, {}}, "(local)"));
    auto rows = std::min(in.rows, rows_bound * in.partitions);
    auto p = exchange(std::move(in), {}, rows);
    p.add(reading(n, p.body.root), node.label, step_name(node));
    p.rows = std::min(p.rows, rows_bound);
    return p;
  }
  pipeline build_node(const sort_node& n, const plan_node& node) {
    return gather_twice(n, node, unknown_rows);
  }
  pipeline build_node(const top_k_node& n, const plan_node& node) {
    return gather_twice(n, node, static_cast<double>(n.k));
  }
  pipeline build_node(const repartition_node& n, const plan_node& node) {
    auto in = build(n.input);
    auto rows = in.rows;
    auto p = exchange(std::move(in), n.keys, rows);
    if (!node.label.empty()) p.steps.back() += " [" + node.label + "]";
    return p;
  }
  pipeline build_node(const limit_node& n, const plan_node& node) {
    return gather_twice(n, node, static_cast<double>(n.count));
  }

  pipeline build_node(const join_node& n, const plan_node& node) {
    auto left = build(n.left);
    auto right = build(n.right);
    join_node j = n;
    if (left.partitions == 1 && right.partitions == 1) {
      j.left = left.body.root;
      j.right = left.merge(std::move(right));
      left.add(j, node.label, step_name(node));
      return left;
    }
    bool broadcast = n.strategy == join_strategy::broadcast ||
                     (n.strategy == join_strategy::automatic &&
                      right.rows <= static_cast<double>(_options.broadcast_limit_rows));
    if (broadcast) {
      // Every left partition sees the whole right side once, which is right for every kind.
      auto right_rows = right.rows;
      int s = close(std::move(right), exchange_spec{exchange_mode::broadcast, {}, 1});
      j.left = left.body.root;
      j.right = left.add(exchange_source{s, exchange_mode::broadcast, 1, _stages[s].columns}, {},
                         "broadcast");
      left.inputs.push_back(s);
      left.rows += right_rows;
      left.add(j, node.label, step_name(node, "(broadcast)"));
      return left;
    }
    auto rows = left.rows + right.rows;
    auto p = exchange(std::move(left), n.left_keys, rows);
    j.left = p.body.root;
    j.right = p.merge(exchange(std::move(right), n.right_keys, 0));
    p.add(j, node.label, step_name(node));
    return p;
  }

  pipeline build_node(const concat_node& n, const plan_node& node) {
    pipeline p = build(n.inputs.at(0));
    concat_node c{{p.body.root}};
    for (std::size_t i = 1; i < n.inputs.size(); ++i) {
      auto other = build(n.inputs[i]);
      p.partitions += other.partitions;
      c.inputs.push_back(p.merge(std::move(other)));
    }
    p.add(c, node.label, step_name(node));
    return p;
  }

  // Closes `in` into a stage whose output is hash-partitioned by `keys` (gathered into one
  // partition when there are none) and starts the consumer's pipeline on it.
  pipeline exchange(pipeline in, const std::vector<std::string>& keys, double rows) {
    bool hash = !keys.empty();
    exchange_spec out{hash ? exchange_mode::hash : exchange_mode::gather, keys,
                      hash ? _options.partitions : 1};
    int s = close(std::move(in), out);
    pipeline p;
    p.partitions = out.partitions;
    p.inputs = {s};
    p.rows = rows;
    p.add(exchange_source{s, out.mode, out.partitions, _stages[s].columns}, {},
          hash ? "shuffle" : "gather");
    return p;
  }

  int close(pipeline p, exchange_spec out) {
    stage s;
    s.columns = infer_schemas(p.body, true)[static_cast<std::size_t>(p.body.root)];
    s.name = joined(p.steps, " -> ");
    s.body = std::move(p.body);
    s.partitions = p.partitions;
    s.output = std::move(out);
    std::sort(p.inputs.begin(), p.inputs.end());
    p.inputs.erase(std::unique(p.inputs.begin(), p.inputs.end()), p.inputs.end());
    s.inputs = std::move(p.inputs);
    _stages.push_back(std::move(s));
    return static_cast<int>(_stages.size() - 1);
  }

  const plan& _logical;
  const planner_options& _options;
  std::vector<schema> _schemas;
  std::vector<stage> _stages;
};

}  // namespace

physical_plan plan_stages(const plan& logical, const planner_options& options) {
  EMBER_EXPECTS(
      options.partitions >= 1, invalid_input,
      "the planner needs at least one partition, not " + std::to_string(options.partitions));
  return builder(logical, options).run();
}

int body_partitions(const plan& body, node_id id) {
  const auto& node = body.node(id);
  return std::visit(
      [&](const auto& n) -> int {
        using T = std::decay_t<decltype(n)>;
        if constexpr (std::is_same_v<T, table_source> || std::is_same_v<T, text_source> ||
                      std::is_same_v<T, generate_source> || std::is_same_v<T, dataset_source>) {
          EMBER_EXPECTS(n.partitions >= 1, invalid_input,
                        "a source in a stage body has no partition count");
          return n.partitions;
        } else if constexpr (std::is_same_v<T, exchange_source>) {
          return n.mode == exchange_mode::hash ? n.partitions : 1;
        } else if constexpr (std::is_same_v<T, join_node>) {
          return body_partitions(body, n.left);
        } else if constexpr (std::is_same_v<T, concat_node>) {
          int sum = 0;
          for (auto i : n.inputs) sum += body_partitions(body, i);
          return sum;
        } else {
          return body_partitions(body, n.input);
        }
      },
      node.op);
}

std::string physical_plan::to_string() const {
  std::ostringstream out;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const auto& s = stages[i];
    out << "stage " << i << " '" << s.name << "': " << s.partitions << " tasks -> "
        << ember::to_string(s.output.mode);
    if (s.output.mode == exchange_mode::hash) {
      out << "[" << joined(s.output.keys, ", ") << "] x" << s.output.partitions;
    }
    if (!s.inputs.empty()) {
      out << " (reads stage";
      for (auto in : s.inputs) out << " " << in;
      out << ")";
    }
    out << "\n";
    std::istringstream body(s.body.to_string());
    for (std::string line; std::getline(body, line);) out << "    " << line << "\n";
  }
  return out.str();
}

}  // namespace ember
