#include <ember/cuda/tokenize.hpp>
#include <ember/host/error.hpp>

#include <string>

#include "dispatch.hpp"

EMBER_DECLARE_BACKENDS(table tokenize(const column_view& text, const std::string& output_name,
                                      context& ctx))

namespace ember {

table tokenize(const table_view& input, const std::string& column, const std::string& output_name,
               context& ctx) {
  const auto& text = input.column(column);  // throws naming the table's columns
  EMBER_EXPECTS(text.type() == type_id::string, invalid_input,
                "tokenize: column '" + column + "' is " + std::string(to_string(text.type())) +
                    ", not string");
  return EMBER_DISPATCH(ctx, tokenize, text, output_name, ctx);
}

}  // namespace ember
