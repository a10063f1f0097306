// The CUDA backend's sort: the portable body, whose fixed-width keys become CUB radix sorts.
#include "gpu/exec.cuh"
#include "portable/sort.inl"

namespace ember::gpu {

column sorted_order(const table_view& input, const std::vector<sort_key>& keys, context& ctx) {
  return portable::sorted_order(input, keys, ctx);
}

table sort(const table_view& input, const std::vector<sort_key>& keys, context& ctx) {
  return portable::sort(input, keys, ctx);
}

table top_k(const table_view& input, const std::vector<sort_key>& keys, size_type k, context& ctx) {
  return portable::top_k(input, keys, k, ctx);
}

}  // namespace ember::gpu
