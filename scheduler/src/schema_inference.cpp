#include <ember/host/column_factories.hpp>
#include <ember/host/dataset_store.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/generators.hpp>
#include <ember/scheduler/schema_inference.hpp>
#include <filesystem>
#include <set>

namespace ember {
namespace {

void expect_unique(const std::vector<std::string>& names, std::string_view what) {
  std::set<std::string_view> seen;
  for (const auto& n : names) {
    EMBER_EXPECTS(!n.empty(), invalid_input, std::string(what) + ": an output column has no name");
    EMBER_EXPECTS(seen.insert(n).second, invalid_input,
                  std::string(what) + ": output column '" + n + "' appears twice");
  }
}

// Expressions are typed by the operator library itself, over an empty table of the schema, so
// the plan check and the run give the same verdict and the same message.
type_id expression_type(const expression& e, const schema& s) {
  auto empty = make_empty_table(s.names, s.types);
  return result_type(e, empty.view());
}

type_id aggregate_type(const aggregation& a, const schema& in) {
  std::string what = std::string(to_string(a.kind)) + "(" + a.column + ")";
  if (a.kind == aggregation_kind::count_all) return type_id::int64;
  EMBER_EXPECTS(!a.column.empty(), invalid_input, what + " needs a column");
  auto t = in.type_of(a.column);
  switch (a.kind) {
    case aggregation_kind::count:
    case aggregation_kind::count_distinct:
    case aggregation_kind::count_all:
      return type_id::int64;
    case aggregation_kind::min:
    case aggregation_kind::max:
      return t;
    case aggregation_kind::sum:
    case aggregation_kind::mean: {
      bool summable =
          t == type_id::int32 || t == type_id::int64 || t == type_id::bool8 || is_floating(t);
      EMBER_EXPECTS(summable, invalid_input,
                    "cannot compute " + what + " of a " + std::string(to_string(t)) + " column");
      if (a.kind == aggregation_kind::mean) return type_id::float64;
      return is_floating(t) ? type_id::float64 : type_id::int64;
    }
  }
  throw invalid_input("unknown aggregation kind " + std::to_string(static_cast<int>(a.kind)));
}

void expect_sort_keys(const std::vector<sort_key>& keys, const schema& in, std::string_view what) {
  EMBER_EXPECTS(!keys.empty(), invalid_input, std::string(what) + " needs at least one key");
  for (const auto& k : keys) (void)in.index_of(k.column);
}

struct infer {
  const std::vector<const schema*>& in;
  const schema& input() const { return *in.at(0); }

  schema operator()(const table_source& n) const {
    EMBER_EXPECTS(n.data != nullptr, invalid_input, "the table source has no table");
    EMBER_EXPECTS(n.partitions >= 0, invalid_input,
                  "negative partition count " + std::to_string(n.partitions));
    auto view = n.data->view();
    for (size_type c = 0; c < view.num_columns(); ++c) {
      EMBER_EXPECTS(view.column(c).kind() == memory_kind::host, invalid_input,
                    "the table source's column '" + view.names()[c] +
                        "' is not in host memory (in-memory sources take host tables)");
    }
    return schema::of(view);
  }
  schema operator()(const text_source& n) const {
    EMBER_EXPECTS(!n.paths.empty(), invalid_input, "read_text needs at least one file");
    EMBER_EXPECTS(n.partitions >= 0, invalid_input,
                  "negative partition count " + std::to_string(n.partitions));
    for (const auto& p : n.paths) {
      std::error_code ec;
      auto status = std::filesystem::status(p, ec);
      EMBER_EXPECTS(!ec && std::filesystem::exists(status), invalid_input,
                    "cannot read input file '" + p + "': it does not exist");
      EMBER_EXPECTS(std::filesystem::is_regular_file(status), invalid_input,
                    "cannot read input file '" + p + "': it is not a regular file");
    }
    return schema{{"line"}, {type_id::string}};
  }
  schema operator()(const generate_source& n) const {
    EMBER_EXPECTS(n.rows >= 0, invalid_input,
                  "generate " + n.generator + ": negative row count " + std::to_string(n.rows));
    EMBER_EXPECTS(
        n.cardinality >= 0, invalid_input,
        "generate " + n.generator + ": negative cardinality " + std::to_string(n.cardinality));
    EMBER_EXPECTS(n.partitions >= 0, invalid_input,
                  "negative partition count " + std::to_string(n.partitions));
    return generator_schema(n.generator);
  }
  schema operator()(const dataset_source& n) const {
    EMBER_EXPECTS(n.partitions >= 0, invalid_input,
                  "negative partition count " + std::to_string(n.partitions));
    dataset_store store(n.root);
    auto manifest =
        store.read_manifest(n.name, n.version == 0 ? std::nullopt : std::optional(n.version));
    schema all;
    for (const auto& c : manifest.schema) {
      all.names.push_back(c.name);
      all.types.push_back(c.type);
    }
    auto where = "dataset '" + n.name + "' version " + std::to_string(manifest.version);
    auto known = [&](const std::string& column) {
      EMBER_EXPECTS(
          all.has(column), invalid_input,
          where + ": unknown column '" + column + "' (the dataset has: " + all.to_string() + ")");
      return all.type_of(column);
    };
    for (const auto& f : n.filters) {
      auto t = known(f.column);
      EMBER_EXPECTS((t == type_id::string) == (f.value.type() == type_id::string), invalid_input,
                    where + ": cannot compare the " + std::string(to_string(t)) + " column '" +
                        f.column + "' with a " + std::string(to_string(f.value.type())) + " value");
    }
    if (n.columns.empty()) return all;
    schema out;
    for (const auto& c : n.columns) {
      out.names.push_back(c);
      out.types.push_back(known(c));
    }
    expect_unique(out.names, "read_dataset");
    return out;
  }
  schema operator()(const exchange_source& n) const {
    EMBER_EXPECTS(n.stage >= 0 && n.partitions >= 1, invalid_input,
                  "malformed exchange source (stage " + std::to_string(n.stage) + ", " +
                      std::to_string(n.partitions) + " partitions)");
    EMBER_EXPECTS(n.columns.names.size() == n.columns.types.size(), invalid_input,
                  "malformed exchange source schema");
    expect_unique(n.columns.names, "exchange");
    return n.columns;
  }
  schema operator()(const project_node& n) const {
    EMBER_EXPECTS(!n.columns.empty(), invalid_input, "project needs at least one column");
    schema out;
    for (const auto& c : n.columns) {
      out.names.push_back(c.name);
      out.types.push_back(expression_type(c.expr, input()));
    }
    expect_unique(out.names, "project");
    return out;
  }
  schema operator()(const filter_node& n) const {
    auto t = expression_type(n.predicate, input());
    EMBER_EXPECTS(t == type_id::bool8, invalid_input,
                  "filter: the predicate " + n.predicate.to_string() + " is " +
                      std::string(to_string(t)) + ", not bool");
    return input();
  }
  schema operator()(const tokenize_node& n) const {
    auto t = input().type_of(n.column);
    EMBER_EXPECTS(
        t == type_id::string, invalid_input,
        "tokenize: column '" + n.column + "' is " + std::string(to_string(t)) + ", not string");
    EMBER_EXPECTS(!n.output.empty(), invalid_input, "tokenize: the output column has no name");
    return schema{{n.output}, {type_id::string}};
  }
  schema operator()(const aggregate_node& n) const {
    schema out;
    for (const auto& k : n.keys) {
      out.names.push_back(k);
      out.types.push_back(input().type_of(k));
    }
    for (const auto& a : n.aggregations) {
      out.names.push_back(a.output_name);
      out.types.push_back(aggregate_type(a, input()));
    }
    expect_unique(out.names, "aggregate");
    return out;
  }
  schema operator()(const distinct_node& n) const {
    if (n.columns.empty()) return input();
    schema out;
    for (const auto& c : n.columns) {
      out.names.push_back(c);
      out.types.push_back(input().type_of(c));
    }
    expect_unique(out.names, "distinct");
    return out;
  }
  schema operator()(const sort_node& n) const {
    expect_sort_keys(n.keys, input(), "sort");
    return input();
  }
  schema operator()(const top_k_node& n) const {
    expect_sort_keys(n.keys, input(), "top_k");
    EMBER_EXPECTS(n.k >= 0, invalid_input, "top_k: negative k " + std::to_string(n.k));
    return input();
  }
  schema operator()(const join_node& n) const {
    const schema& left = *in.at(0);
    const schema& right = *in.at(1);
    EMBER_EXPECTS(!n.left_keys.empty(), invalid_input, "join needs at least one key");
    EMBER_EXPECTS(n.left_keys.size() == n.right_keys.size(), invalid_input,
                  "join: " + std::to_string(n.left_keys.size()) + " left keys but " +
                      std::to_string(n.right_keys.size()) + " right keys");
    for (std::size_t i = 0; i < n.left_keys.size(); ++i) {
      auto lt = left.type_of(n.left_keys[i]);
      auto rt = right.type_of(n.right_keys[i]);
      EMBER_EXPECTS(lt == rt, invalid_input,
                    "join: key '" + n.left_keys[i] + "' is " + std::string(to_string(lt)) +
                        " on the left but '" + n.right_keys[i] + "' is " +
                        std::string(to_string(rt)) + " on the right");
    }
    schema out = left;
    if (n.kind == join_kind::semi || n.kind == join_kind::anti) return out;
    for (std::size_t c = 0; c < right.names.size(); ++c) {
      const auto& name = right.names[c];
      bool is_key = false;
      for (const auto& k : n.right_keys) is_key = is_key || k == name;
      if (is_key) continue;
      out.names.push_back(out.has(name) ? name + "_right" : name);
      out.types.push_back(right.types[c]);
    }
    expect_unique(out.names, "join");
    return out;
  }
  schema operator()(const concat_node&) const {
    EMBER_EXPECTS(!in.empty(), invalid_input, "concat needs at least one input");
    const schema& first = *in[0];
    for (std::size_t t = 1; t < in.size(); ++t) {
      EMBER_EXPECTS(in[t]->names == first.names, invalid_input,
                    "concat: input " + std::to_string(t) + " has columns (" + in[t]->to_string() +
                        ") but input 0 has (" + first.to_string() + ")");
      EMBER_EXPECTS(in[t]->types == first.types, invalid_input,
                    "concat: input " + std::to_string(t) + " has column types (" +
                        in[t]->to_string() + ") but input 0 has (" + first.to_string() + ")");
    }
    return first;
  }
  schema operator()(const repartition_node& n) const {
    EMBER_EXPECTS(!n.keys.empty(), invalid_input, "repartition: no key columns");
    for (const auto& k : n.keys) (void)input().index_of(k);
    return input();
  }
  schema operator()(const dataset_sink& n) const {
    EMBER_EXPECTS(!n.staging_dir.empty(), invalid_input, "write_dataset: no staging folder");
    EMBER_EXPECTS(
        n.compression == compression_codec::none || n.compression == compression_codec::zstd,
        invalid_input,
        "write_dataset: unknown compression " + std::to_string(static_cast<int>(n.compression)));
    EMBER_EXPECTS(n.level >= -131072 && n.level <= 22, invalid_input,
                  "write_dataset: zstd level " + std::to_string(n.level) + " out of range");
    EMBER_EXPECTS(n.row_group_rows >= 1, invalid_input,
                  "write_dataset: row groups of " + std::to_string(n.row_group_rows) + " rows");
    (void)input();
    return dataset_sink::sink_columns();
  }
  schema operator()(const limit_node& n) const {
    EMBER_EXPECTS(n.count >= 0, invalid_input, "limit: negative count " + std::to_string(n.count));
    return input();
  }
};

}  // namespace

schema infer_node_schema(const node_op& op, const std::vector<const schema*>& inputs) {
  return std::visit(infer{inputs}, op);
}

std::vector<schema> infer_schemas(const plan& p, bool allow_exchange) {
  EMBER_EXPECTS(!p.nodes.empty(), invalid_input, "the plan has no nodes");
  EMBER_EXPECTS(p.root >= 0 && static_cast<std::size_t>(p.root) < p.nodes.size(), invalid_input,
                "the plan's root " + std::to_string(p.root) + " is not one of its " +
                    std::to_string(p.nodes.size()) + " nodes");
  std::vector<schema> out;
  out.reserve(p.nodes.size());
  for (std::size_t i = 0; i < p.nodes.size(); ++i) {
    const auto& node = p.nodes[i];
    std::string where = "node " + std::to_string(i) + " (" + std::string(op_name(node.op)) +
                        (node.label.empty() ? "" : " '" + node.label + "'") + ")";
    EMBER_EXPECTS(allow_exchange || !std::holds_alternative<exchange_source>(node.op),
                  invalid_input,
                  where + ": exchange sources are made by the planner, not written in plans");
    std::vector<const schema*> inputs;
    for (auto id : inputs_of(node.op)) {
      EMBER_EXPECTS(id >= 0 && static_cast<std::size_t>(id) < i, invalid_input,
                    where + ": input " + std::to_string(id) +
                        " is not an earlier node (plans list inputs before their readers)");
      inputs.push_back(&out[static_cast<std::size_t>(id)]);
    }
    try {
      out.push_back(infer_node_schema(node.op, inputs));
    } catch (const invalid_input& e) {
      throw invalid_input(where + ": " + e.what());
    }
  }
  return out;
}

schema output_schema(const plan& p) {
  auto all = infer_schemas(p);
  return std::move(all[static_cast<std::size_t>(p.root)]);
}

}  // namespace ember
