#pragma once
// The kernels of expression evaluation, one per node kind. The host-side walk over the tree is in
// expression.cpp; each function here gets materialised operands of one common type, so binary
// kernels are instantiated per (type, op), never per pair of types. An operand marked `scalar`
// is a one-row column read at row 0 for every output row (a literal, or a node over literals).
#include <thrust/copy.h>
#include <thrust/fill.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include <ember/cuda/expression_ops.hpp>
#include "expression_text.hpp"
#include "portable/row_operators.inl"
#include "portable/utilities.inl"

namespace ember::EMBER_BACKEND_NS {

using ember::binary_op;
using ember::unary_op;

namespace detail {

/// hash() of an expression: row_hasher with a seed fixed for all backends and processes.
constexpr std::uint64_t expression_hash_seed = 0x243f6a8885a308d3ULL;

struct operand {
  column_device_view col;
  bool scalar;
  EMBER_HD size_type row(size_type i) const { return scalar ? 0 : i; }
  EMBER_HD bool valid(size_type i) const { return col.is_valid(row(i)); }
  template <class T>
  EMBER_HD T get(size_type i) const {
    return col.element<T>(row(i));
  }
};

// ---- arithmetic -----------------------------------------------------------------------------

/// x op y with SQL semantics on defined results: integers wrap on overflow (computed unsigned,
/// never undefined), a zero divisor yields 0 here and null in the mask (arithmetic_valid_fn).
template <class T, binary_op Op>
EMBER_HD T arithmetic(T x, T y) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    if constexpr (Op == binary_op::add)
      return static_cast<T>(static_cast<U>(x) + static_cast<U>(y));
    if constexpr (Op == binary_op::sub)
      return static_cast<T>(static_cast<U>(x) - static_cast<U>(y));
    if constexpr (Op == binary_op::mul)
      return static_cast<T>(static_cast<U>(x) * static_cast<U>(y));
    if constexpr (Op == binary_op::div) {
      if (y == 0) return 0;
      if (y == -1) return static_cast<T>(U{0} - static_cast<U>(x));  // MIN / -1 wraps
      return x / y;
    }
    if constexpr (Op == binary_op::mod) {
      if (y == 0 || y == -1) return 0;
      return x % y;
    }
  } else {
    if constexpr (Op == binary_op::add) return x + y;
    if constexpr (Op == binary_op::sub) return x - y;
    if constexpr (Op == binary_op::mul) return x * y;
    if constexpr (Op == binary_op::div) return y == 0 ? T(0) : x / y;
    if constexpr (Op == binary_op::mod) {
      if (y == 0) return T(0);
      if constexpr (std::is_same_v<T, float>)
        return ::fmodf(x, y);
      else
        return ::fmod(x, y);
    }
  }
  return T(0);
}

template <class T, binary_op Op>
struct arithmetic_fn {
  operand a, b;
  EMBER_HD T operator()(size_type i) const { return arithmetic<T, Op>(a.get<T>(i), b.get<T>(i)); }
};

/// Both operands valid and, for / and %, a non-zero divisor.
template <class T>
struct arithmetic_valid_fn {
  operand a, b;
  bool divides;
  EMBER_HD bool operator()(size_type i) const {
    if (!a.valid(i) || !b.valid(i)) return false;
    return !divides || b.get<T>(i) != T(0);
  }
};

struct both_valid_fn {
  operand a, b;
  EMBER_HD bool operator()(size_type i) const { return a.valid(i) && b.valid(i); }
};

template <class T, binary_op Op>
void arithmetic_into(exec& ex, T* out, operand a, operand b, size_type rows) {
  thrust::tabulate(ex.policy(), out, out + rows, arithmetic_fn<T, Op>{a, b});
}

template <class T>
column arithmetic_column(exec& ex, binary_op op, operand a, operand b, type_id type,
                         size_type rows) {
  buffer data = ex.alloc<T>(rows);
  auto* out = data.data_as<T>();
  switch (op) {
    case binary_op::add:
      arithmetic_into<T, binary_op::add>(ex, out, a, b, rows);
      break;
    case binary_op::sub:
      arithmetic_into<T, binary_op::sub>(ex, out, a, b, rows);
      break;
    case binary_op::mul:
      arithmetic_into<T, binary_op::mul>(ex, out, a, b, rows);
      break;
    case binary_op::div:
      arithmetic_into<T, binary_op::div>(ex, out, a, b, rows);
      break;
    default:
      arithmetic_into<T, binary_op::mod>(ex, out, a, b, rows);
      break;
  }
  bool divides = op == binary_op::div || op == binary_op::mod;
  buffer mask;
  if (divides || a.col.nullable() || b.col.nullable())
    mask = pack_bitmask(ex, arithmetic_valid_fn<T>{a, b, divides}, rows);
  return column(type, rows, std::move(data), std::move(mask));
}

// ---- comparisons and logic ------------------------------------------------------------------

/// Marks the string kernels apart from the fixed-width ones.
struct string_tag {};

template <class T>
EMBER_HD int three_way(const operand& a, const operand& b, size_type i) {
  if constexpr (std::is_same_v<T, string_tag>) {
    return a.col.string_at(a.row(i)).compare(b.col.string_at(b.row(i)));
  } else if constexpr (std::is_floating_point_v<T>) {
    // NaN equals NaN and sorts after every number, as in sort and group-by.
    return compare_floats(a.get<T>(i), b.get<T>(i));
  } else if constexpr (std::is_same_v<T, std::uint8_t>) {
    return compare_values(a.get<T>(i) != 0, b.get<T>(i) != 0);
  } else {
    return compare_values(a.get<T>(i), b.get<T>(i));
  }
}

/// One kernel per type; the comparison itself is a run-time choice, cheap next to the loads.
template <class T>
struct compare_fn {
  operand a, b;
  binary_op op;
  EMBER_HD std::uint8_t operator()(size_type i) const {
    int c = three_way<T>(a, b, i);
    switch (op) {
      case binary_op::eq:
        return c == 0;
      case binary_op::ne:
        return c != 0;
      case binary_op::lt:
        return c < 0;
      case binary_op::le:
        return c <= 0;
      case binary_op::gt:
        return c > 0;
      default:
        return c >= 0;
    }
  }
};

template <class T>
column compare_column(exec& ex, binary_op op, operand a, operand b, size_type rows) {
  buffer data = ex.alloc<std::uint8_t>(rows);
  auto* out = data.data_as<std::uint8_t>();
  thrust::tabulate(ex.policy(), out, out + rows, compare_fn<T>{a, b, op});
  buffer mask;
  if (a.col.nullable() || b.col.nullable()) mask = pack_bitmask(ex, both_valid_fn{a, b}, rows);
  return column(type_id::bool8, rows, std::move(data), std::move(mask));
}

/// SQL's three-valued and/or: false and null is false, true or null is true, otherwise null
/// decides. `value` is only meaningful where `valid` holds.
struct logic_fn {
  operand a, b;
  bool is_and;
  EMBER_HD bool known(size_type i, bool& value) const {
    bool av = a.valid(i), bv = b.valid(i);
    bool x = av && a.get<std::uint8_t>(i) != 0;
    bool y = bv && b.get<std::uint8_t>(i) != 0;
    if (is_and) {
      bool is_false = (av && !x) || (bv && !y);
      value = !is_false;
      return is_false || (av && bv);
    }
    bool is_true = x || y;
    value = is_true;
    return is_true || (av && bv);
  }
  EMBER_HD std::uint8_t operator()(size_type i) const {
    bool value = false;
    return known(i, value) && value ? 1 : 0;
  }
};

struct logic_valid_fn {
  logic_fn logic;
  EMBER_HD bool operator()(size_type i) const {
    bool value = false;
    return logic.known(i, value);
  }
};

inline column logic_column(exec& ex, bool is_and, operand a, operand b, size_type rows) {
  buffer data = ex.alloc<std::uint8_t>(rows);
  auto* out = data.data_as<std::uint8_t>();
  logic_fn fn{a, b, is_and};
  thrust::tabulate(ex.policy(), out, out + rows, fn);
  buffer mask;
  if (a.col.nullable() || b.col.nullable()) mask = pack_bitmask(ex, logic_valid_fn{fn}, rows);
  return column(type_id::bool8, rows, std::move(data), std::move(mask));
}

// ---- unary ----------------------------------------------------------------------------------

template <class T>
struct negate_fn {
  column_device_view in;
  EMBER_HD T operator()(size_type i) const {
    T x = in.element<T>(i);
    if constexpr (std::is_integral_v<T>) {
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(U{0} - static_cast<U>(x));
    } else {
      return -x;
    }
  }
};

struct not_fn {
  column_device_view in;
  EMBER_HD std::uint8_t operator()(size_type i) const { return in.element<std::uint8_t>(i) == 0; }
};

struct null_test_fn {
  column_device_view in;
  bool want_null;
  EMBER_HD std::uint8_t operator()(size_type i) const { return in.is_valid(i) != want_null; }
};

template <class T, class Fn>
column map_column(exec& ex, const column_view& input, type_id type, Fn fn, bool keep_mask) {
  size_type rows = input.size();
  buffer data = ex.alloc<T>(rows);
  thrust::tabulate(ex.policy(), data.data_as<T>(), data.data_as<T>() + rows, fn);
  buffer mask;
  // Repacked rather than copied: the input may be a slice that starts mid-word.
  if (keep_mask && input.nullable())
    mask = pack_bitmask(ex, column_valid_fn{column_device_view::of(input)}, rows);
  return column(type, rows, std::move(data), std::move(mask));
}

// ---- casts ----------------------------------------------------------------------------------

/// An integer value converted to To (bool: non-zero).
template <class To>
EMBER_HD To from_integer(std::int64_t v) {
  if constexpr (std::is_same_v<To, std::uint8_t>)
    return v != 0 ? 1 : 0;
  else
    return static_cast<To>(v);
}

/// A float value converted to To; out-of-range values and NaN give 0 here and null in the mask
/// (cast_valid_fn), so no conversion is undefined.
template <class To>
EMBER_HD To from_floating(double v) {
  if constexpr (std::is_same_v<To, std::uint8_t>) {
    return v != 0 ? 1 : 0;
  } else if constexpr (std::is_same_v<To, std::int32_t>) {
    return v > -2147483649.0 && v < 2147483648.0 ? static_cast<To>(v) : 0;
  } else if constexpr (std::is_same_v<To, std::int64_t>) {
    return v >= -9223372036854775808.0 && v < 9223372036854775808.0 ? static_cast<To>(v) : 0;
  } else {
    return static_cast<To>(v);
  }
}

/// A fixed-width value of any type converted to To: one kernel per target type.
template <class To>
struct cast_fn {
  column_device_view in;
  EMBER_HD To operator()(size_type i) const {
    switch (in.type) {
      case type_id::int32:
        return from_integer<To>(in.element<std::int32_t>(i));
      case type_id::float32:
        if constexpr (std::is_same_v<To, float>)
          return in.element<float>(i);
        else
          return from_floating<To>(in.element<float>(i));
      case type_id::float64:
        return from_floating<To>(in.element<double>(i));
      case type_id::bool8:
        return from_integer<To>(in.element<std::uint8_t>(i) != 0 ? 1 : 0);
      default:
        return from_integer<To>(in.element<std::int64_t>(i));
    }
  }
};

/// Validity of a fixed-width cast: the input's, and the value must fit an integer target.
struct cast_valid_fn {
  column_device_view in;
  type_id to;
  EMBER_HD bool operator()(size_type i) const {
    if (!in.is_valid(i)) return false;
    bool to_int32 = to == type_id::int32;
    bool to_int64 = to == type_id::int64 || to == type_id::timestamp_ns;
    if (!to_int32 && !to_int64) return true;
    double v;
    switch (in.type) {
      case type_id::float32:
        v = in.element<float>(i);
        break;
      case type_id::float64:
        v = in.element<double>(i);
        break;
      case type_id::int64:
      case type_id::timestamp_ns: {
        std::int64_t x = in.element<std::int64_t>(i);
        return !to_int32 || (x >= -2147483648LL && x <= 2147483647LL);
      }
      default:
        return true;
    }
    if (to_int32) return v > -2147483649.0 && v < 2147483648.0;
    return v >= -9223372036854775808.0 && v < 9223372036854775808.0;
  }
};

template <class To>
column cast_fixed(exec& ex, const column_view& input, type_id to) {
  size_type rows = input.size();
  auto in = column_device_view::of(input);
  buffer data = ex.alloc<To>(rows);
  thrust::tabulate(ex.policy(), data.data_as<To>(), data.data_as<To>() + rows, cast_fn<To>{in});
  bool from_float = input.type() == type_id::float32 || input.type() == type_id::float64;
  bool from_wide = input.type() == type_id::int64 || input.type() == type_id::timestamp_ns;
  bool can_overflow = (to == type_id::int32 && (from_float || from_wide)) ||
                      ((to == type_id::int64 || to == type_id::timestamp_ns) && from_float);
  buffer mask;
  if (input.nullable() || can_overflow) mask = pack_bitmask(ex, cast_valid_fn{in, to}, rows);
  return column(to, rows, std::move(data), std::move(mask));
}

/// Room for the longest text of a value (a timestamp: 30 bytes).
constexpr int max_text = 48;

/// The text of row i as scalar::to_text writes it; null rows have no text.
struct format_fn {
  column_device_view in;
  EMBER_HD int write(size_type i, char* out) const {
    if (!in.is_valid(i)) return 0;
    switch (in.type) {
      case type_id::int32:
        return write_int(in.element<std::int32_t>(i), out);
      case type_id::int64:
        return write_int(in.element<std::int64_t>(i), out);
      case type_id::timestamp_ns:
        return write_timestamp(in.element<std::int64_t>(i), out);
      case type_id::float32:
        return write_float(in.element<float>(i), out);
      case type_id::float64:
        return write_double(in.element<double>(i), out);
      case type_id::bool8:
        return write_literal(in.element<std::uint8_t>(i) != 0 ? "true" : "false", out);
      default:
        return 0;
    }
  }
};

struct format_length_fn {
  format_fn format;
  EMBER_HD size_type operator()(size_type i) const {
    char text[max_text];
    return format.write(i, text);
  }
};

struct format_write_fn {
  format_fn format;
  const size_type* offsets;
  char* chars;
  EMBER_HD void operator()(size_type i) const {
    char text[max_text];
    int n = format.write(i, text);
    char* out = chars + offsets[i];
    for (int b = 0; b < n; ++b) out[b] = text[b];
  }
};

inline column cast_to_string(exec& ex, const column_view& input) {
  size_type rows = input.size();
  format_fn format{column_device_view::of(input)};
  auto k = thrust::counting_iterator<size_type>(0);
  buffer lengths = ex.alloc<size_type>(rows);
  auto* length = lengths.data_as<size_type>();
  thrust::tabulate(ex.policy(), length, length + rows, format_length_fn{format});
  size_type total = 0;
  buffer offsets = lengths_to_offsets(ex, lengths.data_as<size_type>(), rows, total);
  buffer chars = ex.alloc<char>(total);
  thrust::for_each(ex.policy(), k, k + rows,
                   format_write_fn{format, offsets.data_as<size_type>(), chars.data_as<char>()});
  buffer mask;
  if (input.nullable()) mask = pack_bitmask(ex, column_valid_fn{format.in}, rows);
  return column(rows, std::move(offsets), std::move(chars), std::move(mask));
}

/// Parses row i of a string column into To; ok[i] says whether the text was a valid To.
template <class To>
struct parse_fn {
  column_device_view in;
  type_id to;
  To* values;
  std::uint8_t* ok;
  EMBER_HD void operator()(size_type i) const {
    To value{};
    bool parsed = false;
    if (in.is_valid(i)) {
      auto text = in.string_at(i);
      if constexpr (std::is_same_v<To, double>) {
        parsed = parse_double(text, value);
      } else if constexpr (std::is_same_v<To, float>) {
        parsed = parse_float(text, value);
      } else if constexpr (std::is_same_v<To, std::uint8_t>) {
        parsed = parse_bool(text, value);
      } else {
        std::int64_t v = 0;
        if (to == type_id::timestamp_ns) {
          parsed = parse_timestamp(text, v);
        } else {
          parsed = parse_int64(text, v);
          if (parsed && std::is_same_v<To, std::int32_t>)
            parsed = v >= -2147483648LL && v <= 2147483647LL;
        }
        value = static_cast<To>(v);
      }
    }
    values[i] = parsed ? value : To{};
    ok[i] = parsed ? 1 : 0;
  }
};

struct byte_valid_fn {
  const std::uint8_t* ok;
  EMBER_HD bool operator()(size_type i) const { return ok[i] != 0; }
};

template <class To>
column parse_column(exec& ex, const column_view& input, type_id to) {
  size_type rows = input.size();
  buffer data = ex.alloc<To>(rows);
  buffer ok = ex.alloc<std::uint8_t>(rows);
  auto k = thrust::counting_iterator<size_type>(0);
  thrust::for_each(ex.policy(), k, k + rows,
                   parse_fn<To>{column_device_view::of(input), to, data.data_as<To>(),
                                ok.data_as<std::uint8_t>()});
  buffer mask = pack_bitmask(ex, byte_valid_fn{ok.data_as<std::uint8_t>()}, rows);
  return column(to, rows, std::move(data), std::move(mask));
}

// ---- broadcast, hash, filter ----------------------------------------------------------------

struct constant_valid_fn {
  bool valid;
  EMBER_HD bool operator()(size_type) const { return valid; }
};

struct repeat_offsets_fn {
  size_type length;
  EMBER_HD size_type operator()(size_type i) const { return i * length; }
};

struct repeat_chars_fn {
  const char* src;
  size_type length;
  char* dst;
  EMBER_HD void operator()(size_type i) const { dst[i] = src[i % length]; }
};

template <class T>
buffer fill_with_first(exec& ex, const column_view& one_row, size_type rows) {
  buffer data = ex.alloc<T>(rows);
  T v = ex.read(static_cast<const T*>(one_row.data()));
  thrust::fill(ex.policy(), data.data_as<T>(), data.data_as<T>() + rows, v);
  return data;
}

struct row_true_fn {
  column_device_view keep;
  EMBER_HD bool operator()(size_type i) const {
    return keep.is_valid(i) && keep.element<std::uint8_t>(i) != 0;
  }
};

struct hash_to_int64_fn {
  row_hasher hasher;
  EMBER_HD std::int64_t operator()(size_type i) const {
    return static_cast<std::int64_t>(hasher(i));
  }
};

}  // namespace detail

column expr_broadcast(const column_view& one_row, size_type rows, context& ctx) {
  exec ex(ctx);
  bool valid = true;
  if (one_row.nullable()) {
    auto word = ex.read(one_row.null_mask() + one_row.mask_offset() / 32);
    valid = ((word >> (one_row.mask_offset() % 32)) & 1u) != 0;
  }
  buffer mask;
  if (!valid) mask = detail::pack_bitmask(ex, detail::constant_valid_fn{false}, rows);
  auto k = thrust::counting_iterator<size_type>(0);
  if (one_row.type() == type_id::string) {
    size_type first = ex.read(one_row.offsets());
    size_type length = valid ? ex.read(one_row.offsets() + 1) - first : 0;
    buffer offsets = ex.alloc<size_type>(rows + 1);
    auto* offset = offsets.data_as<size_type>();
    thrust::tabulate(ex.policy(), offset, offset + rows + 1, detail::repeat_offsets_fn{length});
    buffer chars = ex.alloc<char>(rows * length);
    if (length > 0)
      thrust::for_each(
          ex.policy(), k, k + rows * length,
          detail::repeat_chars_fn{one_row.chars() + first, length, chars.data_as<char>()});
    ex.sync();
    return column(rows, std::move(offsets), std::move(chars), std::move(mask));
  }
  buffer data;
  switch (size_of(one_row.type())) {
    case 1:
      data = detail::fill_with_first<std::uint8_t>(ex, one_row, rows);
      break;
    case 4:
      data = detail::fill_with_first<std::uint32_t>(ex, one_row, rows);
      break;
    default:
      data = detail::fill_with_first<std::uint64_t>(ex, one_row, rows);
      break;
  }
  ex.sync();
  return column(one_row.type(), rows, std::move(data), std::move(mask));
}

column expr_cast(const column_view& input, type_id to, context& ctx) {
  exec ex(ctx);
  column out;
  if (to == type_id::string) {
    out = detail::cast_to_string(ex, input);
  } else if (input.type() == type_id::string) {
    switch (to) {
      case type_id::int32:
        out = detail::parse_column<std::int32_t>(ex, input, to);
        break;
      case type_id::float32:
        out = detail::parse_column<float>(ex, input, to);
        break;
      case type_id::float64:
        out = detail::parse_column<double>(ex, input, to);
        break;
      case type_id::bool8:
        out = detail::parse_column<std::uint8_t>(ex, input, to);
        break;
      default:
        out = detail::parse_column<std::int64_t>(ex, input, to);
        break;
    }
  } else {
    switch (to) {
      case type_id::int32:
        out = detail::cast_fixed<std::int32_t>(ex, input, to);
        break;
      case type_id::float32:
        out = detail::cast_fixed<float>(ex, input, to);
        break;
      case type_id::float64:
        out = detail::cast_fixed<double>(ex, input, to);
        break;
      case type_id::bool8:
        out = detail::cast_fixed<std::uint8_t>(ex, input, to);
        break;
      default:
        out = detail::cast_fixed<std::int64_t>(ex, input, to);
        break;
    }
  }
  ex.sync();
  return out;
}

column expr_unary(unary_op op, const column_view& input, context& ctx) {
  exec ex(ctx);
  auto in = column_device_view::of(input);
  column out;
  switch (op) {
    case unary_op::negate:
      switch (input.type()) {
        case type_id::int32:
          out = detail::map_column<std::int32_t>(ex, input, input.type(),
                                                 detail::negate_fn<std::int32_t>{in}, true);
          break;
        case type_id::float32:
          out = detail::map_column<float>(ex, input, input.type(), detail::negate_fn<float>{in},
                                          true);
          break;
        case type_id::float64:
          out = detail::map_column<double>(ex, input, input.type(), detail::negate_fn<double>{in},
                                           true);
          break;
        default:
          out = detail::map_column<std::int64_t>(ex, input, input.type(),
                                                 detail::negate_fn<std::int64_t>{in}, true);
          break;
      }
      break;
    case unary_op::logical_not:
      out = detail::map_column<std::uint8_t>(ex, input, type_id::bool8, detail::not_fn{in}, true);
      break;
    case unary_op::is_null:
    case unary_op::is_not_null:
      out = detail::map_column<std::uint8_t>(
          ex, input, type_id::bool8, detail::null_test_fn{in, op == unary_op::is_null},
          false);
      break;
  }
  ex.sync();
  return out;
}

column expr_binary(binary_op op, const column_view& lhs, bool lhs_scalar,
                   const column_view& rhs, bool rhs_scalar, size_type rows, context& ctx) {
  exec ex(ctx);
  detail::operand a{column_device_view::of(lhs), lhs_scalar};
  detail::operand b{column_device_view::of(rhs), rhs_scalar};
  type_id type = lhs.type();
  column out;
  if (op == binary_op::logical_and || op == binary_op::logical_or) {
    out = detail::logic_column(ex, op == binary_op::logical_and, a, b, rows);
  } else if (op >= binary_op::eq) {  // eq, ne, lt, le, gt, ge
    switch (type) {
      case type_id::int32:
        out = detail::compare_column<std::int32_t>(ex, op, a, b, rows);
        break;
      case type_id::float32:
        out = detail::compare_column<float>(ex, op, a, b, rows);
        break;
      case type_id::float64:
        out = detail::compare_column<double>(ex, op, a, b, rows);
        break;
      case type_id::bool8:
        out = detail::compare_column<std::uint8_t>(ex, op, a, b, rows);
        break;
      case type_id::string:
        out = detail::compare_column<detail::string_tag>(ex, op, a, b, rows);
        break;
      default:
        out = detail::compare_column<std::int64_t>(ex, op, a, b, rows);
        break;
    }
  } else {
    switch (type) {
      case type_id::int32:
        out = detail::arithmetic_column<std::int32_t>(ex, op, a, b, type, rows);
        break;
      case type_id::float32:
        out = detail::arithmetic_column<float>(ex, op, a, b, type, rows);
        break;
      case type_id::float64:
        out = detail::arithmetic_column<double>(ex, op, a, b, type, rows);
        break;
      default:
        out = detail::arithmetic_column<std::int64_t>(ex, op, a, b, type, rows);
        break;
    }
  }
  ex.sync();
  return out;
}

column expr_hash(const table_view& operands, context& ctx) {
  exec ex(ctx);
  size_type rows = operands.num_rows();
  detail::device_table keys(ex, operands);
  buffer data = ex.alloc<std::int64_t>(rows);
  auto* out = data.data_as<std::int64_t>();
  thrust::tabulate(
      ex.policy(), out, out + rows,
      detail::hash_to_int64_fn{detail::row_hasher{keys.view(), detail::expression_hash_seed}});
  ex.sync();
  return column(type_id::int64, rows, std::move(data));
}

table expr_filter(const table_view& input, const column_view& predicate, context& ctx) {
  exec ex(ctx);
  size_type rows = input.num_rows();
  buffer indices = ex.alloc<size_type>(rows);
  auto* first = indices.data_as<size_type>();
  auto k = thrust::counting_iterator<size_type>(0);
  auto* last = thrust::copy_if(ex.policy(), k, k + rows, first,
                               detail::row_true_fn{column_device_view::of(predicate)});
  auto out = detail::gather_table(ex, input, first, last - first, false);
  ex.sync();
  return out;
}

}  // namespace ember::EMBER_BACKEND_NS
