#pragma once
// The operators as the backends' expression kernels see them. They mirror unary_op and binary_op
// value for value (expression.cpp checks this); the kernels cannot include the public header,
// because the CUDA backend compiles as C++17 and <ember/host/scalar.hpp> needs C++20.
#include <cstdint>

namespace ember::detail {

enum class kernel_unary_op : std::uint8_t { negate, logical_not, is_null, is_not_null };

enum class kernel_binary_op : std::uint8_t {
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

}  // namespace ember::detail
