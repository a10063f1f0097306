#pragma once
// The portable equi-join: sort the right rows by their keys, binary-search each left row's match
// range, expand the ranges into gather maps, gather. No hash table, so the same body runs on
// both backends without atomics; the CPU backend's hash join (cpu/join_fast.cpp) replaces the
// map computation when fast paths are on.
#include <thrust/binary_search.h>
#include <thrust/copy.h>
#include <thrust/count.h>
#include <thrust/logical.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>

#include <ember/cuda/join.hpp>
#include <vector>

#include "portable/row_operators.inl"
#include "portable/utilities.inl"

namespace ember::EMBER_BACKEND_NS {
namespace detail {

/// Who meets whom: output row k takes left row left[k] and right row right[k], a negative right
/// index meaning "no right row" (nulls). Both are int64 columns without nulls; semi and anti
/// joins leave `right` empty. When `left_in_order`, output row k takes left row k and `left` is
/// left empty: the left columns are copied rather than gathered (the usual foreign-key join).
struct join_gather_maps {
  column left;
  column right;
  size_type rows = 0;
  bool left_in_order = false;
};

struct keys_valid_fn {
  table_device_view keys;
  EMBER_HD bool operator()(size_type i) const {
    for (int c = 0; c < keys.num_columns; ++c)
      if (!keys.columns[c].is_valid(i)) return false;
    return true;
  }
};

/// A left row as a binary-search needle: its own type, so that the comparator can tell it from
/// the right row indices of the haystack.
struct probe_row {
  size_type index;
};

struct to_probe_row_fn {
  EMBER_HD probe_row operator()(size_type i) const { return probe_row{i}; }
};

/// Orders a left row against a right row by their keys. The haystack holds right rows without
/// null keys only. A null left key orders below every value, which keeps the order consistent
/// (the probe acts as if its nulls were minus infinity) and gives a null key an empty range.
struct probe_less {
  table_device_view left;
  table_device_view right;
  EMBER_HD int compare(size_type l, size_type r) const {
    for (int c = 0; c < left.num_columns; ++c) {
      const auto& a = left.columns[c];
      if (!a.is_valid(l)) return -1;
      int x = compare_elements(a, l, right.columns[c], r);
      if (x != 0) return x;
    }
    return 0;
  }
  EMBER_HD bool operator()(size_type r, probe_row l) const { return compare(l.index, r) > 0; }
  EMBER_HD bool operator()(probe_row l, size_type r) const { return compare(l.index, r) < 0; }
};

/// Output rows of left row i: its matches, or one row of nulls for an unmatched row of a left
/// join. Null left keys have an empty range already (probe_less), so no check is needed.
struct match_count_fn {
  const size_type* lower;
  const size_type* upper;
  bool keep_unmatched;
  EMBER_HD size_type operator()(size_type i) const {
    size_type n = upper[i] - lower[i];
    return n == 0 && keep_unmatched ? 1 : n;
  }
};

/// Output row k: `left_map[k]` arrives as upper_bound(offsets, k), one past its left row.
struct expand_fn {
  const size_type* offsets;  // first output row of each left row
  const size_type* lower;
  const size_type* upper;
  const size_type* sorted;  // right rows in key order
  size_type* left_map;
  size_type* right_map;
  EMBER_HD void operator()(size_type k) const {
    size_type i = left_map[k] - 1;
    size_type j = lower[i] + (k - offsets[i]);
    left_map[k] = i;
    right_map[k] = j < upper[i] ? sorted[j] : -1;
  }
};

struct flag_is_fn {
  bool wanted;
  EMBER_HD bool operator()(bool flag) const { return flag == wanted; }
};

inline column index_column(buffer data, size_type n) {
  return column(type_id::int64, n, std::move(data));
}

/// Indices of the right rows whose keys are all valid, in key order.
inline buffer sorted_right_rows(exec& ex, const table_view& right_keys, const table_device_view& rk,
                                size_type& count) {
  size_type nr = right_keys.num_rows();
  buffer sorted = ex.alloc<size_type>(nr);
  auto* s = sorted.data_as<size_type>();
  auto rows = thrust::counting_iterator<size_type>(0);
  bool nullable = false;
  for (const auto& c : right_keys.columns()) nullable |= c.nullable();
  count = nr;
  if (nullable)
    count = thrust::copy_if(ex.policy(), rows, rows + nr, s, keys_valid_fn{rk}) - s;
  else
    thrust::sequence(ex.policy(), s, s + nr);
  // Ascending on every key; where nulls would go does not matter, none are left.
  std::vector<key_order> orders(static_cast<std::size_t>(rk.num_columns), key_order{false, false});
  buffer d_orders = ex.upload(orders);
  thrust::stable_sort(ex.policy(), s, s + count, row_comparator{rk, d_orders.data_as<key_order>()});
  return sorted;
}

/// Gather maps of the join by sorting and binary search (see the file comment).
inline join_gather_maps sort_join_maps(exec& ex, const table_view& left_keys,
                                       const table_view& right_keys, join_kind kind) {
  size_type nl = left_keys.num_rows();
  device_table lk_table(ex, left_keys);
  device_table rk_table(ex, right_keys);
  auto lk = lk_table.view();
  auto rk = rk_table.view();
  size_type m = 0;
  buffer sorted = sorted_right_rows(ex, right_keys, rk, m);
  const auto* s = sorted.data_as<size_type>();
  auto needles =
      thrust::make_transform_iterator(thrust::counting_iterator<size_type>(0), to_probe_row_fn{});
  probe_less less{lk, rk};

  if (kind == join_kind::semi || kind == join_kind::anti) {
    buffer found = ex.alloc<bool>(nl);
    auto* f = found.data_as<bool>();
    thrust::binary_search(ex.policy(), s, s + m, needles, needles + nl, f, less);
    buffer left_map = ex.alloc<size_type>(nl);
    auto* out = left_map.data_as<size_type>();
    auto rows = thrust::counting_iterator<size_type>(0);
    size_type n =
        thrust::copy_if(ex.policy(), rows, rows + nl, f, out, flag_is_fn{kind == join_kind::semi}) -
        out;
    ex.sync();
    return {index_column(std::move(left_map), n), column{}, n, false};
  }

  buffer lower = ex.alloc<size_type>(nl);
  buffer upper = ex.alloc<size_type>(nl);
  auto* lo = lower.data_as<size_type>();
  auto* hi = upper.data_as<size_type>();
  thrust::lower_bound(ex.policy(), s, s + m, needles, needles + nl, lo, less);
  thrust::upper_bound(ex.policy(), s, s + m, needles, needles + nl, hi, less);
  buffer counts = ex.alloc<size_type>(nl);
  auto rows = thrust::counting_iterator<size_type>(0);
  thrust::transform(ex.policy(), rows, rows + nl, counts.data_as<size_type>(),
                    match_count_fn{lo, hi, kind == join_kind::left});
  size_type total = 0;
  buffer offsets = lengths_to_offsets(ex, counts.data_as<size_type>(), nl, total);
  const auto* off = offsets.data_as<size_type>();

  buffer left_map = ex.alloc<size_type>(total);
  buffer right_map = ex.alloc<size_type>(total);
  auto* lm = left_map.data_as<size_type>();
  auto* rm = right_map.data_as<size_type>();
  // Each output row finds its left row by binary search over the offsets, so the work per
  // thread stays even when one left row has millions of matches.
  thrust::upper_bound(ex.policy(), off, off + nl, rows, rows + total, lm);
  thrust::for_each(ex.policy(), rows, rows + total, expand_fn{off, lo, hi, s, lm, rm});
  ex.sync();
  return {index_column(std::move(left_map), total), index_column(std::move(right_map), total),
          total, false};
}

/// Element i of a fixed-width gather, as whole values (one load and one store per row, where a
/// byte-wise copy would issue one per byte).
template <class T>
struct gather_values_fn {
  const T* src;
  const size_type* map;
  T* dst;
  EMBER_HD void operator()(size_type i) const {
    size_type j = map[i];
    dst[i] = j < 0 ? T{} : src[j];
  }
};

template <class T>
void gather_values(exec& ex, const column_view& src, const size_type* map, size_type n,
                   buffer& data) {
  auto rows = thrust::counting_iterator<size_type>(0);
  thrust::for_each(ex.policy(), rows, rows + n,
                   gather_values_fn<T>{src.data<T>(), map, data.data_as<T>()});
}

template <class T>
void copy_values(exec& ex, const column_view& src, size_type n, buffer& data) {
  thrust::copy(ex.policy(), src.data<T>(), src.data<T>() + n, data.data_as<T>());
}

/// One output column of a join: `src` rows in `map` order, nulls where the map is negative; the
/// first n rows of `src` as they are when `map` is null.
inline column gather_join_column(exec& ex, const column_view& src, const size_type* map,
                                 size_type n, bool map_has_negatives) {
  if (src.type() == type_id::string) {
    if (map != nullptr) return gather_column(ex, src, map, n, map_has_negatives);
    buffer in_order = ex.alloc<size_type>(n);
    thrust::sequence(ex.policy(), in_order.data_as<size_type>(), in_order.data_as<size_type>() + n);
    return gather_column(ex, src, in_order.data_as<size_type>(), n, false);
  }
  auto dv = column_device_view::of(src);
  buffer mask;
  if (map == nullptr && src.nullable()) mask = pack_bitmask(ex, column_valid_fn{dv}, n);
  if (map != nullptr && (src.nullable() || map_has_negatives))
    mask = pack_bitmask(ex, gather_valid_fn{dv, map}, n);
  buffer data = ex.alloc<unsigned char>(n * size_of(src.type()));
  switch (size_of(src.type())) {
    case 1:
      if (map != nullptr)
        gather_values<std::uint8_t>(ex, src, map, n, data);
      else
        copy_values<std::uint8_t>(ex, src, n, data);
      break;
    case 4:
      if (map != nullptr)
        gather_values<std::uint32_t>(ex, src, map, n, data);
      else
        copy_values<std::uint32_t>(ex, src, n, data);
      break;
    default:
      if (map != nullptr)
        gather_values<std::uint64_t>(ex, src, map, n, data);
      else
        copy_values<std::uint64_t>(ex, src, n, data);
      break;
  }
  return column(src.type(), n, std::move(data), std::move(mask));
}

struct is_negative_index_fn {
  EMBER_HD bool operator()(size_type v) const { return v < 0; }
};

/// The join's output: the left columns, then (inner and left joins) the right output columns.
inline table join_output(exec& ex, const table_view& left, const table_view& right_out,
                         const join_gather_maps& maps, join_kind kind) {
  size_type n = maps.rows;
  const size_type* lm = maps.left_in_order ? nullptr : maps.left.view().data<size_type>();
  std::vector<std::string> names = left.names();
  std::vector<column> cols;
  for (const auto& c : left.columns()) cols.push_back(gather_join_column(ex, c, lm, n, false));
  if (kind == join_kind::inner || kind == join_kind::left) {
    const auto* rm = maps.right.view().data<size_type>();
    bool negatives = kind == join_kind::left && n > 0 &&
                     thrust::any_of(ex.policy(), rm, rm + n, is_negative_index_fn{});
    for (size_type c = 0; c < right_out.num_columns(); ++c) {
      cols.push_back(gather_join_column(ex, right_out.column(c), rm, n, negatives));
      names.push_back(right_out.names()[c]);
    }
  }
  ex.sync();
  return table(std::move(cols), std::move(names));
}

}  // namespace detail
}  // namespace ember::EMBER_BACKEND_NS
