#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ember/cuda/context.hpp>
#include <ember/cuda/expression_ops.hpp>
#include <ember/host/scalar.hpp>
#include <ember/host/table.hpp>

namespace ember {

/// An immutable expression tree over the columns of a table: column references, literals,
/// arithmetic, comparisons, and/or/not, casts, is_null and hash. Cheap to copy (shared
/// nodes). Plain data, so plans that hold expressions can be serialised.
class expression {
 public:
  enum class kind : std::uint8_t { column, literal, unary, binary, cast, hash };

  /// A reference to the input column `name`.
  [[nodiscard]] static expression col(std::string name);
  /// A constant.
  [[nodiscard]] static expression lit(scalar value);
  [[nodiscard]] static expression unary(unary_op op, expression operand);
  [[nodiscard]] static expression binary(binary_op op, expression lhs, expression rhs);
  /// The operand converted to `to` (numbers, bools and timestamps among each other; any type
  /// to string; string to number parses and gives null when the text is not a number).
  [[nodiscard]] static expression cast(expression operand, type_id to);
  /// A 64-bit hash of the operands' values (as int64), the same on every backend and process.
  [[nodiscard]] static expression hash(std::vector<expression> operands);

  [[nodiscard]] kind node_kind() const noexcept;
  /// column: the column name.
  [[nodiscard]] const std::string& column_name() const;
  /// literal: the value.
  [[nodiscard]] const scalar& literal_value() const;
  [[nodiscard]] unary_op unary_operator() const;
  [[nodiscard]] binary_op binary_operator() const;
  /// cast: the target type.
  [[nodiscard]] type_id cast_type() const;
  /// unary, cast: one child; binary: two; hash: one or more.
  [[nodiscard]] const std::vector<expression>& children() const;
  /// Readable form for messages: "(price * 2)", "cast(a as float64)".
  [[nodiscard]] std::string to_string() const;

 private:
  struct node;
  explicit expression(std::shared_ptr<const node> n) : _node(std::move(n)) {}
  std::shared_ptr<const node> _node;
};

// Building expressions reads like C++: col("a") * lit(2) > col("b").
[[nodiscard]] inline expression col(std::string name) { return expression::col(std::move(name)); }
[[nodiscard]] inline expression lit(std::int64_t v) { return expression::lit(scalar::int64(v)); }
[[nodiscard]] inline expression lit(int v) { return expression::lit(scalar::int32(v)); }
[[nodiscard]] inline expression lit(double v) { return expression::lit(scalar::float64(v)); }
[[nodiscard]] inline expression lit(bool v) { return expression::lit(scalar::boolean(v)); }
[[nodiscard]] inline expression lit(const char* v) { return expression::lit(scalar::string(v)); }
[[nodiscard]] inline expression lit(std::string v) {
  return expression::lit(scalar::string(std::move(v)));
}
[[nodiscard]] expression operator+(expression a, expression b);
[[nodiscard]] expression operator-(expression a, expression b);
[[nodiscard]] expression operator*(expression a, expression b);
[[nodiscard]] expression operator/(expression a, expression b);
[[nodiscard]] expression operator%(expression a, expression b);
[[nodiscard]] expression operator==(expression a, expression b);
[[nodiscard]] expression operator!=(expression a, expression b);
[[nodiscard]] expression operator<(expression a, expression b);
[[nodiscard]] expression operator<=(expression a, expression b);
[[nodiscard]] expression operator>(expression a, expression b);
[[nodiscard]] expression operator>=(expression a, expression b);
[[nodiscard]] expression operator&&(expression a, expression b);
[[nodiscard]] expression operator||(expression a, expression b);
[[nodiscard]] expression operator!(expression a);
[[nodiscard]] expression operator-(expression a);
[[nodiscard]] expression cast(expression e, type_id to);
[[nodiscard]] expression is_null(expression e);
[[nodiscard]] expression is_not_null(expression e);
[[nodiscard]] expression hash(std::vector<expression> operands);

/// An output column of `project`: its name and how it is computed.
struct named_expression {
  std::string name;
  expression expr;
};

/// The type `e` produces over the columns of `input`. Throws ember::invalid_input naming the
/// problem: an unknown column (and the table's columns), or a type mismatch such as
/// "type mismatch in (name + 1): cannot apply + to string and int32".
[[nodiscard]] type_id result_type(const expression& e, const table_view& input);

/// Evaluates `e` for every row of `input` (in the context's memory). A row is null where an
/// operand is null (except and/or, see binary_op). Throws like result_type().
[[nodiscard]] column evaluate(const expression& e, const table_view& input, context& ctx);

/// One output column per expression, named as given (a plain column reference is copied).
[[nodiscard]] table project(const table_view& input, const std::vector<named_expression>& exprs,
                            context& ctx);

/// The rows of `input` where `predicate` (a bool expression) is true; null counts as false.
/// Keeps row order. Throws ember::invalid_input when the predicate is not bool.
[[nodiscard]] table filter(const table_view& input, const expression& predicate, context& ctx);

}  // namespace ember
