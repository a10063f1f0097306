#include "gpu/exec.cuh"
#include "portable/join.inl"

namespace ember::gpu {

table hash_join(const table_view& left, const table_view& right_out, const table_view& left_keys,
                const table_view& right_keys, join_kind kind, context& ctx) {
  exec ex(ctx);
  auto maps = detail::sort_join_maps(ex, left_keys, right_keys, kind);
  return detail::join_output(ex, left, right_out, maps, kind);
}

}  // namespace ember::gpu
