#include <gtest/gtest.h>

#include <ember/cuda/groupby.hpp>
#include <set>

#include "common/backends.hpp"
#include "common/tables.hpp"

namespace ember::test {
namespace {

template <class Backend>
class distinct_test : public backend_test<Backend> {
 public:
  /// distinct on this backend over a host table, uploaded and optionally sliced to [begin, end).
  table run(const table& input, const std::vector<std::string>& columns, size_type begin = 0,
            size_type end = -1) {
    auto dev = this->up(input.view());
    auto view = dev.view();
    if (end >= 0) view = view.slice(begin, end);
    return this->down(distinct(view, columns, this->ctx()).view());
  }
};
TYPED_TEST_SUITE_P(distinct_test);

struct row_order {
  bool operator()(const row& a, const row& b) const { return row_less(a, b); }
};

/// The distinct rows by std::set, sorted.
std::vector<row> reference_distinct(const table_view& t, const std::vector<std::string>& columns) {
  auto chosen = columns.empty() ? t : t.select(columns);
  auto rows = rows_of(chosen);
  std::set<row, row_order> unique(rows.begin(), rows.end());
  return {unique.begin(), unique.end()};
}

table sample(std::size_t n, std::uint64_t seed) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("a", random_int64(n, 0, 20, 0.1, seed));
  cols.emplace_back("b", random_int32(n, 0, 3, 0.0, seed + 1));
  cols.emplace_back("s", random_strings(n, 8, 0.2, seed + 2));
  cols.emplace_back("f", random_float64(n, 0, 1, 0.5, seed + 3));
  return make_table(std::move(cols));
}

TYPED_TEST_P(distinct_test, one_column) {
  for (std::size_t n : {1, 31, 32, 33, 1023, 1024, 1025, 100000}) {
    SCOPED_TRACE("rows " + std::to_string(n));
    auto input = sample(n, n);
    for (const auto& c : {"a", "b", "s"}) {
      auto out = this->run(input, {c});
      EXPECT_EQ(out.names(), std::vector<std::string>{c});
      EXPECT_EQ(sorted_rows(out.view()), reference_distinct(input.view(), {c}));
    }
  }
}

TYPED_TEST_P(distinct_test, several_columns_and_all_columns) {
  auto input = sample(5000, 3);
  for (const auto& cols :
       std::vector<std::vector<std::string>>{{"a", "b"}, {"s", "a"}, {"b", "s", "a"}}) {
    auto out = this->run(input, cols);
    EXPECT_EQ(out.names(), cols);
    EXPECT_EQ(sorted_rows(out.view()), reference_distinct(input.view(), cols));
  }
  // No columns named: every column, in the table's order; f has unique values or nulls.
  auto out = this->run(input, {});
  EXPECT_EQ(out.names(), input.view().names());
  EXPECT_EQ(sorted_rows(out.view()), reference_distinct(input.view(), {}));
}

TYPED_TEST_P(distinct_test, nulls_are_equal_and_slices_work) {
  auto input = sample(3000, 8);
  for (auto [begin, end] : {std::pair<size_type, size_type>{5, 2999}, {33, 97}, {64, 64}, {1, 2}}) {
    SCOPED_TRACE("slice " + std::to_string(begin) + ".." + std::to_string(end));
    auto expected = copy_table(input.view().slice(begin, end));
    for (const auto& cols : std::vector<std::vector<std::string>>{{"a"}, {"s", "b"}}) {
      auto out = this->run(input, cols, begin, end);
      EXPECT_EQ(sorted_rows(out.view()), reference_distinct(expected.view(), cols));
    }
  }
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("x", random_int64(100, 0, 5, 1.0, 1));  // all null
  cols.emplace_back("y", make_string_column(std::vector<std::optional<std::string>>(100)));
  auto nulls = make_table(std::move(cols));
  auto out = this->run(nulls, {"x", "y"});
  ASSERT_EQ(out.num_rows(), 1);
  EXPECT_FALSE(rows_of(out.view())[0][0].valid());
  EXPECT_FALSE(rows_of(out.view())[0][1].valid());
}

TYPED_TEST_P(distinct_test, empty_input_and_all_equal) {
  auto empty = sample(0, 1);
  auto out = this->run(empty, {"s", "a"});
  EXPECT_EQ(out.num_rows(), 0);
  EXPECT_EQ(out.names(), (std::vector<std::string>{"s", "a"}));
  EXPECT_EQ(out.view().column("s").type(), type_id::string);

  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("k", random_int64(70000, 9, 9, 0.0, 1));
  cols.emplace_back("s", random_strings(70000, 1, 0.0, 2));
  auto same = make_table(std::move(cols));
  auto one = this->run(same, {});
  EXPECT_EQ(sorted_rows(one.view()), reference_distinct(same.view(), {}));
  EXPECT_EQ(one.num_rows(), 1);
}

TYPED_TEST_P(distinct_test, over_a_million_rows) {
  std::size_t n = (1 << 20) + 7;
  auto input = sample(n, 99);
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("k", random_int64(n, 0, 999'999, 0.01, 5));
  auto wide = make_table(std::move(cols));
  auto out = this->run(wide, {"k"});
  auto expected = reference_distinct(wide.view(), {"k"});
  EXPECT_EQ(out.num_rows(), static_cast<size_type>(expected.size()));
  EXPECT_EQ(sorted_rows(out.view()), expected);
}

TYPED_TEST_P(distinct_test, rejects_unknown_and_repeated_columns) {
  auto input = sample(10, 1);
  auto dev = this->up(input.view());
  try {
    (void)distinct(dev.view(), {"a", "zz"}, this->ctx());
    FAIL() << "expected invalid_input";
  } catch (const invalid_input& e) {
    EXPECT_STREQ(e.what(), "distinct: unknown column 'zz' (the table has: a, b, s, f)");
  }
  try {
    (void)distinct(dev.view(), {"s", "s"}, this->ctx());
    FAIL() << "expected invalid_input";
  } catch (const invalid_input& e) {
    EXPECT_STREQ(e.what(), "distinct: column 's' is listed twice");
  }
}

REGISTER_TYPED_TEST_SUITE_P(distinct_test, one_column, several_columns_and_all_columns,
                            nulls_are_equal_and_slices_work, empty_input_and_all_equal,
                            over_a_million_rows, rejects_unknown_and_repeated_columns);
INSTANTIATE_TYPED_TEST_SUITE_P(backends, distinct_test, all_backends);

}  // namespace
}  // namespace ember::test
