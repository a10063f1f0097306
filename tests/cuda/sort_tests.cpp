#include <ember/cuda/sort.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>

#include "common/backends.hpp"
#include "common/tables.hpp"
#include "common/errors.hpp"

namespace ember::test {
namespace {

template <class Backend>
class sort_test : public backend_test<Backend> {
 protected:
  /// sorted_order of a host table, computed by this backend, as host values.
  std::vector<std::int64_t> order_of(const table_view& host, const std::vector<sort_key>& keys) {
    auto dev = this->up(host);
    std::vector<column> cols;
    cols.push_back(sorted_order(dev.view(), keys, this->ctx()));
    table result(std::move(cols), {"order"});
    auto back = this->down(result.view());
    return copy_values<std::int64_t>(back.view().column(0));
  }
  table sorted(const table_view& host, const std::vector<sort_key>& keys) {
    auto dev = this->up(host);
    return this->down(sort(dev.view(), keys, this->ctx()).view());
  }
  table top(const table_view& host, const std::vector<sort_key>& keys, size_type k) {
    auto dev = this->up(host);
    return this->down(top_k(dev.view(), keys, k, this->ctx()).view());
  }
};
TYPED_TEST_SUITE_P(sort_test);

// ---- Reference: std::stable_sort of row numbers over scalars ---------------------------------

/// Three-way comparison of two valid scalars as ember orders them: NaN above every number and
/// equal to itself, -0.0 equal to 0.0, strings bytewise.
int compare_scalars(const scalar& a, const scalar& b) {
  switch (a.type()) {
    case type_id::float32:
    case type_id::float64: {
      double x = a.as_float(), y = b.as_float();
      bool xn = std::isnan(x), yn = std::isnan(y);
      if (xn || yn) return xn == yn ? 0 : (xn ? 1 : -1);
      return x < y ? -1 : (y < x ? 1 : 0);
    }
    case type_id::string: {
      int c = a.as_string().compare(b.as_string());
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    default:
      return a.as_int() < b.as_int() ? -1 : (b.as_int() < a.as_int() ? 1 : 0);
  }
}

std::vector<std::int64_t> reference_order(const table_view& host,
                                          const std::vector<sort_key>& keys) {
  std::vector<std::vector<scalar>> key_values;
  for (const auto& k : keys) {
    const auto& c = host.column(k.column);
    std::vector<scalar> v;
    for (size_type r = 0; r < c.size(); ++r) v.push_back(get_scalar(c, r));
    key_values.push_back(std::move(v));
  }
  std::vector<std::int64_t> order(static_cast<std::size_t>(host.num_rows()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t i, std::int64_t j) {
    for (std::size_t k = 0; k < keys.size(); ++k) {
      const auto& a = key_values[k][i];
      const auto& b = key_values[k][j];
      if (a.valid() != b.valid()) return keys[k].nulls_first ? !a.valid() : a.valid();
      if (!a.valid()) continue;
      int c = compare_scalars(a, b);
      if (c != 0) return keys[k].descending ? c > 0 : c < 0;
    }
    return false;
  });
  return order;
}

/// Scalars equal as stored values (NaN equal to NaN, -0.0 distinct from 0.0).
bool same_value(const scalar& a, const scalar& b) {
  if (a.valid() != b.valid() || a.type() != b.type()) return false;
  if (!a.valid()) return true;
  if (a.type() == type_id::float32 || a.type() == type_id::float64) {
    double x = a.as_float(), y = b.as_float();
    if (std::isnan(x) || std::isnan(y)) return std::isnan(x) && std::isnan(y);
    return x == y && std::signbit(x) == std::signbit(y);
  }
  return a == b;
}

/// Expects `result` to hold the rows of `input` in the order `order`.
void expect_rows_in_order(const table_view& result, const table_view& input,
                          const std::vector<std::int64_t>& order) {
  ASSERT_EQ(result.num_rows(), static_cast<size_type>(order.size()));
  ASSERT_EQ(result.names(), input.names());
  for (size_type c = 0; c < input.num_columns(); ++c) {
    for (std::size_t i = 0; i < order.size(); ++i) {
      auto got = get_scalar(result.column(c), static_cast<size_type>(i));
      auto want = get_scalar(input.column(c), order[i]);
      ASSERT_TRUE(same_value(got, want))
          << "column " << input.names()[c] << " row " << i << ": got " << got.to_text() << ", want "
          << want.to_text() << " (input row " << order[i] << ")";
    }
  }
}

// ---- Test data -------------------------------------------------------------------------------

column row_ids(std::size_t n) {
  std::vector<std::int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return make_column<std::int64_t>(type_id::int64, v);
}

std::vector<bool> random_validity(std::size_t n, double null_fraction, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution is_null(null_fraction);
  std::vector<bool> valid(n);
  for (std::size_t i = 0; i < n; ++i) valid[i] = !is_null(rng);
  return valid;
}

/// Doubles drawn from a small set with every special value, so ties and NaN/-0.0 meet often.
column special_doubles(std::size_t n, double null_fraction, std::uint64_t seed) {
  const double pool[] = {std::numeric_limits<double>::quiet_NaN(),
                         -std::numeric_limits<double>::quiet_NaN(),
                         std::numeric_limits<double>::infinity(),
                         -std::numeric_limits<double>::infinity(),
                         0.0,
                         -0.0,
                         1.5,
                         -1.5,
                         std::numeric_limits<double>::denorm_min(),
                         -std::numeric_limits<double>::denorm_min(),
                         std::numeric_limits<double>::max(),
                         std::numeric_limits<double>::lowest(),
                         1e-300,
                         42.0};
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick(0, std::size(pool) - 1);
  std::vector<double> v(n);
  for (auto& x : v) x = pool[pick(rng)];
  return make_column<double>(
      type_id::float64, v,
      null_fraction > 0 ? random_validity(n, null_fraction, seed + 7) : std::vector<bool>{});
}

column special_floats(std::size_t n, double null_fraction, std::uint64_t seed) {
  const float pool[] = {std::numeric_limits<float>::quiet_NaN(),
                        -std::numeric_limits<float>::quiet_NaN(),
                        std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity(),
                        0.0f,
                        -0.0f,
                        2.25f,
                        -2.25f,
                        std::numeric_limits<float>::denorm_min(),
                        std::numeric_limits<float>::max(),
                        std::numeric_limits<float>::lowest(),
                        7.0f};
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick(0, std::size(pool) - 1);
  std::vector<float> v(n);
  for (auto& x : v) x = pool[pick(rng)];
  return make_column<float>(
      type_id::float32, v,
      null_fraction > 0 ? random_validity(n, null_fraction, seed + 7) : std::vector<bool>{});
}

column random_bools(std::size_t n, double null_fraction, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& x : v) x = rng() % 2;
  return make_column<std::uint8_t>(
      type_id::bool8, v,
      null_fraction > 0 ? random_validity(n, null_fraction, seed + 7) : std::vector<bool>{});
}

column random_timestamps(std::size_t n, double null_fraction, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int64_t> dist(-2'000'000'000'000'000'000,
                                                   2'000'000'000'000'000'000);
  std::vector<std::int64_t> v(n);
  for (auto& x : v) x = dist(rng) / 1000 * 1000;
  return make_column<std::int64_t>(
      type_id::timestamp_ns, v,
      null_fraction > 0 ? random_validity(n, null_fraction, seed + 7) : std::vector<bool>{});
}

/// Every key type, several null patterns, plus a row-number column to check stability.
table mixed_table(std::size_t n, std::uint64_t seed) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("id", row_ids(n));
  cols.emplace_back("i64", random_int64(n, std::numeric_limits<std::int64_t>::min(),
                                        std::numeric_limits<std::int64_t>::max(), 0.1, seed));
  cols.emplace_back("small", random_int32(n, -3, 3, 0.2, seed + 1));
  cols.emplace_back("i32", random_int32(n, std::numeric_limits<std::int32_t>::min(),
                                        std::numeric_limits<std::int32_t>::max(), 0.0, seed + 2));
  cols.emplace_back("f64", special_doubles(n, 0.1, seed + 3));
  cols.emplace_back("f32", special_floats(n, 0.0, seed + 4));
  cols.emplace_back("b", random_bools(n, 0.15, seed + 5));
  cols.emplace_back("ts", random_timestamps(n, 0.05, seed + 6));
  cols.emplace_back("s", random_strings(n, 20, 0.1, seed + 7));
  return make_table(std::move(cols));
}

const std::vector<std::size_t> boundary_sizes = {0,    1,    2,    31,    32,    33,   1023,
                                                 1024, 1025, 4097, 65535, 65536, 65537};

// ---- sorted_order ----------------------------------------------------------------------------

TYPED_TEST_P(sort_test, single_key_of_every_type_matches_reference) {
  for (std::size_t n : boundary_sizes) {
    auto input = mixed_table(n, 100 + n);
    for (const char* name : {"i64", "small", "i32", "f64", "f32", "b", "ts", "s"}) {
      for (bool descending : {false, true}) {
        for (bool nulls_first : {false, true}) {
          std::vector<sort_key> keys{{name, descending, nulls_first}};
          EXPECT_EQ(this->order_of(input.view(), keys), reference_order(input.view(), keys))
              << "n=" << n << " key=" << name << " descending=" << descending
              << " nulls_first=" << nulls_first;
        }
      }
    }
  }
}

TYPED_TEST_P(sort_test, several_keys_mixed_directions_match_reference) {
  const std::vector<std::vector<sort_key>> key_sets = {
      {{"small", false, false}, {"b", true, true}, {"f64", false, true}},
      {{"b", true, false}, {"small", false, true}, {"i32", true, false}},
      {{"small", true, true}, {"s", false, false}, {"f32", true, false}},
      {{"s", true, true}, {"small", false, false}},
      {{"f32", false, false}, {"ts", true, true}},
      // One column twice, in both directions: the second key never decides.
      {{"small", false, false}, {"small", true, true}, {"id", true, false}},
  };
  for (std::size_t n : {0, 1, 33, 1025, 70000}) {
    auto input = mixed_table(n, 7 + n);
    for (const auto& keys : key_sets) {
      auto want = reference_order(input.view(), keys);
      EXPECT_EQ(this->order_of(input.view(), keys), want)
          << "n=" << n << " first key " << keys[0].column;
    }
  }
}

TYPED_TEST_P(sort_test, all_equal_keys_keep_input_order) {
  for (std::size_t n : {2, 100, 40000}) {
    std::vector<std::pair<std::string, column>> cols;
    cols.emplace_back("id", row_ids(n));
    cols.emplace_back("k", random_int64(n, 5, 5, 0.0, 1));
    cols.emplace_back("nulls", random_int64(n, 0, 0, 1.0, 2));  // every row null
    cols.emplace_back("s", random_strings(n, 1, 0.0, 3));
    auto input = make_table(std::move(cols));
    std::vector<std::int64_t> identity(n);
    std::iota(identity.begin(), identity.end(), 0);
    for (const char* name : {"k", "nulls", "s"}) {
      for (bool descending : {false, true}) {
        std::vector<sort_key> keys{{name, descending, false}};
        EXPECT_EQ(this->order_of(input.view(), keys), identity) << name << " n=" << n;
        auto out = this->sorted(input.view(), keys);
        EXPECT_EQ(copy_values<std::int64_t>(out.view().column("id")), identity) << name;
      }
    }
  }
}

TYPED_TEST_P(sort_test, one_hot_key_and_skewed_values) {
  // 60% of rows share one value, 20% sit in a narrow range and the rest spread over all of
  // int64: one huge bucket, one dense bucket, many sparse ones.
  std::size_t n = 400000;
  std::mt19937_64 rng(11);
  std::vector<std::int64_t> v(n);
  for (auto& x : v) {
    auto p = rng() % 10;
    x = p < 6   ? 123456
        : p < 8 ? static_cast<std::int64_t>(rng() % (1 << 20))
                : static_cast<std::int64_t>(rng());
  }
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("id", row_ids(n));
  cols.emplace_back("k", make_column<std::int64_t>(type_id::int64, v));
  auto input = make_table(std::move(cols));
  for (bool descending : {false, true}) {
    std::vector<sort_key> keys{{"k", descending, false}};
    EXPECT_EQ(this->order_of(input.view(), keys), reference_order(input.view(), keys));
  }
}

TYPED_TEST_P(sort_test, sliced_views_match_reference) {
  auto full = mixed_table(3000, 77);
  for (auto [b, e] : {std::pair<size_type, size_type>{3, 2990}, {37, 38}, {64, 64}, {1, 1025}}) {
    auto input = full.view().slice(b, e);
    for (const auto& keys :
         std::vector<std::vector<sort_key>>{{{"i64", false, false}},
                                            {{"b", false, true}, {"f64", true, false}},
                                            {{"s", false, true}, {"small", true, false}}}) {
      auto want = reference_order(input, keys);
      EXPECT_EQ(this->order_of(input, keys), want) << "slice " << b << ".." << e;
      auto out = this->sorted(input, keys);
      expect_rows_in_order(out.view(), input, want);
    }
  }
}

TYPED_TEST_P(sort_test, extreme_integers_and_float_specials) {
  std::vector<std::int64_t> ints = {0,
                                    -1,
                                    1,
                                    std::numeric_limits<std::int64_t>::min(),
                                    std::numeric_limits<std::int64_t>::max(),
                                    -2,
                                    2,
                                    std::numeric_limits<std::int64_t>::min() + 1};
  std::vector<std::int32_t> ints32 = {
      0,  -1, 1, std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int32_t>::max(),
      -2, 2,  7};
  double nan = std::numeric_limits<double>::quiet_NaN();
  double inf = std::numeric_limits<double>::infinity();
  std::vector<double> doubles = {nan, 0.0, -0.0, inf, -inf, -nan, 1.0, -0.0};
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("id", row_ids(8));
  cols.emplace_back("i", make_column<std::int64_t>(type_id::int64, ints));
  cols.emplace_back("i32", make_column<std::int32_t>(type_id::int32, ints32));
  cols.emplace_back("d", make_column<double>(type_id::float64, doubles));
  auto input = make_table(std::move(cols));
  EXPECT_EQ(this->order_of(input.view(), {{"i", false, false}}),
            (std::vector<std::int64_t>{3, 7, 5, 1, 0, 2, 6, 4}));
  EXPECT_EQ(this->order_of(input.view(), {{"i32", true, false}}),
            (std::vector<std::int64_t>{4, 7, 6, 2, 0, 1, 5, 3}));
  // -inf, then the three zeros in input order (-0.0 equals 0.0), 1, inf, the two NaNs.
  EXPECT_EQ(this->order_of(input.view(), {{"d", false, false}}),
            (std::vector<std::int64_t>{4, 1, 2, 7, 6, 3, 0, 5}));
  EXPECT_EQ(this->order_of(input.view(), {{"d", true, false}}),
            (std::vector<std::int64_t>{0, 5, 3, 6, 1, 2, 7, 4}));
}

TYPED_TEST_P(sort_test, sort_returns_whole_rows_in_order) {
  for (std::size_t n : {0, 1, 32, 1000, 50000}) {
    auto input = mixed_table(n, 3 * n + 1);
    std::vector<sort_key> keys{{"small", true, false}, {"f64", false, true}};
    auto out = this->sorted(input.view(), keys);
    expect_rows_in_order(out.view(), input.view(), reference_order(input.view(), keys));
  }
}

TYPED_TEST_P(sort_test, over_a_million_rows) {
  std::size_t n = 1'200'000;
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("id", row_ids(n));
  cols.emplace_back("k", random_int64(n, std::numeric_limits<std::int64_t>::min(),
                                      std::numeric_limits<std::int64_t>::max(), 0.05, 5));
  cols.emplace_back("g", random_int32(n, 0, 999, 0.0, 6));
  cols.emplace_back("f", random_float64(n, -1e6, 1e6, 0.0, 7));
  auto input = make_table(std::move(cols));
  for (const auto& keys : std::vector<std::vector<sort_key>>{
           {{"k", false, false}}, {{"f", true, false}}, {{"g", false, false}, {"k", true, true}}}) {
    auto want = reference_order(input.view(), keys);
    EXPECT_EQ(this->order_of(input.view(), keys), want) << keys[0].column;
  }
  std::vector<sort_key> keys{{"g", true, false}};
  auto out = this->sorted(input.view(), keys);
  auto want = reference_order(input.view(), keys);
  EXPECT_EQ(copy_values<std::int64_t>(out.view().column("id")), want);
}

// ---- top_k -----------------------------------------------------------------------------------

TYPED_TEST_P(sort_test, top_k_is_a_prefix_of_sort) {
  for (std::size_t n : {0, 1, 7, 100, 1025, 60000}) {
    auto input = mixed_table(n, 900 + n);
    for (const auto& keys : std::vector<std::vector<sort_key>>{
             {{"i64", true, false}},
             {{"small", false, true}},  // many ties: the earliest rows win
             {{"f64", true, true}},
             {{"b", false, false}},
             {{"s", true, false}, {"i32", false, false}},
             {{"small", true, false}, {"ts", false, true}}}) {
      auto order = reference_order(input.view(), keys);
      // n / 32 is where the CPU fast path switches from selection to a full sort.
      for (std::size_t k :
           {std::size_t{0}, std::size_t{1}, std::size_t{5}, n / 32, n / 32 + 1, n / 2, n, n + 3}) {
        auto out = this->top(input.view(), keys, static_cast<size_type>(k));
        std::vector<std::int64_t> want(order.begin(), order.begin() + std::min(k, n));
        EXPECT_EQ(copy_values<std::int64_t>(out.view().column("id")), want)
            << "n=" << n << " k=" << k << " key " << keys[0].column;
        if (k == 5 && n > 5) expect_rows_in_order(out.view(), input.view(), want);
      }
    }
  }
}

TYPED_TEST_P(sort_test, top_k_of_presorted_input) {
  // Input in the opposite order: every row beats the ones before it (a selection's worst case).
  std::size_t n = 100000;
  std::vector<std::int64_t> down(n), ties(n);
  for (std::size_t i = 0; i < n; ++i) {
    down[i] = static_cast<std::int64_t>(n - i);
    ties[i] = static_cast<std::int64_t>((n - i) / 3);
  }
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("id", row_ids(n));
  cols.emplace_back("down", make_column<std::int64_t>(type_id::int64, down));
  cols.emplace_back("ties", make_column<std::int64_t>(type_id::int64, ties));
  auto input = make_table(std::move(cols));
  for (const char* key : {"down", "ties"}) {
    for (bool descending : {false, true}) {
      std::vector<sort_key> keys{{key, descending, false}};
      auto order = reference_order(input.view(), keys);
      for (std::size_t k : {1, 10, 3000}) {
        auto out = this->top(input.view(), keys, static_cast<size_type>(k));
        EXPECT_EQ(copy_values<std::int64_t>(out.view().column("id")),
                  std::vector<std::int64_t>(order.begin(), order.begin() + k))
            << key << " descending=" << descending << " k=" << k;
      }
    }
  }
}

TYPED_TEST_P(sort_test, top_k_keeps_all_columns_for_empty_results) {
  auto input = mixed_table(10, 1);
  auto out = this->top(input.view(), {{"i64", false, false}}, 0);
  EXPECT_EQ(out.num_rows(), 0);
  EXPECT_EQ(out.view().names(), input.view().names());
  for (size_type c = 0; c < out.num_columns(); ++c)
    EXPECT_EQ(out.view().column(c).type(), input.view().column(c).type());
}

// ---- Errors ----------------------------------------------------------------------------------

TYPED_TEST_P(sort_test, errors_name_the_problem) {
  auto input = this->up(mixed_table(5, 1).view());
  auto& ctx = this->ctx();
  expect_invalid_input([&] { (void)sorted_order(input.view(), {}, ctx); },
                       "sorted_order: no sort keys given");
  expect_invalid_input([&] { (void)sort(input.view(), {}, ctx); }, "sort: no sort keys given");
  expect_invalid_input(
      [&] {
        (void)sort(input.view(), {{"i64"}, {"nope"}}, ctx);
      },
      "sort: unknown column 'nope' (the table has: id, i64, small");
  expect_invalid_input([&] { (void)sorted_order(input.view(), {{"missing"}}, ctx); },
                       "sorted_order: unknown column 'missing'");
  expect_invalid_input([&] { (void)top_k(input.view(), {{"i64"}}, -1, ctx); },
                       "top_k: k must not be negative, got -1");
  expect_invalid_input([&] { (void)top_k(input.view(), {{"x"}}, 3, ctx); },
                       "top_k: unknown column 'x'");
}

REGISTER_TYPED_TEST_SUITE_P(sort_test, single_key_of_every_type_matches_reference,
                            several_keys_mixed_directions_match_reference,
                            all_equal_keys_keep_input_order, one_hot_key_and_skewed_values,
                            sliced_views_match_reference, extreme_integers_and_float_specials,
                            sort_returns_whole_rows_in_order, over_a_million_rows,
                            top_k_is_a_prefix_of_sort, top_k_of_presorted_input,
                            top_k_keeps_all_columns_for_empty_results, errors_name_the_problem);
INSTANTIATE_TYPED_TEST_SUITE_P(backends, sort_test, all_backends);

}  // namespace
}  // namespace ember::test
