#include <gtest/gtest.h>

#include <cmath>
#include <ember/cuda/groupby.hpp>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include "common/backends.hpp"
#include "common/tables.hpp"
#include "common/errors.hpp"

namespace ember::test {
namespace {

template <class Backend>
class groupby_test : public backend_test<Backend> {
 public:
  /// group_by on this backend over a host table (uploaded, then sliced to [begin, end) when
  /// given, so that the mask offset need not be a multiple of 32), result back on the host.
  table run(const table& input, const std::vector<std::string>& keys,
            const std::vector<aggregation>& aggs, size_type begin = 0, size_type end = -1) {
    auto dev = this->up(input.view());
    auto view = dev.view();
    if (end >= 0) view = view.slice(begin, end);
    auto out = group_by(view, keys, aggs, this->ctx());
    return this->down(out.view());
  }
};
TYPED_TEST_SUITE_P(groupby_test);

using agg = aggregation_kind;

// ---- reference ----------------------------------------------------------------------------------

struct row_order {
  bool operator()(const row& a, const row& b) const { return row_less(a, b); }
};
struct scalar_order {
  bool operator()(const scalar& a, const scalar& b) const { return scalar_less(a, b); }
};

scalar reference_aggregate(agg kind, type_id type, const std::vector<scalar>& values) {
  std::vector<scalar> valid;
  for (const auto& v : values)
    if (v.valid()) valid.push_back(v);
  bool floating = type == type_id::float32 || type == type_id::float64;
  switch (kind) {
    case agg::count_all:
      return scalar::int64(static_cast<std::int64_t>(values.size()));
    case agg::count:
      return scalar::int64(static_cast<std::int64_t>(valid.size()));
    case agg::sum:
    case agg::mean: {
      bool mean = kind == agg::mean;
      if (valid.empty()) return scalar::null(mean || floating ? type_id::float64 : type_id::int64);
      double fsum = 0;
      std::int64_t isum = 0;
      for (const auto& v : valid) {
        if (floating)
          fsum += v.as_float();
        else
          isum += v.as_int();
      }
      double total = floating ? fsum : static_cast<double>(isum);
      if (mean) return scalar::float64(total / static_cast<double>(valid.size()));
      return floating ? scalar::float64(fsum) : scalar::int64(isum);
    }
    case agg::min:
    case agg::max: {
      if (valid.empty()) return scalar::null(type);
      scalar best = valid.front();
      for (const auto& v : valid)
        if (kind == agg::min ? scalar_less(v, best) : scalar_less(best, v)) best = v;
      return best;
    }
    case agg::count_distinct: {
      std::set<scalar, scalar_order> seen(valid.begin(), valid.end());
      return scalar::int64(static_cast<std::int64_t>(seen.size()));
    }
  }
  return {};
}

/// group_by by std::map over rows of scalars: obviously correct, slow.
std::vector<row> reference_group_by(const table_view& t, const std::vector<std::string>& keys,
                                    const std::vector<aggregation>& aggs) {
  auto rows = rows_of(t);
  std::vector<size_type> key_cols;
  for (const auto& k : keys) key_cols.push_back(t.index_of(k));
  std::map<row, std::vector<std::size_t>, row_order> groups;
  if (keys.empty()) groups[row{}];
  for (std::size_t r = 0; r < rows.size(); ++r) {
    row key;
    for (auto c : key_cols) key.push_back(rows[r][c]);
    groups[key].push_back(r);
  }
  std::vector<row> out;
  for (const auto& [key, members] : groups) {
    row result = key;
    for (const auto& a : aggs) {
      std::vector<scalar> values;
      type_id type = type_id::int64;
      if (a.kind == agg::count_all) {
        values.assign(members.size(), scalar::int64(0));
      } else {
        auto c = t.index_of(a.column);
        type = t.column(c).type();
        for (auto r : members) values.push_back(rows[r][c]);
      }
      result.push_back(reference_aggregate(a.kind, type, values));
    }
    out.push_back(std::move(result));
  }
  return out;
}

/// Rows equal up to float rounding (float64 results of sums and means may be added in another
/// order), compared after sorting: the row order of a group_by is unspecified.
void expect_same_rows(const table_view& actual_table, std::vector<row> expected) {
  auto actual = sorted_rows(actual_table);
  std::sort(expected.begin(), expected.end(), row_less);
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t r = 0; r < actual.size(); ++r) {
    ASSERT_EQ(actual[r].size(), expected[r].size());
    for (std::size_t c = 0; c < actual[r].size(); ++c) {
      const auto& a = actual[r][c];
      const auto& e = expected[r][c];
      auto where = "row " + std::to_string(r) + ", column " + actual_table.names()[c] + ": got '" +
                   a.to_text() + "' (" + std::string(to_string(a.type())) + "), expected '" +
                   e.to_text() + "' (" + std::string(to_string(e.type())) + ")";
      if (a.type() == type_id::float64 && e.type() == type_id::float64 && a.valid() && e.valid()) {
        double tolerance = 1e-9 * std::max({1.0, std::abs(a.as_float()), std::abs(e.as_float())});
        EXPECT_NEAR(a.as_float(), e.as_float(), tolerance) << where;
      } else {
        EXPECT_EQ(a, e) << where;
      }
      if (::testing::Test::HasFailure()) return;
    }
  }
}

std::vector<std::string> output_names(const std::vector<std::string>& keys,
                                      const std::vector<aggregation>& aggs) {
  auto names = keys;
  for (const auto& a : aggs) names.push_back(a.output_name);
  return names;
}

// ---- inputs -------------------------------------------------------------------------------------

column random_bools(std::size_t n, double null_fraction, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution coin(0.5), is_null(null_fraction);
  std::vector<std::uint8_t> v(n);
  std::vector<bool> valid(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = coin(rng) ? 1 : 0;
    if (null_fraction > 0) valid[i] = !is_null(rng);
  }
  return make_column<std::uint8_t>(type_id::bool8, v,
                                   null_fraction > 0 ? valid : std::vector<bool>{});
}

column random_float32(std::size_t n, double null_fraction, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-100, 100);
  std::bernoulli_distribution is_null(null_fraction);
  std::vector<float> v(n);
  std::vector<bool> valid(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = dist(rng);
    if (null_fraction > 0) valid[i] = !is_null(rng);
  }
  return make_column<float>(type_id::float32, v, null_fraction > 0 ? valid : std::vector<bool>{});
}

column random_timestamps(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int64_t> dist(1'600'000'000'000'000'000LL,
                                                   1'700'000'000'000'000'000LL);
  std::vector<std::int64_t> v(n);
  for (auto& x : v) x = dist(rng);
  return make_column<std::int64_t>(type_id::timestamp_ns, v);
}

/// Keys of every kind (with nulls) and values of every type, `key_range` + 1 distinct int keys.
table mixed_table(std::size_t n, std::uint64_t seed, std::int64_t key_range = 40) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("k", random_int64(n, 0, key_range, 0.1, seed));
  cols.emplace_back("k32", random_int32(n, -2, 2, 0.0, seed + 1));
  cols.emplace_back("ks", random_strings(n, 6, 0.1, seed + 2));
  cols.emplace_back("kb", random_bools(n, 0.2, seed + 3));
  cols.emplace_back("i32", random_int32(n, -100, 100, 0.2, seed + 4));
  cols.emplace_back("i64", random_int64(n, -1'000'000'000'000, 1'000'000'000'000, 0.0, seed + 5));
  cols.emplace_back("f64", random_float64(n, -1, 1, 0.3, seed + 6));
  cols.emplace_back("f32", random_float32(n, 0.1, seed + 7));
  cols.emplace_back("b", random_bools(n, 0.0, seed + 8));
  cols.emplace_back("ts", random_timestamps(n, seed + 9));
  cols.emplace_back("sv", random_strings(n, 30, 0.3, seed + 10));
  return make_table(std::move(cols));
}

/// Every aggregation kind except count_distinct (which the CPU fast path hands to the portable
/// body), over every value type it takes.
std::vector<aggregation> hashable_aggregations() {
  return {
      {agg::count_all, "", "rows"},   {agg::count, "i32", "count_i32"},
      {agg::count, "sv", "count_sv"}, {agg::count, "i64", "count_i64"},
      {agg::sum, "i32", "sum_i32"},   {agg::sum, "i64", "sum_i64"},
      {agg::sum, "f64", "sum_f64"},   {agg::sum, "f32", "sum_f32"},
      {agg::sum, "b", "sum_b"},       {agg::min, "i32", "min_i32"},
      {agg::max, "i32", "max_i32"},   {agg::min, "i64", "min_i64"},
      {agg::max, "f64", "max_f64"},   {agg::min, "f64", "min_f64"},
      {agg::min, "f32", "min_f32"},   {agg::max, "b", "max_b"},
      {agg::min, "ts", "min_ts"},     {agg::max, "ts", "max_ts"},
      {agg::min, "sv", "min_sv"},     {agg::max, "sv", "max_sv"},
      {agg::mean, "i32", "mean_i32"}, {agg::mean, "f64", "mean_f64"},
      {agg::mean, "i64", "mean_i64"}, {agg::mean, "b", "mean_b"},
  };
}

std::vector<aggregation> all_aggregations() {
  auto aggs = hashable_aggregations();
  aggs.push_back({agg::count_distinct, "sv", "distinct_sv"});
  aggs.push_back({agg::count_distinct, "i32", "distinct_i32"});
  aggs.push_back({agg::count_distinct, "f64", "distinct_f64"});
  aggs.push_back({agg::count_distinct, "kb", "distinct_kb"});
  return aggs;
}

// ---- tests
// ----------------------------------------------------------------------------------------

TYPED_TEST_P(groupby_test, small_example_by_hand) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("k", make_column<std::int64_t>(type_id::int64, {1, 2, 1, 3, 2, 1},
                                                   {true, true, true, false, true, false}));
  cols.emplace_back("v", make_column<std::int64_t>(type_id::int64, {10, 20, 30, 40, 50, 60},
                                                   {true, false, true, true, false, true}));
  cols.emplace_back("s", make_string_column(std::vector<std::optional<std::string>>{
                             "pear", "fig", std::nullopt, "kiwi", "apple", "plum"}));
  auto input = make_table(std::move(cols));
  std::vector<aggregation> aggs{{agg::sum, "v", "total"},
                                {agg::count, "v", "n"},
                                {agg::count_all, "", "rows"},
                                {agg::min, "s", "first"},
                                {agg::mean, "v", "avg"}};
  auto out = this->run(input, {"k"}, aggs);
  EXPECT_EQ(out.names(), (std::vector<std::string>{"k", "total", "n", "rows", "first", "avg"}));
  auto null = scalar::null(type_id::int64);
  std::vector<row> expected{
      // The null keys (rows 3 and 5) form one group.
      {null, scalar::int64(100), scalar::int64(2), scalar::int64(2), scalar::string("kiwi"),
       scalar::float64(50)},
      {scalar::int64(1), scalar::int64(40), scalar::int64(2), scalar::int64(2),
       scalar::string("pear"), scalar::float64(20)},
      // Key 2 has only null values: null sum and mean, count 0.
      {scalar::int64(2), null, scalar::int64(0), scalar::int64(2), scalar::string("apple"),
       scalar::null(type_id::float64)},
  };
  expect_same_rows(out.view(), expected);
}

TYPED_TEST_P(groupby_test, every_aggregation_matches_reference_around_block_sizes) {
  for (std::size_t n : {1, 2, 31, 32, 33, 1023, 1024, 1025, 4000}) {
    SCOPED_TRACE("rows " + std::to_string(n));
    auto input = mixed_table(n, 100 + n);
    for (const auto& aggs : {hashable_aggregations(), all_aggregations()}) {
      auto out = this->run(input, {"k"}, aggs);
      EXPECT_EQ(out.names(), output_names({"k"}, aggs));
      expect_same_rows(out.view(), reference_group_by(input.view(), {"k"}, aggs));
      if (this->HasFailure()) return;
    }
  }
}

TYPED_TEST_P(groupby_test, multiple_keys_of_mixed_types) {
  auto input = mixed_table(3000, 7);
  // Packed integral keys (with and without a null word), and keys compared row by row.
  std::vector<std::vector<std::string>> key_sets{
      {"k32", "b"},  {"k", "k32"}, {"kb", "k32", "b"},
      {"ts", "k32"}, {"ks", "kb"}, {"k32", "ks", "kb", "b"},
      {"f32"},       {"sv"}};
  for (const auto& keys : key_sets) {
    std::string label;
    for (const auto& k : keys) label += k + " ";
    SCOPED_TRACE("keys " + label);
    for (const auto& aggs : {hashable_aggregations(), all_aggregations()}) {
      auto out = this->run(input, keys, aggs);
      EXPECT_EQ(out.names(), output_names(keys, aggs));
      expect_same_rows(out.view(), reference_group_by(input.view(), keys, aggs));
      if (this->HasFailure()) return;
    }
  }
}

TYPED_TEST_P(groupby_test, all_null_keys_form_one_group_and_all_null_values_give_nulls) {
  std::size_t n = 500;
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("k", make_column<std::int64_t>(type_id::int64, std::vector<std::int64_t>(n, 7),
                                                   std::vector<bool>(n, false)));
  cols.emplace_back("s", make_string_column(std::vector<std::optional<std::string>>(n)));
  cols.emplace_back("v", random_int64(n, -5, 5, 1.0, 3));
  cols.emplace_back("f", random_float64(n, -5, 5, 1.0, 4));
  auto input = make_table(std::move(cols));
  std::vector<aggregation> aggs{{agg::sum, "v", "sum_v"}, {agg::mean, "f", "mean_f"},
                                {agg::min, "f", "min_f"}, {agg::max, "v", "max_v"},
                                {agg::count, "v", "n_v"}, {agg::count_all, "", "rows"},
                                {agg::min, "s", "min_s"}, {agg::count_distinct, "v", "d_v"}};
  for (const auto& keys : std::vector<std::vector<std::string>>{{"k"}, {"s"}, {"k", "s"}}) {
    auto out = this->run(input, keys, aggs);
    ASSERT_EQ(out.num_rows(), 1);
    expect_same_rows(out.view(), reference_group_by(input.view(), keys, aggs));
  }
}

TYPED_TEST_P(groupby_test, all_keys_equal_and_one_hot_key) {
  std::size_t n = 20000;
  auto input = mixed_table(n, 11, 0);  // one key value, plus nulls
  auto aggs = all_aggregations();
  expect_same_rows(this->run(input, {"k"}, aggs).view(),
                   reference_group_by(input.view(), {"k"}, aggs));

  // 90% of the rows share one key, the rest spread over 1000 keys.
  std::mt19937_64 rng(5);
  std::vector<std::int64_t> keys(n);
  for (auto& k : keys) k = rng() % 10 == 0 ? static_cast<std::int64_t>(rng() % 1000) : 424242;
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("k", make_column<std::int64_t>(type_id::int64, keys));
  cols.emplace_back("v", random_int64(n, -100, 100, 0.05, 6));
  cols.emplace_back("s", random_strings(n, 100, 0.05, 7));
  auto hot = make_table(std::move(cols));
  std::vector<aggregation> hot_aggs{{agg::sum, "v", "sum"},
                                    {agg::max, "s", "max_s"},
                                    {agg::count_all, "", "rows"},
                                    {agg::min, "v", "min"},
                                    {agg::count_distinct, "s", "ds"}};
  expect_same_rows(this->run(hot, {"k"}, hot_aggs).view(),
                   reference_group_by(hot.view(), {"k"}, hot_aggs));
  expect_same_rows(this->run(hot, {"s"}, hot_aggs).view(),
                   reference_group_by(hot.view(), {"s"}, hot_aggs));
}

TYPED_TEST_P(groupby_test, empty_input) {
  auto input = mixed_table(0, 1);
  auto aggs = all_aggregations();
  auto out = this->run(input, {"k", "ks"}, aggs);
  EXPECT_EQ(out.num_rows(), 0);
  EXPECT_EQ(out.names(), output_names({"k", "ks"}, aggs));
  auto view = out.view();
  EXPECT_EQ(view.column("k").type(), type_id::int64);
  EXPECT_EQ(view.column("ks").type(), type_id::string);
  EXPECT_EQ(view.column("sum_i32").type(), type_id::int64);
  EXPECT_EQ(view.column("sum_f32").type(), type_id::float64);
  EXPECT_EQ(view.column("min_f32").type(), type_id::float32);
  EXPECT_EQ(view.column("min_sv").type(), type_id::string);
  EXPECT_EQ(view.column("mean_i32").type(), type_id::float64);
  EXPECT_EQ(view.column("distinct_sv").type(), type_id::int64);

  // With no keys an empty input still gives one row: counts are 0, everything else null.
  for (const auto& a : {hashable_aggregations(), all_aggregations()}) {
    auto whole = this->run(input, {}, a);
    ASSERT_EQ(whole.num_rows(), 1);
    expect_same_rows(whole.view(), reference_group_by(input.view(), {}, a));
    auto row0 = rows_of(whole.view())[0];
    EXPECT_EQ(row0[0], scalar::int64(0));                // rows
    EXPECT_EQ(row0[4], scalar::null(type_id::int64));    // sum_i32
    EXPECT_EQ(row0[18], scalar::null(type_id::string));  // min_sv
  }
}

TYPED_TEST_P(groupby_test, one_row_and_no_keys) {
  auto one = mixed_table(1, 9);
  for (const auto& keys : std::vector<std::vector<std::string>>{{"k"}, {"ks", "k32"}, {}}) {
    auto out = this->run(one, keys, all_aggregations());
    EXPECT_EQ(out.num_rows(), 1);
    expect_same_rows(out.view(), reference_group_by(one.view(), keys, all_aggregations()));
  }
  for (std::size_t n : {5, 1000, 200000}) {
    auto input = mixed_table(n, 12 + n);
    for (const auto& aggs : {hashable_aggregations(), all_aggregations()}) {
      auto out = this->run(input, {}, aggs);
      EXPECT_EQ(out.num_rows(), 1);
      expect_same_rows(out.view(), reference_group_by(input.view(), {}, aggs));
    }
  }
}

TYPED_TEST_P(groupby_test, sliced_views) {
  auto input = mixed_table(3000, 21);
  for (auto [begin, end] :
       {std::pair<size_type, size_type>{3, 2990}, {37, 38}, {33, 1057}, {1000, 1000}}) {
    SCOPED_TRACE("slice " + std::to_string(begin) + ".." + std::to_string(end));
    auto expected_input = copy_table(input.view().slice(begin, end));
    for (const auto& keys : std::vector<std::vector<std::string>>{{"k"}, {"ks", "kb"}, {}}) {
      auto out = this->run(input, keys, all_aggregations(), begin, end);
      expect_same_rows(out.view(),
                       reference_group_by(expected_input.view(), keys, all_aggregations()));
      out = this->run(input, keys, hashable_aggregations(), begin, end);
      expect_same_rows(out.view(),
                       reference_group_by(expected_input.view(), keys, hashable_aggregations()));
    }
  }
}

TYPED_TEST_P(groupby_test, float_minimum_and_maximum_order_nan_last) {
  double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("k", make_column<std::int64_t>(type_id::int64, {1, 1, 1, 1, 2, 2, 3}));
  cols.emplace_back("f", make_column<double>(type_id::float64, {1.5, nan, -2.0, 9.0, nan, nan, 4},
                                             {true, true, true, false, true, true, true}));
  auto input = make_table(std::move(cols));
  auto out =
      this->run(input, {"k"},
                {{agg::min, "f", "lo"}, {agg::max, "f", "hi"}, {agg::count_distinct, "f", "d"}});
  auto rows = sorted_rows(out.view());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0][1], scalar::float64(-2.0));
  EXPECT_TRUE(std::isnan(rows[0][2].as_float()));
  EXPECT_EQ(rows[0][3], scalar::int64(3));
  EXPECT_TRUE(std::isnan(rows[1][1].as_float()));  // only NaNs: NaN both ways
  EXPECT_TRUE(std::isnan(rows[1][2].as_float()));
  EXPECT_EQ(rows[1][3], scalar::int64(1));  // NaN equals NaN
  EXPECT_EQ(rows[2][1], scalar::float64(4));
  // The fast path must agree on the same data without count_distinct.
  auto fast = this->run(input, {"k"}, {{agg::min, "f", "lo"}, {agg::max, "f", "hi"}});
  auto fast_rows = sorted_rows(fast.view());
  EXPECT_EQ(fast_rows[0][1], scalar::float64(-2.0));
  EXPECT_TRUE(std::isnan(fast_rows[0][2].as_float()));
  EXPECT_TRUE(std::isnan(fast_rows[1][1].as_float()));
}

/// Over a million rows, checked against a typed std::map reference: `distinct_keys` keys, each
/// appearing about the same number of times.
template <class Fixture>
void check_large(Fixture& f, std::int64_t distinct_keys, bool with_distinct_count) {
  std::size_t n = (1 << 20) + 54321;
  std::vector<std::int64_t> keys(n);
  for (std::size_t i = 0; i < n; ++i)
    keys[i] =
        static_cast<std::int64_t>((i * 2654435761ULL) % static_cast<std::uint64_t>(distinct_keys)) *
            3 -
        7;
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("k", make_column<std::int64_t>(type_id::int64, keys));
  cols.emplace_back("v", random_int64(n, -1'000'000, 1'000'000, 0.05, 77));
  cols.emplace_back("f", random_float64(n, -1, 1, 0.0, 78));
  auto input = make_table(std::move(cols));
  std::vector<aggregation> aggs{{agg::sum, "v", "sum_v"},     {agg::count, "v", "n_v"},
                                {agg::count_all, "", "rows"}, {agg::min, "v", "min_v"},
                                {agg::max, "v", "max_v"},     {agg::mean, "f", "mean_f"},
                                {agg::sum, "f", "sum_f"}};
  if (with_distinct_count) aggs.push_back({agg::count_distinct, "v", "d_v"});
  auto out = f.run(input, {"k"}, aggs);

  struct acc {
    std::int64_t sum = 0, n = 0, rows = 0;
    std::int64_t lo = std::numeric_limits<std::int64_t>::max();
    std::int64_t hi = std::numeric_limits<std::int64_t>::min();
    double fsum = 0;
    std::set<std::int64_t> seen;
  };
  std::map<std::int64_t, acc> ref;
  auto v = copy_optional<std::int64_t>(input.view().column("v"));
  auto fv = copy_values<double>(input.view().column("f"));
  for (std::size_t i = 0; i < n; ++i) {
    auto& a = ref[keys[i]];
    ++a.rows;
    a.fsum += fv[i];
    if (!v[i]) continue;
    ++a.n;
    a.sum += *v[i];
    a.lo = std::min(a.lo, *v[i]);
    a.hi = std::max(a.hi, *v[i]);
    if (with_distinct_count) a.seen.insert(*v[i]);
  }
  auto view = out.view();
  ASSERT_EQ(out.num_rows(), static_cast<size_type>(ref.size()));
  auto k = copy_values<std::int64_t>(view.column("k"));
  auto sum = copy_optional<std::int64_t>(view.column("sum_v"));
  auto cnt = copy_values<std::int64_t>(view.column("n_v"));
  auto rows = copy_values<std::int64_t>(view.column("rows"));
  auto lo = copy_optional<std::int64_t>(view.column("min_v"));
  auto hi = copy_optional<std::int64_t>(view.column("max_v"));
  auto mean = copy_values<double>(view.column("mean_f"));
  auto fsum = copy_values<double>(view.column("sum_f"));
  std::vector<std::int64_t> d;
  if (with_distinct_count) d = copy_values<std::int64_t>(view.column("d_v"));
  std::set<std::int64_t> seen_keys;
  for (std::size_t r = 0; r < k.size(); ++r) {
    auto it = ref.find(k[r]);
    ASSERT_NE(it, ref.end()) << "unexpected key " << k[r];
    ASSERT_TRUE(seen_keys.insert(k[r]).second) << "key " << k[r] << " appears twice";
    const auto& a = it->second;
    ASSERT_EQ(rows[r], a.rows) << "key " << k[r];
    ASSERT_EQ(cnt[r], a.n) << "key " << k[r];
    if (a.n == 0) {
      ASSERT_FALSE(sum[r].has_value());
      ASSERT_FALSE(lo[r].has_value());
    } else {
      ASSERT_EQ(sum[r], a.sum) << "key " << k[r];
      ASSERT_EQ(lo[r], a.lo) << "key " << k[r];
      ASSERT_EQ(hi[r], a.hi) << "key " << k[r];
    }
    ASSERT_NEAR(fsum[r], a.fsum, 1e-9 * std::max(1.0, std::abs(a.fsum)));
    ASSERT_NEAR(mean[r], a.fsum / static_cast<double>(a.rows), 1e-9);
    if (with_distinct_count) {
      ASSERT_EQ(d[r], static_cast<std::int64_t>(a.seen.size()));
    }
  }
}

TYPED_TEST_P(groupby_test, over_a_million_rows_with_a_million_keys) {
  check_large(*this, 1'000'000, false);
}

TYPED_TEST_P(groupby_test, over_a_million_rows_with_a_hundred_keys) {
  check_large(*this, 100, false);
  check_large(*this, 100, true);
}

TYPED_TEST_P(groupby_test, many_string_keys) {
  // Enough distinct strings that the CPU fast path flushes its thread-local tables.
  std::size_t n = 300000;
  std::vector<std::optional<std::string>> words(n);
  std::mt19937_64 rng(31);
  for (auto& w : words) {
    auto k = rng() % 60000;
    if (k % 997 == 0) continue;
    w = "word-" + std::to_string(k * 7919) + std::string(k % 13, 'z');
  }
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("w", make_string_column(words));
  cols.emplace_back("v", random_int64(n, -100, 100, 0.1, 32));
  cols.emplace_back("s", random_strings(n, 1000, 0.1, 33));
  auto input = make_table(std::move(cols));
  std::vector<aggregation> aggs{{agg::count_all, "", "n"},
                                {agg::sum, "v", "sum_v"},
                                {agg::max, "s", "max_s"},
                                {agg::min, "v", "min_v"}};
  auto out = this->run(input, {"w"}, aggs);
  expect_same_rows(out.view(), reference_group_by(input.view(), {"w"}, aggs));
  auto mid = this->run(input, {"v"}, aggs);  // ~200 int keys with nulls, many rows each
  expect_same_rows(mid.view(), reference_group_by(input.view(), {"v"}, aggs));
}

TYPED_TEST_P(groupby_test, string_keys_that_differ_only_past_their_first_sixteen_bytes) {
  // The CPU fast path keeps a string key's first 16 bytes and its length inline: keys equal
  // there and different after, keys of 15, 16 and 17 bytes, empty strings, embedded zero bytes
  // and nulls must still be told apart (and equal ones found) exactly as the reference does.
  const std::string prefix = "0123456789abcdef";  // 16 bytes
  std::vector<std::optional<std::string>> distinct = {
      std::string(),
      prefix.substr(0, 15),
      prefix,
      prefix + "x",
      prefix + "y",
      prefix + "xy",
      prefix + std::string(24, 'q') + "1",
      prefix + std::string(24, 'q') + "2",
      std::string("ab\0cd", 5),
      std::string("ab\0ce", 5),
      std::string("ab", 2),
      std::nullopt,
  };
  std::size_t n = 200000;
  std::vector<std::optional<std::string>> keys(n);
  std::mt19937_64 rng(77);
  for (auto& k : keys) k = distinct[rng() % distinct.size()];
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("w", make_string_column(keys));
  cols.emplace_back("v", random_int64(n, -1000, 1000, 0.1, 78));
  auto input = make_table(std::move(cols));
  std::vector<aggregation> aggs{{agg::count_all, "", "n"}, {agg::sum, "v", "sum_v"}};
  auto out = this->run(input, {"w"}, aggs);
  EXPECT_EQ(out.num_rows(), static_cast<size_type>(distinct.size()));
  expect_same_rows(out.view(), reference_group_by(input.view(), {"w"}, aggs));
}

TYPED_TEST_P(groupby_test, rejects_bad_requests_with_clear_messages) {
  auto input = mixed_table(10, 1);
  auto dev = this->up(input.view());
  auto view = dev.view();
  auto& ctx = this->ctx();
  expect_invalid_input([&] { (void)group_by(view, {"nope"}, {}, ctx); },
                       "group_by: unknown key column 'nope' (the table has: k, k32, ks,");
  expect_invalid_input(
      [&] {
        (void)group_by(view, {"k"}, {{agg::sum, "zz", "s"}}, ctx);
      },
      "group_by: unknown aggregation column 'zz'");
  expect_invalid_input(
      [&] {
        (void)group_by(view, {"k"}, {{agg::sum, "sv", "total"}}, ctx);
      },
      "group_by: sum 'total' cannot take column 'sv' of type string");
  expect_invalid_input(
      [&] {
        (void)group_by(view, {"k"}, {{agg::mean, "ts", "avg"}}, ctx);
      },
      "group_by: mean 'avg' cannot take column 'ts' of type timestamp");
  expect_invalid_input(
      [&] {
        (void)group_by(view, {"k"}, {{agg::sum, "i32", "x"}, {agg::count, "i32", "x"}}, ctx);
      },
      "group_by: output name 'x' is used twice");
  expect_invalid_input(
      [&] {
        (void)group_by(view, {"k"}, {{agg::count_all, "", "k"}}, ctx);
      },
      "group_by: output name 'k' is used twice");
  expect_invalid_input(
      [&] {
        (void)group_by(view, {"k", "k"}, {}, ctx);
      },
      "group_by: column 'k' is listed twice");
  expect_invalid_input(
      [&] {
        (void)group_by(view, {"k"}, {{agg::min, "i32", ""}}, ctx);
      },
      "group_by: an aggregation (min of 'i32') has an empty output name");
  expect_invalid_input(
      [&] {
        (void)group_by(view, {"k"}, {{agg::max, "", "m"}}, ctx);
      },
      "group_by: max 'm' needs a column");
}

REGISTER_TYPED_TEST_SUITE_P(groupby_test, small_example_by_hand,
                            every_aggregation_matches_reference_around_block_sizes,
                            multiple_keys_of_mixed_types,
                            all_null_keys_form_one_group_and_all_null_values_give_nulls,
                            all_keys_equal_and_one_hot_key, empty_input, one_row_and_no_keys,
                            sliced_views, float_minimum_and_maximum_order_nan_last,
                            over_a_million_rows_with_a_million_keys,
                            over_a_million_rows_with_a_hundred_keys, many_string_keys,
                            string_keys_that_differ_only_past_their_first_sixteen_bytes,
                            rejects_bad_requests_with_clear_messages);
INSTANTIATE_TYPED_TEST_SUITE_P(backends, groupby_test, all_backends);

}  // namespace
}  // namespace ember::test
