#pragma once
// Building host columns from C++ containers, and reading host columns back: the glue between
// user code (and tests) and the columnar format. All columns here live in host memory.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <ember/host/column.hpp>
#include <ember/host/memory_resource.hpp>
#include <ember/host/table.hpp>

namespace ember {

/// A bitmask with bit i set when valid[i] is true.
[[nodiscard]] buffer make_bitmask(std::span<const bool> valid, memory_resource& mr);
/// Number of null rows of a host column.
[[nodiscard]] size_type count_nulls(const column_view& column);

/// A fixed-width host column of `type` from `values` (T must be storage_t<type>); `valid`, if
/// not empty, must have one entry per value. Throws ember::invalid_input on a length mismatch.
template <class T>
[[nodiscard]] column make_column(type_id type, std::span<const T> values,
                                 std::span<const bool> valid = {},
                                 memory_resource& mr = default_host_resource());
template <class T>
[[nodiscard]] column make_column(type_id type, const std::vector<T>& values,
                                 const std::vector<bool>& valid = {},
                                 memory_resource& mr = default_host_resource()) {
  std::vector<char> v(valid.begin(), valid.end());
  return make_column<T>(type, std::span<const T>(values),
                        std::span<const bool>(reinterpret_cast<const bool*>(v.data()), v.size()),
                        mr);
}
/// A host string column; a std::nullopt entry is null.
[[nodiscard]] column make_string_column(const std::vector<std::optional<std::string>>& values,
                                        memory_resource& mr = default_host_resource());
[[nodiscard]] column make_string_column(const std::vector<std::string>& values,
                                        memory_resource& mr = default_host_resource());
/// A host string column (no nulls) from `offsets` (rows + 1 positions into `chars`).
[[nodiscard]] column make_string_column(std::span<const size_type> offsets, std::string_view chars,
                                        memory_resource& mr = default_host_resource());
/// A column of `type` with no rows.
[[nodiscard]] column make_empty_column(type_id type, memory_resource& mr = default_host_resource());
/// A table with the given names and types and no rows.
[[nodiscard]] table make_empty_table(const std::vector<std::string>& names,
                                     const std::vector<type_id>& types,
                                     memory_resource& mr = default_host_resource());

/// The values of a fixed-width host column (nulls read as whatever bytes are there).
template <class T>
[[nodiscard]] std::vector<T> copy_values(const column_view& column);
/// The rows of a host column as optional values (std::nullopt for null).
template <class T>
[[nodiscard]] std::vector<std::optional<T>> copy_optional(const column_view& column);
/// The rows of a host string column; nulls become std::nullopt.
[[nodiscard]] std::vector<std::optional<std::string>> copy_strings(const column_view& column);
/// A deep copy of a host column (or a slice of one) into fresh host buffers.
[[nodiscard]] column copy_column(const column_view& column,
                                 memory_resource& mr = default_host_resource());
[[nodiscard]] table copy_table(const table_view& table,
                               memory_resource& mr = default_host_resource());
/// The rows of host columns of one type one after another, in fresh host buffers from `mr`.
/// Slices are welcome. Throws ember::logic_error for a piece that is not a host column of `type`.
[[nodiscard]] column concatenate_columns(const std::vector<column_view>& pieces, type_id type,
                                         memory_resource& mr = default_host_resource());

}  // namespace ember
