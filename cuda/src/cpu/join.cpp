// The CPU backend's join: the hash join of join_fast.cpp when fast paths are on, else the
// portable sort-based body; both hand their gather maps to the portable output assembly.
#include "cpu/join_fast.hpp"

namespace ember::cpu {

table hash_join(const table_view& left, const table_view& right_out, const table_view& left_keys,
                const table_view& right_keys, join_kind kind, context& ctx) {
  exec ex(ctx);
  auto maps = ctx.fast_paths() ? detail::hash_join_maps(left_keys, right_keys, kind, ctx)
                               : detail::sort_join_maps(ex, left_keys, right_keys, kind);
  return detail::join_output(ex, left, right_out, maps, kind);
}

}  // namespace ember::cpu
