#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ember/cuda/context.hpp>
#include <ember/host/table.hpp>

namespace ember {

enum class join_kind : std::uint8_t {
  inner,  ///< every matching pair
  left,   ///< every matching pair, and each unmatched left row once with nulls on the right
  semi,   ///< each left row that has a match, once (left columns only)
  anti,   ///< each left row that has no match (left columns only)
};

/// The kind's name: "inner", "left", "semi" or "anti".
[[nodiscard]] std::string_view to_string(join_kind k) noexcept;

/// Equi-join of `left` and `right` on `left_keys[i] == right_keys[i]`. Null keys never match
/// (SQL). Inner and left joins output every left column, then every right column that is not a
/// key; a right column whose name is already taken gets the suffix "_right". Row order is
/// unspecified. Throws ember::invalid_input for an unknown column, key lists of different
/// lengths or an empty key list, or key columns of different types (naming both).
[[nodiscard]] table hash_join(const table_view& left, const table_view& right,
                              const std::vector<std::string>& left_keys,
                              const std::vector<std::string>& right_keys, join_kind kind,
                              context& ctx);

}  // namespace ember
