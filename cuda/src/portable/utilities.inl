#pragma once
// Building blocks shared by the portable operator bodies. Included by a backend translation unit
// after its exec header, inside which EMBER_BACKEND_NS names the backend (cpu or gpu).
#include <cstdint>

#include <thrust/count.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>
#include <thrust/scan.h>
#include <thrust/tabulate.h>
#include <thrust/transform.h>

#include <ember/host/column.hpp>
#include <ember/host/column_device_view.hpp>
#include <ember/host/table.hpp>

namespace ember::EMBER_BACKEND_NS::detail {

/// Word w of a bitmask whose bit i is valid(i), for i < n.
template <class ValidFn>
struct pack_word_fn {
  ValidFn valid;
  size_type n;
  EMBER_HD bitmask_type operator()(size_type w) const {
    bitmask_type word = 0;
    size_type begin = w * 32;
    size_type end = begin + 32 < n ? begin + 32 : n;
    for (size_type i = begin; i < end; ++i)
      if (valid(i)) word |= bitmask_type{1} << (i - begin);
    return word;
  }
};

/// A bitmask of n bits with bit i = valid(i). One thread per 32-bit word, so no atomics.
template <class ValidFn>
buffer pack_bitmask(exec& ex, ValidFn valid, size_type n) {
  size_type words = bitmask_words(n);
  buffer mask = ex.alloc<bitmask_type>(words);
  auto* out = mask.data_as<bitmask_type>();
  thrust::tabulate(ex.policy(), out, out + words, pack_word_fn<ValidFn>{valid, n});
  return mask;
}

struct column_valid_fn {
  column_device_view col;
  EMBER_HD bool operator()(size_type i) const { return col.is_valid(i); }
};

struct is_invalid_fn {
  column_device_view col;
  EMBER_HD bool operator()(size_type i) const { return !col.is_valid(i); }
};

/// Number of null rows of a column in this backend's memory.
inline size_type null_count(exec& ex, const column_view& c) {
  if (!c.nullable() || c.size() == 0) return 0;
  return thrust::count_if(ex.policy(), thrust::counting_iterator<size_type>(0),
                          thrust::counting_iterator<size_type>(c.size()),
                          is_invalid_fn{column_device_view::of(c)});
}

/// Offsets (n + 1 values) from n lengths by an exclusive scan; `total` gets the last offset.
inline buffer lengths_to_offsets(exec& ex, const size_type* lengths, size_type n,
                                 size_type& total) {
  buffer offsets = ex.alloc<size_type>(n + 1);
  auto* out = offsets.data_as<size_type>();
  if (n > 0) thrust::exclusive_scan(ex.policy(), lengths, lengths + n, out, size_type{0});
  size_type last_offset = n > 0 ? ex.read(out + n - 1) : 0;
  size_type last_length = n > 0 ? ex.read(lengths + n - 1) : 0;
  total = last_offset + last_length;
  ex.copy(out + n, &total, sizeof(size_type));
  ex.sync();
  return offsets;
}

/// Source row for output row i: map[i], where a negative entry means "null row". Values move as
/// whole words of their width (T), which is several times faster than byte copies the compiler
/// cannot merge (the pointers may alias).
template <class T>
struct gather_fixed_fn {
  const T* src;
  const size_type* map;
  T* dst;
  EMBER_HD void operator()(size_type i) const {
    size_type j = map[i];
    dst[i] = j < 0 ? T{} : src[j];
  }
};

struct gather_valid_fn {
  column_device_view col;
  const size_type* map;
  EMBER_HD bool operator()(size_type i) const {
    size_type j = map[i];
    return j >= 0 && col.is_valid(j);
  }
};

struct gathered_length_fn {
  column_device_view col;
  const size_type* map;
  EMBER_HD size_type operator()(size_type i) const {
    size_type j = map[i];
    return j < 0 ? 0 : col.offsets[j + 1] - col.offsets[j];
  }
};

struct gather_chars_fn {
  column_device_view col;
  const size_type* map;
  const size_type* out_offsets;
  char* out_chars;
  EMBER_HD void operator()(size_type i) const {
    size_type j = map[i];
    if (j < 0) return;
    const char* src = col.chars + col.offsets[j];
    char* dst = out_chars + out_offsets[i];
    size_type len = col.offsets[j + 1] - col.offsets[j];
    for (size_type b = 0; b < len; ++b) dst[b] = src[b];
  }
};

/// Column rows in the order of `map` (n entries of this backend's memory); a negative entry
/// produces a null row. The result has a null mask only when one can be needed.
inline column gather_column(exec& ex, const column_view& src, const size_type* map, size_type n,
                            bool map_has_negatives) {
  auto dv = column_device_view::of(src);
  auto rows = thrust::counting_iterator<size_type>(0);
  buffer mask;
  if (src.nullable() || map_has_negatives) mask = pack_bitmask(ex, gather_valid_fn{dv, map}, n);
  if (src.type() == type_id::string) {
    buffer lengths = ex.alloc<size_type>(n);
    thrust::transform(ex.policy(), rows, rows + n, lengths.data_as<size_type>(),
                      gathered_length_fn{dv, map});
    size_type total = 0;
    buffer offsets = lengths_to_offsets(ex, lengths.data_as<size_type>(), n, total);
    buffer chars = ex.alloc<char>(total);
    thrust::for_each(ex.policy(), rows, rows + n,
                     gather_chars_fn{dv, map, offsets.data_as<size_type>(), chars.data_as<char>()});
    return column(n, std::move(offsets), std::move(chars), std::move(mask));
  }
  auto width = size_of(src.type());
  buffer data = ex.alloc<unsigned char>(n * width);
  auto launch = [&](auto word) {
    using T = decltype(word);
    thrust::for_each(ex.policy(), rows, rows + n,
                     gather_fixed_fn<T>{static_cast<const T*>(src.data()), map, data.data_as<T>()});
  };
  switch (width) {
    case 1:
      launch(std::uint8_t{});
      break;
    case 4:
      launch(std::uint32_t{});
      break;
    default:
      launch(std::uint64_t{});
      break;
  }
  return column(src.type(), n, std::move(data), std::move(mask));
}

/// Every column of `src` gathered by `map`.
inline table gather_table(exec& ex, const table_view& src, const size_type* map, size_type n,
                          bool map_has_negatives) {
  std::vector<column> cols;
  for (const auto& c : src.columns())
    cols.push_back(gather_column(ex, c, map, n, map_has_negatives));
  return table(std::move(cols), src.names());
}

/// An empty column of `type` in this backend's memory.
inline column empty_column(exec& ex, type_id type) {
  if (type == type_id::string) {
    buffer offsets = ex.alloc<size_type>(1);
    size_type zero = 0;
    ex.copy(offsets.data(), &zero, sizeof(zero));
    ex.sync();
    return column(0, std::move(offsets), ex.alloc<char>(0));
  }
  return column(type, 0, ex.alloc<unsigned char>(0));
}

}  // namespace ember::EMBER_BACKEND_NS::detail
