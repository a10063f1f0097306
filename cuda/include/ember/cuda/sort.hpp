#pragma once
#include <string>
#include <vector>

#include <ember/cuda/context.hpp>
#include <ember/host/table.hpp>

namespace ember {

/// One sort key. Nulls go last by default (as in DuckDB and Spark), whatever the direction.
struct sort_key {
  std::string column;
  bool descending = false;
  bool nulls_first = false;
};

/// The permutation that sorts `input` by `keys` (lexicographically, stable): an int64 column in
/// the context's memory. Floats order NaN after every number. Throws ember::invalid_input for
/// an unknown column or an empty key list.
[[nodiscard]] column sorted_order(const table_view& input, const std::vector<sort_key>& keys,
                                  context& ctx);

/// `input` sorted by `keys` (stable).
[[nodiscard]] table sort(const table_view& input, const std::vector<sort_key>& keys, context& ctx);

/// The first `k` rows of sort(input, keys) (fewer when the input is shorter). Throws
/// ember::invalid_input for a negative k.
[[nodiscard]] table top_k(const table_view& input, const std::vector<sort_key>& keys, size_type k,
                          context& ctx);

}  // namespace ember
