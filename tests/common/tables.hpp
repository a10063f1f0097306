#pragma once
// Test data and reference helpers: random columns with fixed seeds, and tables turned into plain
// rows of scalars that std::map/std::sort based reference implementations can work on.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <ember/host/column_factories.hpp>
#include <ember/host/scalar.hpp>
#include <ember/host/table.hpp>

namespace ember::test {

using row = std::vector<scalar>;

/// Every row of a host table as scalars.
inline std::vector<row> rows_of(const table_view& t) {
  std::vector<row> out(static_cast<std::size_t>(t.num_rows()));
  for (size_type r = 0; r < t.num_rows(); ++r)
    for (size_type c = 0; c < t.num_columns(); ++c) out[r].push_back(get_scalar(t.column(c), r));
  return out;
}

/// A total order on scalars for reference implementations: nulls first, then by value.
inline bool scalar_less(const scalar& a, const scalar& b) {
  if (a.valid() != b.valid()) return !a.valid();
  if (!a.valid()) return false;
  switch (a.type()) {
    case type_id::float32:
    case type_id::float64:
      return a.as_float() < b.as_float();
    case type_id::string:
      return a.as_string() < b.as_string();
    default:
      return a.as_int() < b.as_int();
  }
}
inline bool row_less(const row& a, const row& b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), scalar_less);
}
/// Rows sorted, for comparing results whose order is unspecified.
inline std::vector<row> sorted_rows(const table_view& t) {
  auto r = rows_of(t);
  std::sort(r.begin(), r.end(), row_less);
  return r;
}

/// Random int64 values in [lo, hi], a `null_fraction` of them null (no mask when 0).
inline column random_int64(std::size_t n, std::int64_t lo, std::int64_t hi, double null_fraction,
                           std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int64_t> dist(lo, hi);
  std::bernoulli_distribution is_null(null_fraction);
  std::vector<std::int64_t> v(n);
  std::vector<bool> valid(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = dist(rng);
    if (null_fraction > 0) valid[i] = !is_null(rng);
  }
  return make_column<std::int64_t>(type_id::int64, v,
                                   null_fraction > 0 ? valid : std::vector<bool>{});
}

inline column random_int32(std::size_t n, std::int32_t lo, std::int32_t hi, double null_fraction,
                           std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int32_t> dist(lo, hi);
  std::bernoulli_distribution is_null(null_fraction);
  std::vector<std::int32_t> v(n);
  std::vector<bool> valid(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = dist(rng);
    if (null_fraction > 0) valid[i] = !is_null(rng);
  }
  return make_column<std::int32_t>(type_id::int32, v,
                                   null_fraction > 0 ? valid : std::vector<bool>{});
}

inline column random_float64(std::size_t n, double lo, double hi, double null_fraction,
                             std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::bernoulli_distribution is_null(null_fraction);
  std::vector<double> v(n);
  std::vector<bool> valid(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = dist(rng);
    if (null_fraction > 0) valid[i] = !is_null(rng);
  }
  return make_column<double>(type_id::float64, v, null_fraction > 0 ? valid : std::vector<bool>{});
}

/// Random strings drawn from `distinct` words like "k17", some null.
inline column random_strings(std::size_t n, int distinct, double null_fraction,
                             std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(0, distinct - 1);
  std::bernoulli_distribution is_null(null_fraction);
  std::vector<std::optional<std::string>> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    int k = dist(rng);
    if (null_fraction > 0 && is_null(rng)) continue;
    std::string word = "k";
    word += std::to_string(k);
    word.append(static_cast<std::size_t>(k % 5), 'x');
    v[i] = std::move(word);
  }
  return make_string_column(v);
}

inline table make_table(std::vector<std::pair<std::string, column>> cols) {
  std::vector<column> c;
  std::vector<std::string> names;
  for (auto& [name, col] : cols) {
    names.push_back(name);
    c.push_back(std::move(col));
  }
  return table(std::move(c), std::move(names));
}

// A table of every type (int32, int64, float32, float64, bool, timestamp, string named i32, i64,
// f32, f64, flag, at, name); every `null_every`-th row of each column is null (0: no null masks).
inline table all_types(std::size_t n, int null_every, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::int32_t> i32(n);
  std::vector<std::int64_t> i64(n), ts(n);
  std::vector<float> f32(n);
  std::vector<double> f64(n);
  std::vector<std::uint8_t> b(n);
  std::vector<std::optional<std::string>> s(n);
  std::vector<bool> valid(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    i32[i] = static_cast<std::int32_t>(rng());
    i64[i] = static_cast<std::int64_t>(rng());
    ts[i] = static_cast<std::int64_t>(rng() % 4'000'000'000'000'000'000ULL) - 1'000'000'000;
    f32[i] = static_cast<float>(static_cast<std::int64_t>(rng() % 2'000'001) - 1'000'000) / 7.0f;
    f64[i] = static_cast<double>(static_cast<std::int64_t>(rng())) / 3.0;
    b[i] = static_cast<std::uint8_t>(rng() & 1);
    s[i] = std::string(rng() % 13, static_cast<char>('a' + rng() % 26));
    if (null_every > 0 && (i + seed) % static_cast<std::size_t>(null_every) == 0) {
      valid[i] = false;
      s[i].reset();
    }
  }
  auto v = null_every > 0 ? valid : std::vector<bool>{};
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("i32", make_column<std::int32_t>(type_id::int32, i32, v));
  cols.emplace_back("i64", make_column<std::int64_t>(type_id::int64, i64, v));
  cols.emplace_back("f32", make_column<float>(type_id::float32, f32, v));
  cols.emplace_back("f64", make_column<double>(type_id::float64, f64, v));
  cols.emplace_back("flag", make_column<std::uint8_t>(type_id::bool8, b, v));
  cols.emplace_back("at", make_column<std::int64_t>(type_id::timestamp_ns, ts, v));
  if (null_every > 0) {
    cols.emplace_back("name", make_string_column(s));
  } else {
    std::vector<std::string> plain;
    for (auto& x : s) plain.push_back(*x);
    cols.emplace_back("name", make_string_column(plain));
  }
  return make_table(std::move(cols));
}

}  // namespace ember::test
