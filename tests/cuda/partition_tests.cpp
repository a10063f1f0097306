#include <ember/cuda/partition.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>

#include "common/backends.hpp"
#include "common/tables.hpp"
#include "common/errors.hpp"

namespace ember::test {
namespace {

template <class Backend>
class partition_test : public backend_test<Backend> {
 protected:
  /// hash_partition by this backend, brought back to the host.
  partitioned_table run(const table_view& host, const std::vector<std::string>& keys, int parts,
                        std::uint64_t seed = default_partition_seed) {
    auto dev = this->up(host);
    auto result = hash_partition(dev.view(), keys, parts, this->ctx(), seed);
    return partitioned_table{this->down(result.rows.view()), result.offsets};
  }
};
TYPED_TEST_SUITE_P(partition_test);

column row_ids(std::size_t n) {
  std::vector<std::int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return make_column<std::int64_t>(type_id::int64, v);
}

/// Doubles with NaNs of both signs and zeros of both signs among ordinary values.
column tricky_doubles(std::size_t n, std::uint64_t seed) {
  const double pool[] = {std::numeric_limits<double>::quiet_NaN(),
                         -std::numeric_limits<double>::quiet_NaN(),
                         0.0,
                         -0.0,
                         1.0,
                         -2.5,
                         1e300};
  std::mt19937_64 rng(seed);
  std::vector<double> v(n);
  std::vector<bool> valid(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = pool[rng() % std::size(pool)];
    valid[i] = rng() % 10 != 0;
  }
  return make_column<double>(type_id::float64, v, valid);
}

table sample(std::size_t n, std::uint64_t seed) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("id", row_ids(n));
  cols.emplace_back("i", random_int64(n, -50, 50, 0.1, seed));
  cols.emplace_back("s", random_strings(n, 30, 0.2, seed + 1));
  cols.emplace_back("f", tricky_doubles(n, seed + 2));
  cols.emplace_back("g", random_int32(n, 0, 3, 0.0, seed + 3));
  return make_table(std::move(cols));
}

/// A key's text under the operator's equality: nulls alike, NaNs alike, -0.0 equal to 0.0.
std::string key_text(const table_view& t, const std::vector<std::string>& keys, size_type r) {
  std::string out;
  for (const auto& k : keys) {
    auto v = get_scalar(t.column(k), r);
    if (!v.valid()) {
      out += "<null>|";
    } else if (v.type() == type_id::float64 || v.type() == type_id::float32) {
      double x = v.as_float();
      char buf[64];
      std::snprintf(buf, sizeof buf, "%a", x == 0.0 ? 0.0 : x);
      out += std::isnan(x) ? std::string("nan") : std::string(buf);
      out += "|";
    } else {
      out += v.to_text() + "|";
    }
  }
  return out;
}

/// Checks the shape every partitioning must have and returns each input row's partition.
std::vector<int> check_partitioning(const partitioned_table& result, const table_view& input,
                                    const std::vector<std::string>& keys, int parts) {
  std::size_t n = static_cast<std::size_t>(input.num_rows());
  EXPECT_EQ(result.num_partitions(), parts);
  EXPECT_EQ(result.offsets.size(), static_cast<std::size_t>(parts) + 1);
  EXPECT_EQ(result.offsets.front(), 0);
  EXPECT_EQ(result.offsets.back(), static_cast<size_type>(n));
  EXPECT_EQ(result.rows.num_rows(), static_cast<size_type>(n));
  EXPECT_EQ(result.rows.names(), input.names());
  std::vector<int> part_of(n, -1);
  auto out_rows = rows_of(result.rows.view());
  auto in_rows = rows_of(input);
  // The id column counts rows from the input's first one (a slice starts past 0).
  auto ids = copy_values<std::int64_t>(result.rows.view().column("id"));
  std::int64_t base = n > 0 ? get_scalar(input.column("id"), 0).as_int() : 0;
  for (auto& id : ids) id -= base;
  for (int p = 0; p < parts; ++p) {
    EXPECT_LE(result.offsets[p], result.offsets[p + 1]) << "partition " << p;
    EXPECT_EQ(result.partition(p).num_rows(), result.offsets[p + 1] - result.offsets[p]);
    std::int64_t previous = -1;
    for (size_type r = result.offsets[p]; r < result.offsets[p + 1]; ++r) {
      auto id = ids[r];
      EXPECT_GT(id, previous) << "partition " << p << " lost the input order";
      previous = id;
      EXPECT_EQ(part_of[id], -1) << "row " << id << " appears twice";
      part_of[id] = p;
      // Whole rows travel (NaN-free columns only: scalar == fails on NaN).
      EXPECT_EQ(out_rows[r][0], in_rows[id][0]);
      EXPECT_EQ(out_rows[r][1], in_rows[id][1]);
      EXPECT_EQ(out_rows[r][2], in_rows[id][2]);
    }
  }
  for (std::size_t i = 0; i < n; ++i) EXPECT_NE(part_of[i], -1) << "row " << i << " is missing";
  // Equal keys (nulls, NaNs and both zeros included) land together.
  std::map<std::string, int> key_part;
  for (std::size_t i = 0; i < n; ++i) {
    auto [it, inserted] =
        key_part.emplace(key_text(input, keys, static_cast<size_type>(i)), part_of[i]);
    EXPECT_EQ(it->second, part_of[i]) << "key " << it->first << " is split";
  }
  return part_of;
}

/// The assignment the portable CPU body makes: every backend must agree with it.
std::vector<int> portable_assignment(const table_view& input, const std::vector<std::string>& keys,
                                     int parts, std::uint64_t seed = default_partition_seed) {
  auto ctx = context::create(cpu_portable::options());
  auto dev = to_device(input, *ctx);
  auto result = hash_partition(dev.view(), keys, parts, *ctx, seed);
  auto rows = to_host(result.rows.view(), *ctx);
  auto ids = copy_values<std::int64_t>(rows.view().column("id"));
  std::vector<int> part_of(ids.size());
  for (int p = 0; p < parts; ++p)
    for (size_type r = result.offsets[p]; r < result.offsets[p + 1]; ++r) part_of[ids[r]] = p;
  return part_of;
}

TYPED_TEST_P(partition_test, every_row_lands_once_and_equal_keys_together) {
  const std::vector<std::vector<std::string>> key_sets = {
      {"i"}, {"s"}, {"f"}, {"g", "s"}, {"s", "i", "f"}};
  for (std::size_t n : {0, 1, 31, 32, 33, 1023, 1024, 1025, 40000}) {
    auto input = sample(n, 5 + n);
    for (const auto& keys : key_sets) {
      for (int parts : {1, 2, 7, 64}) {
        SCOPED_TRACE("n=" + std::to_string(n) + " parts=" + std::to_string(parts) + " key " +
                     keys[0]);
        auto result = this->run(input.view(), keys, parts);
        auto part_of = check_partitioning(result, input.view(), keys, parts);
        EXPECT_EQ(part_of, portable_assignment(input.view(), keys, parts));
      }
    }
  }
}

TYPED_TEST_P(partition_test, one_partition_keeps_the_table) {
  auto input = sample(500, 3);
  auto result = this->run(input.view(), {"s"}, 1);
  ASSERT_EQ(result.offsets, (std::vector<size_type>{0, 500}));
  EXPECT_EQ(copy_values<std::int64_t>(result.rows.view().column("id")),
            copy_values<std::int64_t>(input.view().column("id")));
}

TYPED_TEST_P(partition_test, more_partitions_than_rows) {
  auto input = sample(10, 4);
  auto result = this->run(input.view(), {"i", "s"}, 1000);
  check_partitioning(result, input.view(), {"i", "s"}, 1000);
  int non_empty = 0;
  for (int p = 0; p < 1000; ++p) non_empty += result.partition(p).num_rows() > 0 ? 1 : 0;
  EXPECT_GE(non_empty, 1);
  EXPECT_LE(non_empty, 10);
  auto empty = this->run(sample(0, 1).view(), {"i"}, 5);
  EXPECT_EQ(empty.offsets, std::vector<size_type>(6, 0));
  EXPECT_EQ(empty.rows.num_columns(), 5);
}

TYPED_TEST_P(partition_test, all_rows_one_key_and_a_hot_key) {
  std::size_t n = 5000;
  std::vector<std::int64_t> v(n, 77);
  for (std::size_t i = 0; i < n; i += 10) v[i] = static_cast<std::int64_t>(i);
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("id", row_ids(n));
  cols.emplace_back("k", make_column<std::int64_t>(type_id::int64, v));
  cols.emplace_back("same", random_strings(n, 1, 0.0, 1));
  auto input = make_table(std::move(cols));
  for (const auto& keys : std::vector<std::vector<std::string>>{{"k"}, {"same"}}) {
    auto result = this->run(input.view(), keys, 16);
    check_partitioning(result, input.view(), keys, 16);
  }
  auto result = this->run(input.view(), {"same"}, 16);
  int non_empty = 0;
  for (int p = 0; p < 16; ++p) non_empty += result.partition(p).num_rows() > 0 ? 1 : 0;
  EXPECT_EQ(non_empty, 1);
}

TYPED_TEST_P(partition_test, sliced_views_and_repeated_keys) {
  auto full = sample(3000, 9);
  for (auto [b, e] : {std::pair<size_type, size_type>{3, 2990}, {33, 34}, {1000, 1000}}) {
    SCOPED_TRACE("slice " + std::to_string(b) + ".." + std::to_string(e));
    auto input = full.view().slice(b, e);
    auto compact = copy_table(input);
    std::vector<std::string> keys{"s", "i", "s"};
    auto sliced = this->run(input, keys, 5);
    auto whole = this->run(compact.view(), keys, 5);
    EXPECT_EQ(sliced.offsets, whole.offsets);
    EXPECT_EQ(copy_values<std::int64_t>(sliced.rows.view().column("id")),
              copy_values<std::int64_t>(whole.rows.view().column("id")));
    check_partitioning(sliced, input, keys, 5);
  }
}

TYPED_TEST_P(partition_test, hash_is_pinned_and_seeded) {
  // Every process must agree: partition = row hash mod P, where the row hash of one int64 key
  // is combine(seed, mix64(value)) and a null hashes to a fixed constant.
  auto mix64 = [](std::uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
  };
  auto combine = [](std::uint64_t seed, std::uint64_t h) {
    return seed ^ (h + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
  };
  std::vector<std::int64_t> v = {0, 1, -1, 42, 1 << 30, std::numeric_limits<std::int64_t>::min(),
                                 7};
  std::vector<bool> valid = {true, true, true, true, true, true, false};
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("id", row_ids(v.size()));
  cols.emplace_back("k", make_column<std::int64_t>(type_id::int64, v, valid));
  auto input = make_table(std::move(cols));
  for (std::uint64_t seed : {default_partition_seed, std::uint64_t{12345}}) {
    auto result = this->run(input.view(), {"k"}, 13, seed);
    auto ids = copy_values<std::int64_t>(result.rows.view().column("id"));
    for (int p = 0; p < 13; ++p) {
      for (size_type r = result.offsets[p]; r < result.offsets[p + 1]; ++r) {
        auto i = static_cast<std::size_t>(ids[r]);
        std::uint64_t h =
            valid[i] ? mix64(static_cast<std::uint64_t>(v[i])) : 0x5bd1e9955bd1e995ULL;
        EXPECT_EQ(static_cast<int>(combine(seed, h) % 13), p) << "value " << v[i];
      }
    }
  }
  auto input2 = sample(1000, 2);
  auto a = this->run(input2.view(), {"i", "s"}, 8, 1);
  auto b = this->run(input2.view(), {"i", "s"}, 8, 2);
  EXPECT_NE(copy_values<std::int64_t>(a.rows.view().column("id")),
            copy_values<std::int64_t>(b.rows.view().column("id")));
}

TYPED_TEST_P(partition_test, over_a_million_rows) {
  std::size_t n = 1'100'000;
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("id", row_ids(n));
  cols.emplace_back("k", random_int64(n, 0, 200000, 0.0, 8));
  auto input = make_table(std::move(cols));
  auto result = this->run(input.view(), {"k"}, 31);
  ASSERT_EQ(result.offsets.size(), 32u);
  EXPECT_EQ(result.offsets.back(), static_cast<size_type>(n));
  auto ids = copy_values<std::int64_t>(result.rows.view().column("id"));
  std::vector<int> part_of(n, -1);
  for (int p = 0; p < 31; ++p) {
    // A decent hash spreads 200k keys evenly: every partition within 10% of n / 31.
    auto size = result.offsets[p + 1] - result.offsets[p];
    EXPECT_NEAR(static_cast<double>(size), n / 31.0, n / 310.0) << "partition " << p;
    for (size_type r = result.offsets[p]; r < result.offsets[p + 1]; ++r) {
      if (r > result.offsets[p]) {
        ASSERT_LT(ids[r - 1], ids[r]);
      }
      part_of[ids[r]] = p;
    }
  }
  EXPECT_EQ(part_of, portable_assignment(input.view(), {"k"}, 31));
}

TYPED_TEST_P(partition_test, errors_name_the_problem) {
  auto input = this->up(sample(10, 1).view());
  auto& ctx = this->ctx();
  expect_invalid_input(
      [&] {
        (void)hash_partition(input.view(), {"i", "nope"}, 4, ctx);
      },
      "hash_partition: unknown column 'nope' (the table has: id, i, s, f, g)");
  expect_invalid_input([&] { (void)hash_partition(input.view(), {"i"}, 0, ctx); },
                       "hash_partition: num_partitions must be at least 1, got 0");
  expect_invalid_input([&] { (void)hash_partition(input.view(), {"i"}, -3, ctx); },
                       "hash_partition: num_partitions must be at least 1, got -3");
  expect_invalid_input([&] { (void)hash_partition(input.view(), {}, 4, ctx); },
                       "hash_partition: no key columns given");
}

REGISTER_TYPED_TEST_SUITE_P(partition_test, every_row_lands_once_and_equal_keys_together,
                            one_partition_keeps_the_table, more_partitions_than_rows,
                            all_rows_one_key_and_a_hot_key, sliced_views_and_repeated_keys,
                            hash_is_pinned_and_seeded, over_a_million_rows,
                            errors_name_the_problem);
INSTANTIATE_TYPED_TEST_SUITE_P(backends, partition_test, all_backends);

}  // namespace
}  // namespace ember::test
