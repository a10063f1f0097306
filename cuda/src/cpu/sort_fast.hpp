#pragma once
// The CPU backend's own sort (plain C++ and OpenMP over host memory): a parallel radix sort for
// fixed-width keys, a parallel merge sort with the row comparator for string keys, and a
// threshold selection for small top-k. Results match the portable bodies row for row (both are
// stable).
#include <vector>

#include <ember/cuda/context.hpp>
#include <ember/cuda/sort.hpp>
#include <ember/host/column.hpp>
#include <ember/host/table.hpp>

namespace ember::cpu::fast {

/// The stable sorted order of `input`'s rows by `keys` (already validated): an int64 column of
/// row indices allocated from ctx.resource(), scratch from the same resource.
[[nodiscard]] column sorted_order(const table_view& input, const std::vector<sort_key>& keys,
                                  context& ctx);

/// The first `k` entries of sorted_order(input, keys) for 0 <= k <= input.num_rows(), found by
/// partial selection when k is small against the row count.
[[nodiscard]] column top_k_order(const table_view& input, const std::vector<sort_key>& keys,
                                 size_type k, context& ctx);

}  // namespace ember::cpu::fast
