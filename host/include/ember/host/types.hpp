#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include <ember/host/macros.hpp>

namespace ember {

/// Row counts, sizes and offsets are 64-bit everywhere: no 2^31 row limit.
using size_type = std::int64_t;

/// One bit per row, least significant bit first (Arrow layout); a set bit means "valid".
using bitmask_type = std::uint32_t;

/// The element types of a column.
enum class type_id : std::uint8_t {
  int32,
  int64,
  float32,
  float64,
  bool8,         ///< one byte per value, 0 or 1
  timestamp_ns,  ///< int64 nanoseconds since the Unix epoch
  string,        ///< offsets (size_type, rows + 1) and characters (UTF-8 bytes)
};

inline constexpr int type_count = 7;

/// Bytes per element of a fixed-width type; 0 for string.
[[nodiscard]] constexpr size_type size_of(type_id t) noexcept {
  switch (t) {
    case type_id::int32:
      return 4;
    case type_id::int64:
      return 8;
    case type_id::float32:
      return 4;
    case type_id::float64:
      return 8;
    case type_id::bool8:
      return 1;
    case type_id::timestamp_ns:
      return 8;
    case type_id::string:
      return 0;
  }
  return 0;
}

[[nodiscard]] constexpr bool is_fixed_width(type_id t) noexcept { return t != type_id::string; }
[[nodiscard]] constexpr bool is_integral(type_id t) noexcept {
  return t == type_id::int32 || t == type_id::int64 || t == type_id::timestamp_ns;
}
[[nodiscard]] constexpr bool is_floating(type_id t) noexcept {
  return t == type_id::float32 || t == type_id::float64;
}
[[nodiscard]] constexpr bool is_numeric(type_id t) noexcept {
  return is_integral(t) || is_floating(t) || t == type_id::bool8;
}

/// The type's name as users write it: int32, int64, float32, float64, bool, timestamp, string.
[[nodiscard]] std::string_view to_string(type_id t) noexcept;

/// Parses a name written by to_string(); throws ember::invalid_input naming the bad name.
[[nodiscard]] type_id type_from_string(std::string_view name);

/// Number of bitmask words that cover `bits` bits.
[[nodiscard]] constexpr size_type bitmask_words(size_type bits) noexcept {
  return (bits + 31) / 32;
}

/// The C++ type that stores one element of a fixed-width column.
template <type_id T>
struct storage_type;
template <>
struct storage_type<type_id::int32> {
  using type = std::int32_t;
};
template <>
struct storage_type<type_id::int64> {
  using type = std::int64_t;
};
template <>
struct storage_type<type_id::float32> {
  using type = float;
};
template <>
struct storage_type<type_id::float64> {
  using type = double;
};
template <>
struct storage_type<type_id::bool8> {
  using type = std::uint8_t;
};
template <>
struct storage_type<type_id::timestamp_ns> {
  using type = std::int64_t;
};
template <type_id T>
using storage_t = typename storage_type<T>::type;

/// Calls `f.template operator()<type_id::X>()` for the run-time type `t` (libcudf's
/// type_dispatcher). Returns what `f` returns.
template <class F>
decltype(auto) dispatch_type(type_id t, F&& f) {
  switch (t) {
    case type_id::int32:
      return f.template operator()<type_id::int32>();
    case type_id::int64:
      return f.template operator()<type_id::int64>();
    case type_id::float32:
      return f.template operator()<type_id::float32>();
    case type_id::float64:
      return f.template operator()<type_id::float64>();
    case type_id::bool8:
      return f.template operator()<type_id::bool8>();
    case type_id::timestamp_ns:
      return f.template operator()<type_id::timestamp_ns>();
    case type_id::string:
      break;
  }
  return f.template operator()<type_id::string>();
}

}  // namespace ember
