// Partition files: every type round-trips (with and without nulls, sliced, in several row groups,
// with and without zstd); projection reads only the asked columns; statistics match a simple
// reference (NaN left out, long strings bounded); truncated, bit-flipped, hand-damaged and random
// files are rejected with a message naming the file (and the column for a chunk), never a crash.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/memory_resource.hpp>
#include <ember/host/partition_file.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

// Header-only, so the test fixes up checksums of hand-damaged files without linking xxHash.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/errors.hpp"
#include "common/tables.hpp"
#include "common/temp_dir.hpp"

namespace ember::test {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t tail_bytes = 24;

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

partition_write_options options(compression_codec codec, size_type row_group_rows = 1 << 20) {
  partition_write_options o;
  o.compression = codec;
  o.row_group_rows = row_group_rows;
  o.sync = false;
  return o;
}

// A table of the named columns (make_table's pairs cannot come from a braced list: columns move).
template <class... Cols>
table table_of(const std::vector<std::string>& names, Cols&&... cols) {
  std::vector<column> c;
  (c.push_back(std::forward<Cols>(cols)), ...);
  return table(std::move(c), names);
}

void expect_same(const table_view& expected, const table_view& actual) {
  ASSERT_EQ(actual.names(), expected.names());
  ASSERT_EQ(actual.num_rows(), expected.num_rows());
  for (size_type c = 0; c < expected.num_columns(); ++c) {
    EXPECT_EQ(actual.column(c).type(), expected.column(c).type()) << expected.names()[c];
    EXPECT_EQ(actual.column(c).nullable(), expected.column(c).nullable()) << expected.names()[c];
    EXPECT_EQ(actual.column(c).kind(), memory_kind::host);
  }
  EXPECT_EQ(rows_of(actual), rows_of(expected));
}

// Writes, reads back, compares, and checks that the footer read back is the one written.
partition_file_info round_trip(const table_view& t, const fs::path& path,
                               const partition_write_options& o) {
  auto info = write_partition_file(path, t, o);
  EXPECT_EQ(info, read_partition_info(path));
  EXPECT_EQ(info.file_bytes, static_cast<size_type>(fs::file_size(path)));
  EXPECT_EQ(info.rows, t.num_rows());
  auto back = read_partition_file(path);
  expect_same(t, back.view());
  return info;
}

TEST(partition_file, every_type_round_trips_with_and_without_nulls_in_any_row_groups) {
  temp_dir dir;
  for (int null_every : {0, 3}) {
    auto t = all_types(1000, null_every, 7);
    for (auto codec : {compression_codec::none, compression_codec::zstd}) {
      for (size_type rg : {size_type{1} << 20, size_type{1000}, size_type{999}, size_type{64},
                           size_type{13}, size_type{7}, size_type{1}}) {
        SCOPED_TRACE("nulls every " + std::to_string(null_every) + ", " +
                     std::string(to_string(codec)) + ", row groups of " + std::to_string(rg));
        auto info = round_trip(t.view(), dir.path() / "part-0.emb", options(codec, rg));
        EXPECT_EQ(info.row_groups.size(), static_cast<std::size_t>((1000 + rg - 1) / rg));
        EXPECT_EQ(info.row_group_rows, rg);
        ASSERT_EQ(info.columns.size(), 7u);
        EXPECT_EQ(info.columns[6], (partition_column{"name", type_id::string, null_every > 0}));
        if (rg == 1000 && codec == compression_codec::zstd) {
          // Random values do not shrink; the flag column and nulls' zeros do.
          EXPECT_EQ(info.row_groups[0].chunks[4].codec, compression_codec::zstd);
          EXPECT_LT(info.row_groups[0].chunks[4].stored_bytes,
                    info.row_groups[0].chunks[4].raw_bytes);
        }
      }
    }
  }
}

TEST(partition_file, the_default_options_write_uncompressed_and_sync) {
  temp_dir dir;
  auto t = all_types(300, 4, 3);
  auto info = round_trip(t.view(), dir.path() / "p.emb", {});
  EXPECT_EQ(info.row_group_rows, size_type{1} << 20);
  EXPECT_EQ(info.file_bytes, info.raw_bytes() + 16 + info.footer_bytes + 24);
  for (const auto& k : info.row_groups[0].chunks) EXPECT_EQ(k.codec, compression_codec::none);
}

TEST(partition_file, one_row_and_zero_rows_and_zero_columns) {
  temp_dir dir;
  auto one = all_types(1, 0, 1);
  round_trip(one.view(), dir.path() / "one.emb", options(compression_codec::zstd));

  auto t = all_types(50, 2, 9);
  for (auto codec : {compression_codec::none, compression_codec::zstd}) {
    auto empty = t.view().slice(10, 10);
    auto info = round_trip(empty, dir.path() / "empty.emb", options(codec));
    EXPECT_TRUE(info.row_groups.empty());
    for (const auto& s : info.stats) {
      EXPECT_FALSE(s.has_min_max());
      EXPECT_EQ(s.null_count, 0);
    }
    auto back = read_partition_file(dir.path() / "empty.emb");
    EXPECT_TRUE(back.column(6).nullable());
    EXPECT_EQ(back.view().column(6).offsets()[0], 0);
  }

  auto info =
      round_trip(table_view{}, dir.path() / "nothing.emb", options(compression_codec::zstd));
  EXPECT_TRUE(info.columns.empty());
  EXPECT_EQ(read_partition_file(dir.path() / "nothing.emb").num_columns(), 0);
}

TEST(partition_file, sliced_views_write_only_their_rows) {
  temp_dir dir;
  auto t = all_types(1000, 3, 11);
  for (auto [begin, end] :
       {std::pair<size_type, size_type>{37, 911}, {1, 2}, {8, 1000}, {999, 1000}, {5, 500}}) {
    for (auto codec : {compression_codec::none, compression_codec::zstd}) {
      for (size_type rg : {size_type{1} << 20, size_type{100}, size_type{9}}) {
        SCOPED_TRACE("rows [" + std::to_string(begin) + ", " + std::to_string(end) + ") " +
                     std::string(to_string(codec)) + " groups of " + std::to_string(rg));
        auto slice = t.view().slice(begin, end);
        round_trip(slice, dir.path() / "slice.emb", options(codec, rg));
        // A slice of a slice: mask offsets add up, string offsets start further in.
        if (end - begin > 10) {
          auto inner = slice.slice(3, end - begin - 2);
          round_trip(inner, dir.path() / "inner.emb", options(codec, rg));
        }
      }
    }
  }
}

TEST(partition_file, null_rows_are_stored_as_zeros_so_files_are_reproducible) {
  temp_dir dir;
  std::vector<std::int64_t> a{1, 111, 3, 222};
  std::vector<std::int64_t> b{1, 999, 3, 888};
  std::vector<std::uint8_t> flags{1, 77, 5, 0};  // bools other than 0/1 are written as 0/1
  std::vector<bool> valid{true, false, true, false};
  auto ta = table_of({"x", "f"}, make_column<std::int64_t>(type_id::int64, a, valid),
                     make_column<std::uint8_t>(type_id::bool8, flags, valid));
  auto tb = table_of({"x", "f"}, make_column<std::int64_t>(type_id::int64, b, valid),
                     make_column<std::uint8_t>(type_id::bool8, flags, valid));
  (void)write_partition_file(dir.path() / "a.emb", ta.view(), options(compression_codec::none));
  (void)write_partition_file(dir.path() / "b.emb", tb.view(), options(compression_codec::none));
  EXPECT_EQ(read_bytes(dir.path() / "a.emb"), read_bytes(dir.path() / "b.emb"));
  auto back = read_partition_file(dir.path() / "a.emb");
  EXPECT_EQ(copy_values<std::uint8_t>(back.view().column("f")),
            (std::vector<std::uint8_t>{1, 0, 1, 0}));
  EXPECT_EQ(copy_values<std::int64_t>(back.view().column("x")),
            (std::vector<std::int64_t>{1, 0, 3, 0}));
}

TEST(partition_file, projection_returns_the_asked_columns_in_the_asked_order) {
  temp_dir dir;
  auto t = all_types(500, 5, 2);
  auto path = dir.path() / "part-3.emb";
  (void)write_partition_file(path, t.view(), options(compression_codec::zstd, 128));
  auto back = read_partition_file(path, {"name", "i32"});
  expect_same(t.view().select({"name", "i32"}), back.view());

  expect_rejected(
      [&] {
        (void)read_partition_file(path, {"i32", "nope"});
      },
      {path.string(), "unknown column 'nope'",
       "(the file has: i32, i64, f32, f64, flag, at, name)"});
  expect_rejected(
      [&] {
        (void)read_partition_file(path, {"i32", "i32"});
      },
      {path.string(), "'i32' appears twice"});

  // A budget too small for the result: the reader's scratch and partial columns are all freed.
  tracking_resource budget(default_host_resource(), "tiny", 1000);
  EXPECT_THROW((void)read_partition_file(path, {}, budget), out_of_memory);
  EXPECT_EQ(budget.used(), 0u);
}

// The footer's position, from the tail.
std::size_t footer_at(const std::string& bytes) {
  std::uint64_t footer_bytes;
  std::memcpy(&footer_bytes, bytes.data() + bytes.size() - tail_bytes, 8);
  return bytes.size() - tail_bytes - static_cast<std::size_t>(footer_bytes);
}

void fix_footer_checksum(std::string& bytes) {
  auto at = footer_at(bytes);
  std::uint64_t sum = XXH3_64bits(bytes.data() + at, bytes.size() - tail_bytes - at);
  std::memcpy(bytes.data() + bytes.size() - 16, &sum, 8);
}

// After a chunk's bytes were changed on purpose: its checksum in the footer, and the footer's.
void fix_chunk_checksum(std::string& bytes, const chunk_info& k) {
  std::uint64_t old_sum = k.checksum;
  std::uint64_t new_sum =
      XXH3_64bits(bytes.data() + k.offset, static_cast<std::size_t>(k.stored_bytes));
  auto at = footer_at(bytes);
  std::string needle(reinterpret_cast<const char*>(&old_sum), 8);
  auto pos = bytes.find(needle, at);
  ASSERT_NE(pos, std::string::npos);
  ASSERT_EQ(bytes.find(needle, pos + 1), std::string::npos);
  std::memcpy(bytes.data() + pos, &new_sum, 8);
  fix_footer_checksum(bytes);
}

TEST(partition_file, projection_reads_only_the_projected_chunks) {
  temp_dir dir;
  auto t = all_types(300, 0, 4);
  auto path = dir.path() / "part-0.emb";
  auto info = write_partition_file(path, t.view(), options(compression_codec::zstd, 100));
  auto bytes = read_bytes(path);
  const auto& k = info.row_groups[2].chunks[3];  // f64, row group 2
  bytes[static_cast<std::size_t>(k.offset + k.stored_bytes / 2)] ^= 0x10;
  write_bytes(path, bytes);
  auto back = read_partition_file(path, {"name", "i64"});
  expect_same(t.view().select({"name", "i64"}), back.view());
  expect_rejected([&] { (void)read_partition_file(path); },
                  {path.string(), "checksum mismatch in column 'f64' row group 2"});
  expect_rejected([&] { (void)read_partition_file(path, {"f64"}); },
                  {path.string(), "checksum mismatch in column 'f64' row group 2"});
}

// ---- statistics ---------------------------------------------------------------------------------

struct reference_stats {
  size_type nulls = 0;
  size_type nans = 0;
  std::optional<scalar> min;
  std::optional<scalar> max;
};

reference_stats reference(const column_view& c, size_type begin, size_type end) {
  reference_stats r;
  for (size_type i = begin; i < end; ++i) {
    auto v = get_scalar(c, i);
    if (!v.valid()) {
      ++r.nulls;
      continue;
    }
    if (is_floating(v.type()) && std::isnan(v.as_float())) {
      ++r.nans;
      continue;
    }
    if (!r.min || scalar_less(v, *r.min)) r.min = v;
    if (!r.max || scalar_less(*r.max, v)) r.max = v;
  }
  return r;
}

void expect_stats(const column_stats& s, const reference_stats& r, const std::string& where) {
  SCOPED_TRACE(where);
  EXPECT_EQ(s.null_count, r.nulls);
  EXPECT_EQ(s.nan_count, r.nans);
  ASSERT_EQ(s.has_min_max(), r.min.has_value());
  if (r.min) {
    EXPECT_EQ(s.min, *r.min) << s.min.to_text() << " vs " << r.min->to_text();
    EXPECT_EQ(s.max, *r.max) << s.max.to_text() << " vs " << r.max->to_text();
    EXPECT_FALSE(s.min_truncated || s.max_truncated || s.max_unbounded);
  }
}

TEST(partition_file, statistics_match_a_reference_per_row_group_and_per_file) {
  temp_dir dir;
  auto t = all_types(2000, 3, 5);
  // NaN in a float column: left out of min/max and counted; one row group is all NaN or null.
  std::vector<double> d(2000);
  std::vector<bool> valid(2000, true);
  for (std::size_t i = 0; i < d.size(); ++i) {
    d[i] = i % 7 == 0 ? std::nan("") : static_cast<double>(i) - 1000.5;
    if (i % 11 == 0) valid[i] = false;
    if (i >= 300 && i < 420) d[i] = std::numeric_limits<double>::quiet_NaN();
    if (i == 1500) d[i] = -std::numeric_limits<double>::infinity();
  }
  auto cols = t.release();
  std::vector<std::string> names{"i32", "i64", "f32", "f64", "flag", "at", "name", "nan"};
  cols.push_back(make_column<double>(type_id::float64, d, valid));
  table full(std::move(cols), names);
  auto view = full.view().slice(3, 1998);
  auto info =
      write_partition_file(dir.path() / "s.emb", view, options(compression_codec::zstd, 100));
  ASSERT_EQ(info.row_groups.size(), 20u);
  for (std::size_t g = 0; g < info.row_groups.size(); ++g) {
    const auto& rg = info.row_groups[g];
    for (size_type c = 0; c < view.num_columns(); ++c)
      expect_stats(rg.chunks[c].stats,
                   reference(view.column(c), rg.first_row, rg.first_row + rg.rows),
                   names[c] + " row group " + std::to_string(g));
  }
  for (size_type c = 0; c < view.num_columns(); ++c)
    expect_stats(info.stats[c], reference(view.column(c), 0, view.num_rows()), names[c]);
  // Row group 3 holds rows 303..402 of the table, every one NaN or null.
  const auto& all_nan = info.row_groups[3].chunks[7].stats;
  EXPECT_FALSE(all_nan.has_min_max());
  EXPECT_EQ(all_nan.null_count + all_nan.nan_count, 100);
  EXPECT_EQ(info.stats[7].min, scalar::float64(-std::numeric_limits<double>::infinity()));
  EXPECT_EQ(info, read_partition_info(dir.path() / "s.emb"));
}

bool byte_less(const std::string& a, const std::string& b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return static_cast<unsigned char>(x) < static_cast<unsigned char>(y);
  });
}

TEST(partition_file, long_strings_are_bounded_by_at_most_64_bytes) {
  temp_dir dir;
  const std::string ff64(64, '\xff');
  struct case_t {
    std::vector<std::string> values;
    std::string min;
    bool min_truncated;
    std::optional<std::string> max;  // nullopt: unbounded
    bool max_truncated;
  };
  std::vector<case_t> cases{
      {{"b", "a"}, "a", false, "b", false},
      {{std::string(64, 'a'), std::string(64, 'z')},
       std::string(64, 'a'),
       false,
       std::string(64, 'z'),
       false},
      {{std::string(100, 'm'), std::string(90, 'q')},
       std::string(64, 'm'),
       true,
       std::string(63, 'q') + 'r',
       true},
      {{"a", std::string(63, 'c') + std::string(10, '\xff')},
       "a",
       false,
       std::string(62, 'c') + 'd',
       true},
      {{"", ff64 + "x"}, "", false, std::nullopt, false},
      {{std::string("\x80") + std::string(70, 'a'), "\x7f"},
       "\x7f",
       false,
       std::string("\x80") + std::string(62, 'a') + 'b',
       true},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& tc = cases[i];
    SCOPED_TRACE("case " + std::to_string(i));
    auto t = table_of({"s"}, make_string_column(tc.values));
    auto info = round_trip(t.view(), dir.path() / "s.emb", options(compression_codec::none));
    const auto& s = info.row_groups[0].chunks[0].stats;
    EXPECT_EQ(s.min, scalar::string(tc.min));
    EXPECT_EQ(s.min_truncated, tc.min_truncated);
    EXPECT_EQ(s.max_truncated, tc.max_truncated);
    EXPECT_EQ(s.max_unbounded, !tc.max.has_value());
    if (tc.max) {
      EXPECT_EQ(s.max, scalar::string(*tc.max));
    } else {
      EXPECT_FALSE(s.max.valid());
    }
    // Bounds hold for every value.
    for (const auto& v : tc.values) {
      EXPECT_FALSE(byte_less(v, s.min.as_string())) << v;
      if (tc.max) {
        EXPECT_FALSE(byte_less(s.max.as_string(), v)) << v;
      }
    }
  }
}

TEST(partition_file, may_contain_skips_only_what_cannot_match) {
  column_stats s;
  s.min = scalar::int64(10);
  s.max = scalar::int64(20);
  using op = comparison;
  EXPECT_FALSE(may_contain(s, op::eq, scalar::int64(9)));
  EXPECT_TRUE(may_contain(s, op::eq, scalar::int64(10)));
  EXPECT_TRUE(may_contain(s, op::eq, scalar::int32(15)));
  EXPECT_FALSE(may_contain(s, op::eq, scalar::int64(21)));
  EXPECT_FALSE(may_contain(s, op::lt, scalar::int64(10)));
  EXPECT_TRUE(may_contain(s, op::le, scalar::int64(10)));
  EXPECT_FALSE(may_contain(s, op::gt, scalar::int64(20)));
  EXPECT_TRUE(may_contain(s, op::ge, scalar::int64(20)));
  EXPECT_TRUE(may_contain(s, op::ne, scalar::int64(10)));
  // Integers against floats, exactly.
  EXPECT_FALSE(may_contain(s, op::gt, scalar::float64(20.5)));
  EXPECT_TRUE(may_contain(s, op::gt, scalar::float64(19.5)));
  EXPECT_FALSE(may_contain(s, op::lt, scalar::float64(9.99)));
  EXPECT_TRUE(may_contain(s, op::eq, scalar::float64(15.5)));
  column_stats big;
  big.min = big.max = scalar::int64((std::int64_t{1} << 53) + 1);
  EXPECT_FALSE(may_contain(big, op::eq, scalar::float64(9007199254740992.0)));
  EXPECT_TRUE(may_contain(big, op::gt, scalar::float64(9007199254740992.0)));
  // A null value never matches; NaN in the chunk or the value answers true.
  EXPECT_FALSE(may_contain(s, op::ne, scalar::null(type_id::int64)));
  column_stats one;
  one.min = one.max = scalar::float64(7);
  EXPECT_FALSE(may_contain(one, op::ne, scalar::float64(7)));
  EXPECT_TRUE(may_contain(one, op::ne, scalar::float64(8)));
  EXPECT_TRUE(may_contain(one, op::lt, scalar::float64(std::nan(""))));
  one.nan_count = 1;
  EXPECT_TRUE(may_contain(one, op::gt, scalar::float64(100)));
  // Only nulls: nothing matches.
  column_stats nulls;
  nulls.null_count = 5;
  nulls.min = nulls.max = scalar::null(type_id::int32);
  EXPECT_FALSE(may_contain(nulls, op::ne, scalar::int32(1)));
  // Strings: truncated bounds stay bounds; unbounded max admits everything above min.
  column_stats str;
  str.min = scalar::string(std::string(64, 'm'));
  str.min_truncated = true;
  str.max = scalar::string("q");
  str.max_truncated = true;
  EXPECT_TRUE(may_contain(str, op::eq, scalar::string(std::string(70, 'm'))));
  EXPECT_FALSE(may_contain(str, op::eq, scalar::string("l")));
  EXPECT_FALSE(may_contain(str, op::gt, scalar::string("q")));
  EXPECT_TRUE(may_contain(str, op::ne, scalar::string("m")));
  str.max = scalar::null(type_id::string);
  str.max_truncated = false;
  str.max_unbounded = true;
  EXPECT_TRUE(may_contain(str, op::gt, scalar::string("\xff\xff")));
  EXPECT_FALSE(may_contain(str, op::lt, scalar::string("a")));
  expect_invalid_input([&] { (void)may_contain(str, op::eq, scalar::int64(1)); },
                       "cannot compare a string column with a int64 value");
}

TEST(partition_file, statistics_prune_the_row_groups_of_a_sorted_column) {
  temp_dir dir;
  std::vector<std::int64_t> v(1000);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::int64_t>(i) * 10;
  auto t = table_of({"k"}, make_column<std::int64_t>(type_id::int64, v));
  auto info =
      write_partition_file(dir.path() / "k.emb", t.view(), options(compression_codec::zstd, 100));
  int kept = 0;
  for (const auto& g : info.row_groups)
    kept += may_contain(g.chunks[0].stats, comparison::eq, scalar::int64(4550)) ? 1 : 0;
  EXPECT_EQ(kept, 1);
  EXPECT_FALSE(may_contain(info.stats[0], comparison::gt, scalar::int64(9990)));
  EXPECT_TRUE(may_contain(info.stats[0], comparison::ge, scalar::int64(9990)));
}

// ---- damaged files ------------------------------------------------------------------------------

// A small file of two row groups with every type, nulls and both codecs in use.
partition_file_info small_file(const fs::path& path, compression_codec codec) {
  auto t = all_types(90, 4, 8);
  return write_partition_file(path, t.view(), options(codec, 50));
}

TEST(partition_file, truncation_at_any_point_is_detected_and_names_the_file) {
  temp_dir dir;
  for (auto codec : {compression_codec::none, compression_codec::zstd}) {
    auto good = dir.path() / "good.emb";
    auto info = small_file(good, codec);
    auto bytes = read_bytes(good);
    auto path = dir.path() / "part-0.emb";
    std::vector<std::size_t> cuts;
    for (std::size_t n = 0; n <= 40; ++n) cuts.push_back(n);
    for (std::size_t n = 41; n < bytes.size() / 2; n += 37) cuts.push_back(n);
    auto footer_begin = bytes.size() - tail_bytes - static_cast<std::size_t>(info.footer_bytes);
    for (std::size_t n = footer_begin - 3; n < bytes.size(); ++n) cuts.push_back(n);
    for (auto n : cuts) {
      SCOPED_TRACE("cut at " + std::to_string(n) + " of " + std::to_string(bytes.size()));
      write_bytes(path, bytes.substr(0, n));
      expect_rejected([&] { (void)read_partition_info(path); },
                      {path.string() + ": ", n == 0 ? "empty file" : "truncated"});
      if (n % 8 == 0)
        expect_rejected([&] { (void)read_partition_file(path); }, {path.string() + ": "});
    }
    // The message says how much is missing.
    write_bytes(path, bytes.substr(0, 1000));
    expect_rejected([&] { (void)read_partition_info(path); },
                    {path.string() + ": truncated (the header claims " +
                     std::to_string(bytes.size()) + " bytes but the file has 1000)"});
  }
}

TEST(partition_file, a_flipped_byte_in_the_header_footer_or_tail_is_detected) {
  temp_dir dir;
  auto good = dir.path() / "good.emb";
  auto info = small_file(good, compression_codec::zstd);
  auto bytes = read_bytes(good);
  auto path = dir.path() / "part-1.emb";
  std::vector<std::size_t> at;
  for (std::size_t i = 0; i < 16; ++i) at.push_back(i);
  for (std::size_t i = footer_at(bytes); i < bytes.size(); ++i) at.push_back(i);
  const std::uint8_t flips[] = {0x01, 0x80, 0xff, 0x10};
  for (auto i : at) {
    auto flip = flips[i % 4];
    SCOPED_TRACE("byte " + std::to_string(i) + " ^ " + std::to_string(flip));
    auto damaged = bytes;
    damaged[i] = static_cast<char>(damaged[i] ^ flip);
    write_bytes(path, damaged);
    expect_rejected([&] { (void)read_partition_info(path); }, {path.string() + ": "});
  }
}

TEST(partition_file, a_flipped_byte_in_any_chunk_names_its_column_and_row_group) {
  temp_dir dir;
  for (auto codec : {compression_codec::none, compression_codec::zstd}) {
    auto good = dir.path() / "good.emb";
    auto info = small_file(good, codec);
    auto bytes = read_bytes(good);
    auto path = dir.path() / "part-2.emb";
    for (std::size_t g = 0; g < info.row_groups.size(); ++g) {
      for (std::size_t c = 0; c < info.columns.size(); ++c) {
        const auto& k = info.row_groups[g].chunks[c];
        for (auto off : {k.offset, k.offset + k.stored_bytes / 2, k.offset + k.stored_bytes - 1}) {
          auto damaged = bytes;
          damaged[static_cast<std::size_t>(off)] ^= 0x04;
          write_bytes(path, damaged);
          // The footer alone is fine; reading the chunk is not.
          EXPECT_EQ(read_partition_info(path), info);
          expect_rejected([&] { (void)read_partition_file(path); },
                          {path.string() + ": checksum mismatch in column '" +
                           info.columns[c].name + "' row group " + std::to_string(g)});
        }
      }
    }
  }
}

TEST(partition_file, wrong_magic_version_and_unfinished_files_say_so) {
  temp_dir dir;
  auto good = dir.path() / "good.emb";
  (void)small_file(good, compression_codec::none);
  auto bytes = read_bytes(good);
  auto path = dir.path() / "part-5.emb";

  auto d = bytes;
  d[0] = 'X';
  write_bytes(path, d);
  expect_rejected([&] { (void)read_partition_info(path); },
                  {path.string() + ": not an ember partition file (bad magic)"});
  d = bytes;
  d[4] = 9;
  write_bytes(path, d);
  expect_rejected([&] { (void)read_partition_info(path); },
                  {path.string() + ": unsupported version 9"});
  d = bytes;
  std::memset(d.data() + 8, 0, 8);
  write_bytes(path, d);
  expect_rejected([&] { (void)read_partition_info(path); }, {path.string() + ": incomplete"});
  write_bytes(path, bytes + "extra");
  expect_rejected([&] { (void)read_partition_info(path); },
                  {path.string() + ": the header claims"});
  write_bytes(path, "a,b\n1,2\n");
  expect_rejected([&] { (void)read_partition_info(path); },
                  {path.string() + ": not an ember partition file (bad magic)"});

  try {
    (void)read_partition_info(dir.path() / "missing.emb");
    ADD_FAILURE() << "expected ember::error";
  } catch (const invalid_input& e) {
    ADD_FAILURE() << "a missing file is an I/O error, not bad data: " << e.what();
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.emb"), std::string::npos) << e.what();
  }
}

TEST(partition_file, random_garbage_is_rejected) {
  temp_dir dir;
  auto path = dir.path() / "garbage.emb";
  std::mt19937_64 rng(42);
  for (std::size_t n : {1, 3, 4, 15, 16, 39, 40, 41, 100, 4096, 100000}) {
    for (int round = 0; round < 5; ++round) {
      std::string bytes(n, '\0');
      for (auto& b : bytes) b = static_cast<char>(rng());
      // Half of them get past the magic, version and size checks.
      if (round % 2 == 1 && n >= 16) {
        std::uint32_t magic = 0x50424d45u;
        std::uint16_t version = 1;
        std::uint16_t flags = 0;
        std::uint64_t size = n;
        std::memcpy(bytes.data(), &magic, 4);
        std::memcpy(bytes.data() + 4, &version, 2);
        std::memcpy(bytes.data() + 6, &flags, 2);
        std::memcpy(bytes.data() + 8, &size, 8);
        if (n >= 40) {
          std::memcpy(bytes.data() + n - 4, &magic, 4);
          std::memcpy(bytes.data() + n - 8, &flags, 2);
          std::memcpy(bytes.data() + n - 6, &version, 2);
          std::uint64_t footer = rng() % (n - 40 + 1);
          std::memcpy(bytes.data() + n - 24, &footer, 8);
          if (round == 3) fix_footer_checksum(bytes);
        }
      }
      SCOPED_TRACE(std::to_string(n) + " bytes, round " + std::to_string(round));
      write_bytes(path, bytes);
      expect_rejected([&] { (void)read_partition_info(path); }, {path.string() + ": "});
      expect_rejected([&] { (void)read_partition_file(path); }, {path.string() + ": "});
    }
  }
}

// Damage that checksums cannot see (the checksums are fixed up after it) is still caught by the
// decoders, or at worst read as other valid data: never a crash or a huge allocation.
TEST(partition_file, damage_behind_valid_checksums_is_caught_by_the_decoders) {
  temp_dir dir;
  auto t = table_of({"s", "b"},
                    make_string_column(std::vector<std::optional<std::string>>{
                        "alpha", std::nullopt, "gamma", "delta"}),
                    make_column<std::uint8_t>(type_id::bool8, {1, 0, 1, 1}));
  auto good = dir.path() / "good.emb";
  auto info = write_partition_file(good, t.view(), options(compression_codec::none));
  auto bytes = read_bytes(good);
  auto path = dir.path() / "part-9.emb";
  const auto& s = info.row_groups[0].chunks[0];
  const auto& b = info.row_groups[0].chunks[1];
  auto patch = [&](const chunk_info& k, std::size_t at, const void* v, std::size_t n) {
    auto d = bytes;
    std::memcpy(d.data() + k.offset + at, v, n);
    fix_chunk_checksum(d, k);
    write_bytes(path, d);
  };
  std::uint8_t two = 2;
  patch(b, 2, &two, 1);
  expect_rejected([&] { (void)read_partition_file(path); },
                  {path.string() + ": column 'b' row group 0: a bool value is neither 0 nor 1"});
  std::int64_t far = 1000;
  patch(s, 1 + 8 * 2, &far, 8);  // after the 1-byte bitmap: offset of row 2
  expect_rejected([&] { (void)read_partition_file(path); },
                  {path.string() + ": column 's' row group 0: string offset 2 is 1000"});
  std::int64_t back = 1;
  patch(s, 1 + 8 * 3, &back, 8);
  expect_rejected([&] { (void)read_partition_file(path); }, {"column 's'", "string offset 3"});
  std::uint8_t all_valid = 0x0f;
  patch(s, 0, &all_valid, 1);
  expect_rejected([&] { (void)read_partition_file(path); },
                  {"column 's' row group 0: its bitmap holds 0 nulls but the footer counts 1"});
}

TEST(partition_file, mutated_footers_with_valid_checksums_never_crash) {
  temp_dir dir;
  auto good = dir.path() / "good.emb";
  auto info = small_file(good, compression_codec::zstd);
  auto bytes = read_bytes(good);
  auto path = dir.path() / "fuzz.emb";
  auto begin = footer_at(bytes);
  auto end = bytes.size() - tail_bytes;
  std::mt19937_64 rng(1234);
  tracking_resource budget(default_host_resource(), "fuzz reads", std::size_t{256} << 20);
  int rejected = 0;
  for (int round = 0; round < 1000; ++round) {
    auto d = bytes;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      auto i = begin + rng() % (end - begin);
      d[i] =
          round % 3 == 0 ? static_cast<char>(rng()) : static_cast<char>(d[i] ^ (1 << (rng() % 8)));
    }
    fix_footer_checksum(d);
    write_bytes(path, d);
    try {
      (void)read_partition_file(path, {}, budget);
    } catch (const invalid_input& e) {
      ++rejected;
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(rejected, 800);
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_EQ(read_partition_info(good), info);
}

TEST(partition_file, mutated_chunks_with_valid_checksums_never_crash) {
  temp_dir dir;
  for (auto codec : {compression_codec::none, compression_codec::zstd}) {
    auto good = dir.path() / "good.emb";
    auto info = small_file(good, codec);
    auto bytes = read_bytes(good);
    auto path = dir.path() / "fuzz.emb";
    std::mt19937_64 rng(99);
    int rejected = 0;
    for (int round = 0; round < 500; ++round) {
      const auto& g = info.row_groups[rng() % info.row_groups.size()];
      const auto& k = g.chunks[rng() % g.chunks.size()];
      auto d = bytes;
      auto i =
          static_cast<std::size_t>(k.offset) + rng() % static_cast<std::size_t>(k.stored_bytes);
      d[i] = static_cast<char>(d[i] ^ (1 << (rng() % 8)));
      fix_chunk_checksum(d, k);
      write_bytes(path, d);
      try {
        (void)read_partition_file(path);
      } catch (const invalid_input& e) {
        ++rejected;
        EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
      }
    }
    // Flipped value bits read back as other values; flipped sizes and structure do not.
    EXPECT_GT(rejected, codec == compression_codec::zstd ? 100 : 80) << to_string(codec);
  }
}

// ---- writing errors -----------------------------------------------------------------------------

TEST(partition_file, writing_rejects_device_columns_bad_options_and_unwritable_paths) {
  temp_dir dir;
  std::vector<std::int64_t> v{1, 2, 3};
  column_view device(type_id::int64, 3, v.data(), nullptr, memory_kind::device);
  table_view t({device}, {"amount"});
  auto path = dir.path() / "part-0.emb";
  expect_rejected([&] { (void)write_partition_file(path, t, {}); },
                  {path.string() + ": cannot write column 'amount': it is in device memory"});
  EXPECT_FALSE(fs::exists(path));

  auto host = table_of({"amount"}, make_column<std::int64_t>(type_id::int64, v));
  auto o = options(compression_codec::zstd, 0);
  expect_rejected([&] { (void)write_partition_file(path, host.view(), o); },
                  {path.string(), "row_group_rows must be positive"});
  o = options(compression_codec::zstd);
  o.level = 1000;
  expect_rejected([&] { (void)write_partition_file(path, host.view(), o); },
                  {path.string(), "zstd level 1000"});

  auto nowhere = dir.path() / "no-such-folder" / "part-0.emb";
  try {
    (void)write_partition_file(nowhere, host.view(), {});
    ADD_FAILURE() << "expected ember::error";
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find(nowhere.string()), std::string::npos) << e.what();
  }
}

// ---- size ---------------------------------------------------------------------------------------

TEST(partition_file, three_million_rows_round_trip_quickly) {
  temp_dir dir;
  const std::size_t n = 3'000'000;
  auto t = table_of({"id", "amount", "key"}, random_int64(n, 0, 1'000'000'000, 0.0, 1),
                    random_float64(n, -1e6, 1e6, 0.05, 2), random_strings(n, 100000, 0.1, 3));
  for (auto codec : {compression_codec::none, compression_codec::zstd}) {
    auto path = dir.path() / ("big-" + std::string(to_string(codec)) + ".emb");
    partition_write_options o;
    o.compression = codec;
    auto started = std::chrono::steady_clock::now();
    auto info = write_partition_file(path, t.view(), o);
    auto wrote = std::chrono::steady_clock::now();
    auto back = read_partition_file(path);
    auto read = std::chrono::steady_clock::now();
    auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    double mb = static_cast<double>(info.raw_bytes()) / 1e6;
    std::cout << "[ perf     ] " << to_string(codec) << ": " << mb << " MB raw, "
              << static_cast<double>(info.file_bytes) / 1e6 << " MB on disk, "
              << info.row_groups.size() << " row groups; write (with fsync) "
              << mb / seconds(started, wrote) << " MB/s, read " << mb / seconds(wrote, read)
              << " MB/s\n";
    ASSERT_EQ(back.num_rows(), static_cast<size_type>(n));
    EXPECT_EQ(info.row_groups.size(), 3u);
    auto bv = back.view();
    auto tv = t.view();
    EXPECT_EQ(copy_values<std::int64_t>(bv.column(0)), copy_values<std::int64_t>(tv.column(0)));
    EXPECT_EQ(copy_optional<double>(bv.column(1)), copy_optional<double>(tv.column(1)));
    EXPECT_EQ(copy_strings(bv.column(2)), copy_strings(tv.column(2)));
    EXPECT_EQ(info.stats[1].null_count, count_nulls(tv.column(1)));
  }
}

}  // namespace
}  // namespace ember::test
