#include <ember/cuda/copying.hpp>

#include <gtest/gtest.h>

#include "common/backends.hpp"
#include "common/tables.hpp"

namespace ember::test {
namespace {

template <class Backend>
class copying_test : public backend_test<Backend> {};
TYPED_TEST_SUITE_P(copying_test);

table sample(std::size_t n, std::uint64_t seed) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("i", random_int64(n, -1000, 1000, 0.1, seed));
  cols.emplace_back("s", random_strings(n, 50, 0.2, seed + 1));
  cols.emplace_back("f", random_float64(n, -1, 1, 0.0, seed + 2));
  return make_table(std::move(cols));
}

TYPED_TEST_P(copying_test, gather_matches_reference_including_negative_indices) {
  for (std::size_t n : {0, 1, 31, 32, 33, 1000}) {
    auto input = sample(n, 42 + n);
    std::mt19937_64 rng(n);
    std::vector<std::int64_t> idx;
    for (std::size_t i = 0; i < n + 5 && n > 0; ++i)
      idx.push_back(i % 7 == 3 ? -1 : static_cast<std::int64_t>(rng() % n));
    auto indices = make_column<std::int64_t>(type_id::int64, idx);
    auto dev_in = this->up(input.view());
    auto dev_idx = this->up(table({}, {}).view());
    std::vector<column> ic;
    ic.push_back(std::move(indices));
    auto idx_table = this->up(table(std::move(ic), {"idx"}).view());
    auto out = this->down(gather(dev_in.view(), idx_table.view().column(0), this->ctx()).view());
    auto in_rows = rows_of(input.view());
    auto out_rows = rows_of(out.view());
    ASSERT_EQ(out_rows.size(), idx.size());
    for (std::size_t i = 0; i < idx.size(); ++i) {
      if (idx[i] < 0) {
        for (const auto& v : out_rows[i]) EXPECT_FALSE(v.valid());
      } else {
        EXPECT_EQ(out_rows[i], in_rows[idx[i]]) << "row " << i;
      }
    }
  }
}

TYPED_TEST_P(copying_test, concatenate_of_slices_matches_reference) {
  auto a = sample(100, 1);
  auto b = sample(77, 2);
  auto da = this->up(a.view());
  auto db = this->up(b.view());
  // Slices that start mid-bitmask-word exercise the mask offset.
  auto out = this->down(
      concatenate({da.view().slice(3, 70), db.view(), da.view().slice(0, 0)}, this->ctx()).view());
  auto expected = rows_of(a.view().slice(3, 70));
  auto rb = rows_of(b.view());
  expected.insert(expected.end(), rb.begin(), rb.end());
  EXPECT_EQ(rows_of(out.view()), expected);
}

TYPED_TEST_P(copying_test, copy_slice_compacts) {
  auto a = sample(200, 5);
  auto da = this->up(a.view());
  auto out = this->down(copy_slice(da.view(), 37, 161, this->ctx()).view());
  EXPECT_EQ(rows_of(out.view()), rows_of(a.view().slice(37, 161)));
}

TYPED_TEST_P(copying_test, concatenate_rejects_mismatched_types) {
  auto a = sample(10, 1);
  auto b = make_table({});
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("i", random_float64(5, 0, 1, 0, 1));
  cols.emplace_back("s", random_strings(5, 3, 0, 1));
  cols.emplace_back("f", random_float64(5, 0, 1, 0, 1));
  auto c = make_table(std::move(cols));
  auto da = this->up(a.view());
  auto dc = this->up(c.view());
  try {
    (void)concatenate({da.view(), dc.view()}, this->ctx());
    FAIL() << "expected invalid_input";
  } catch (const invalid_input& e) {
    EXPECT_NE(std::string(e.what()).find("column 'i' is int64 in table 0 but float64"),
              std::string::npos)
        << e.what();
  }
}

REGISTER_TYPED_TEST_SUITE_P(copying_test, gather_matches_reference_including_negative_indices,
                            concatenate_of_slices_matches_reference, copy_slice_compacts,
                            concatenate_rejects_mismatched_types);
INSTANTIATE_TYPED_TEST_SUITE_P(backends, copying_test, all_backends);

}  // namespace
}  // namespace ember::test
