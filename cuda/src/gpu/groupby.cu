#include "gpu/exec.cuh"
#include "portable/groupby.inl"

namespace ember::gpu {

table group_by(const table_view& input, const std::vector<std::string>& keys,
               const std::vector<aggregation>& aggregations, context& ctx) {
  return group_by_portable(input, keys, aggregations, ctx);
}

table distinct(const table_view& input, const std::vector<std::string>& columns, context& ctx) {
  return distinct_portable(input, columns, ctx);
}

}  // namespace ember::gpu
