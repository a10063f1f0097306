#include <gtest/gtest.h>

#include <algorithm>
#include <ember/cuda/join.hpp>
#include <limits>
#include <map>
#include <numeric>
#include <ostream>
#include <random>
#include <set>
#include <tuple>

#include "common/backends.hpp"
#include "common/tables.hpp"
#include "common/errors.hpp"

namespace ember {
// Readable scalars in failure messages.
inline void PrintTo(const scalar& s, std::ostream* os) {
  *os << (s.valid() ? s.to_text() : std::string("null"));
}
}  // namespace ember

namespace ember::test {
namespace {

const join_kind all_kinds[] = {join_kind::inner, join_kind::left, join_kind::semi, join_kind::anti};

/// The join by the book: a std::multimap from right key rows to right rows, probed with every
/// left row; rows with a null key match nothing. Returns the output rows sorted.
std::vector<row> reference_join(const table_view& left, const table_view& right,
                                const std::vector<std::string>& left_keys,
                                const std::vector<std::string>& right_keys, join_kind kind) {
  auto lrows = rows_of(left);
  auto rrows = rows_of(right);
  std::vector<size_type> lk, rk, rout;
  for (const auto& k : left_keys) lk.push_back(left.index_of(k));
  for (const auto& k : right_keys) rk.push_back(right.index_of(k));
  std::set<std::string> right_key_names(right_keys.begin(), right_keys.end());
  for (size_type c = 0; c < right.num_columns(); ++c)
    if (right_key_names.count(right.names()[c]) == 0) rout.push_back(c);

  auto key_of = [](const row& r, const std::vector<size_type>& cols, bool& has_null) {
    row key;
    has_null = false;
    for (auto c : cols) {
      key.push_back(r[c]);
      has_null |= !r[c].valid();
    }
    return key;
  };
  std::multimap<row, std::size_t, decltype(&row_less)> index(&row_less);
  for (std::size_t j = 0; j < rrows.size(); ++j) {
    bool has_null = false;
    auto key = key_of(rrows[j], rk, has_null);
    if (!has_null) index.emplace(std::move(key), j);
  }
  std::vector<row> out;
  for (const auto& l : lrows) {
    bool has_null = false;
    auto key = key_of(l, lk, has_null);
    auto [first, last] =
        has_null ? std::make_pair(index.end(), index.end()) : index.equal_range(key);
    bool matched = first != last;
    if (kind == join_kind::semi || kind == join_kind::anti) {
      if (matched == (kind == join_kind::semi)) out.push_back(l);
      continue;
    }
    for (auto it = first; it != last; ++it) {
      row r = l;
      for (auto c : rout) r.push_back(rrows[it->second][c]);
      out.push_back(std::move(r));
    }
    if (!matched && kind == join_kind::left) {
      row r = l;
      for (auto c : rout) r.push_back(scalar::null(right.column(c).type()));
      out.push_back(std::move(r));
    }
  }
  std::sort(out.begin(), out.end(), row_less);
  return out;
}

template <class Backend>
class join_test : public backend_test<Backend> {
 protected:
  /// Runs the join on this backend (inputs uploaded, optionally sliced there so that mask
  /// offsets are not multiples of 32) and checks it against the reference, rows and names.
  void check(const table& left, const table& right, const std::vector<std::string>& left_keys,
             const std::vector<std::string>& right_keys, join_kind kind,
             std::pair<size_type, size_type> left_slice = {-1, -1},
             std::pair<size_type, size_type> right_slice = {-1, -1}) {
    auto dl = this->up(left.view());
    auto dr = this->up(right.view());
    table_view lv = dl.view(), rv = dr.view();
    table_view lh = left.view(), rh = right.view();
    if (left_slice.first >= 0) {
      lv = lv.slice(left_slice.first, left_slice.second);
      lh = lh.slice(left_slice.first, left_slice.second);
    }
    if (right_slice.first >= 0) {
      rv = rv.slice(right_slice.first, right_slice.second);
      rh = rh.slice(right_slice.first, right_slice.second);
    }
    auto out = this->down(hash_join(lv, rv, left_keys, right_keys, kind, this->ctx()).view());
    auto expected = reference_join(lh, rh, left_keys, right_keys, kind);
    std::string what = std::string(to_string(kind)) + " join of " + std::to_string(lh.num_rows()) +
                       " x " + std::to_string(rh.num_rows()) + " rows";
    ASSERT_EQ(out.num_rows(), static_cast<size_type>(expected.size())) << what;
    EXPECT_TRUE(sorted_rows(out.view()) == expected) << what;
    // Schema: the left columns, then (inner, left) the right non-key columns.
    std::vector<std::string> names = lh.names();
    if (kind == join_kind::inner || kind == join_kind::left) {
      std::set<std::string> keys(right_keys.begin(), right_keys.end());
      for (const auto& n : rh.names())
        if (keys.count(n) == 0)
          names.push_back(names.end() != std::find(names.begin(), names.end(), n) ? n + "_right"
                                                                                  : n);
    }
    EXPECT_EQ(out.names(), names) << what;
  }
  void check_all_kinds(const table& left, const table& right,
                       const std::vector<std::string>& left_keys,
                       const std::vector<std::string>& right_keys) {
    for (auto kind : all_kinds) check(left, right, left_keys, right_keys, kind);
  }
};
TYPED_TEST_SUITE_P(join_test);

table int_table(std::size_t n, std::int64_t distinct, double nulls, std::uint64_t seed,
                const std::string& payload) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("k", random_int64(n, 0, distinct - 1, nulls, seed));
  cols.emplace_back(payload, random_int64(n, -1000, 1000, 0.1, seed + 1));
  return make_table(std::move(cols));
}

TYPED_TEST_P(join_test, single_int64_key_matches_reference_around_block_sizes) {
  for (std::size_t nl : {1, 31, 32, 33, 1023, 1024, 1025}) {
    for (std::size_t nr : {1, 32, 33, 1024, 1025}) {
      // Keys drawn from a range comparable to the sizes: duplicates on both sides, misses too.
      auto distinct = static_cast<std::int64_t>(std::max(nl, nr) / 2 + 3);
      auto left = int_table(nl, distinct, 0.1, 100 + nl, "v");
      auto right = int_table(nr, distinct, 0.1, 200 + nr, "p");
      this->check_all_kinds(left, right, {"k"}, {"k"});
      if (this->HasFatalFailure()) return;
    }
  }
}

TYPED_TEST_P(join_test, int32_keys_and_differently_named_keys) {
  std::vector<std::pair<std::string, column>> l, r;
  l.emplace_back("a", random_int32(700, -50, 50, 0.05, 1));
  l.emplace_back("v", random_strings(700, 30, 0.1, 2));
  r.emplace_back("p", random_float64(300, 0, 1, 0.1, 3));
  r.emplace_back("b", random_int32(300, -60, 40, 0.05, 4));
  this->check_all_kinds(make_table(std::move(l)), make_table(std::move(r)), {"a"}, {"b"});
}

TYPED_TEST_P(join_test, sparse_int64_keys_with_duplicates) {
  // Keys spread over the whole int64 range (no dense range), extremes included.
  std::mt19937_64 rng(9);
  std::vector<std::int64_t> pool = {std::numeric_limits<std::int64_t>::min(),
                                    std::numeric_limits<std::int64_t>::max(), -1, 0};
  for (int i = 0; i < 300; ++i) pool.push_back(static_cast<std::int64_t>(rng()));
  auto draw = [&](std::size_t n) {
    std::vector<std::int64_t> v(n);
    std::vector<bool> valid(n);
    for (std::size_t i = 0; i < n; ++i) {
      v[i] = pool[rng() % pool.size()];
      valid[i] = rng() % 13 != 0;
    }
    return make_column<std::int64_t>(type_id::int64, v, valid);
  };
  std::vector<std::pair<std::string, column>> l, r;
  l.emplace_back("k", draw(2000));
  r.emplace_back("k", draw(500));
  r.emplace_back("p", random_int64(500, 0, 9, 0, 5));
  this->check_all_kinds(make_table(std::move(l)), make_table(std::move(r)), {"k"}, {"k"});
}

TYPED_TEST_P(join_test, string_keys) {
  std::vector<std::pair<std::string, column>> l, r;
  l.emplace_back("s", random_strings(1500, 80, 0.1, 11));
  l.emplace_back("v", random_int64(1500, 0, 100, 0, 12));
  r.emplace_back("s", random_strings(400, 100, 0.1, 13));
  r.emplace_back("p", random_strings(400, 7, 0.2, 14));
  this->check_all_kinds(make_table(std::move(l)), make_table(std::move(r)), {"s"}, {"s"});
}

TYPED_TEST_P(join_test, several_keys_of_mixed_types) {
  std::vector<std::pair<std::string, column>> l, r;
  l.emplace_back("a", random_int64(1200, 0, 9, 0.05, 21));
  l.emplace_back("s", random_strings(1200, 6, 0.05, 22));
  l.emplace_back("f", random_float64(1200, 0, 1, 0, 23));
  l.emplace_back("v", random_int32(1200, 0, 5, 0, 24));
  r.emplace_back("s", random_strings(300, 6, 0.05, 25));
  r.emplace_back("a", random_int64(300, 0, 9, 0.05, 26));
  r.emplace_back("v", random_int32(300, 0, 5, 0, 27));
  r.emplace_back("f", random_float64(300, 0, 1, 0.2, 28));
  auto left = make_table(std::move(l));
  auto right = make_table(std::move(r));
  // Three keys of three types; right "f" is not a key, so it comes out as "f_right".
  this->check_all_kinds(left, right, {"a", "s", "v"}, {"a", "s", "v"});
}

TYPED_TEST_P(join_test, float_timestamp_and_bool_keys) {
  auto floats = [](std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<double> v(n);
    std::vector<bool> valid(n);
    for (std::size_t i = 0; i < n; ++i) {
      v[i] = static_cast<double>(rng() % 40) / 4.0 - 5.0;
      valid[i] = rng() % 9 != 0;
    }
    return make_column<double>(type_id::float64, v, valid);
  };
  auto stamps = [](std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<std::int64_t> v(n);
    for (auto& x : v) x = 1'700'000'000'000'000'000 + static_cast<std::int64_t>(rng() % 50) * 1000;
    return make_column<std::int64_t>(type_id::timestamp_ns, v);
  };
  auto bools = [](std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<std::uint8_t> v(n);
    std::vector<bool> valid(n);
    for (std::size_t i = 0; i < n; ++i) {
      v[i] = rng() % 2;
      valid[i] = rng() % 7 != 0;
    }
    return make_column<std::uint8_t>(type_id::bool8, v, valid);
  };
  std::vector<std::pair<std::string, column>> l, r;
  l.emplace_back("f", floats(600, 31));
  l.emplace_back("t", stamps(600, 32));
  l.emplace_back("b", bools(600, 33));
  r.emplace_back("f", floats(200, 34));
  r.emplace_back("t", stamps(200, 35));
  r.emplace_back("b", bools(200, 36));
  r.emplace_back("p", random_int64(200, 0, 9, 0, 37));
  auto left = make_table(std::move(l));
  auto right = make_table(std::move(r));
  this->check_all_kinds(left, right, {"f"}, {"f"});
  this->check_all_kinds(left, right, {"t"}, {"t"});
  this->check_all_kinds(left, right, {"b"}, {"b"});
  this->check_all_kinds(left, right, {"f", "b"}, {"f", "b"});
}

TYPED_TEST_P(join_test, null_keys_never_match) {
  {
    std::vector<std::pair<std::string, column>> l, r;
    l.emplace_back(
        "k", make_column<std::int64_t>(type_id::int64, {1, 2, 3, 4}, {true, false, true, false}));
    l.emplace_back("s", make_string_column(std::vector<std::optional<std::string>>{
                            "a", std::nullopt, std::nullopt, "d"}));
    r.emplace_back(
        "k", make_column<std::int64_t>(type_id::int64, {1, 2, 3, 4}, {true, false, false, true}));
    r.emplace_back("s", make_string_column(
                            std::vector<std::optional<std::string>>{"a", std::nullopt, "c", "d"}));
    auto lt = make_table(std::move(l));
    auto rt = make_table(std::move(r));
    // Single key: only k == 1 matches (null = null is not a match).
    auto dl = this->up(lt.view());
    auto dr = this->up(rt.view());
    auto inner = this->down(
        hash_join(dl.view(), dr.view(), {"k"}, {"k"}, join_kind::inner, this->ctx()).view());
    ASSERT_EQ(inner.num_rows(), 1);
    EXPECT_EQ(get_scalar(inner.view().column("k"), 0), scalar::int64(1));
    // Two keys: left row 0 (1, "a") matches right row 0; every other row has a null key.
    auto two = this->down(
        hash_join(dl.view(), dr.view(), {"k", "s"}, {"k", "s"}, join_kind::inner, this->ctx())
            .view());
    EXPECT_EQ(two.num_rows(), 1);
    auto anti = this->down(
        hash_join(dl.view(), dr.view(), {"k"}, {"k"}, join_kind::anti, this->ctx()).view());
    EXPECT_EQ(anti.num_rows(), 3) << "null keys have no match, so anti keeps them";
    this->check_all_kinds(lt, rt, {"k"}, {"k"});
    this->check_all_kinds(lt, rt, {"s"}, {"s"});
    this->check_all_kinds(lt, rt, {"k", "s"}, {"k", "s"});
  }
  // All keys null on one side.
  std::vector<std::pair<std::string, column>> l, r;
  l.emplace_back("k", random_int64(100, 0, 5, 1.0, 41));
  r.emplace_back("k", random_int64(50, 0, 5, 0.0, 42));
  r.emplace_back("p", random_int64(50, 0, 5, 0.0, 43));
  auto lt = make_table(std::move(l));
  auto rt = make_table(std::move(r));
  this->check_all_kinds(lt, rt, {"k"}, {"k"});
  this->check_all_kinds(rt, lt, {"k"}, {"k"});
}

TYPED_TEST_P(join_test, many_to_many_and_all_keys_equal) {
  // Few distinct keys on both sides: every key has many rows on each side.
  this->check_all_kinds(int_table(300, 4, 0.05, 51, "v"), int_table(200, 5, 0.05, 52, "p"), {"k"},
                        {"k"});
  // One key everywhere: a cross product.
  auto left = int_table(60, 1, 0, 53, "v");
  auto right = int_table(45, 1, 0, 54, "p");
  this->check_all_kinds(left, right, {"k"}, {"k"});
  auto dl = this->up(left.view());
  auto dr = this->up(right.view());
  EXPECT_EQ(hash_join(dl.view(), dr.view(), {"k"}, {"k"}, join_kind::inner, this->ctx()).num_rows(),
            60 * 45);
  // Strings, all equal.
  std::vector<std::pair<std::string, column>> l, r;
  l.emplace_back("s", random_strings(40, 1, 0, 55));
  r.emplace_back("s", random_strings(30, 1, 0, 56));
  r.emplace_back("p", random_int64(30, 0, 3, 0, 57));
  this->check_all_kinds(make_table(std::move(l)), make_table(std::move(r)), {"s"}, {"s"});
}

TYPED_TEST_P(join_test, one_hot_key) {
  auto hot = [](std::size_t n, std::uint64_t seed, bool with_payload) {
    std::mt19937_64 rng(seed);
    std::vector<std::int64_t> k(n);
    for (auto& x : k) x = rng() % 10 < 8 ? 42 : static_cast<std::int64_t>(rng() % 5000);
    std::vector<std::pair<std::string, column>> cols;
    cols.emplace_back("k", make_column<std::int64_t>(type_id::int64, k));
    if (with_payload) cols.emplace_back("p", random_int64(n, 0, 100, 0.1, seed + 1));
    return make_table(std::move(cols));
  };
  this->check_all_kinds(hot(1500, 61, false), hot(150, 62, true), {"k"}, {"k"});
}

TYPED_TEST_P(join_test, empty_and_one_row_inputs) {
  auto some = int_table(50, 10, 0.1, 71, "v");
  auto other = int_table(40, 10, 0.1, 72, "p");
  auto none_l = int_table(0, 10, 0.1, 73, "v");
  auto none_r = int_table(0, 10, 0.1, 74, "p");
  auto one_l = int_table(1, 1, 0, 75, "v");
  auto one_r = int_table(1, 1, 0, 76, "p");
  this->check_all_kinds(none_l, other, {"k"}, {"k"});
  this->check_all_kinds(some, none_r, {"k"}, {"k"});
  this->check_all_kinds(none_l, none_r, {"k"}, {"k"});
  this->check_all_kinds(one_l, one_r, {"k"}, {"k"});
  this->check_all_kinds(one_l, other, {"k"}, {"k"});
  this->check_all_kinds(some, one_r, {"k"}, {"k"});
  // Empty inputs keep their schema, string columns included.
  std::vector<std::pair<std::string, column>> l, r;
  l.emplace_back("s", make_empty_column(type_id::string));
  r.emplace_back("s", random_strings(10, 3, 0, 77));
  r.emplace_back("t", random_strings(10, 3, 0.5, 78));
  auto el = make_table(std::move(l));
  auto er = make_table(std::move(r));
  this->check_all_kinds(el, er, {"s"}, {"s"});
  this->check_all_kinds(er, el, {"s"}, {"s"});
  auto dl = this->up(el.view());
  auto dr = this->up(er.view());
  auto out = hash_join(dl.view(), dr.view(), {"s"}, {"s"}, join_kind::left, this->ctx());
  EXPECT_EQ(out.num_rows(), 0);
  EXPECT_EQ(out.view().column("t").type(), type_id::string);
}

TYPED_TEST_P(join_test, sliced_views) {
  auto left = int_table(1100, 300, 0.1, 81, "v");
  auto right = int_table(700, 300, 0.1, 82, "p");
  for (auto kind : all_kinds) {
    this->check(left, right, {"k"}, {"k"}, kind, {3, 1040}, {37, 690});
    this->check(left, right, {"k"}, {"k"}, kind, {33, 34}, {5, 5});
  }
  std::vector<std::pair<std::string, column>> l, r;
  l.emplace_back("s", random_strings(500, 40, 0.1, 83));
  r.emplace_back("s", random_strings(300, 40, 0.1, 84));
  r.emplace_back("p", random_strings(300, 40, 0.1, 85));
  auto ls = make_table(std::move(l));
  auto rs = make_table(std::move(r));
  for (auto kind : all_kinds) this->check(ls, rs, {"s"}, {"s"}, kind, {17, 480}, {1, 299});
}

TYPED_TEST_P(join_test, output_names_take_suffix_on_collision) {
  std::vector<std::pair<std::string, column>> l, r;
  l.emplace_back("k", make_column<std::int64_t>(type_id::int64, {1, 2, 3}));
  l.emplace_back("p", make_column<std::int64_t>(type_id::int64, {10, 20, 30}));
  l.emplace_back("p_right", make_column<std::int64_t>(type_id::int64, {7, 7, 7}));
  r.emplace_back("p", make_column<std::int64_t>(type_id::int64, {200, 300, 400}));
  r.emplace_back("k", make_column<std::int64_t>(type_id::int64, {2, 3, 4}));
  r.emplace_back("q", make_string_column(std::vector<std::string>{"b", "c", "d"}));
  auto lt = make_table(std::move(l));
  auto rt = make_table(std::move(r));
  auto dl = this->up(lt.view());
  auto dr = this->up(rt.view());
  auto out = this->down(
      hash_join(dl.view(), dr.view(), {"k"}, {"k"}, join_kind::left, this->ctx()).view());
  EXPECT_EQ(out.names(), (std::vector<std::string>{"k", "p", "p_right", "p_right_right", "q"}));
  auto rows = sorted_rows(out.view());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], (row{scalar::int64(1), scalar::int64(10), scalar::int64(7),
                          scalar::null(type_id::int64), scalar::null(type_id::string)}));
  EXPECT_EQ(rows[2], (row{scalar::int64(3), scalar::int64(30), scalar::int64(7), scalar::int64(300),
                          scalar::string("c")}));
  auto semi = hash_join(dl.view(), dr.view(), {"k"}, {"k"}, join_kind::semi, this->ctx());
  EXPECT_EQ(semi.names(), lt.names());
  EXPECT_EQ(semi.num_rows(), 2);
}

TYPED_TEST_P(join_test, foreign_key_join_keeps_left_rows_in_order) {
  // Unique right keys that every left row finds: each left row comes out once, in order, over
  // several morsels of the CPU hash join; then single misses at the very end and in the middle.
  const std::size_t nl = 140'000;
  std::vector<std::int64_t> rk(1000);
  std::iota(rk.begin(), rk.end(), 0);
  std::reverse(rk.begin(), rk.end());
  std::vector<std::pair<std::string, column>> r;
  r.emplace_back("k", make_column<std::int64_t>(type_id::int64, rk));
  r.emplace_back("p", random_strings(rk.size(), 50, 0.1, 121));
  auto right = make_table(std::move(r));
  std::mt19937_64 rng(122);
  std::vector<std::int64_t> lk(nl);
  for (auto& k : lk) k = static_cast<std::int64_t>(rng() % 1000);
  for (int variant = 0; variant < 3; ++variant) {
    if (variant == 1) lk.back() = 5000;
    if (variant == 2) lk[70'000] = -3;
    std::vector<std::pair<std::string, column>> l;
    l.emplace_back("k", make_column<std::int64_t>(type_id::int64, lk));
    l.emplace_back("v", random_int32(nl, 0, 9, 0.1, 123));
    l.emplace_back("s", random_strings(nl, 30, 0.1, 124));
    auto left = make_table(std::move(l));
    for (auto kind : all_kinds)
      if (variant == 0 || kind == join_kind::inner || kind == join_kind::semi)
        this->check(left, right, {"k"}, {"k"}, kind);
    if (this->HasFatalFailure()) return;
  }
}

TYPED_TEST_P(join_test, over_a_million_rows) {
  // 1.2M left rows against 120K right rows (10x), int64 keys, some misses and some nulls.
  const std::size_t nl = 1'200'000, nr = 120'000;
  auto left = int_table(nl, 150'000, 0.01, 91, "v");
  auto right = int_table(nr, 150'000, 0.01, 92, "p");
  auto dl = this->up(left.view());
  auto dr = this->up(right.view());
  auto lk = copy_optional<std::int64_t>(left.view().column("k"));
  auto lv = copy_optional<std::int64_t>(left.view().column("v"));
  auto rk = copy_optional<std::int64_t>(right.view().column("k"));
  auto rp = copy_optional<std::int64_t>(right.view().column("p"));
  std::multimap<std::int64_t, std::size_t> index;
  for (std::size_t j = 0; j < nr; ++j)
    if (rk[j]) index.emplace(*rk[j], j);
  using out_row = std::tuple<std::optional<std::int64_t>, std::optional<std::int64_t>,
                             std::optional<std::int64_t>>;
  for (auto kind : {join_kind::inner, join_kind::left, join_kind::anti}) {
    std::vector<out_row> expected;
    for (std::size_t i = 0; i < nl; ++i) {
      auto [first, last] =
          lk[i] ? index.equal_range(*lk[i]) : std::make_pair(index.end(), index.end());
      if (kind == join_kind::anti) {
        if (first == last) expected.emplace_back(lk[i], lv[i], std::nullopt);
        continue;
      }
      for (auto it = first; it != last; ++it) expected.emplace_back(lk[i], lv[i], rp[it->second]);
      if (first == last && kind == join_kind::left)
        expected.emplace_back(lk[i], lv[i], std::nullopt);
    }
    auto out = this->down(hash_join(dl.view(), dr.view(), {"k"}, {"k"}, kind, this->ctx()).view());
    auto ok = copy_optional<std::int64_t>(out.view().column("k"));
    auto ov = copy_optional<std::int64_t>(out.view().column("v"));
    std::vector<out_row> got;
    bool has_p = kind != join_kind::anti;
    auto op = has_p ? copy_optional<std::int64_t>(out.view().column("p"))
                    : std::vector<std::optional<std::int64_t>>(ok.size());
    for (std::size_t i = 0; i < ok.size(); ++i) got.emplace_back(ok[i], ov[i], op[i]);
    std::sort(expected.begin(), expected.end());
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got.size(), expected.size()) << std::string(to_string(kind));
    EXPECT_TRUE(got == expected) << std::string(to_string(kind));
  }
}

TYPED_TEST_P(join_test, rejects_bad_keys_with_clear_messages) {
  auto left = int_table(10, 5, 0, 101, "v");
  std::vector<std::pair<std::string, column>> r;
  r.emplace_back("k", random_int32(10, 0, 5, 0, 102));
  r.emplace_back("s", random_strings(10, 5, 0, 103));
  r.emplace_back("k64", random_int64(10, 0, 5, 0, 104));
  auto right = make_table(std::move(r));
  auto dl = this->up(left.view());
  auto dr = this->up(right.view());
  auto& ctx = this->ctx();
  auto join = [&](std::vector<std::string> lk, std::vector<std::string> rk) {
    return [&, lk, rk] { (void)hash_join(dl.view(), dr.view(), lk, rk, join_kind::inner, ctx); };
  };
  expect_invalid_input(join({"nope"}, {"k64"}),
                       "the left table has no column 'nope' (its columns: 'k', 'v')");
  expect_invalid_input(join({"k"}, {"missing"}),
                       "the right table has no column 'missing' (its columns: 'k', 's', 'k64')");
  expect_invalid_input(join({"k"}, {"k"}),
                       "key column 'k' of the left table is int64 but key column 'k' of the right "
                       "table is int32");
  expect_invalid_input(join({"k", "v"}, {"k64", "s"}),
                       "key column 'v' of the left table is int64 but key column 's' of the right "
                       "table is string");
  expect_invalid_input(join({"k", "v"}, {"k64"}), "2 left key column(s) but 1 right key column(s)");
  expect_invalid_input(join({}, {}), "no key columns were given");
  try {
    (void)hash_join(dl.view(), dr.view(), {"k"}, {"s"}, join_kind::anti, ctx);
    FAIL() << "expected invalid_input";
  } catch (const invalid_input& e) {
    EXPECT_EQ(std::string(e.what()).rfind("hash_join (anti): ", 0), 0u) << e.what();
  }
}

REGISTER_TYPED_TEST_SUITE_P(join_test, single_int64_key_matches_reference_around_block_sizes,
                            int32_keys_and_differently_named_keys,
                            sparse_int64_keys_with_duplicates, string_keys,
                            several_keys_of_mixed_types, float_timestamp_and_bool_keys,
                            null_keys_never_match, many_to_many_and_all_keys_equal, one_hot_key,
                            empty_and_one_row_inputs, sliced_views,
                            output_names_take_suffix_on_collision,
                            foreign_key_join_keeps_left_rows_in_order, over_a_million_rows,
                            rejects_bad_keys_with_clear_messages);
INSTANTIATE_TYPED_TEST_SUITE_P(backends, join_test, all_backends);

}  // namespace
}  // namespace ember::test
