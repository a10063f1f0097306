#pragma once
// Portable sort bodies: the stable sorted order of a table's rows, then sort and top_k by
// gathering it. Fixed-width keys are sorted one at a time, last key first (LSD over keys), each
// as order-preserving unsigned integers with thrust::stable_sort_by_key, which Thrust's CUDA
// system runs as a radix sort; string keys use a merge sort with the row comparator.
#include <thrust/partition.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>

#include <cstdint>
#include <string>
#include <vector>

#include <ember/cuda/sort.hpp>

#include "portable/row_operators.inl"
#include "portable/utilities.inl"

namespace ember::EMBER_BACKEND_NS {
namespace detail {

/// Bits of a float that order as the float does under compare_floats: -0.0 equals 0.0, every
/// NaN is one value above +inf.
EMBER_HD inline std::uint32_t ordered_float_bits(float v) {
  if (v == 0.0f) v = 0.0f;
  std::uint32_t bits;
  if (v != v) {
    bits = 0x7fc00000u;
  } else {
    const unsigned char* src = reinterpret_cast<const unsigned char*>(&v);
    unsigned char* dst = reinterpret_cast<unsigned char*>(&bits);
    for (int i = 0; i < 4; ++i) dst[i] = src[i];
  }
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

EMBER_HD inline std::uint64_t ordered_double_bits(double v) {
  std::uint64_t bits = float_bits(v);  // canonical zero and NaN
  return (bits & 0x8000000000000000ULL) != 0 ? ~bits : bits | 0x8000000000000000ULL;
}

/// Row r of a fixed-width column as an unsigned integer whose order is the column's order
/// (compare_elements); narrower types use the low bits.
EMBER_HD inline std::uint64_t ordered_bits(const column_device_view& c, size_type r) {
  switch (c.type) {
    case type_id::int32:
      return static_cast<std::uint32_t>(c.element<std::int32_t>(r)) ^ 0x80000000u;
    case type_id::int64:
    case type_id::timestamp_ns:
      return static_cast<std::uint64_t>(c.element<std::int64_t>(r)) ^ 0x8000000000000000ULL;
    case type_id::float32:
      return ordered_float_bits(c.element<float>(r));
    case type_id::float64:
      return ordered_double_bits(c.element<double>(r));
    case type_id::bool8:
      return c.element<std::uint8_t>(r) != 0 ? 1 : 0;
    case type_id::string:
      break;
  }
  return 0;
}

/// Sort key of position i of a permutation: the ordered bits of row perm[i], inverted for a
/// descending key.
template <class U>
struct ordered_key_fn {
  column_device_view col;
  const size_type* perm;
  bool descending;
  EMBER_HD U operator()(size_type i) const {
    U k = static_cast<U>(ordered_bits(col, perm[i]));
    return descending ? static_cast<U>(~k) : k;
  }
};

/// True for the rows that a partition by validity puts first.
struct goes_first_fn {
  column_device_view col;
  bool nulls_first;
  EMBER_HD bool operator()(size_type r) const { return col.is_valid(r) != nulls_first; }
};

template <class U>
void sort_by_fixed_key(exec& ex, const column_view& key, const sort_key& order, size_type* perm,
                       size_type n) {
  buffer keys = ex.alloc<U>(n);
  auto* k = keys.data_as<U>();
  auto i = thrust::counting_iterator<size_type>(0);
  thrust::transform(ex.policy(), i, i + n, k,
                    ordered_key_fn<U>{column_device_view::of(key), perm, order.descending});
  // Default less on unsigned keys: the radix sort on CUDA.
  thrust::stable_sort_by_key(ex.policy(), k, k + n, perm);
}

/// One LSD step: a stable sort of the permutation `perm` by one fixed-width key. Null rows are
/// split off first by a stable partition; then the valid rows are sorted by value.
inline void sort_permutation_by_key(exec& ex, const column_view& key, const sort_key& order,
                                    size_type* perm, size_type n) {
  size_type begin = 0, end = n;
  if (size_type nulls = null_count(ex, key); nulls > 0) {
    thrust::stable_partition(ex.policy(), perm, perm + n,
                             goes_first_fn{column_device_view::of(key), order.nulls_first});
    if (order.nulls_first)
      begin = nulls;
    else
      end = n - nulls;
  }
  if (end - begin < 2) return;
  switch (size_of(key.type())) {
    case 1:
      sort_by_fixed_key<std::uint8_t>(ex, key, order, perm + begin, end - begin);
      break;
    case 4:
      sort_by_fixed_key<std::uint32_t>(ex, key, order, perm + begin, end - begin);
      break;
    default:
      sort_by_fixed_key<std::uint64_t>(ex, key, order, perm + begin, end - begin);
      break;
  }
}

/// The key columns in key order (a view may name one column twice, so no table_view::select).
inline table_view sort_key_columns(const table_view& input, const std::vector<sort_key>& keys) {
  std::vector<column_view> cols;
  std::vector<std::string> names;
  for (std::size_t k = 0; k < keys.size(); ++k) {
    cols.push_back(input.column(keys[k].column));
    names.push_back(std::to_string(k));
  }
  return table_view(std::move(cols), std::move(names));
}

/// The stable sorted order of `input`'s rows by `keys`, in this backend's memory (n values).
inline buffer sorted_indices(exec& ex, const table_view& input, const std::vector<sort_key>& keys) {
  size_type n = input.num_rows();
  buffer perm = ex.alloc<size_type>(n);
  auto* p = perm.data_as<size_type>();
  if (n == 0) return perm;
  thrust::sequence(ex.policy(), p, p + n);
  if (n == 1) return perm;
  auto key_view = sort_key_columns(input, keys);
  bool all_fixed = true;
  for (const auto& c : key_view.columns()) all_fixed &= is_fixed_width(c.type());
  if (all_fixed) {
    // Stable sorts from the last key to the first leave the rows in lexicographic order.
    for (std::size_t k = keys.size(); k-- > 0;)
      sort_permutation_by_key(ex, key_view.column(static_cast<size_type>(k)), keys[k], p, n);
    return perm;
  }
  std::vector<key_order> orders;
  for (const auto& k : keys) orders.push_back(key_order{k.descending, k.nulls_first});
  buffer d_orders = ex.upload(orders);
  device_table dt(ex, key_view);
  thrust::stable_sort(ex.policy(), p, p + n,
                      row_comparator{dt.view(), d_orders.data_as<key_order>()});
  return perm;
}

}  // namespace detail

namespace portable {

column sorted_order(const table_view& input, const std::vector<sort_key>& keys, context& ctx) {
  exec ex(ctx);
  buffer perm = detail::sorted_indices(ex, input, keys);
  ex.sync();
  return column(type_id::int64, input.num_rows(), std::move(perm));
}

table sort(const table_view& input, const std::vector<sort_key>& keys, context& ctx) {
  exec ex(ctx);
  buffer perm = detail::sorted_indices(ex, input, keys);
  auto result = detail::gather_table(ex, input, perm.data_as<size_type>(), input.num_rows(), false);
  ex.sync();
  return result;
}

table top_k(const table_view& input, const std::vector<sort_key>& keys, size_type k, context& ctx) {
  exec ex(ctx);
  size_type n = input.num_rows();
  size_type rows = k < n ? k : n;
  buffer perm = detail::sorted_indices(ex, input, keys);
  auto result = detail::gather_table(ex, input, perm.data_as<size_type>(), rows, false);
  ex.sync();
  return result;
}

}  // namespace portable
}  // namespace ember::EMBER_BACKEND_NS
