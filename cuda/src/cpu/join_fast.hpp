#pragma once
// The CPU backend's hash join (join_fast.cpp): plain C++ and OpenMP over host memory, producing
// the gather maps that the portable join body turns into the output.
#include <ember/cuda/context.hpp>
#include <ember/cuda/join.hpp>
#include <ember/host/table.hpp>

#include "cpu/exec.hpp"
#include "portable/join.inl"

namespace ember::cpu::detail {

/// Gather maps of the equi-join of `left_keys` with `right_keys` (same column count and types,
/// host memory); null keys never match. Builds a hash table on the right rows and probes it with
/// the left rows in parallel. A single integer key (int32, int64, timestamp, bool) is hashed by
/// value, or indexed directly when its range is small next to its row count; other keys use the
/// row hash and row equality of the portable operators. Memory comes from ctx.resource();
/// throws ember::out_of_memory when it runs out.
[[nodiscard]] join_gather_maps hash_join_maps(const table_view& left_keys,
                                              const table_view& right_keys, join_kind kind,
                                              context& ctx);

}  // namespace ember::cpu::detail
