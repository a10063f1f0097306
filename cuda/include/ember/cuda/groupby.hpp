#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ember/cuda/context.hpp>
#include <ember/host/table.hpp>

namespace ember {

enum class aggregation_kind : std::uint8_t {
  sum,             ///< int64 for integers and bools, float64 for floats; null when no value
  count,           ///< int64: non-null values of the column
  count_all,       ///< int64: rows of the group (no column)
  min,             ///< the column's type (numbers, timestamps, bools, strings)
  max,             ///< the column's type
  mean,            ///< float64; null when no value
  count_distinct,  ///< int64: distinct non-null values of the column
};

/// The kind's name as plans and messages spell it: "sum", "count_distinct", ...
[[nodiscard]] std::string_view to_string(aggregation_kind k) noexcept;

/// One aggregate output column: `kind` over `column`, named `output_name`.
struct aggregation {
  aggregation_kind kind;
  std::string column;  ///< empty for count_all
  std::string output_name;
};

/// One row per distinct combination of `keys` (nulls form a group of their own): the key
/// columns, then one column per aggregation, in the order given. The row order is unspecified.
/// With no keys, one row aggregates the whole input (also when it is empty). Throws
/// ember::invalid_input for an unknown column, an aggregation its column's type cannot take
/// (sum of strings), or a repeated output name.
[[nodiscard]] table group_by(const table_view& input, const std::vector<std::string>& keys,
                             const std::vector<aggregation>& aggregations, context& ctx);

/// The distinct rows of `input` over `columns` (all columns when empty), one per combination,
/// holding just those columns. Nulls are equal to each other. The row order is unspecified.
[[nodiscard]] table distinct(const table_view& input, const std::vector<std::string>& columns,
                             context& ctx);

}  // namespace ember
