#pragma once
#include <ember/cuda/context.hpp>
#include <ember/host/table.hpp>

namespace ember {

/// The bytes of a table as reports count them: fixed-width values, string characters plus 8
/// bytes of offset per row, and one bit per row for a null mask. A string column in device
/// memory has its first and last offsets read through `ctx` (a small synchronous copy), so
/// `ctx` may be null only for host tables; throws ember::logic_error otherwise.
[[nodiscard]] size_type table_bytes(const table_view& t, context* ctx = nullptr);

}  // namespace ember
