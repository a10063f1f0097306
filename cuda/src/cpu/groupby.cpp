// The backend's exec header must come before the portable body.
// clang-format off
#include "cpu/exec.hpp"
#include "portable/groupby.inl"
// clang-format on
#include "cpu/groupby_fast.hpp"

namespace ember::cpu {

table group_by(const table_view& input, const std::vector<std::string>& keys,
               const std::vector<aggregation>& aggregations, context& ctx) {
  if (ctx.fast_paths()) {
    if (auto result = hash_group_by(input, keys, aggregations, ctx)) return std::move(*result);
  }
  return group_by_portable(input, keys, aggregations, ctx);
}

table distinct(const table_view& input, const std::vector<std::string>& columns, context& ctx) {
  if (ctx.fast_paths()) {
    if (auto result = hash_group_by(input, columns, {}, ctx)) return std::move(*result);
  }
  return distinct_portable(input, columns, ctx);
}

}  // namespace ember::cpu
