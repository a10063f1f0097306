// The CPU backend's sort: the fast path (cpu/sort_fast.cpp) when the context allows it, else the
// portable body.
#include "cpu/exec.hpp"
#include "portable/sort.inl"

#include "cpu/sort_fast.hpp"

namespace ember::cpu {

column sorted_order(const table_view& input, const std::vector<sort_key>& keys, context& ctx) {
  if (ctx.fast_paths()) return fast::sorted_order(input, keys, ctx);
  return portable::sorted_order(input, keys, ctx);
}

table sort(const table_view& input, const std::vector<sort_key>& keys, context& ctx) {
  if (!ctx.fast_paths()) return portable::sort(input, keys, ctx);
  column order = fast::sorted_order(input, keys, ctx);
  exec ex(ctx);
  return detail::gather_table(ex, input, order.view().data<size_type>(), order.size(), false);
}

table top_k(const table_view& input, const std::vector<sort_key>& keys, size_type k, context& ctx) {
  if (!ctx.fast_paths()) return portable::top_k(input, keys, k, ctx);
  column order = fast::top_k_order(input, keys, std::min(k, input.num_rows()), ctx);
  exec ex(ctx);
  return detail::gather_table(ex, input, order.view().data<size_type>(), order.size(), false);
}

}  // namespace ember::cpu
