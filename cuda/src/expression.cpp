#include <ember/cuda/copying.hpp>
#include <ember/cuda/expression.hpp>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>

#include <optional>
#include <string>
#include <utility>

#include "dispatch.hpp"

// The backends' kernels, one per node kind (portable/expression.inl). Evaluation itself walks the
// tree here, on the host: every node materialises one column, and a node whose operands are all
// literals produces a one-row "scalar" column that its parent reads at row 0 for every row.
EMBER_DECLARE_BACKENDS(
    column expr_broadcast(const column_view& one_row, size_type rows, context& ctx);
    column expr_cast(const column_view& input, type_id to, context& ctx);
    column expr_unary(unary_op op, const column_view& input, context& ctx);
    column expr_binary(binary_op op, const column_view& lhs, bool lhs_scalar,
                       const column_view& rhs, bool rhs_scalar, size_type rows, context& ctx);
    column expr_hash(const table_view& operands, context& ctx);
    table expr_filter(const table_view& input, const column_view& predicate, context& ctx))

namespace ember {

struct expression::node {
  expression::kind kind;
  std::string name;  // column
  scalar value;      // literal
  unary_op uop = unary_op::negate;
  binary_op bop = binary_op::add;
  type_id to = type_id::int64;  // cast
  std::vector<expression> children;
};

namespace {

const char* symbol(binary_op op) {
  switch (op) {
    case binary_op::add:
      return "+";
    case binary_op::sub:
      return "-";
    case binary_op::mul:
      return "*";
    case binary_op::div:
      return "/";
    case binary_op::mod:
      return "%";
    case binary_op::eq:
      return "==";
    case binary_op::ne:
      return "!=";
    case binary_op::lt:
      return "<";
    case binary_op::le:
      return "<=";
    case binary_op::gt:
      return ">";
    case binary_op::ge:
      return ">=";
    case binary_op::logical_and:
      return "and";
    case binary_op::logical_or:
      return "or";
  }
  return "?";
}

const char* symbol(unary_op op) {
  switch (op) {
    case unary_op::negate:
      return "-";
    case unary_op::logical_not:
      return "not";
    case unary_op::is_null:
      return "is null";
    case unary_op::is_not_null:
      return "is not null";
  }
  return "?";
}

bool is_arithmetic(binary_op op) {
  return op == binary_op::add || op == binary_op::sub || op == binary_op::mul ||
         op == binary_op::div || op == binary_op::mod;
}
bool is_comparison(binary_op op) {
  return op == binary_op::eq || op == binary_op::ne || op == binary_op::lt || op == binary_op::le ||
         op == binary_op::gt || op == binary_op::ge;
}

/// int32, int64, float32 and float64: the types arithmetic works on, in promotion order.
int number_rank(type_id t) {
  switch (t) {
    case type_id::int32:
      return 0;
    case type_id::int64:
      return 1;
    case type_id::float32:
      return 2;
    case type_id::float64:
      return 3;
    default:
      return -1;
  }
}
bool is_number(type_id t) { return number_rank(t) >= 0; }
type_id wider(type_id a, type_id b) { return number_rank(a) >= number_rank(b) ? a : b; }

std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

[[noreturn]] void mismatch(const expression& e, const std::string& what) {
  throw invalid_input("type mismatch in " + e.to_string() + ": " + what);
}

std::string type_name(type_id t) { return std::string(to_string(t)); }

/// The type of a binary node, given its operand types; nullopt when they do not fit the op.
std::optional<type_id> binary_result(binary_op op, type_id l, type_id r) {
  if (is_arithmetic(op)) {
    if (is_number(l) && is_number(r)) return wider(l, r);
    bool l_int = l == type_id::int32 || l == type_id::int64;
    bool r_int = r == type_id::int32 || r == type_id::int64;
    if (op == binary_op::add &&
        ((l == type_id::timestamp_ns && r_int) || (l_int && r == type_id::timestamp_ns)))
      return type_id::timestamp_ns;
    if (op == binary_op::sub && l == type_id::timestamp_ns && r_int) return type_id::timestamp_ns;
    // The difference of two timestamps is a duration in nanoseconds.
    if (op == binary_op::sub && l == type_id::timestamp_ns && r == type_id::timestamp_ns)
      return type_id::int64;
    return std::nullopt;
  }
  if (is_comparison(op)) {
    if ((is_number(l) && is_number(r)) || (l == r && !is_number(l))) return type_id::bool8;
    return std::nullopt;
  }
  if (l == type_id::bool8 && r == type_id::bool8) return type_id::bool8;
  return std::nullopt;
}

}  // namespace

// ---- building -------------------------------------------------------------------------------

expression expression::col(std::string name) {
  auto n = std::make_shared<node>();
  n->kind = kind::column;
  n->name = std::move(name);
  return expression(std::move(n));
}

expression expression::lit(scalar value) {
  auto n = std::make_shared<node>();
  n->kind = kind::literal;
  n->value = std::move(value);
  return expression(std::move(n));
}

expression expression::unary(unary_op op, expression operand) {
  auto n = std::make_shared<node>();
  n->kind = kind::unary;
  n->uop = op;
  n->children.push_back(std::move(operand));
  return expression(std::move(n));
}

expression expression::binary(binary_op op, expression lhs, expression rhs) {
  auto n = std::make_shared<node>();
  n->kind = kind::binary;
  n->bop = op;
  n->children.push_back(std::move(lhs));
  n->children.push_back(std::move(rhs));
  return expression(std::move(n));
}

expression expression::cast(expression operand, type_id to) {
  auto n = std::make_shared<node>();
  n->kind = kind::cast;
  n->to = to;
  n->children.push_back(std::move(operand));
  return expression(std::move(n));
}

expression expression::hash(std::vector<expression> operands) {
  EMBER_EXPECTS(!operands.empty(), invalid_input, "hash() needs at least one operand");
  auto n = std::make_shared<node>();
  n->kind = kind::hash;
  n->children = std::move(operands);
  return expression(std::move(n));
}

expression::kind expression::node_kind() const noexcept { return _node->kind; }

const std::string& expression::column_name() const {
  EMBER_EXPECTS(_node->kind == kind::column, logic_error,
                "expression::column_name: " + to_string() + " is not a column reference");
  return _node->name;
}
const scalar& expression::literal_value() const {
  EMBER_EXPECTS(_node->kind == kind::literal, logic_error,
                "expression::literal_value: " + to_string() + " is not a literal");
  return _node->value;
}
unary_op expression::unary_operator() const {
  EMBER_EXPECTS(_node->kind == kind::unary, logic_error,
                "expression::unary_operator: " + to_string() + " is not a unary expression");
  return _node->uop;
}
binary_op expression::binary_operator() const {
  EMBER_EXPECTS(_node->kind == kind::binary, logic_error,
                "expression::binary_operator: " + to_string() + " is not a binary expression");
  return _node->bop;
}
type_id expression::cast_type() const {
  EMBER_EXPECTS(_node->kind == kind::cast, logic_error,
                "expression::cast_type: " + to_string() + " is not a cast");
  return _node->to;
}
const std::vector<expression>& expression::children() const { return _node->children; }

std::string expression::to_string() const {
  const auto& n = *_node;
  switch (n.kind) {
    case kind::column:
      return n.name;
    case kind::literal: {
      if (!n.value.valid()) return "null";
      if (n.value.type() == type_id::string) return quoted(n.value.as_string());
      if (n.value.type() == type_id::timestamp_ns) return "timestamp " + quoted(n.value.to_text());
      return n.value.to_text();
    }
    case kind::unary: {
      auto operand = n.children[0].to_string();
      switch (n.uop) {
        case unary_op::negate:
          return "(-" + operand + ")";
        case unary_op::logical_not:
          return "(not " + operand + ")";
        default:
          return "(" + operand + " " + symbol(n.uop) + ")";
      }
    }
    case kind::binary:
      return "(" + n.children[0].to_string() + " " + symbol(n.bop) + " " +
             n.children[1].to_string() + ")";
    case kind::cast:
      return "cast(" + n.children[0].to_string() + " as " + type_name(n.to) + ")";
    case kind::hash: {
      std::string out = "hash(";
      for (std::size_t i = 0; i < n.children.size(); ++i)
        out += (i == 0 ? "" : ", ") + n.children[i].to_string();
      return out + ")";
    }
  }
  return "?";
}

expression operator+(expression a, expression b) {
  return expression::binary(binary_op::add, std::move(a), std::move(b));
}
expression operator-(expression a, expression b) {
  return expression::binary(binary_op::sub, std::move(a), std::move(b));
}
expression operator*(expression a, expression b) {
  return expression::binary(binary_op::mul, std::move(a), std::move(b));
}
expression operator/(expression a, expression b) {
  return expression::binary(binary_op::div, std::move(a), std::move(b));
}
expression operator%(expression a, expression b) {
  return expression::binary(binary_op::mod, std::move(a), std::move(b));
}
expression operator==(expression a, expression b) {
  return expression::binary(binary_op::eq, std::move(a), std::move(b));
}
expression operator!=(expression a, expression b) {
  return expression::binary(binary_op::ne, std::move(a), std::move(b));
}
expression operator<(expression a, expression b) {
  return expression::binary(binary_op::lt, std::move(a), std::move(b));
}
expression operator<=(expression a, expression b) {
  return expression::binary(binary_op::le, std::move(a), std::move(b));
}
expression operator>(expression a, expression b) {
  return expression::binary(binary_op::gt, std::move(a), std::move(b));
}
expression operator>=(expression a, expression b) {
  return expression::binary(binary_op::ge, std::move(a), std::move(b));
}
expression operator&&(expression a, expression b) {
  return expression::binary(binary_op::logical_and, std::move(a), std::move(b));
}
expression operator||(expression a, expression b) {
  return expression::binary(binary_op::logical_or, std::move(a), std::move(b));
}
expression operator!(expression a) {
  return expression::unary(unary_op::logical_not, std::move(a));
}
expression operator-(expression a) { return expression::unary(unary_op::negate, std::move(a)); }
expression cast(expression e, type_id to) { return expression::cast(std::move(e), to); }
expression is_null(expression e) { return expression::unary(unary_op::is_null, std::move(e)); }
expression is_not_null(expression e) {
  return expression::unary(unary_op::is_not_null, std::move(e));
}
expression hash(std::vector<expression> operands) { return expression::hash(std::move(operands)); }

// ---- type checking --------------------------------------------------------------------------

type_id result_type(const expression& e, const table_view& input) {
  switch (e.node_kind()) {
    case expression::kind::column:
      return input.column(e.column_name()).type();
    case expression::kind::literal:
      return e.literal_value().type();
    case expression::kind::unary: {
      type_id t = result_type(e.children()[0], input);
      switch (e.unary_operator()) {
        case unary_op::negate:
          if (!is_number(t)) mismatch(e, "cannot apply - to " + type_name(t));
          return t;
        case unary_op::logical_not:
          if (t != type_id::bool8) mismatch(e, "cannot apply not to " + type_name(t));
          return t;
        case unary_op::is_null:
        case unary_op::is_not_null:
          return type_id::bool8;
      }
      break;
    }
    case expression::kind::binary: {
      type_id l = result_type(e.children()[0], input);
      type_id r = result_type(e.children()[1], input);
      auto t = binary_result(e.binary_operator(), l, r);
      if (!t) {
        mismatch(e, std::string("cannot apply ") + symbol(e.binary_operator()) + " to " +
                        type_name(l) + " and " + type_name(r));
      }
      return *t;
    }
    case expression::kind::cast:
      // Every cast is allowed: numbers, bools and timestamps convert among each other, anything
      // becomes text, and text parses (to null where it does not).
      (void)result_type(e.children()[0], input);
      return e.cast_type();
    case expression::kind::hash:
      for (const auto& c : e.children()) (void)result_type(c, input);
      return type_id::int64;
  }
  throw logic_error("result_type: unknown expression kind in " + e.to_string());
}

// ---- evaluation -----------------------------------------------------------------------------

namespace {

/// What a node evaluated to: a view of an input column or of `owned`; `scalar` when it is one
/// row that stands for every row.
struct value {
  std::optional<column> owned;
  column_view view;
  bool scalar = false;

  static value of_view(const column_view& v) { return value{std::nullopt, v, false}; }
  static value of_column(column c, bool scalar) {
    value out;
    out.owned.emplace(std::move(c));
    out.view = out.owned->view();
    out.scalar = scalar;
    return out;
  }
  [[nodiscard]] type_id type() const { return view.type(); }
};

/// The same fixed-width bytes under another type (int64 <-> timestamp).
column_view relabel(const column_view& v, type_id to) {
  return column_view(to, v.size(), v.data(), v.null_mask(), v.kind(), v.mask_offset());
}
column relabel(column c, type_id to) {
  auto size = c.size();
  return column(to, size, std::move(c.data()), std::move(c.null_mask()));
}
value relabel(value v, type_id to) {
  if (v.owned) return value::of_column(relabel(std::move(*v.owned), to), v.scalar);
  return value::of_view(relabel(v.view, to));
}

column single_row(const scalar& s) {
  bool valid = s.valid();
  std::vector<bool> mask = valid ? std::vector<bool>{} : std::vector<bool>{false};
  switch (s.type()) {
    case type_id::int32:
      return make_column<std::int32_t>(s.type(), {static_cast<std::int32_t>(s.as_int())}, mask);
    case type_id::int64:
    case type_id::timestamp_ns:
      return make_column<std::int64_t>(s.type(), {s.as_int()}, mask);
    case type_id::bool8:
      return make_column<std::uint8_t>(s.type(), {static_cast<std::uint8_t>(s.as_int() != 0)},
                                       mask);
    case type_id::float32:
      return make_column<float>(s.type(), {static_cast<float>(s.as_float())}, mask);
    case type_id::float64:
      return make_column<double>(s.type(), {s.as_float()}, mask);
    case type_id::string:
      return make_string_column(std::vector<std::optional<std::string>>{
          valid ? std::optional<std::string>(s.as_string()) : std::nullopt});
  }
  throw logic_error("single_row: unknown type");
}

/// A copy of one column in the context's memory (slices are compacted).
column copy_of(const column_view& v, context& ctx) {
  auto t = copy_slice(table_view({v}, {"c"}), 0, v.size(), ctx);
  return std::move(t.release().front());
}

class evaluator {
 public:
  evaluator(const table_view& input, context& ctx) : _input(input), _ctx(ctx) {}

  value eval(const expression& e) {
    switch (e.node_kind()) {
      case expression::kind::column:
        return value::of_view(_input.column(e.column_name()));
      case expression::kind::literal: {
        std::vector<column> cols;
        cols.push_back(single_row(e.literal_value()));
        auto t = to_device(table(std::move(cols), {"literal"}).view(), _ctx);
        return value::of_column(std::move(t.release().front()), true);
      }
      case expression::kind::unary: {
        auto operand = eval(e.children()[0]);
        return value::of_column(
            EMBER_DISPATCH(_ctx, expr_unary, e.unary_operator(), operand.view, _ctx),
            operand.scalar);
      }
      case expression::kind::binary:
        return eval_binary(e);
      case expression::kind::cast:
        return convert(eval(e.children()[0]), e.cast_type());
      case expression::kind::hash:
        return eval_hash(e);
    }
    throw logic_error("evaluate: unknown expression kind in " + e.to_string());
  }

  /// `v` as a full column of the input's row count, owned.
  column materialise(value v) {
    if (v.scalar) return EMBER_DISPATCH(_ctx, expr_broadcast, v.view, _input.num_rows(), _ctx);
    if (v.owned) return std::move(*v.owned);
    return copy_of(v.view, _ctx);
  }

 private:
  value convert(value v, type_id to) {
    type_id from = v.type();
    if (from == to) return v;
    bool same_bits = (from == type_id::int64 && to == type_id::timestamp_ns) ||
                     (from == type_id::timestamp_ns && to == type_id::int64);
    if (same_bits) return relabel(std::move(v), to);
    return value::of_column(EMBER_DISPATCH(_ctx, expr_cast, v.view, to, _ctx), v.scalar);
  }

  value eval_binary(const expression& e) {
    binary_op op = e.binary_operator();
    auto lhs = eval(e.children()[0]);
    auto rhs = eval(e.children()[1]);
    type_id l = lhs.type(), r = rhs.type();
    type_id out = *binary_result(op, l, r);
    // Kernels exist per (type, op): bring both operands to one type first. Timestamps compute
    // as int64 and are labelled again afterwards.
    type_id common;
    if (l == type_id::timestamp_ns || r == type_id::timestamp_ns) {
      common = type_id::int64;
    } else if (is_number(l) && is_number(r)) {
      common = wider(l, r);
    } else {
      common = l;
    }
    if (l == type_id::timestamp_ns) lhs = relabel(std::move(lhs), type_id::int64);
    if (r == type_id::timestamp_ns) rhs = relabel(std::move(rhs), type_id::int64);
    lhs = convert(std::move(lhs), common);
    rhs = convert(std::move(rhs), common);
    bool scalar = lhs.scalar && rhs.scalar;
    size_type rows = scalar ? 1 : _input.num_rows();
    auto result = EMBER_DISPATCH(_ctx, expr_binary, op, lhs.view, lhs.scalar, rhs.view, rhs.scalar,
                                 rows, _ctx);
    if (out == type_id::timestamp_ns) result = relabel(std::move(result), out);
    return value::of_column(std::move(result), scalar);
  }

  value eval_hash(const expression& e) {
    std::vector<value> operands;
    bool scalar = true;
    for (const auto& c : e.children()) {
      operands.push_back(eval(c));
      scalar = scalar && operands.back().scalar;
    }
    std::vector<column_view> views;
    std::vector<std::string> names;
    std::vector<column> broadcasts;
    for (auto& v : operands) {
      if (v.scalar && !scalar) {
        broadcasts.push_back(EMBER_DISPATCH(_ctx, expr_broadcast, v.view, _input.num_rows(), _ctx));
        views.push_back(broadcasts.back().view());
      } else {
        views.push_back(v.view);
      }
      names.push_back(std::to_string(names.size()));
    }
    return value::of_column(
        EMBER_DISPATCH(_ctx, expr_hash, table_view(std::move(views), std::move(names)), _ctx),
        scalar);
  }

  const table_view& _input;
  context& _ctx;
};

}  // namespace

column evaluate(const expression& e, const table_view& input, context& ctx) {
  (void)result_type(e, input);
  evaluator ev(input, ctx);
  return ev.materialise(ev.eval(e));
}

table project(const table_view& input, const std::vector<named_expression>& exprs, context& ctx) {
  // Check every expression before computing any, so a bad one costs no work.
  for (std::size_t i = 0; i < exprs.size(); ++i) {
    (void)result_type(exprs[i].expr, input);
    for (std::size_t j = 0; j < i; ++j)
      EMBER_EXPECTS(exprs[j].name != exprs[i].name, invalid_input,
                    "project: the output column '" + exprs[i].name + "' appears twice");
  }
  std::vector<column> cols;
  std::vector<std::string> names;
  evaluator ev(input, ctx);
  for (const auto& ne : exprs) {
    cols.push_back(ev.materialise(ev.eval(ne.expr)));
    names.push_back(ne.name);
  }
  return table(std::move(cols), std::move(names));
}

table filter(const table_view& input, const expression& predicate, context& ctx) {
  type_id t = result_type(predicate, input);
  EMBER_EXPECTS(
      t == type_id::bool8, invalid_input,
      "filter: the predicate " + predicate.to_string() + " is " + type_name(t) + ", not bool");
  evaluator ev(input, ctx);
  auto keep = ev.eval(predicate);
  if (keep.scalar) {
    // A constant predicate keeps every row or none.
    auto host = to_host(table_view({keep.view}, {"keep"}), ctx);
    auto s = get_scalar(host.view().column(0), 0);
    bool all = s.valid() && s.as_int() != 0;
    return copy_slice(input, 0, all ? input.num_rows() : 0, ctx);
  }
  return EMBER_DISPATCH(ctx, expr_filter, input, keep.view, ctx);
}

}  // namespace ember
