#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/io.hpp>
#include <ember/host/memory_resource.hpp>
#include <ember/host/table.hpp>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "common/tables.hpp"

namespace ember::test {
namespace {

TEST(table, unknown_column_names_the_column_and_lists_the_others) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("a", random_int64(3, 0, 1, 0, 1));
  cols.emplace_back("b", random_strings(3, 2, 0, 1));
  auto t = make_table(std::move(cols));
  try {
    (void)t.view().column("zz");
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_STREQ(e.what(), "unknown column 'zz' (the table has: a, b)");
  }
}

TEST(table, rejects_columns_of_different_lengths) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("a", random_int64(3, 0, 1, 0, 1));
  cols.emplace_back("b", random_int64(4, 0, 1, 0, 1));
  EXPECT_THROW((void)make_table(std::move(cols)), invalid_input);
}

TEST(table, slice_keeps_values_and_nulls) {
  auto c = make_string_column(
      std::vector<std::optional<std::string>>{"a", std::nullopt, "ccc", "", "e"});
  auto v = c.view().slice(1, 4);
  auto s = copy_strings(v);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_FALSE(s[0].has_value());
  EXPECT_EQ(*s[1], "ccc");
  EXPECT_EQ(*s[2], "");
  auto copy = copy_column(v);
  EXPECT_EQ(copy_strings(copy.view()), s);
  EXPECT_THROW((void)c.view().slice(2, 9), invalid_input);
}

TEST(tracking_resource, accounts_and_enforces_the_budget) {
  tracking_resource tr(default_host_resource(), "test tier", 1000);
  {
    buffer a(600, tr);
    EXPECT_EQ(tr.used(), 600u);
    try {
      buffer b(500, tr);
      FAIL();
    } catch (const out_of_memory& e) {
      EXPECT_NE(std::string(e.what()).find("test tier"), std::string::npos);
    }
    buffer c(400, tr);
    EXPECT_EQ(tr.used(), 1000u);
  }
  EXPECT_EQ(tr.used(), 0u);
  EXPECT_EQ(tr.peak(), 1000u);
}

TEST(io, csv_quotes_and_nulls) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("s", make_string_column(std::vector<std::optional<std::string>>{
                             "plain", "a,b", "say \"hi\"", std::nullopt}));
  cols.emplace_back("x", make_column<double>(type_id::float64, {0.1, 2.0, -3.5, 1e300},
                                             {true, true, false, true}));
  auto t = make_table(std::move(cols));
  std::ostringstream out;
  write_csv(t.view(), out);
  EXPECT_EQ(out.str(), "s,x\nplain,0.1\n\"a,b\",2\n\"say \"\"hi\"\"\",\n,1e+300\n");
}

TEST(io, unreadable_input_names_the_file) {
  try {
    (void)read_text_lines({"/nonexistent/ember/file.txt"});
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ember/file.txt"), std::string::npos);
  }
}

TEST(io, reads_lines_with_crlf) {
  auto path = std::filesystem::temp_directory_path() / "ember_io_test.txt";
  {
    std::ofstream f(path, std::ios::binary);
    f << "one two\r\nthree\n\nlast";
  }
  auto t = read_text_lines({path});
  auto lines = copy_strings(t.view().column("line"));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(*lines[0], "one two");
  EXPECT_EQ(*lines[1], "three");
  EXPECT_EQ(*lines[2], "");
  EXPECT_EQ(*lines[3], "last");
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace ember::test

namespace ember::test {
namespace {

TEST(host_pool_resource, reuses_freed_large_blocks_and_respects_its_cap) {
  host_pool_resource pool(default_host_resource(), 8u << 20);
  void* a = pool.allocate(3u << 20);
  pool.deallocate(a, 3u << 20);
  EXPECT_EQ(pool.cached_bytes(), 3u << 20);
  void* b = pool.allocate(3u << 20);
  EXPECT_EQ(a, b);  // the warm block came back
  EXPECT_EQ(pool.cached_bytes(), 0u);
  void* c = pool.allocate(6u << 20);
  pool.deallocate(b, 3u << 20);
  pool.deallocate(c, 6u << 20);  // over the cap: goes back upstream
  EXPECT_EQ(pool.cached_bytes(), 3u << 20);
  void* small = pool.allocate(100);  // small requests bypass the pool
  pool.deallocate(small, 100);
  EXPECT_EQ(pool.cached_bytes(), 3u << 20);
  pool.release_cached();
  EXPECT_EQ(pool.cached_bytes(), 0u);
}

}  // namespace
}  // namespace ember::test
