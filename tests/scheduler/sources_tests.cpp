#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/io.hpp>
#include <ember/scheduler/generators.hpp>
#include <ember/scheduler/schema_inference.hpp>
#include <ember/scheduler/sources.hpp>
#include <ember/scheduler/table_bytes.hpp>
#include <set>

#include "common/tables.hpp"
#include "scheduler/helpers.hpp"

namespace ember::test {
namespace {

using ::testing::HasSubstr;

std::vector<std::optional<std::string>> all_lines(const text_source& src, int partitions) {
  std::vector<std::optional<std::string>> out;
  for (int p = 0; p < partitions; ++p) {
    auto t = text_partition(src, p, partitions);
    EXPECT_EQ(t.names(), std::vector<std::string>{"line"});
    auto lines = copy_strings(t.view().column(0));
    out.insert(out.end(), lines.begin(), lines.end());
  }
  return out;
}

TEST(sources, partition_ranges_cover_every_row_once) {
  for (size_type rows : {0, 1, 7, 100, 1001}) {
    for (int parts : {1, 2, 3, 8, 13}) {
      size_type next = 0;
      for (int p = 0; p < parts; ++p) {
        auto [first, last] = partition_range(rows, p, parts);
        EXPECT_EQ(first, next);
        EXPECT_LE(last - first, rows / parts + 1);
        next = last;
      }
      EXPECT_EQ(next, rows);
    }
  }
  EXPECT_THROW((void)partition_range(10, 3, 3), invalid_input);
  EXPECT_THROW((void)partition_range(10, 0, 0), invalid_input);
}

TEST(sources, text_partitions_hold_every_line_exactly_once_in_order) {
  temp_dir dir;
  std::vector<std::string> paths;
  paths.push_back(dir.write("a.txt", random_text(200, 1)).string());
  paths.push_back(dir.write("empty.txt", "").string());
  paths.push_back(dir.write("b.txt", random_text(57, 2, false)).string());
  paths.push_back(dir.write("blank.txt", "\n\n\r\n").string());
  paths.push_back(dir.write("c.txt", random_text(1, 3, false)).string());
  std::vector<std::filesystem::path> fs_paths(paths.begin(), paths.end());
  auto expected = copy_strings(read_text_lines(fs_paths).view().column(0));
  ASSERT_GT(expected.size(), 250u);
  for (int parts : {1, 2, 3, 7, 16, 64, 5000}) {
    EXPECT_EQ(all_lines(text_source{paths, parts}, parts), expected) << parts << " partitions";
  }
}

TEST(sources, text_errors_name_the_file) {
  temp_dir dir;
  auto missing = (dir.path() / "missing.txt").string();
  try {
    (void)text_partition(text_source{{missing}, 1}, 0, 1);
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("missing.txt"));
  }
  auto long_line = dir.write("long.txt", "short\n" + std::string(100, 'x') + "\n").string();
  try {
    (void)text_partition(text_source{{long_line}, 1}, 0, 1, default_host_resource(), 50);
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("long.txt"));
    EXPECT_THAT(e.what(), HasSubstr("more than the limit of 50"));
  }
}

TEST(sources, table_partitions_are_views_of_the_table) {
  auto t = std::make_shared<const table>(table_of("a", random_int64(100, 0, 9, 0.3, 5)));
  table_source src{t, 3};
  std::vector<row> rows;
  for (int p = 0; p < 3; ++p) {
    auto piece = table_partition(src, p, 3);
    if (p == 0) {
      EXPECT_EQ(piece.column(0).data(), t->view().column(0).data());
    }
    auto r = rows_of(piece);
    rows.insert(rows.end(), r.begin(), r.end());
  }
  EXPECT_EQ(rows, rows_of(t->view()));
}

TEST(generators, every_generator_matches_its_schema_and_is_partition_independent) {
  for (const auto& name : generator_names()) {
    generate_source spec{name, 1234, 99, 0, 0};
    auto whole = generate_rows(spec, 0, spec.rows);
    EXPECT_EQ(schema::of(whole.view()), generator_schema(name)) << name;
    EXPECT_EQ(whole.num_rows(), 1234);
    for (int parts : {1, 4, 7}) {
      std::vector<row> rows;
      for (int p = 0; p < parts; ++p) {
        auto r = rows_of(generated_partition(spec, p, parts).view());
        rows.insert(rows.end(), r.begin(), r.end());
      }
      EXPECT_EQ(rows, rows_of(whole.view())) << name << " in " << parts << " partitions";
    }
    // Another seed gives other data (except for the seedless columns of "range").
    if (name != "range") {
      auto other = generate_rows(generate_source{name, 1234, 100, 0, 0}, 0, 1234);
      EXPECT_NE(rows_of(other.view()), rows_of(whole.view())) << name;
    }
    // The row-bytes estimate is close to what table_bytes measures.
    auto per_row = static_cast<double>(table_bytes(whole.view())) / 1234.0;
    EXPECT_NEAR(per_row, generator_row_bytes(name), 0.5) << name;
  }
}

TEST(generators, keys_take_exactly_the_requested_cardinality) {
  auto keyed = generate_rows(generate_source{"keyed", 10000, 3, 0, 0}, 0, 10000);
  auto keys = copy_values<std::int64_t>(keyed.view().column("key"));
  std::set<std::int64_t> distinct(keys.begin(), keys.end());
  EXPECT_EQ(distinct.size(), 1000u);
  EXPECT_EQ(*distinct.begin(), 0);
  EXPECT_EQ(*distinct.rbegin(), 999);
  auto facts = generate_rows(generate_source{"facts", 500, 3, 64, 0}, 0, 500);
  auto dims = copy_values<std::int64_t>(facts.view().column("dim_key"));
  EXPECT_EQ(std::set<std::int64_t>(dims.begin(), dims.end()).size(), 64u);
  auto events = generate_rows(generate_source{"events", 5000, 3, 50, 0}, 0, 5000);
  auto items = copy_values<std::int64_t>(events.view().column("item_id"));
  EXPECT_LT(*std::max_element(items.begin(), items.end()), 50);
  for (const auto& c : copy_strings(events.view().column("country"))) EXPECT_EQ(c->size(), 2u);
}

TEST(generators, bad_requests_are_rejected) {
  try {
    (void)generator_schema("nope");
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown generator 'nope'"));
    EXPECT_THAT(e.what(), HasSubstr("events"));
  }
  EXPECT_THROW((void)generate_rows(generate_source{"range", 10, 1, 0, 0}, 5, 11), invalid_input);
  EXPECT_THROW((void)generate_rows(generate_source{"range", -1, 1, 0, 0}, 0, 0), invalid_input);
  EXPECT_EQ(items_for(10), 1);
  EXPECT_EQ(items_for(1'000'000), 10'000);
  EXPECT_EQ(items_for(size_type{1} << 40), 100'000);
}

TEST(table_bytes, counts_values_characters_offsets_and_masks) {
  auto t = table_of(
      "a", make_column<std::int64_t>(type_id::int64, std::vector<std::int64_t>{1, 2, 3}), "s",
      make_string_column(std::vector<std::optional<std::string>>{"ab", std::nullopt, "cde"}));
  // 24 bytes of int64, 5 characters + 3 offsets of 8 bytes, and a 1-byte mask.
  EXPECT_EQ(table_bytes(t.view()), 24 + 5 + 24 + 1);
  EXPECT_EQ(table_bytes(t.view().slice(1, 3)), 16 + 3 + 16 + 1);
}

}  // namespace
}  // namespace ember::test
