#pragma once
// Sort-based group-by and distinct, written once for both backends.
//
// The rows are ordered by the key columns (nulls first), adjacent equal rows form a group, a scan
// numbers the groups, and every aggregation is a segmented reduction over the sorted order. It
// costs a comparison sort, but it is exact for every key type and every aggregation, and its
// result is the reference the backends' hash-based fast paths are checked against.
#include <thrust/binary_search.h>
#include <thrust/fill.h>
#include <thrust/iterator/discard_iterator.h>
#include <thrust/logical.h>
#include <thrust/reduce.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>
#include <thrust/transform_scan.h>

#include <ember/cuda/groupby.hpp>
#include <string>
#include <vector>

#include "portable/row_operators.inl"
#include "portable/utilities.inl"

namespace ember::EMBER_BACKEND_NS {
// Functors live in their own namespace: other operators' bodies define functors in detail too,
// and two different definitions under one name in one backend would break the one-definition rule.
namespace detail::groupby {

/// An integral, timestamp or bool element widened to int64.
EMBER_HD inline std::int64_t int_value(const column_device_view& c, size_type i) {
  switch (c.type) {
    case type_id::int32:
      return c.element<std::int32_t>(i);
    case type_id::bool8:
      return c.element<std::uint8_t>(i) != 0 ? 1 : 0;
    default:
      return c.element<std::int64_t>(i);
  }
}

/// A numeric element as a double.
EMBER_HD inline double float_value(const column_device_view& c, size_type i) {
  switch (c.type) {
    case type_id::float32:
      return static_cast<double>(c.element<float>(i));
    case type_id::float64:
      return c.element<double>(i);
    default:
      return static_cast<double>(int_value(c, i));
  }
}

EMBER_HD inline void read_value(const column_device_view& c, size_type i, std::int64_t& out) {
  out = int_value(c, i);
}
EMBER_HD inline void read_value(const column_device_view& c, size_type i, double& out) {
  out = float_value(c, i);
}

struct int_key_fn {
  column_device_view col;
  EMBER_HD std::int64_t operator()(size_type i) const { return int_value(col, i); }
};

/// 1 where sorted position i starts a new group (never at 0), so an inclusive scan numbers the
/// groups from 0.
struct boundary_fn {
  row_equal eq;
  const size_type* order;
  EMBER_HD size_type operator()(size_type i) const {
    return i > 0 && !eq(order[i - 1], order[i]) ? 1 : 0;
  }
};

struct mark_starts_fn {
  const size_type* labels;
  size_type* starts;
  EMBER_HD void operator()(size_type i) const {
    if (i == 0 || labels[i] != labels[i - 1]) starts[labels[i]] = i;
  }
};

struct first_row_fn {
  const size_type* order;
  const size_type* starts;
  EMBER_HD size_type operator()(size_type g) const { return order[starts[g]]; }
};

struct group_size_fn {
  const size_type* starts;
  EMBER_HD std::int64_t operator()(size_type g) const { return starts[g + 1] - starts[g]; }
};

struct valid_count_fn {
  column_device_view col;
  const size_type* order;
  EMBER_HD std::int64_t operator()(size_type i) const { return col.is_valid(order[i]) ? 1 : 0; }
};

/// Running sum and number of values of one group.
template <class T>
struct sum_state {
  T sum;
  size_type count;
};

template <class T>
struct sum_plus {
  EMBER_HD sum_state<T> operator()(const sum_state<T>& a, const sum_state<T>& b) const {
    return sum_state<T>{a.sum + b.sum, a.count + b.count};
  }
};

template <class T>
struct sum_input_fn {
  column_device_view col;
  const size_type* order;
  EMBER_HD sum_state<T> operator()(size_type i) const {
    size_type r = order[i];
    if (!col.is_valid(r)) return sum_state<T>{T(0), 0};
    T v;
    read_value(col, r, v);
    return sum_state<T>{v, 1};
  }
};

template <class T>
struct state_sum_fn {
  EMBER_HD T operator()(const sum_state<T>& s) const { return s.sum; }
};

template <class T>
struct state_mean_fn {
  EMBER_HD double operator()(const sum_state<T>& s) const {
    return s.count > 0 ? static_cast<double>(s.sum) / static_cast<double>(s.count) : 0.0;
  }
};

template <class T>
struct state_valid_fn {
  const sum_state<T>* states;
  EMBER_HD bool operator()(size_type g) const { return states[g].count > 0; }
};

/// The row at sorted position i when its value is valid, else -1.
struct valid_row_fn {
  column_device_view col;
  const size_type* order;
  EMBER_HD size_type operator()(size_type i) const {
    size_type r = order[i];
    return col.is_valid(r) ? r : -1;
  }
};

/// Of two rows (-1: none), the one with the smaller (larger) value; the left one on a tie, which
/// keeps the reduction associative.
struct pick_extreme_fn {
  column_device_view col;
  bool want_max;
  EMBER_HD size_type operator()(size_type a, size_type b) const {
    if (a < 0) return b;
    if (b < 0) return a;
    int c = compare_elements(col, a, col, b);
    return (want_max ? c < 0 : c > 0) ? b : a;
  }
};

struct is_negative_index_fn {
  EMBER_HD bool operator()(size_type v) const { return v < 0; }
};

/// Orders sorted positions by (group, value), nulls first: equal values of a group end up
/// adjacent.
struct group_value_less_fn {
  const size_type* labels;
  const size_type* order;
  column_device_view col;
  EMBER_HD bool operator()(size_type a, size_type b) const {
    if (labels[a] != labels[b]) return labels[a] < labels[b];
    size_type ra = order[a], rb = order[b];
    bool va = col.is_valid(ra), vb = col.is_valid(rb);
    if (va != vb) return !va;
    if (!va) return false;
    return compare_elements(col, ra, col, rb) < 0;
  }
};

/// 1 where position i of the (group, value) order holds a valid value that differs from the
/// previous one of its group.
struct new_value_fn {
  const size_type* labels;
  const size_type* order;
  const size_type* perm;
  column_device_view col;
  EMBER_HD std::int64_t operator()(size_type i) const {
    size_type p = perm[i];
    size_type r = order[p];
    if (!col.is_valid(r)) return 0;
    if (i == 0) return 1;
    size_type q = perm[i - 1];
    if (labels[q] != labels[p]) return 1;
    size_type s = order[q];
    if (!col.is_valid(s)) return 1;
    return compare_elements(col, s, col, r) != 0 ? 1 : 0;
  }
};

struct label_at_fn {
  const size_type* labels;
  const size_type* perm;
  EMBER_HD size_type operator()(size_type i) const { return labels[perm[i]]; }
};

/// The type of an aggregation's output column over an input column of type `in`.
inline type_id output_type(aggregation_kind kind, type_id in) {
  switch (kind) {
    case aggregation_kind::sum:
      return is_floating(in) ? type_id::float64 : type_id::int64;
    case aggregation_kind::min:
    case aggregation_kind::max:
      return in;
    case aggregation_kind::mean:
      return type_id::float64;
    default:
      return type_id::int64;
  }
}

/// The rows of `input` ordered by `keys` and cut into groups.
struct grouping {
  buffer order;   // size_type[n]: row at each sorted position
  buffer labels;  // size_type[n]: group of each sorted position, ascending from 0
  buffer starts;  // size_type[groups + 1]: first sorted position of each group, then n
  size_type groups = 0;
};

inline grouping group_rows(exec& ex, const table_view& keys, size_type n) {
  grouping g;
  g.order = ex.alloc<size_type>(n);
  g.labels = ex.alloc<size_type>(n);
  auto* order = g.order.data_as<size_type>();
  auto* labels = g.labels.data_as<size_type>();
  auto rows = thrust::counting_iterator<size_type>(0);
  thrust::sequence(ex.policy(), order, order + n);
  if (keys.num_columns() == 0) {
    // No keys: the whole input is one group.
    thrust::fill(ex.policy(), labels, labels + n, size_type{0});
    g.groups = n > 0 ? 1 : 0;
  } else {
    device_table d_keys(ex, keys);
    const auto& first = keys.column(0);
    auto t = first.type();
    if (keys.num_columns() == 1 && !first.nullable() && (is_integral(t) || t == type_id::bool8)) {
      // One integral key without nulls: sort the values themselves (a radix sort on CUDA).
      buffer values = ex.alloc<std::int64_t>(n);
      auto* v = values.data_as<std::int64_t>();
      thrust::transform(ex.policy(), rows, rows + n, v, int_key_fn{column_device_view::of(first)});
      thrust::stable_sort_by_key(ex.policy(), v, v + n, order);
    } else {
      std::vector<key_order> orders(static_cast<std::size_t>(keys.num_columns()),
                                    key_order{false, true});
      buffer d_orders = ex.upload(orders);
      thrust::stable_sort(ex.policy(), order, order + n,
                          row_comparator{d_keys.view(), d_orders.data_as<key_order>()});
    }
    row_equal eq{d_keys.view(), d_keys.view(), true};
    thrust::transform_inclusive_scan(ex.policy(), rows, rows + n, labels, boundary_fn{eq, order},
                                     thrust::plus<size_type>());
    g.groups = n > 0 ? ex.read(labels + n - 1) + 1 : 0;
  }
  g.starts = ex.alloc<size_type>(g.groups + 1);
  auto* starts = g.starts.data_as<size_type>();
  thrust::for_each(ex.policy(), rows, rows + n, mark_starts_fn{labels, starts});
  ex.copy(starts + g.groups, &n, sizeof(size_type));
  ex.sync();
  return g;
}

template <class T>
column sum_or_mean(exec& ex, const column_view& col, const grouping& g, size_type n, bool mean) {
  auto dv = column_device_view::of(col);
  const auto* order = g.order.data_as<size_type>();
  const auto* labels = g.labels.data_as<size_type>();
  auto rows = thrust::counting_iterator<size_type>(0);
  buffer states = ex.alloc<sum_state<T>>(g.groups);
  auto* s = states.data_as<sum_state<T>>();
  thrust::reduce_by_key(ex.policy(), labels, labels + n,
                        thrust::make_transform_iterator(rows, sum_input_fn<T>{dv, order}),
                        thrust::make_discard_iterator(), s, thrust::equal_to<size_type>(),
                        sum_plus<T>());
  buffer mask;
  if (col.nullable()) mask = pack_bitmask(ex, state_valid_fn<T>{s}, g.groups);
  if (mean) {
    buffer out = ex.alloc<double>(g.groups);
    thrust::transform(ex.policy(), s, s + g.groups, out.data_as<double>(), state_mean_fn<T>{});
    return column(type_id::float64, g.groups, std::move(out), std::move(mask));
  }
  buffer out = ex.alloc<T>(g.groups);
  thrust::transform(ex.policy(), s, s + g.groups, out.data_as<T>(), state_sum_fn<T>{});
  return column(is_floating(col.type()) ? type_id::float64 : type_id::int64, g.groups,
                std::move(out), std::move(mask));
}

inline column count_valid(exec& ex, const column_view& col, const grouping& g, size_type n) {
  buffer out = ex.alloc<std::int64_t>(g.groups);
  auto* o = out.data_as<std::int64_t>();
  const auto* order = g.order.data_as<size_type>();
  const auto* labels = g.labels.data_as<size_type>();
  auto rows = thrust::counting_iterator<size_type>(0);
  if (col.nullable()) {
    thrust::reduce_by_key(
        ex.policy(), labels, labels + n,
        thrust::make_transform_iterator(rows, valid_count_fn{column_device_view::of(col), order}),
        thrust::make_discard_iterator(), o);
  } else {
    thrust::tabulate(ex.policy(), o, o + g.groups, group_size_fn{g.starts.data_as<size_type>()});
  }
  return column(type_id::int64, g.groups, std::move(out));
}

inline column extreme(exec& ex, const column_view& col, const grouping& g, size_type n,
                      bool want_max) {
  auto dv = column_device_view::of(col);
  const auto* order = g.order.data_as<size_type>();
  const auto* labels = g.labels.data_as<size_type>();
  auto rows = thrust::counting_iterator<size_type>(0);
  buffer picked = ex.alloc<size_type>(g.groups);
  auto* p = picked.data_as<size_type>();
  thrust::reduce_by_key(ex.policy(), labels, labels + n,
                        thrust::make_transform_iterator(rows, valid_row_fn{dv, order}),
                        thrust::make_discard_iterator(), p, thrust::equal_to<size_type>(),
                        pick_extreme_fn{dv, want_max});
  bool empty_groups =
      col.nullable() && thrust::any_of(ex.policy(), p, p + g.groups, is_negative_index_fn{});
  column out = gather_column(ex, col, p, g.groups, empty_groups);
  if (!empty_groups) out.clear_null_mask();
  return out;
}

inline column count_distinct(exec& ex, const column_view& col, const grouping& g, size_type n) {
  auto dv = column_device_view::of(col);
  const auto* order = g.order.data_as<size_type>();
  const auto* labels = g.labels.data_as<size_type>();
  auto rows = thrust::counting_iterator<size_type>(0);
  buffer perm_buf = ex.alloc<size_type>(n);
  auto* perm = perm_buf.data_as<size_type>();
  thrust::sequence(ex.policy(), perm, perm + n);
  thrust::sort(ex.policy(), perm, perm + n, group_value_less_fn{labels, order, dv});
  buffer out = ex.alloc<std::int64_t>(g.groups);
  thrust::reduce_by_key(
      ex.policy(), thrust::make_transform_iterator(rows, label_at_fn{labels, perm}),
      thrust::make_transform_iterator(rows + n, label_at_fn{labels, perm}),
      thrust::make_transform_iterator(rows, new_value_fn{labels, order, perm, dv}),
      thrust::make_discard_iterator(), out.data_as<std::int64_t>());
  return column(type_id::int64, g.groups, std::move(out));
}

/// One row: a count of 0, or a null of `type` (an aggregate of no rows).
inline column no_rows_aggregate(exec& ex, aggregation_kind kind, type_id type) {
  bool is_count = kind == aggregation_kind::count || kind == aggregation_kind::count_all ||
                  kind == aggregation_kind::count_distinct;
  buffer mask;
  if (!is_count) mask = ex.upload(std::vector<bitmask_type>{0});
  if (type == type_id::string) {
    return column(1, ex.upload(std::vector<size_type>{0, 0}), ex.alloc<char>(0), std::move(mask));
  }
  return column(type, 1, ex.upload(std::vector<std::int64_t>{0}), std::move(mask));
}

/// group_by's portable body; `aggregations` were validated by the public entry point.
inline table sort_group_by(const table_view& input, const std::vector<std::string>& keys,
                           const std::vector<aggregation>& aggregations, context& ctx) {
  exec ex(ctx);
  auto n = input.num_rows();
  auto key_view = input.select(keys);
  std::vector<column> cols;
  std::vector<std::string> names = keys;
  for (const auto& a : aggregations) names.push_back(a.output_name);
  auto value_type = [&](const aggregation& a) {
    return a.kind == aggregation_kind::count_all ? type_id::int64 : input.column(a.column).type();
  };

  if (n == 0) {
    for (const auto& c : key_view.columns()) cols.push_back(empty_column(ex, c.type()));
    for (const auto& a : aggregations) {
      auto type = output_type(a.kind, value_type(a));
      cols.push_back(keys.empty() ? no_rows_aggregate(ex, a.kind, type) : empty_column(ex, type));
    }
    return table(std::move(cols), std::move(names));
  }

  grouping g = group_rows(ex, key_view, n);
  if (!keys.empty()) {
    buffer first = ex.alloc<size_type>(g.groups);
    auto* f = first.data_as<size_type>();
    thrust::tabulate(ex.policy(), f, f + g.groups,
                     first_row_fn{g.order.data_as<size_type>(), g.starts.data_as<size_type>()});
    for (const auto& c : key_view.columns())
      cols.push_back(gather_column(ex, c, f, g.groups, false));
  }
  for (const auto& a : aggregations) {
    switch (a.kind) {
      case aggregation_kind::count_all: {
        buffer out = ex.alloc<std::int64_t>(g.groups);
        auto* o = out.data_as<std::int64_t>();
        thrust::tabulate(ex.policy(), o, o + g.groups,
                         group_size_fn{g.starts.data_as<size_type>()});
        cols.emplace_back(type_id::int64, g.groups, std::move(out));
        break;
      }
      case aggregation_kind::count:
        cols.push_back(count_valid(ex, input.column(a.column), g, n));
        break;
      case aggregation_kind::sum:
      case aggregation_kind::mean: {
        const auto& col = input.column(a.column);
        bool mean = a.kind == aggregation_kind::mean;
        cols.push_back(is_floating(col.type()) ? sum_or_mean<double>(ex, col, g, n, mean)
                                               : sum_or_mean<std::int64_t>(ex, col, g, n, mean));
        break;
      }
      case aggregation_kind::min:
      case aggregation_kind::max:
        cols.push_back(extreme(ex, input.column(a.column), g, n, a.kind == aggregation_kind::max));
        break;
      case aggregation_kind::count_distinct:
        cols.push_back(count_distinct(ex, input.column(a.column), g, n));
        break;
    }
  }
  ex.sync();
  return table(std::move(cols), std::move(names));
}

}  // namespace detail::groupby

/// The portable bodies, which each backend's entry point calls (the CPU one when its fast path
/// does not apply).
inline table group_by_portable(const table_view& input, const std::vector<std::string>& keys,
                               const std::vector<aggregation>& aggregations, context& ctx) {
  return detail::groupby::sort_group_by(input, keys, aggregations, ctx);
}

inline table distinct_portable(const table_view& input, const std::vector<std::string>& columns,
                               context& ctx) {
  return detail::groupby::sort_group_by(input, columns, {}, ctx);
}

}  // namespace ember::EMBER_BACKEND_NS
