#include <ember/cuda/copying.hpp>
#include <ember/host/error.hpp>

#include <string>

#include "dispatch.hpp"

EMBER_DECLARE_BACKENDS(table gather(const table_view&, const column_view&, context&);
                       table concatenate(const std::vector<table_view>&, context&);
                       table copy_slice(const table_view&, size_type, size_type, context&))

namespace ember {

table gather(const table_view& input, const column_view& indices, context& ctx) {
  EMBER_EXPECTS(
      indices.type() == type_id::int64, invalid_input,
      "gather: the index column must be int64, not " + std::string(to_string(indices.type())));
  EMBER_EXPECTS(!indices.nullable(), invalid_input, "gather: the index column must not hold nulls");
  return EMBER_DISPATCH(ctx, gather, input, indices, ctx);
}

table concatenate(const std::vector<table_view>& tables, context& ctx) {
  if (tables.empty()) return table{};
  const auto& first = tables.front();
  for (std::size_t t = 1; t < tables.size(); ++t) {
    const auto& other = tables[t];
    EMBER_EXPECTS(
        other.names() == first.names(), invalid_input,
        "concatenate: table " + std::to_string(t) + " has different column names than table 0");
    for (size_type c = 0; c < first.num_columns(); ++c) {
      EMBER_EXPECTS(other.column(c).type() == first.column(c).type(), invalid_input,
                    "concatenate: column '" + first.names()[c] + "' is " +
                        std::string(to_string(first.column(c).type())) + " in table 0 but " +
                        std::string(to_string(other.column(c).type())) + " in table " +
                        std::to_string(t));
    }
  }
  return EMBER_DISPATCH(ctx, concatenate, tables, ctx);
}

table copy_slice(const table_view& input, size_type begin, size_type end, context& ctx) {
  EMBER_EXPECTS(begin >= 0 && begin <= end && end <= input.num_rows(), invalid_input,
                "copy_slice: rows [" + std::to_string(begin) + ", " + std::to_string(end) +
                    ") are outside a table of " + std::to_string(input.num_rows()) + " rows");
  return EMBER_DISPATCH(ctx, copy_slice, input, begin, end, ctx);
}

}  // namespace ember
