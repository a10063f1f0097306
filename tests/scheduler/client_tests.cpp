// The public API: datasets check columns when they are built, combine only within a client,
// run through the codec unchanged, and write CSV.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/plan_codec.hpp>
#include <fstream>
#include <sstream>

#include "common/tables.hpp"
#include "scheduler/helpers.hpp"

namespace ember::test {
namespace {

using ::testing::HasSubstr;

client cpu_client(int workers = 2) {
  client_options o;
  o.backend = backend_choice::cpu;
  o.workers = workers;
  return client::local(o);
}

table people() {
  return table_of(
      "name", make_string_column(std::vector<std::string>{"ada", "bo", "cy", "di", "ed"}), "age",
      make_column<std::int64_t>(type_id::int64, std::vector<std::int64_t>{36, 7, 52, 7, 19}));
}

template <class F>
void expect_invalid(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no ember::invalid_input";
  } catch (const invalid_input& e) {
    for (const auto& p : parts) EXPECT_THAT(e.what(), HasSubstr(p));
  }
}

TEST(client, unknown_columns_are_reported_when_the_dataset_is_built) {
  auto c = cpu_client();
  auto ds = c.from_table(people());
  expect_invalid([&] { (void)ds.filter(col("agee") > lit(std::int64_t{3})); },
                 {"filter", "unknown column 'agee'", "name, age"});
  expect_invalid([&] { (void)ds.group_by({"nam"}); }, {"group_by", "unknown column 'nam'"});
  expect_invalid(
      [&] {
        (void)ds.group_by({"name"}).aggregate({{aggregation_kind::sum, "height", "h"}});
      },
      {"aggregate", "unknown column 'height'"});
  expect_invalid([&] { (void)ds.sort({{"size", false, false}}); }, {"sort", "'size'"});
  expect_invalid([&] { (void)ds.select({"name", "email"}); }, {"project", "'email'"});
  expect_invalid([&] { (void)ds.join(c.from_table(people()), {"id"}); }, {"join", "'id'"});
  expect_invalid([&] { (void)ds.tokenize("age"); }, {"tokenize", "'age' is int64"});
  expect_invalid([&] { (void)ds.limit(-1); }, {"limit", "negative"});
  expect_invalid([&] { (void)ds.concat(c.generate("range", 3)); }, {"concat"});
  expect_invalid([&] { (void)c.read_text({"/no/such/book.txt"}); }, {"/no/such/book.txt"});
  expect_invalid([&] { (void)c.generate("people", 3); }, {"unknown generator 'people'"});
  expect_invalid([&] { (void)c.generate("range", -3); }, {"negative row count"});
  expect_invalid([&] { (void)concat({}); }, {"at least one"});
}

TEST(client, datasets_of_different_clients_do_not_mix) {
  auto a = cpu_client(1);
  auto b = cpu_client(1);
  expect_invalid([&] { (void)a.from_table(people()).join(b.from_table(people()), {"name"}); },
                 {"different clients"});
  expect_invalid([&] { (void)a.from_table(people()).concat(b.from_table(people())); },
                 {"different clients"});
}

TEST(client, operators_compose_lazily) {
  auto c = cpu_client();
  auto ds = c.from_table(people(), 2)
                .with_columns({{"age", col("age") + lit(std::int64_t{1})},
                               {"adult", col("age") >= lit(std::int64_t{18})}})
                .filter(col("adult"))
                .select({"name", "age"})
                .sort({{"age", true, false}});
  EXPECT_EQ(ds.columns(), (schema{{"name", "age"}, {type_id::string, type_id::int64}}));
  auto t = ds.collect();
  EXPECT_EQ(copy_strings(t.view().column("name")),
            (std::vector<std::optional<std::string>>{"cy", "ada", "ed"}));
  EXPECT_EQ(copy_values<std::int64_t>(t.view().column("age")),
            (std::vector<std::int64_t>{53, 37, 20}));
  auto counts = c.from_table(people())
                    .group_by({"age"})
                    .aggregate({{aggregation_kind::count_all, "", "n"}})
                    .sort({{"age", false, false}})
                    .collect();
  EXPECT_EQ(copy_values<std::int64_t>(counts.view().column("n")),
            (std::vector<std::int64_t>{2, 1, 1, 1}));
  auto everyone =
      c.from_table(people()).aggregate({{aggregation_kind::mean, "age", "mean"}}).collect();
  EXPECT_DOUBLE_EQ(copy_values<double>(everyone.view().column(0)).at(0), 121.0 / 5.0);
}

TEST(client, a_plan_survives_the_codec_and_runs_the_same) {
  auto c = cpu_client(3);
  auto ds = c.generate("keyed", 3000, 4)
                .filter(col("v") > lit(std::int64_t{1000}))
                .join(c.from_table(people()), {"key"}, {"age"}, join_kind::left)
                .group_by({"name"}, {{aggregation_kind::count_all, "", "n"},
                                     {aggregation_kind::mean, "x", "mx"}})
                .sort({{"name", false, true}})
                .label("report");
  auto bytes = encode_plan(ds.logical_plan());
  auto again = c.from_plan(decode_plan(bytes));
  EXPECT_EQ(again.columns(), ds.columns());
  expect_same_table(again.collect().view(), ds.collect().view(), true, 0.0);
  EXPECT_EQ(c.explain(again.logical_plan()).to_string(), c.explain(ds.logical_plan()).to_string());
}

TEST(client, write_produces_csv_with_a_header) {
  auto c = cpu_client();
  temp_dir dir;
  auto path = dir.path() / "people.csv";
  auto metrics = c.from_table(people()).sort({{"name", false, false}}).write(path);
  EXPECT_FALSE(metrics.stages.empty());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "name,age\nada,36\nbo,7\ncy,52\ndi,7\ned,19\n");
  expect_invalid(
      [&] { (void)c.from_table(people()).write(dir.path() / "no" / "such" / "dir.csv"); },
      {"dir.csv"});
}

TEST(client, tables_are_moved_in_or_copied) {
  auto c = cpu_client(1);
  auto t = people();
  auto view_ds = c.from_table(t.view());
  auto moved = c.from_table(std::move(t));
  expect_same_table(view_ds.collect().view(), moved.collect().view(), true, 0.0);
  EXPECT_EQ(c.num_workers(), 1);
  EXPECT_EQ(c.default_partitions(), 2);
  EXPECT_EQ(c.worker_descriptions().size(), 1u);
  EXPECT_EQ(c.options().workers, 1);
}

TEST(client, a_moved_client_keeps_running) {
  auto c = cpu_client(2);
  auto ds = c.generate("range", 1000);
  client other = std::move(c);
  auto sum = ds.aggregate({{aggregation_kind::sum, "id", "s"}}).collect();
  EXPECT_EQ(copy_values<std::int64_t>(sum.view().column(0)).at(0), 999 * 1000 / 2);
  EXPECT_EQ(other.num_workers(), 2);
}

}  // namespace
}  // namespace ember::test

namespace ember::test {
namespace {

TEST(client, repartition_keeps_every_row_and_puts_equal_keys_together) {
  auto c = cpu_client(3);
  auto d = c.generate("keyed", 100'000, 7, 500).repartition({"key"});
  auto plan = c.explain(d.logical_plan());
  ASSERT_EQ(plan.stages.size(), 2u);
  EXPECT_EQ(plan.stages[0].output.mode, exchange_mode::hash);
  EXPECT_EQ(plan.stages[0].output.keys, std::vector<std::string>{"key"});
  // Every row arrives once: the same rows as the input, in some order.
  auto got = d.collect();
  auto want = c.generate("keyed", 100'000, 7, 500).collect();
  EXPECT_EQ(sorted_rows(got.view()), sorted_rows(want.view()));
  // Equal keys share a partition: counting per key after the shuffle needs no second shuffle.
  auto counted = c.generate("keyed", 1000, 7, 10).repartition({"key"});
  EXPECT_EQ(c.explain(counted.logical_plan()).stages.back().body.nodes.size(), 1u);
  expect_invalid([&] { (void)d.repartition({"nope"}); }, {"nope"});
  expect_invalid([&] { (void)d.repartition({}); }, {"no key columns"});
}

}  // namespace
}  // namespace ember::test
