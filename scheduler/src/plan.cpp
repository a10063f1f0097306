#include <ember/host/error.hpp>
#include <ember/scheduler/plan.hpp>
#include <sstream>

namespace ember {

bool schema::has(std::string_view name) const noexcept {
  for (const auto& n : names)
    if (n == name) return true;
  return false;
}

size_type schema::index_of(std::string_view name) const {
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<size_type>(i);
  std::string have;
  for (const auto& n : names) have += (have.empty() ? "" : ", ") + n;
  throw invalid_input("unknown column '" + std::string(name) +
                      "' (the table has: " + (have.empty() ? "no columns" : have) + ")");
}

std::string schema::to_string() const {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ", ";
    out += names[i] + " " + std::string(ember::to_string(types[i]));
  }
  return out;
}

schema schema::of(const table_view& t) {
  schema s;
  s.names = t.names();
  for (const auto& c : t.columns()) s.types.push_back(c.type());
  return s;
}

node_id plan::add(node_op op, std::string label) {
  nodes.push_back(plan_node{std::move(op), std::move(label)});
  root = static_cast<node_id>(nodes.size() - 1);
  return root;
}

const plan_node& plan::node(node_id id) const {
  EMBER_EXPECTS(id >= 0 && static_cast<std::size_t>(id) < nodes.size(), invalid_input,
                "plan node " + std::to_string(id) + " does not exist (the plan has " +
                    std::to_string(nodes.size()) + " nodes)");
  return nodes[static_cast<std::size_t>(id)];
}

namespace {
struct renumber {
  node_id offset;
  void operator()(node_id& id) const { id += offset; }
};
template <class F>
void for_each_input(node_op& op, F&& f) {
  std::visit(
      [&](auto& n) {
        using T = std::decay_t<decltype(n)>;
        if constexpr (std::is_same_v<T, join_node>) {
          f(n.left);
          f(n.right);
        } else if constexpr (std::is_same_v<T, concat_node>) {
          for (auto& i : n.inputs) f(i);
        } else if constexpr (requires { n.input; }) {
          f(n.input);
        }
      },
      op);
}
}  // namespace

node_id plan::append(const plan& other) {
  auto offset = static_cast<node_id>(nodes.size());
  for (const auto& n : other.nodes) {
    plan_node copy = n;
    for_each_input(copy.op, renumber{offset});
    nodes.push_back(std::move(copy));
  }
  return other.root + offset;
}

std::vector<node_id> inputs_of(const node_op& op) {
  std::vector<node_id> out;
  node_op copy = op;
  for_each_input(copy, [&](node_id id) { out.push_back(id); });
  return out;
}

expression dataset_filter::to_expression() const {
  auto c = col(column);
  auto v = expression::lit(value);
  switch (op) {
    case comparison::eq:
      return c == v;
    case comparison::ne:
      return c != v;
    case comparison::lt:
      return c < v;
    case comparison::le:
      return c <= v;
    case comparison::gt:
      return c > v;
    case comparison::ge:
      return c >= v;
  }
  throw invalid_input("dataset filter on '" + column + "': unknown comparison " +
                      std::to_string(static_cast<int>(op)));
}

std::string_view op_name(const node_op& op) noexcept {
  static constexpr std::string_view names[] = {
      "table",    "read_text", "generate",    "exchange",     "project",      "filter",
      "tokenize", "aggregate", "distinct",    "sort",         "top_k",        "join",
      "concat",   "limit",     "repartition", "read_dataset", "write_dataset"};
  static_assert(std::size(names) == std::variant_size_v<node_op>);
  return names[op.index()];
}

std::string_view to_string(join_strategy s) noexcept {
  switch (s) {
    case join_strategy::automatic:
      return "auto";
    case join_strategy::shuffle:
      return "shuffle";
    case join_strategy::broadcast:
      return "broadcast";
  }
  return "?";
}

std::string_view to_string(exchange_mode m) noexcept {
  switch (m) {
    case exchange_mode::hash:
      return "hash";
    case exchange_mode::gather:
      return "gather";
    case exchange_mode::broadcast:
      return "broadcast";
    case exchange_mode::result:
      return "result";
  }
  return "?";
}

namespace {
std::string list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += ", ";
    out += v[i];
  }
  return out + "]";
}
std::string keys_text(const std::vector<sort_key>& keys) {
  std::string out = "[";
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) out += ", ";
    out += keys[i].column;
    out += keys[i].descending ? " desc" : " asc";
    if (keys[i].nulls_first) out += " nulls first";
  }
  return out + "]";
}

// The text inside a node's parentheses. (Each result starts from a std::string: GCC 12 warns
// falsely about `"literal" + std::string` under -O2, PR 105329.)
struct describe_op {
  std::string operator()(const table_source& n) const {
    return std::to_string(n.data ? n.data->num_rows() : 0) +
           " rows, partitions=" + std::to_string(n.partitions);
  }
  std::string operator()(const text_source& n) const {
    return list(n.paths) + ", partitions=" + std::to_string(n.partitions);
  }
  std::string operator()(const generate_source& n) const {
    return n.generator + ", rows=" + std::to_string(n.rows) + ", seed=" + std::to_string(n.seed) +
           ", cardinality=" + std::to_string(n.cardinality) +
           ", partitions=" + std::to_string(n.partitions);
  }
  std::string operator()(const exchange_source& n) const {
    std::string out = "stage ";
    out += std::to_string(n.stage) + ", " + std::string(to_string(n.mode)) +
           ", partitions=" + std::to_string(n.partitions);
    return out;
  }
  std::string operator()(const project_node& n) const {
    std::string out;
    for (std::size_t i = 0; i < n.columns.size(); ++i) {
      if (i > 0) out += ", ";
      out += n.columns[i].expr.to_string() + " as " + n.columns[i].name;
    }
    return out;
  }
  std::string operator()(const filter_node& n) const { return n.predicate.to_string(); }
  std::string operator()(const tokenize_node& n) const { return n.column + " as " + n.output; }
  std::string operator()(const aggregate_node& n) const {
    std::string out = "keys=";
    out += list(n.keys) + " aggs=[";
    for (std::size_t i = 0; i < n.aggregations.size(); ++i) {
      const auto& a = n.aggregations[i];
      if (i > 0) out += ", ";
      out += std::string(to_string(a.kind)) + "(" + a.column + ") as " + a.output_name;
    }
    return out + "]";
  }
  std::string operator()(const distinct_node& n) const { return list(n.columns); }
  std::string operator()(const sort_node& n) const { return keys_text(n.keys); }
  std::string operator()(const top_k_node& n) const {
    return keys_text(n.keys) + ", k=" + std::to_string(n.k);
  }
  std::string operator()(const join_node& n) const {
    return std::string(to_string(n.kind)) + ", " + list(n.left_keys) + " = " + list(n.right_keys) +
           ", " + std::string(to_string(n.strategy));
  }
  std::string operator()(const concat_node&) const { return {}; }
  std::string operator()(const limit_node& n) const { return std::to_string(n.count); }
  std::string operator()(const repartition_node& n) const { return list(n.keys); }
  std::string operator()(const dataset_source& n) const {
    std::string out = n.name;
    out += ", version=" + std::to_string(n.version) + ", columns=" + list(n.columns);
    for (const auto& f : n.filters) out += ", skip unless " + f.to_expression().to_string();
    return out + ", partitions=" + std::to_string(n.partitions);
  }
  std::string operator()(const dataset_sink& n) const {
    std::string out = n.staging_dir;
    out += ", compression=" + std::string(ember::to_string(n.compression));
    if (n.compression == compression_codec::zstd) out += ", level=" + std::to_string(n.level);
    return out + ", row_group_rows=" + std::to_string(n.row_group_rows);
  }
};
}  // namespace

schema dataset_sink::sink_columns() {
  return schema{{"partition", "file", "rows", "bytes", "footer_checksum"},
                {type_id::int32, type_id::string, type_id::int64, type_id::int64, type_id::int64}};
}

std::string plan::to_string() const {
  std::ostringstream out;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    out << i << " " << op_name(n.op) << "(" << std::visit(describe_op{}, n.op) << ")";
    if (!n.label.empty()) out << " '" << n.label << "'";
    auto in = inputs_of(n.op);
    if (!in.empty()) {
      out << " <-";
      for (auto id : in) out << " " << id;
    }
    if (static_cast<node_id>(i) == root) out << " (root)";
    out << "\n";
  }
  return out.str();
}

}  // namespace ember
