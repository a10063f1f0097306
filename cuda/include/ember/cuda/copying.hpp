#pragma once
#include <vector>

#include <ember/cuda/context.hpp>
#include <ember/host/table.hpp>

namespace ember {

/// Rows of `input` in the order of `indices` (an int64 column in the context's memory, no
/// nulls): output row i is input row indices[i]; a negative index yields a row of nulls.
/// Throws ember::invalid_input when `indices` is not int64 or holds nulls. Out-of-range
/// indices are a precondition violation (not checked on the device).
[[nodiscard]] table gather(const table_view& input, const column_view& indices, context& ctx);

/// The rows of every table, one after another. The tables must have the same column names and
/// types (throws ember::invalid_input naming the first difference). An empty list gives an
/// empty table with no columns.
[[nodiscard]] table concatenate(const std::vector<table_view>& tables, context& ctx);

/// Rows [begin, end) of `input` copied into fresh buffers of the context (compacts a slice).
[[nodiscard]] table copy_slice(const table_view& input, size_type begin, size_type end,
                               context& ctx);

}  // namespace ember
