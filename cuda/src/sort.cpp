#include <ember/cuda/sort.hpp>
#include <ember/host/error.hpp>

#include <string>

#include "dispatch.hpp"

EMBER_DECLARE_BACKENDS(column sorted_order(const table_view&, const std::vector<sort_key>&,
                                           context&);
                       table sort(const table_view&, const std::vector<sort_key>&, context&);
                       table top_k(const table_view&, const std::vector<sort_key>&, size_type,
                                   context&))

namespace ember {
namespace {

void check_keys(const char* op, const table_view& input, const std::vector<sort_key>& keys) {
  EMBER_EXPECTS(!keys.empty(), invalid_input, std::string(op) + ": no sort keys given");
  for (const auto& k : keys) {
    try {
      (void)input.index_of(k.column);
    } catch (const invalid_input& e) {
      // index_of's message names the column and lists the table's; add the operator.
      throw invalid_input(std::string(op) + ": " + e.what());
    }
  }
}

}  // namespace

column sorted_order(const table_view& input, const std::vector<sort_key>& keys, context& ctx) {
  check_keys("sorted_order", input, keys);
  return EMBER_DISPATCH(ctx, sorted_order, input, keys, ctx);
}

table sort(const table_view& input, const std::vector<sort_key>& keys, context& ctx) {
  check_keys("sort", input, keys);
  return EMBER_DISPATCH(ctx, sort, input, keys, ctx);
}

table top_k(const table_view& input, const std::vector<sort_key>& keys, size_type k, context& ctx) {
  check_keys("top_k", input, keys);
  EMBER_EXPECTS(k >= 0, invalid_input, "top_k: k must not be negative, got " + std::to_string(k));
  return EMBER_DISPATCH(ctx, top_k, input, keys, k, ctx);
}

}  // namespace ember
