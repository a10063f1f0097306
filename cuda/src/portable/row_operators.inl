#pragma once
// Row-wise hashing, equality and ordering over several key columns of any type: the shared core
// of group-by, join, distinct, partitioning and sort.
#include <cstdint>
#include <vector>

#include <ember/host/column_device_view.hpp>
#include <ember/host/table.hpp>

namespace ember::EMBER_BACKEND_NS::detail {

EMBER_HD inline std::uint64_t mix64(std::uint64_t x) {
  // MurmurHash3's 64-bit finaliser: full avalanche, cheap on both backends.
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

EMBER_HD inline std::uint64_t combine_hash(std::uint64_t seed, std::uint64_t h) {
  return seed ^ (h + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
}

EMBER_HD inline std::uint64_t hash_bytes(const char* p, size_type n) {
  // FNV-1a, then a finaliser so that short strings spread over all bits.
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (size_type i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 0x100000001b3ULL;
  }
  return mix64(h ^ static_cast<std::uint64_t>(n));
}

/// Canonical bits of a double: -0.0 hashes like 0.0 and every NaN alike, matching equality.
EMBER_HD inline std::uint64_t float_bits(double v) {
  if (v == 0.0) v = 0.0;
  if (v != v) return 0x7ff8000000000000ULL;
  std::uint64_t bits;
  const unsigned char* src = reinterpret_cast<const unsigned char*>(&v);
  unsigned char* dst = reinterpret_cast<unsigned char*>(&bits);
  for (int i = 0; i < 8; ++i) dst[i] = src[i];
  return bits;
}

constexpr std::uint64_t null_hash = 0x5bd1e9955bd1e995ULL;

/// Hash of one element; equal values (as element_equal sees them) hash alike, on both backends.
EMBER_HD inline std::uint64_t hash_element(const column_device_view& c, size_type i) {
  if (!c.is_valid(i)) return null_hash;
  switch (c.type) {
    case type_id::int32:
      return mix64(static_cast<std::uint64_t>(c.element<std::int32_t>(i)));
    case type_id::int64:
    case type_id::timestamp_ns:
      return mix64(static_cast<std::uint64_t>(c.element<std::int64_t>(i)));
    case type_id::bool8:
      return mix64(c.element<std::uint8_t>(i) != 0 ? 1 : 0);
    case type_id::float32:
      return mix64(float_bits(static_cast<double>(c.element<float>(i))));
    case type_id::float64:
      return mix64(float_bits(c.element<double>(i)));
    case type_id::string: {
      auto s = c.string_at(i);
      return hash_bytes(s.data, s.size);
    }
  }
  return 0;
}

template <class T>
EMBER_HD int compare_values(T a, T b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

/// Floats order as SQL engines do: NaN after every number, and equal to itself.
template <class T>
EMBER_HD int compare_floats(T a, T b) {
  bool an = a != a, bn = b != b;
  if (an || bn) return an == bn ? 0 : (an ? 1 : -1);
  return compare_values(a, b);
}

/// Three-way comparison of non-null values a[i] and b[j] of the same type.
EMBER_HD inline int compare_elements(const column_device_view& a, size_type i,
                                     const column_device_view& b, size_type j) {
  switch (a.type) {
    case type_id::int32:
      return compare_values(a.element<std::int32_t>(i), b.element<std::int32_t>(j));
    case type_id::int64:
    case type_id::timestamp_ns:
      return compare_values(a.element<std::int64_t>(i), b.element<std::int64_t>(j));
    case type_id::bool8:
      return compare_values(a.element<std::uint8_t>(i) != 0, b.element<std::uint8_t>(j) != 0);
    case type_id::float32:
      return compare_floats(a.element<float>(i), b.element<float>(j));
    case type_id::float64:
      return compare_floats(a.element<double>(i), b.element<double>(j));
    case type_id::string:
      return a.string_at(i).compare(b.string_at(j));
  }
  return 0;
}

/// Key columns as kernels see them: an array of column_device_view in backend memory.
struct table_device_view {
  const column_device_view* columns;
  int num_columns;
};

/// Owns the backend copy of a table's column_device_views.
class device_table {
 public:
  device_table(exec& ex, const table_view& t) {
    std::vector<column_device_view> cols;
    for (const auto& c : t.columns()) cols.push_back(column_device_view::of(c));
    _storage = ex.upload(cols);
    _view =
        table_device_view{_storage.data_as<column_device_view>(), static_cast<int>(cols.size())};
  }
  [[nodiscard]] table_device_view view() const { return _view; }

 private:
  buffer _storage;
  table_device_view _view{};
};

/// Hash of row i over all key columns, with a seed so that hash partitioning and hash tables
/// can use independent hashes.
struct row_hasher {
  table_device_view keys;
  std::uint64_t seed;
  EMBER_HD std::uint64_t operator()(size_type i) const {
    std::uint64_t h = seed;
    for (int c = 0; c < keys.num_columns; ++c)
      h = combine_hash(h, hash_element(keys.columns[c], i));
    return h;
  }
};

/// Row i of `lhs` equals row j of `rhs` on every key; nulls equal each other when
/// `nulls_equal` (grouping, distinct) and never match otherwise (joins, as in SQL).
struct row_equal {
  table_device_view lhs;
  table_device_view rhs;
  bool nulls_equal;
  EMBER_HD bool operator()(size_type i, size_type j) const {
    for (int c = 0; c < lhs.num_columns; ++c) {
      const auto& a = lhs.columns[c];
      const auto& b = rhs.columns[c];
      bool av = a.is_valid(i), bv = b.is_valid(j);
      if (!av || !bv) {
        if (!nulls_equal || av != bv) return false;
        continue;
      }
      if (compare_elements(a, i, b, j) != 0) return false;
    }
    return true;
  }
};

/// Per key column: descending flag and where nulls go.
struct key_order {
  bool descending;
  bool nulls_first;
};

/// Lexicographic three-way comparison of rows i and j of one table under per-key orders
/// (`orders` has one entry per key column, in backend memory).
struct row_comparator {
  table_device_view keys;
  const key_order* orders;
  EMBER_HD int compare(size_type i, size_type j) const {
    for (int c = 0; c < keys.num_columns; ++c) {
      const auto& col = keys.columns[c];
      bool iv = col.is_valid(i), jv = col.is_valid(j);
      int r;
      if (!iv || !jv) {
        if (iv == jv) continue;
        // A null sorts before values exactly when nulls_first, whatever the direction.
        r = !iv ? -1 : 1;
        if (!orders[c].nulls_first) r = -r;
        return r;
      }
      r = compare_elements(col, i, col, j);
      if (r != 0) return orders[c].descending ? -r : r;
    }
    return 0;
  }
  EMBER_HD bool operator()(size_type i, size_type j) const { return compare(i, j) < 0; }
};

}  // namespace ember::EMBER_BACKEND_NS::detail
