#include <ember/cuda/groupby.hpp>
#include <ember/host/error.hpp>
#include <string>
#include <unordered_set>

#include "dispatch.hpp"

EMBER_DECLARE_BACKENDS(table group_by(const table_view&, const std::vector<std::string>&,
                                      const std::vector<aggregation>&, context&);
                       table distinct(const table_view&, const std::vector<std::string>&, context&))

namespace ember {

std::string_view to_string(aggregation_kind k) noexcept {
  switch (k) {
    case aggregation_kind::sum:
      return "sum";
    case aggregation_kind::count:
      return "count";
    case aggregation_kind::count_all:
      return "count_all";
    case aggregation_kind::min:
      return "min";
    case aggregation_kind::max:
      return "max";
    case aggregation_kind::mean:
      return "mean";
    case aggregation_kind::count_distinct:
      return "count_distinct";
  }
  return "unknown aggregation";
}

namespace {

/// Throws ember::invalid_input naming `op`, the column's role and the table's columns when
/// `name` is not a column of `input`.
void expect_column(const table_view& input, const std::string& name, std::string_view op,
                   std::string_view role) {
  if (input.has_column(name)) return;
  std::string have;
  for (const auto& n : input.names()) have += (have.empty() ? "" : ", ") + n;
  auto what = role.empty() ? std::string("column") : std::string(role) + " column";
  throw invalid_input(std::string(op) + ": unknown " + what + " '" + name +
                      "' (the table has: " + (have.empty() ? "no columns" : have) + ")");
}

void expect_unique_keys(const std::vector<std::string>& keys, std::string_view op) {
  std::unordered_set<std::string> seen;
  for (const auto& k : keys)
    EMBER_EXPECTS(seen.insert(k).second, invalid_input,
                  std::string(op) + ": column '" + k + "' is listed twice");
}

}  // namespace

table group_by(const table_view& input, const std::vector<std::string>& keys,
               const std::vector<aggregation>& aggregations, context& ctx) {
  constexpr std::string_view op = "group_by";
  for (const auto& k : keys) expect_column(input, k, op, "key");
  expect_unique_keys(keys, op);
  std::unordered_set<std::string> names(keys.begin(), keys.end());
  for (const auto& a : aggregations) {
    auto what =
        std::string(op) + ": " + std::string(to_string(a.kind)) + " '" + a.output_name + "'";
    EMBER_EXPECTS(!a.output_name.empty(), invalid_input,
                  std::string(op) + ": an aggregation (" + std::string(to_string(a.kind)) +
                      " of '" + a.column + "') has an empty output name");
    // A count_all counts rows, so any column it names is ignored.
    if (a.kind != aggregation_kind::count_all) {
      EMBER_EXPECTS(!a.column.empty(), invalid_input, what + " needs a column");
      expect_column(input, a.column, op, "aggregation");
      auto type = input.column(a.column).type();
      if (a.kind == aggregation_kind::sum || a.kind == aggregation_kind::mean) {
        EMBER_EXPECTS(is_numeric(type) && type != type_id::timestamp_ns, invalid_input,
                      what + " cannot take column '" + a.column + "' of type " +
                          std::string(to_string(type)) +
                          " (it needs int32, int64, float32, float64 or bool)");
      }
    }
    EMBER_EXPECTS(names.insert(a.output_name).second, invalid_input,
                  std::string(op) + ": output name '" + a.output_name +
                      "' is used twice (output names must differ from each other and from the "
                      "keys)");
  }
  if (keys.empty() && aggregations.empty()) return table{};
  return EMBER_DISPATCH(ctx, group_by, input, keys, aggregations, ctx);
}

table distinct(const table_view& input, const std::vector<std::string>& columns, context& ctx) {
  constexpr std::string_view op = "distinct";
  for (const auto& c : columns) expect_column(input, c, op, "");
  expect_unique_keys(columns, op);
  const auto& chosen = columns.empty() ? input.names() : columns;
  if (chosen.empty()) return table{};
  return EMBER_DISPATCH(ctx, distinct, input, chosen, ctx);
}

}  // namespace ember
