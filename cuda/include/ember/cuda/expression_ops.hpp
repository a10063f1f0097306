#pragma once
// The operators of expression nodes, on their own so that the CUDA backend's kernels (compiled
// as C++17, see the top-level CMakeLists.txt) can name them without the rest of the API.
#include <cstdint>

namespace ember {

/// Operators of unary expression nodes.
enum class unary_op : std::uint8_t { negate, logical_not, is_null, is_not_null };
/// Operators of binary expression nodes. Arithmetic promotes to the wider type (int32 < int64 <
/// float32 < float64; timestamp +/- int64 stays a timestamp); `div` of integers is integer
/// division and a division by zero gives null; comparisons work on numbers, timestamps,
/// bools and strings; `logical_and`/`logical_or` use SQL's three-valued logic.
enum class binary_op : std::uint8_t {
  add,
  sub,
  mul,
  div,
  mod,
  eq,
  ne,
  lt,
  le,
  gt,
  ge,
  logical_and,
  logical_or
};

}  // namespace ember
